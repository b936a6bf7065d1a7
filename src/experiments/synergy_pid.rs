//! Synergy measured in the harness's data (issue 27 §2): the BROJA partial information
//! decomposition ([`crate::estimators::pid`]) of each tier's label against two groups of
//! modalities, with a permutation null, and the per-clip codes that the PID of a model's test
//! predictions needs ([`crate::report::prediction_pid`]).
//!
//! # From sequences to codes
//!
//! 1. **Clip-level summary** ([`clip_means`]): each modality of clip `i` becomes the mean of its
//!    feature vectors over the clip's valid steps, `x̄_i = (1/L_i) Σ_{t < L_i} x_{i,t}` (padding
//!    excluded). Why the mean: every tier's generator puts a clip's modality signal on a fixed
//!    direction at its valid steps (synthetic text on about half of them, audio/vision on all)
//!    with independent noise per step, so the mean keeps the signal and divides the noise variance
//!    by `L_i`; for real GloVe words it is the usual bag-of-words sentence vector. It needs no
//!    training and no label, so it cannot leak the label into the codes.
//! 2. **Standardisation** with the training split's column means and standard deviations (a
//!    constant column is only centred): audio+vision concatenates features in different units.
//! 3. **PCA and k-means** ([`crate::estimators::KMeans`]): projection onto at most
//!    [`MAX_COMPONENTS`] principal axes, then `k` clusters; both fitted on the training split
//!    only and applied to the evaluated split. Cluster labels are renumbered by first appearance
//!    in the evaluated split (a PID does not depend on labels; this makes equal partitions equal
//!    vectors).
//! 4. **The label** ([`label_codes`]): regression (MOSI, MOSEI) → `1[y ≥ 0]`, negatives vs
//!    non-negatives (MMSA's "Has0" Acc2 split); binary (UR-FUNNY) → `1[y ≥ 0.5]`. Why the sign and
//!    not the 7-class rounding: the synergy the synthetic tiers build in (sarcasm flips the words'
//!    polarity) is a synergy about the *sign*, Acc2 is the paper's headline classification metric,
//!    and a 7-valued target would multiply the cells of the plug-in table by 3.5 (the plug-in
//!    bias grows with the cells). Non-negatives rather than "drop the zeros" keeps every test clip,
//!    so the PID of the labels and of every model's predictions run on the same clips.
//!
//! # Why k = 8 ([`DEFAULT_CLUSTERS`])
//!
//! Chosen on the sizes alone, before any PID was computed: the smallest evaluated split is
//! real-text MOSI's test split (685 clips); with a binary target the joint table of
//! `(x1, x2, y)` has `2k²` cells, and the usual rule for plug-in contingency estimates — at least
//! about 5 samples per cell on average — gives `2k² ≤ 685/5`, i.e. `k ≤ 8`. The same k on every
//! tier keeps the numbers comparable. The permutation null (≥ 100 shuffles of `Y`) measures what
//! the remaining small-sample bias produces, so "synergy present" means above the null's 95th
//! percentile, not above 0.

