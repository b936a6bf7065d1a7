//! Datasets in three tiers (see docs/src/data-tiers.md): `synthetic` (seeded generators with a known
//! information structure, shaped like MOSI, MOSEI or UR-FUNNY), `real-text` (real MOSI or MOSEI
//! transcripts, labels and splits, GloVe words, synthetic audio/visual cues), and `full`
//! (researchers' own feature files: MMSA pickles, UR-FUNNY pickles, a set of CMU-SDK `.csd`
//! files; see [`mmsa`], [`urfunny`], [`csd`]). Which corpus a run is about is a [`DatasetName`].

pub mod csd;
pub mod inspect;
pub mod mmsa;
pub mod pickle;
pub mod realtext;
pub mod synthetic;
pub mod tokens;
pub mod urfunny;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a data file could not be used. Every variant names the file; the checks behind each are
/// listed in `docs/src/untrusted-files.md`.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{path}, byte offset {offset}: {reason}")]
    Offset {
        path: String,
        offset: usize,
        reason: String,
    },
    #[error("{path}, line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    /// A size declared in the file is larger than what the file holds (`offset`: where the
    /// declared data starts, or the object that declares it).
    #[error(
        "{path}, byte offset {offset}: {what} declares {size} bytes but the file holds only \
         {available} bytes from there (a truncated or hostile file)"
    )]
    BeyondFile {
        path: String,
        offset: u64,
        what: String,
        size: u64,
        available: u64,
    },
    /// Materialising what the file describes would take more memory than the budget
    /// ([`crate::io::MEMORY_BUDGET_ENV`]) allows.
    #[error(
        "{path}, byte offset {offset}: {what} would need {size} bytes of memory, over the memory \
         budget of {limit} bytes ({used} already used by this load); if the file is genuine, \
         raise the budget with {}",
        crate::io::MEMORY_BUDGET_ENV
    )]
    OverBudget {
        path: String,
        offset: u64,
        what: String,
        size: u64,
        used: u64,
        limit: u64,
    },
    /// An id is in two splits, or twice in one (`first`, `second`: where each occurrence is).
    #[error(
        "{path}: id '{id}' appears twice ({first}; {second}): an id must be in one split, once"
    )]
    DuplicateId {
        path: String,
        id: String,
        first: String,
        second: String,
    },
    /// A time interval of a `.csd` file is not a finite `[start, end]` with `start ≤ end`.
    #[error("{path}: video '{video}' row {row}: interval [{start}, {end}] {reason}")]
    BadInterval {
        path: String,
        video: String,
        /// 0-based row of the video's `intervals`.
        row: usize,
        start: f64,
        end: f64,
        reason: &'static str,
    },
    /// A label is non-finite or outside its valid range.
    #[error("{path}: {place}: label {value} is outside [{lo}, {hi}]")]
    LabelOutOfRange {
        path: String,
        /// Split, id and row of the label.
        place: String,
        value: f64,
        lo: f64,
        hi: f64,
    },
    /// Arrays that must agree in shape or count (between modalities, labels and ids) do not.
    #[error("{path}: {place}: {what}")]
    Mismatch {
        path: String,
        /// Split and key (or id) concerned.
        place: String,
        what: String,
    },
    /// `NEURAL_SYNERGY_MEMORY_BUDGET` is set but is not a size.
    #[error(transparent)]
    BudgetEnv(#[from] crate::io::BudgetEnvError),
}

impl DataError {
    /// The [`DataError::OverBudget`] of a refused charge.
    pub fn over_budget(
        path: &std::path::Path,
        offset: u64,
        what: impl Into<String>,
        o: crate::io::OverBudget,
    ) -> Self {
        DataError::OverBudget {
            path: path.display().to_string(),
            offset,
            what: what.into(),
            size: o.size,
            used: o.used,
            limit: o.limit,
        }
    }
}

/// Charges `bytes` for `what` (read from `path`, at `offset`) to `budget`.
pub(crate) fn charge(
    budget: &mut crate::io::MemoryBudget,
    bytes: u64,
    path: &std::path::Path,
    offset: u64,
    what: impl FnOnce() -> String,
) -> Result<(), DataError> {
    budget
        .charge(bytes)
        .map_err(|o| DataError::over_budget(path, offset, what(), o))
}

/// Bytes of the padded splits of `n` clips × `t` steps × `dims` (f32) plus per-clip bookkeeping.
pub(crate) fn split_bytes(n: usize, t: usize, dims: [usize; 3]) -> u64 {
    let per_step = dims.iter().fold(0u64, |a, &d| a.saturating_add(d as u64));
    (n as u64)
        .saturating_mul(t as u64)
        .saturating_mul(per_step)
        .saturating_mul(4)
        .saturating_add((n as u64).saturating_mul(64))
}

/// Refuses an id that appears twice in or across `splits` (named `names`): test leakage or a
/// silently dropped clip otherwise. `path` names the file the ids come from.
pub(crate) fn check_unique_ids(
    path: &std::path::Path,
    splits: [(&str, &[String]); 3],
) -> Result<(), DataError> {
    let mut seen: std::collections::HashMap<&str, (&str, usize)> = std::collections::HashMap::new();
    for (name, ids) in splits {
        for (row, id) in ids.iter().enumerate() {
            if let Some(&(n0, r0)) = seen.get(id.as_str()) {
                return Err(DataError::DuplicateId {
                    path: path.display().to_string(),
                    id: id.clone(),
                    first: format!("{n0} row {r0}"),
                    second: format!("{name} row {row}"),
                });
            }
            seen.insert(id, (name, row));
        }
    }
    Ok(())
}

/// The experiment tier: where the features come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Synthetic,
    RealText,
    /// Researchers' own feature files (MMSA pickles, UR-FUNNY pickles, a set of .csd files),
    /// read natively (see `load_full`).
    Full,
}

impl Tier {
    /// Name used in tables and files.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Synthetic => "synthetic",
            Tier::RealText => "real-text",
            Tier::Full => "full",
        }
    }
}

/// The corpus an experiment is about (`reproduce-paper --dataset`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DatasetName {
    /// CMU-MOSI (sentiment regression in [−3, 3]).
    #[default]
    Mosi,
    /// CMU-MOSEI (sentiment regression in [−3, 3]).
    Mosei,
    /// UR-FUNNY (binary humour).
    #[value(name = "urfunny", alias = "ur-funny")]
    UrFunny,
}

impl DatasetName {
    /// Name used in files, keys and `--dataset`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetName::Mosi => "mosi",
            DatasetName::Mosei => "mosei",
            DatasetName::UrFunny => "urfunny",
        }
    }

    /// Name used in table headers.
    pub fn label(self) -> &'static str {
        match self {
            DatasetName::Mosi => "CMU-MOSI",
            DatasetName::Mosei => "CMU-MOSEI",
            DatasetName::UrFunny => "UR-FUNNY",
        }
    }

    /// The task of the corpus.
    pub fn task(self) -> Task {
        match self {
            DatasetName::Mosi | DatasetName::Mosei => Task::Regression,
            DatasetName::UrFunny => Task::Binary,
        }
    }

    /// The paper's table with this corpus's main results (2: MOSI, 3: MOSEI, 6: UR-FUNNY; Table 5,
    /// the ablation on MOSEI, is looked up per variant).
    pub fn paper_table(self) -> u8 {
        match self {
            DatasetName::Mosi => 2,
            DatasetName::Mosei => 3,
            DatasetName::UrFunny => 6,
        }
    }

    /// The corpus a [`Dataset::name`] stands for, when known: `mosi`, `mosei`, `urfunny` and
    /// the loaders' prefixed/suffixed forms (`mmsa-mosei`, `csd-mosi`, `urfunny-v1`, …);
    /// `None` for a file whose corpus the loader could not tell (e.g. `mmsa-custom`).
    pub fn of_dataset(name: &str) -> Option<Self> {
        let base = name
            .strip_prefix("mmsa-")
            .or_else(|| name.strip_prefix("csd-"))
            .unwrap_or(name);
        let base = base.split('-').next().unwrap_or(base);
        match base {
            "mosi" => Some(DatasetName::Mosi),
            "mosei" => Some(DatasetName::Mosei),
            "urfunny" => Some(DatasetName::UrFunny),
            _ => None,
        }
    }
}

/// What is predicted: a real-valued label (MOSI/MOSEI sentiment in [−3, 3]) or a binary one
/// (UR-FUNNY humour, labels 0/1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    #[default]
    Regression,
    Binary,
}