use crate::data::{Dataset, DatasetName, Split, Task, TestSubset, Tier};
use crate::estimators::pid::{synergy_null, PidError};
use crate::estimators::{KMeans, KMeansParams};
use crate::experiments::{Plan, Profile, WeightGrid};
use ndarray::{concatenate, Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Clusters per input (see the module documentation for why 8).
pub const DEFAULT_CLUSTERS: usize = 8;
/// Permutations of the null.
pub(crate) const DEFAULT_DRAWS: usize = 100;
/// Principal axes kept before k-means when a summary is wider.
pub const MAX_COMPONENTS: usize = 10;
/// Seed of the k-means initialisation (and of the null's permutations by default).
pub const DEFAULT_SEED: u64 = 0;

/// One sentence describing how [`PidCodes`] are made (stored with them).
pub const CODES_METHOD: &str = "per clip: mean of each modality's features over its valid steps; \
    z-scored with the train split's column means/sds; PCA to at most 10 axes and k-means \
    (k-means++ seeds, 4 restarts) fitted on the train split, applied to the test split; cluster \
    labels renumbered by first appearance in the test split";

/// Why a tier PID or its codes could not be computed.
#[derive(Debug, Error)]
pub enum SynergyPidError {
    /// The PID, its null or the k-means refused their input.
    #[error(transparent)]
    Pid(#[from] PidError),
    /// A split has no clips.
    #[error("the {split} split has no clips")]
    EmptySplit { split: &'static str },
    /// A feature of a clip is NaN or infinite, so its mean is not defined.
    #[error(
        "the {split} split's clip '{id}' (row {row}) has a non-finite {modality} feature \
         (column {col}); the clip-level mean needs finite features"
    )]
    NonFinite {
        split: &'static str,
        id: String,
        row: usize,
        modality: &'static str,
        col: usize,
    },
    /// A label or a prediction is NaN or infinite.
    #[error("{what} {index} is not finite ({value})")]
    NonFiniteValue {
        what: &'static str,
        index: usize,
        value: f64,
    },
    /// A parameter is outside its domain.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// A regenerated dataset does not match what a results folder's `run.json` recorded.
    #[error("run.json's {what} differ from those of the regenerated data: {detail}")]
    Mismatch { what: &'static str, detail: String },
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, SynergyPidError>;

/// A modality of the datasets (in their storage order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Text,
    Audio,
    Vision,
}

impl Modality {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Audio => "audio",
            Modality::Vision => "vision",
        }
    }

    fn index(self) -> usize {
        match self {
            Modality::Text => 0,
            Modality::Audio => 1,
            Modality::Vision => 2,
        }
    }

    fn values(self, s: &Split) -> &[f32] {
        match self {
            Modality::Text => &s.text,
            Modality::Audio => &s.audio,
            Modality::Vision => &s.vision,
        }
    }
}

/// The clip-level summary of one modality of `split` (a split of `ds`): row `i` is
/// `x̄_i = (1/L_i) Σ_{t < L_i} x_{i,t}` with `L_i` the clip's valid length clamped to
/// `1..=t_max`, in f64. Errors on a non-finite feature or a split whose arrays are shorter than
/// `N × t_max × d` (`split_name` names the split in the error).
pub fn clip_means(
    ds: &Dataset,
    split: &Split,
    split_name: &'static str,
    modality: Modality,
) -> Result<Array2<f64>> {
    let n = split.len();
    let d = ds.dims[modality.index()];
    let tm = ds.t_max;
    let v = modality.values(split);
    if n == 0 {
        return Err(SynergyPidError::EmptySplit { split: split_name });
    }
    if v.len() < n * tm * d || split.lengths.len() < n {
        return Err(SynergyPidError::InvalidParameter {
            name: "split",
            reason: format!(
                "the {split_name} split's {} holds {} values for {n} clips × {tm} steps × {d}",
                modality.name(),
                v.len()
            ),
        });
    }
    let mut out = Array2::<f64>::zeros((n, d));
    for (i, mut row) in out.rows_mut().into_iter().enumerate() {
        let len = split.lengths[i].clamp(1, tm);
        let base = i * tm * d;
        for t in 0..len {
            let step = &v[base + t * d..base + (t + 1) * d];
            for (j, (acc, &x)) in row.iter_mut().zip(step).enumerate() {
                if !x.is_finite() {
                    return Err(SynergyPidError::NonFinite {
                        split: split_name,
                        id: split.ids.get(i).cloned().unwrap_or_default(),
                        row: i,
                        modality: modality.name(),
                        col: j,
                    });
                }
                *acc += f64::from(x);
            }
        }
        row /= len as f64;
    }
    Ok(out)
}

/// The clip-level summaries of several modalities side by side (columns concatenated).
fn group_means(
    ds: &Dataset,
    split: &Split,
    split_name: &'static str,
    group: &[Modality],
) -> Result<Array2<f64>> {
    let parts = group
        .iter()
        .map(|&m| clip_means(ds, split, split_name, m))
        .collect::<Result<Vec<_>>>()?;
    let views: Vec<ArrayView2<f64>> = parts.iter().map(|a| a.view()).collect();
    concatenate(Axis(1), &views).map_err(|e| SynergyPidError::InvalidParameter {
        name: "modalities",
        reason: format!("cannot concatenate the summaries: {e}"),
    })
}