/// One split: padded sequences `N × T × d_m` per modality (row-major f32), valid lengths, labels.
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub ids: Vec<String>,
    pub text: Vec<f32>,
    pub audio: Vec<f32>,
    pub vision: Vec<f32>,
    pub lengths: Vec<usize>,
    pub labels: Vec<f32>,
    /// The words of each clip, one per word step (the real-text tiers; empty for tiers without
    /// words, e.g. the synthetic ones).
    pub words: Vec<Vec<String>>,
    /// BERT word-piece tokens of each clip, when attached ([`tokens::attach`]).
    pub tokens: Option<tokens::SplitTokens>,
}

impl Split {
    /// An empty split with room for `n` clips of `t` steps of widths `dims` (one allocation per
    /// array, so large generated splits never double their memory while growing).
    pub fn with_capacity(n: usize, t: usize, dims: [usize; 3]) -> Self {
        Split {
            ids: Vec::with_capacity(n),
            text: Vec::with_capacity(n * t * dims[0]),
            audio: Vec::with_capacity(n * t * dims[1]),
            vision: Vec::with_capacity(n * t * dims[2]),
            lengths: Vec::with_capacity(n),
            labels: Vec::with_capacity(n),
            words: Vec::new(),
            tokens: None,
        }
    }

    /// The first `n` clips (`t` padded steps, widths `dims`), words and tokens included.
    pub fn head(&self, n: usize, t: usize, dims: [usize; 3]) -> Split {
        let n = n.min(self.len());
        Split {
            ids: self.ids[..n].to_vec(),
            text: self.text[..n * t * dims[0]].to_vec(),
            audio: self.audio[..n * t * dims[1]].to_vec(),
            vision: self.vision[..n * t * dims[2]].to_vec(),
            lengths: self.lengths[..n].to_vec(),
            labels: self.labels[..n].to_vec(),
            words: self.words.iter().take(n).cloned().collect(),
            tokens: self.tokens.as_ref().map(|tk| {
                let mut tk = tk.clone();
                tk.truncate(n);
                tk
            }),
        }
    }

    /// Samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct SeqBatch {
    /// `B × T × d_m` for text, audio, vision (`T` = the batch's longest valid length).
    pub inputs: [Tensor; 3],
    /// Valid lengths (≥ 1).
    pub lengths: Vec<usize>,
    /// `B × T` one-hot of the last valid step.
    pub last: Tensor,
    /// `B × T` 1 on valid steps, 0 on padding.
    pub mask: Tensor,
    /// `B` labels.
    pub label: Tensor,
    /// BERT tokens with word-aligned audio/vision, when the split carries tokens
    /// ([`tokens::TokenBatch`]); `None` otherwise.
    pub tokens: Option<tokens::TokenBatch>,
}

/// A dataset with its three splits and what is known about it.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub tier: Tier,
    /// Regression or binary classification.
    pub task: Task,
    /// Widths of text, audio, vision.
    pub dims: [usize; 3],
    /// Padded sequence length.
    pub t_max: usize,
    pub train: Split,
    pub valid: Split,
    pub test: Split,
    /// Human-readable description of the data and its known structure.
    pub description: String,
    /// Reference predictors on the test split (oracle, single-modality ceilings), when known.
    pub ceilings: Vec<Ceiling>,
    /// Named subsets of the test split whose information structure is known (synthetic tiers:
    /// the clips whose label needs two modalities, and the rest), for per-subset metrics.
    pub test_subsets: Vec<TestSubset>,
}

/// A named subset of the test split (`members[i]` for test clip `i`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSubset {
    pub name: String,
    /// Why the subset is interesting (what its labels need).
    pub why: String,
    pub members: Vec<bool>,
}

/// A reference predictor's test metrics (e.g. the Bayes-optimal predictor from the latents).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ceiling {
    pub name: String,
    /// Mean absolute error (regression tasks; `None` for a binary task).
    #[serde(default)]
    pub mae: Option<f64>,
    /// Regression: Acc2 (sign agreement on non-zero labels); binary: accuracy on the 0/1 label.
    pub acc2: f64,
}