/// A discretiser fitted on a training matrix: z-scores with the training column means `μ` and
/// standard deviations `σ` (`σ = 1` for a constant column), then [`KMeans`] (PCA to at most
/// [`MAX_COMPONENTS`] axes, `k` clusters). Code of a row `x`: the nearest centroid of
/// `(x − μ)/σ` after the projection.
#[derive(Debug, Clone)]
pub(crate) struct Quantiser {
    /// Training column means.
    pub mean: Array1<f64>,
    /// Training column standard deviations (population; 1 where a column is constant).
    pub scale: Array1<f64>,
    /// The k-means fitted on the standardised training rows.
    pub kmeans: KMeans,
}

impl Quantiser {
    /// Fits on the rows of `train` with `k` clusters and k-means seed `seed` (needs
    /// `1 ≤ k ≤ rows` and finite values).
    pub(crate) fn fit(train: &ArrayView2<f64>, k: usize, seed: u64) -> Result<Self> {
        crate::estimators::check_matrix("train features", train).map_err(PidError::from)?;
        let n = train.nrows() as f64;
        let mean = train.mean_axis(Axis(0)).expect("non-empty checked");
        let var = train
            .rows()
            .into_iter()
            .fold(Array1::<f64>::zeros(train.ncols()), |acc, r| {
                let c = &r - &mean;
                acc + &c * &c
            })
            / n;
        let scale = var.mapv(|v| if v.sqrt() > 1e-12 { v.sqrt() } else { 1.0 });
        let z = (train - &mean) / &scale;
        let kmeans = KMeans::fit_with(
            &z.view(),
            &KMeansParams {
                seed,
                max_components: MAX_COMPONENTS,
                ..KMeansParams::new(k)
            },
        )?;
        Ok(Self {
            mean,
            scale,
            kmeans,
        })
    }

    /// The cluster index of every row of `x` (same width as the training matrix).
    pub(crate) fn codes(&self, x: &ArrayView2<f64>) -> Result<Vec<usize>> {
        if x.ncols() != self.mean.len() {
            return Err(
                PidError::Input(crate::error::EstimatorError::DimensionMismatch {
                    x: "features",
                    dx: x.ncols(),
                    y: "the training features",
                    dy: self.mean.len(),
                })
                .into(),
            );
        }
        let z = (x - &self.mean) / &self.scale;
        Ok(self.kmeans.predict(&z.view())?)
    }
}

/// `codes` renumbered `0, 1, …` in order of first appearance (the same partition).
pub(crate) fn canonical(codes: &[usize]) -> Vec<usize> {
    let mut seen: std::collections::HashMap<usize, usize> = Default::default();
    codes
        .iter()
        .map(|c| {
            let next = seen.len();
            *seen.entry(*c).or_insert(next)
        })
        .collect()
}

/// The codes of `group` on the `eval` split, by a [`Quantiser`] fitted on the train split.
fn group_codes(
    ds: &Dataset,
    group: &[Modality],
    eval: EvalSplit,
    k: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    let train = group_means(ds, &ds.train, "train", group)?;
    if train.nrows() < k {
        return Err(SynergyPidError::InvalidParameter {
            name: "clusters",
            reason: format!(
                "k = {k} clusters need at least {k} training clips, the train split has {}",
                train.nrows()
            ),
        });
    }
    let q = Quantiser::fit(&train.view(), k, seed)?;
    let x = group_means(ds, eval.of(ds), eval.name(), group)?;
    Ok(canonical(&q.codes(&x.view())?))
}

/// Which split a tier PID is measured on (the quantisers are always fitted on train).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EvalSplit {
    /// The validation split (for design checks that must not look at test numbers).
    Valid,
    /// The test split (the reported numbers).
    Test,
}

impl EvalSplit {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            EvalSplit::Valid => "valid",
            EvalSplit::Test => "test",
        }
    }

    fn of(self, ds: &Dataset) -> &Split {
        match self {
            EvalSplit::Valid => &ds.valid,
            EvalSplit::Test => &ds.test,
        }
    }
}

/// Discrete codes of the target: regression `1[y ≥ 0]` (negatives vs non-negatives),
/// binary `1[y ≥ 0.5]` (labels 0/1). Errors on a non-finite label.
pub fn label_codes(labels: &[f64], task: Task) -> Result<Vec<usize>> {
    let cut = match task {
        Task::Regression => 0.0,
        Task::Binary => 0.5,
    };
    codes_at(labels, cut, "label")
}