impl Ceiling {
    /// A regression reference predictor's test metrics: MAE and Acc2 (sign agreement on the
    /// non-zero labels; 0 when every label is 0).
    pub fn regression(name: &str, pred: &[f64], label: &[f64]) -> Self {
        let nz: Vec<(f64, f64)> = pred
            .iter()
            .zip(label)
            .filter(|(_, l)| **l != 0.0)
            .map(|(p, l)| (*p, *l))
            .collect();
        let agree = nz.iter().filter(|(p, l)| (*p > 0.0) == (*l > 0.0)).count();
        Ceiling {
            name: name.into(),
            mae: Some(crate::metrics::mae(pred, label)),
            acc2: agree as f64 / nz.len().max(1) as f64,
        }
    }
}

impl Dataset {
    /// Checks that every split's arrays agree with each other and with the dataset's shape (ids,
    /// lengths, labels and words one per clip; each modality `N × t_max × d_m`; lengths in
    /// `1..=t_max`; labels finite) and that no id is in two splits or twice in one. The loaders
    /// call it before returning; `path` names the file in the error.
    pub fn check(&self, path: &std::path::Path) -> Result<(), DataError> {
        let p = path.display().to_string();
        let [dt, da, dv] = self.dims;
        let tm = self.t_max;
        for (name, s) in [
            ("train", &self.train),
            ("valid", &self.valid),
            ("test", &self.test),
        ] {
            let n = s.labels.len();
            let mis = |what: String| DataError::Mismatch {
                path: p.clone(),
                place: name.to_string(),
                what,
            };
            if s.ids.len() != n || s.lengths.len() != n {
                return Err(mis(format!(
                    "{} ids, {} lengths and {n} labels",
                    s.ids.len(),
                    s.lengths.len()
                )));
            }
            if !s.words.is_empty() && s.words.len() != n {
                return Err(mis(format!("{} word lists for {n} clips", s.words.len())));
            }
            for (m, v, d) in [
                ("text", &s.text, dt),
                ("audio", &s.audio, da),
                ("vision", &s.vision, dv),
            ] {
                if Some(v.len()) != n.checked_mul(tm).and_then(|x| x.checked_mul(d)) {
                    return Err(mis(format!(
                        "{m} holds {} values for {n} clips × {tm} steps × {d}",
                        v.len()
                    )));
                }
            }
            if let Some(i) = s.lengths.iter().position(|&l| l == 0 || l > tm) {
                return Err(mis(format!(
                    "clip '{}' has length {}, outside 1..={tm}",
                    s.ids[i], s.lengths[i]
                )));
            }
            if let Some(i) = s.labels.iter().position(|l| !l.is_finite()) {
                return Err(DataError::LabelOutOfRange {
                    path: p.clone(),
                    place: format!("{name} id '{}' (row {i})", s.ids[i]),
                    value: f64::from(s.labels[i]),
                    lo: f64::NEG_INFINITY,
                    hi: f64::INFINITY,
                });
            }
        }
        check_unique_ids(
            path,
            [
                ("train", &self.train.ids),
                ("valid", &self.valid.ids),
                ("test", &self.test.ids),
            ],
        )
    }

    /// The corpus this dataset is (from [`Dataset::name`]; see [`DatasetName::of_dataset`]).
    pub fn corpus(&self) -> Option<DatasetName> {
        DatasetName::of_dataset(&self.name)
    }

    /// The valid lengths of rows `idx` of `split` (clamped to `1..=t_max`) and the batch's step
    /// count, its longest length — padding is at the end, so a batch needs only those steps.
    fn batch_lengths(&self, split: &Split, idx: &[usize]) -> (Vec<usize>, usize) {
        let lengths: Vec<usize> = idx
            .iter()
            .map(|&i| split.lengths[i].clamp(1, self.t_max))
            .collect();
        let t = lengths.iter().copied().max().unwrap_or(1);
        (lengths, t)
    }