/// Discrete codes of a model's test predictions, discretised like the labels at the metrics'
/// thresholds: regression `1[ŷ ≥ 0]`, binary (logits) `1[z ≥ 0]` (probability ≥ ½). Errors on a
/// non-finite prediction.
pub fn prediction_codes(pred: &[f64], task: Task) -> Result<Vec<usize>> {
    let _ = task; // both thresholds are 0 (a logit of 0 is a probability of ½)
    codes_at(pred, 0.0, "prediction")
}

fn codes_at(v: &[f64], cut: f64, what: &'static str) -> Result<Vec<usize>> {
    v.iter()
        .enumerate()
        .map(|(index, &value)| {
            if value.is_finite() {
                Ok(usize::from(value >= cut))
            } else {
                Err(SynergyPidError::NonFiniteValue { what, index, value })
            }
        })
        .collect()
}

/// The text and audio+vision codes of every test clip (in the test split's order), stored once
/// per results folder (`run.json`'s `pid_codes`) so the PID of any run's test predictions can be
/// computed without the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidCodes {
    /// `k` of each input's k-means.
    pub clusters: usize,
    /// Seed of the k-means initialisation.
    pub seed: u64,
    /// How the codes were made ([`CODES_METHOD`]).
    pub method: String,
    /// Code of each test clip's text summary.
    pub text: Vec<usize>,
    /// Code of each test clip's audio+vision summary (the two concatenated).
    pub audio_vision: Vec<usize>,
}

impl PidCodes {
    /// Test clips coded.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether no clip is coded.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Checks that both code vectors have one entry per test clip (`n`).
    pub fn check_len(&self, n: usize) -> Result<()> {
        if self.text.len() != n || self.audio_vision.len() != n {
            return Err(SynergyPidError::Mismatch {
                what: "PID codes",
                detail: format!(
                    "{} text and {} audio+vision codes for {n} test clips",
                    self.text.len(),
                    self.audio_vision.len()
                ),
            });
        }
        Ok(())
    }
}

/// `pid_codes_with` at the defaults ([`DEFAULT_CLUSTERS`], [`DEFAULT_SEED`]): what
/// `RunContext::new` stores and `synergy pid-codes` adds.
pub fn pid_codes(ds: &Dataset) -> Result<PidCodes> {
    pid_codes_with(ds, DEFAULT_CLUSTERS, DEFAULT_SEED)
}

/// The test split's text and audio+vision codes: clip means, standardised, PCA and k-means with
/// `clusters` clusters fitted on the train split (see the module documentation).
pub(crate) fn pid_codes_with(ds: &Dataset, clusters: usize, seed: u64) -> Result<PidCodes> {
    let text = group_codes(ds, &[Modality::Text], EvalSplit::Test, clusters, seed)?;
    let audio_vision = group_codes(
        ds,
        &[Modality::Audio, Modality::Vision],
        EvalSplit::Test,
        clusters,
        seed,
    )?;
    Ok(PidCodes {
        clusters,
        seed,
        method: CODES_METHOD.into(),
        text,
        audio_vision,
    })
}

/// Settings of [`tier_pid`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierPidOptions {
    /// Clusters per input (≥ 1).
    pub clusters: usize,
    /// Permutations of the null (≥ 1; 100 or more for a 95th percentile).
    pub draws: usize,
    /// Seed of the k-means and of the permutations.
    pub seed: u64,
    /// The split measured.
    pub split: EvalSplit,
}

impl Default for TierPidOptions {
    fn default() -> Self {
        Self {
            clusters: DEFAULT_CLUSTERS,
            draws: DEFAULT_DRAWS,
            seed: DEFAULT_SEED,
            split: EvalSplit::Test,
        }
    }
}

/// The PID of the label against one pair of modality groups on one set of clips, with its null.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairPid {
    /// `"(text, audio+vision)"` or `"(audio, vision)"`: `(X1, X2)`.
    pub pair: String,
    /// `"all"` (every clip of the split) or a test subset's name.
    pub subset: String,
    /// Clips in the set.
    pub clips: usize,
    /// Share of clips with label code 1 (non-negative / humorous).
    pub positive_share: f64,
    /// `R`, bits.
    pub redundancy: f64,
    /// `U1` (the pair's first group), bits.
    pub unique_x1: f64,
    /// `U2` (the pair's second group), bits.
    pub unique_x2: f64,
    /// `S = I(Y; X1, X2) − min_{q ∈ Δ_p} I_q(Y; X1, X2)`, bits.
    pub synergy: f64,
    /// `I(Y; X1, X2)`, bits.
    pub mutual_information: f64,
    /// Mean and 95th percentile (nearest rank) of the synergy with `Y` permuted, bits.
    pub null_mean: f64,
    pub null_p95: f64,
    /// `(1 + #{null ≥ S}) / (1 + draws)`.
    pub p_value: f64,
    /// `S > null_p95`: synergy above the null.
    pub above_null: bool,
}

/// The PIDs of one tier ([`tier_pid`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierPid {
    pub dataset: String,
    pub tier: String,
    /// The dataset's description.
    pub data: String,
    pub split: EvalSplit,
    pub clusters: usize,
    pub draws: usize,
    pub seed: u64,
    /// How the label is discretised.
    pub label: String,
    /// How the features are summarised and coded ([`CODES_METHOD`]).
    pub method: String,
    /// One row per (pair, subset): pairs (text, audio+vision) then (audio, vision); subsets
    /// "all" then the dataset's test subsets (test split only).
    pub rows: Vec<PairPid>,
}

fn label_rule(task: Task) -> &'static str {
    match task {
        Task::Regression => "sign: 1 if label >= 0 (non-negative), else 0",
        Task::Binary => "binary: 1 if label >= 0.5 (humorous), else 0",
    }
}

/// The PID of the label of `ds` against (text, audio+vision) and (audio, vision), in bits, on
/// the split `opts.split` — on all its clips and, for the test split, on each of the dataset's
/// [`TestSubset`]s — each with a permutation null of `opts.draws` shuffles of the label
/// ([`synergy_null`]). Codes: `Quantiser`s fitted on the train split (one per modality group);
/// label: [`label_codes`].
pub fn tier_pid(ds: &Dataset, opts: &TierPidOptions) -> Result<TierPid> {
    if opts.draws == 0 {
        return Err(SynergyPidError::InvalidParameter {
            name: "draws",
            reason: "the null needs at least 1 permutation (100 or more recommended)".into(),
        });
    }
    if opts.clusters == 0 {
        return Err(SynergyPidError::InvalidParameter {
            name: "clusters",
            reason: "needs at least 1 cluster".into(),
        });
    }
    let split = opts.split.of(ds);
    let labels: Vec<f64> = split.labels.iter().map(|&v| f64::from(v)).collect();
    let y = label_codes(&labels, ds.task)?;
    let (k, seed) = (opts.clusters, opts.seed);
    let codes = |g: &[Modality]| group_codes(ds, g, opts.split, k, seed);
    let text = codes(&[Modality::Text])?;
    let av = codes(&[Modality::Audio, Modality::Vision])?;
    let audio = codes(&[Modality::Audio])?;
    let vision = codes(&[Modality::Vision])?;
    let mut subsets: Vec<TestSubset> = vec![TestSubset {
        name: "all".into(),
        why: String::new(),
        members: vec![true; y.len()],
    }];
    if opts.split == EvalSplit::Test {
        subsets.extend(
            ds.test_subsets
                .iter()
                .filter(|s| s.members.len() == y.len())
                .cloned(),
        );
    }
    let mut rows = Vec::new();
    for (pair, x1, x2) in [
        ("(text, audio+vision)", &text, &av),
        ("(audio, vision)", &audio, &vision),
    ] {
        for sub in &subsets {
            let pick = |v: &[usize]| -> Vec<usize> {
                v.iter()
                    .zip(&sub.members)
                    .filter(|(_, m)| **m)
                    .map(|(c, _)| *c)
                    .collect()
            };
            let (a, b, t) = (pick(x1), pick(x2), pick(&y));
            if t.is_empty() {
                continue;
            }
            let null = synergy_null(&a, &b, &t, opts.draws, seed)?;
            let p = null.observed;
            rows.push(PairPid {
                pair: pair.into(),
                subset: sub.name.clone(),
                clips: t.len(),
                positive_share: t.iter().sum::<usize>() as f64 / t.len() as f64,
                redundancy: p.redundancy,
                unique_x1: p.unique_x1,
                unique_x2: p.unique_x2,
                synergy: p.synergy,
                mutual_information: p.mutual_information,
                null_mean: null.mean,
                null_p95: null.p95,
                p_value: null.p_value,
                above_null: p.synergy > null.p95,
            });
        }
    }
    Ok(TierPid {
        dataset: ds.name.clone(),
        tier: ds.tier.name().into(),
        data: ds.description.clone(),
        split: opts.split,
        clusters: k,
        draws: opts.draws,
        seed,
        label: label_rule(ds.task).into(),
        method: CODES_METHOD.into(),
        rows,
    })
}