    /// A batch of the rows `idx` of `split`, with modalities in `drop` replaced by zeros
    /// (0 = text, 1 = audio, 2 = vision).
    pub fn batch(
        &self,
        split: &Split,
        idx: &[usize],
        drop: &[usize],
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<SeqBatch> {
        let tm = self.t_max;
        let b = idx.len();
        let (lengths, t) = self.batch_lengths(split, idx);
        let gather = |src: &[f32], d: usize, m: usize| -> candle_core::Result<Tensor> {
            let mut v = Vec::with_capacity(b * t * d);
            if drop.contains(&m) {
                v.resize(b * t * d, 0.0);
            } else {
                for &i in idx {
                    v.extend_from_slice(&src[i * tm * d..i * tm * d + t * d]);
                }
            }
            Tensor::from_vec(v, (b, t, d), device)?.to_dtype(dtype)
        };
        let [dt, da, dv] = self.dims;
        let mut last = vec![0f32; b * t];
        let mut mask = vec![0f32; b * t];
        for (r, &l) in lengths.iter().enumerate() {
            last[r * t + l - 1] = 1.0;
            for s in 0..l {
                mask[r * t + s] = 1.0;
            }
        }
        let labels: Vec<f32> = idx.iter().map(|&i| split.labels[i]).collect();
        Ok(SeqBatch {
            inputs: [
                gather(&split.text, dt, 0)?,
                gather(&split.audio, da, 1)?,
                gather(&split.vision, dv, 2)?,
            ],
            lengths,
            last: Tensor::from_vec(last, (b, t), device)?.to_dtype(dtype)?,
            mask: Tensor::from_vec(mask, (b, t), device)?.to_dtype(dtype)?,
            label: Tensor::from_vec(labels, b, device)?.to_dtype(dtype)?,
            tokens: split
                .tokens
                .as_ref()
                .map(|tk| tokens::token_batch(self, split, tk, idx, drop, dtype, device))
                .transpose()?,
        })
    }
}

/// A split's sequences and labels uploaded once to a device, so that a training step on a GPU
/// gathers its batch there ([`DeviceSplit::batch`]) instead of assembling it on the host and
/// copying `B × T × (d_t + d_a + d_v)` floats per step: per batch only the `B` row indices and
/// lengths travel (the valid-step mask and last-step one-hot are built on the device). Equal to
/// [`Dataset::batch`], tensor for tensor (tested on the CPU). BERT tokens, where a split carries
/// them, are still gathered on the host.
#[derive(Debug, Clone)]
pub struct DeviceSplit {
    /// `N × T_max × d_m` per modality.
    inputs: [Tensor; 3],
    /// `N` labels.
    labels: Tensor,
}

impl DeviceSplit {
    /// Uploads `split` of `ds` to `device` in `dtype`.
    pub fn upload(
        ds: &Dataset,
        split: &Split,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let (n, tm) = (split.len(), ds.t_max);
        let up = |src: &[f32], d: usize| -> candle_core::Result<Tensor> {
            if src.len() != n * tm * d {
                candle_core::bail!(
                    "split holds {} values, {n} clips × {tm} steps × {d} expected",
                    src.len()
                );
            }
            Tensor::from_slice(src, (n, tm, d), device)?.to_dtype(dtype)
        };
        let [dt, da, dv] = ds.dims;
        Ok(Self {
            inputs: [
                up(&split.text, dt)?,
                up(&split.audio, da)?,
                up(&split.vision, dv)?,
            ],
            labels: Tensor::from_slice(&split.labels, n, device)?.to_dtype(dtype)?,
        })
    }