impl TierPid {
    /// The rows as a markdown table (bits, 3 decimals).
    pub fn markdown(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.pair.clone(),
                    r.subset.clone(),
                    r.clips.to_string(),
                    format!("{:.3}", r.redundancy),
                    format!("{:.3}", r.unique_x1),
                    format!("{:.3}", r.unique_x2),
                    format!("**{:.3}**", r.synergy),
                    format!("{:.3}", r.null_mean),
                    format!("{:.3}", r.null_p95),
                    if r.above_null { "yes" } else { "no" }.into(),
                    format!("{:.3}", r.mutual_information),
                ]
            })
            .collect();
        crate::markdown::table(
            &[
                "(X1, X2)",
                "clips",
                "n",
                "R",
                "U1",
                "U2",
                "S",
                "null mean",
                "null p95",
                "S > p95",
                "I(Y; X1, X2)",
            ],
            &rows,
        )
    }
}

/// A plan that loads `dataset` of `tier` exactly as `reproduce-paper` does
/// ([`super::load_dataset`]: the smoke profile's subsample included), with no models: what a
/// tier PID or a rebuild of a results folder's data needs.
pub fn loading_plan(
    tier: Tier,
    dataset: DatasetName,
    profile: Profile,
    data_dir: Option<std::path::PathBuf>,
    cues: crate::data::realtext::CueMode,
) -> Plan {
    Plan {
        tier,
        dataset,
        profile,
        seeds: vec![0],
        models: Vec::new(),
        variants: Vec::new(),
        data_dir,
        synergy: crate::synergy::SynergyConfig::default(),
        weight_grid: WeightGrid::default(),
        jobs: 1,
        device: candle_core::Device::Cpu,
        max_epochs: None,
        shard: None,
        cues,
        pairs: None,
        grid: None,
        model_settings: Vec::new(),
    }
}

/// Checks that a regenerated dataset is the one a results folder's `run.json` describes: the same
/// data description, test clip ids and test labels (in order). The error names the first
/// difference.
pub fn check_rebuilt(ctx: &crate::experiments::RunContext, ds: &Dataset) -> Result<()> {
    // the rebuilt data has no BERT tokens attached: a BERT folder's note does not count
    if !crate::data::same_data(&ds.description, &ctx.data) {
        return Err(SynergyPidError::Mismatch {
            what: "data description",
            detail: format!(
                "run.json says {:?}, the regenerated data is {:?}",
                ctx.data, ds.description
            ),
        });
    }
    if ds.test.ids != ctx.test_ids {
        let i = ds
            .test
            .ids
            .iter()
            .zip(&ctx.test_ids)
            .position(|(a, b)| a != b)
            .unwrap_or(ds.test.ids.len().min(ctx.test_ids.len()));
        return Err(SynergyPidError::Mismatch {
            what: "test clip ids",
            detail: format!(
                "{} ids in run.json, {} regenerated; first difference at test row {i}: {:?} vs {:?}",
                ctx.test_ids.len(),
                ds.test.ids.len(),
                ctx.test_ids.get(i),
                ds.test.ids.get(i)
            ),
        });
    }
    let regenerated: Vec<f64> = ds.test.labels.iter().map(|&v| f64::from(v)).collect();
    if regenerated.len() != ctx.test_labels.len() {
        return Err(SynergyPidError::Mismatch {
            what: "test labels",
            detail: format!(
                "{} labels in run.json, {} regenerated",
                ctx.test_labels.len(),
                regenerated.len()
            ),
        });
    }
    if let Some(i) = regenerated
        .iter()
        .zip(&ctx.test_labels)
        .position(|(a, b)| a.to_bits() != b.to_bits())
    {
        return Err(SynergyPidError::Mismatch {
            what: "test labels",
            detail: format!(
                "test row {i} ({}): {} in run.json, {} regenerated",
                ctx.test_ids[i], ctx.test_labels[i], regenerated[i]
            ),
        });
    }
    Ok(())
}