    /// The batch of rows `idx` (of the uploaded `split`), modalities in `drop` zeroed — what
    /// [`Dataset::batch`] returns, gathered on the device.
    pub fn batch(
        &self,
        ds: &Dataset,
        split: &Split,
        idx: &[usize],
        drop: &[usize],
    ) -> candle_core::Result<SeqBatch> {
        let device = self.labels.device();
        let dtype = self.labels.dtype();
        let b = idx.len();
        let (lengths, t) = ds.batch_lengths(split, idx);
        let rows = Tensor::from_vec(
            idx.iter().map(|&i| i as u32).collect::<Vec<u32>>(),
            b,
            device,
        )?;
        let gather = |m: usize| -> candle_core::Result<Tensor> {
            let d = self.inputs[m].dim(2)?;
            if drop.contains(&m) {
                Tensor::zeros((b, t, d), dtype, device)
            } else {
                self.inputs[m]
                    .index_select(&rows, 0)?
                    .narrow(1, 0, t)?
                    .contiguous()
            }
        };
        let steps = Tensor::arange(0u32, t as u32, device)?.unsqueeze(0)?;
        // the last valid step of each row (lengths are ≥ 1); valid steps are those ≤ it
        let last_step = Tensor::from_vec(
            lengths.iter().map(|&l| l as u32 - 1).collect::<Vec<u32>>(),
            (b, 1),
            device,
        )?;
        let mask = steps.broadcast_le(&last_step)?.to_dtype(dtype)?;
        let last = steps.broadcast_eq(&last_step)?.to_dtype(dtype)?;
        Ok(SeqBatch {
            inputs: [gather(0)?, gather(1)?, gather(2)?],
            lengths,
            last,
            mask,
            label: self.labels.index_select(&rows, 0)?,
            tokens: split
                .tokens
                .as_ref()
                .map(|tk| tokens::token_batch(ds, split, tk, idx, drop, dtype, device))
                .transpose()?,
        })
    }
}

/// Loads a `full`-tier path: a folder of UR-FUNNY SDK pickles ([`urfunny::load`]), a folder
/// of `.csd` files ([`csd::load_set`]), or an MMSA pickle ([`mmsa::load`], `text` features).
pub fn load_full(path: &std::path::Path) -> Result<Dataset, DataError> {
    if path.is_dir() {
        if csd::is_set(path) {
            csd::load_set(path)
        } else {
            urfunny::load(path)
        }
    } else {
        mmsa::load(path, mmsa::TextFeatures::Text)
    }
}

/// Facts about the real MOSI label distribution (from `mosi/label.csv`, 2195 clips), used to give
/// the synthetic labels MOSI's shape: counts of labels rounded to −3..3, the share of labels that are
/// exactly 0, and the mean transcript length in words (median 10, max 114).
pub mod mosi_facts {
    /// Counts of `round(label)` for −3, −2, …, 3.
    pub const ROUNDED_COUNTS: [f64; 7] = [80.0, 383.0, 404.0, 402.0, 379.0, 462.0, 85.0];
    /// Share of labels exactly 0.
    pub const EXACT_ZERO: f64 = 0.0437;
    /// Median and mean words per transcript.
    pub const MEDIAN_WORDS: f64 = 10.0;
    pub const MEAN_WORDS: f64 = 12.6;
    /// Standard split sizes of Table 1.
    pub const SPLITS: [usize; 3] = [1284, 229, 686];
}

/// Facts about the real MOSEI labels (`mosei/label.csv`, 22788 clips), used to give the synthetic
/// MOSEI-shaped tier MOSEI's label distribution. Computed by `python3 scripts/data_facts.py
/// ../shared/data` (standard library only); the `data_tiers` tests recompute them from the file
/// when `SYNERGY_SHARED` is set.
pub mod mosei_facts {
    /// Counts of `6·label` (MOSEI labels are means of annotators' integer scores: every label is
    /// a multiple of 1/6) for `6·label` = −18, −17, …, 18.
    pub const LABEL_COUNTS: [f64; 37] = [
        126.0, 0.0, 279.0, 0.0, 411.0, 0.0, 647.0, 0.0, 756.0, 0.0, 828.0, 0.0, 883.0, 0.0, 1118.0,
        4.0, 1528.0, 3.0, 4972.0, 11.0, 2989.0, 11.0, 2507.0, 7.0, 1881.0, 3.0, 1404.0, 8.0,
        1009.0, 2.0, 737.0, 0.0, 396.0, 1.0, 206.0, 0.0, 61.0,
    ];
    /// Population standard deviation of the labels.
    pub const LABEL_SD: f64 = 1.1154;
    /// Median and mean words per transcript (the real-text tokenizer's words).
    pub const MEDIAN_WORDS: f64 = 17.0;
    pub const MEAN_WORDS: f64 = 19.72;
    /// Split sizes of the MMSA/MulT pickles the paper uses (Table 1); `label.csv` has
    /// 16274/1861/4653 of them.
    pub const SPLITS: [usize; 3] = [16326, 1871, 4659];
}

/// Facts about UR-FUNNY's official folds (`urfunny/v1/data_folds.pkl`,
/// `urfunny/v1/humor_label_sdk.pkl`), used by the synthetic UR-FUNNY-shaped tier. Computed by
/// `python3 scripts/data_facts.py ../shared/data`; checked against the files by the `data_tiers`
/// tests when `SYNERGY_SHARED` is set.
pub mod urfunny_facts {
    /// Clips in the train / dev / test folds.
    pub const FOLDS: [usize; 3] = [10598, 2626, 3290];
    /// Humorous clips (label 1) per fold.
    pub const HUMOROUS: [usize; 3] = [5306, 1313, 1638];
    /// Widths of UR-FUNNY V1's features: GloVe-840B 300 words, COVAREP 81, OpenFace 75.
    pub const DIMS: [usize; 3] = [300, 81, 75];
}
