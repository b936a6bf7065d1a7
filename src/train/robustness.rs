//! Graded test-time robustness (issue 27 §3, after MultiBench's robustness curves, Liang et al.
//! 2021): besides Table 4's zeroed modalities ([`super::DROP_CONDITIONS`]), the selected
//! checkpoint is evaluated on the test split with one modality corrupted at a graded level
//! `ℓ ∈ {0, 0.1, …, 0.9}` ([`ROBUSTNESS_LEVELS`]), in two ways:
//!
//! * **noise** ([`Corruption::Noise`]): `x̃_{i,t,f} = x_{i,t,f} + ℓ · σ_f · z`, `z ~ N(0, 1)`
//!   drawn independently per value, where `σ_f` is feature `f`'s standard deviation over the
//!   **training** split's valid steps (a feature constant in training gets no noise);
//! * **dropped steps** ([`Corruption::Drop`]): each valid time step of the modality is zeroed
//!   (all its features) independently with probability `ℓ`.
//!
//! Only valid steps are touched (padding stays zero). Level 0 is the clean test split (the run's
//! own test metrics). The draws depend only on the run's seed, the modality, the corruption and the
//! level — not on the model or variant — so runs of one seed see the *same* corrupted test sets and
//! their curves pair. A modality the variant zeroes anyway (the text-only control) has no curve,
//! and neither does the text of a model that reads BERT word-pieces (its text is token ids, which
//! neither noise nor zeroed steps of the word vectors reach).
//!
//! The **area** of a curve ([`RobustnessCurve::area`]) is the trapezoid integral of the score over
//! the levels divided by the level range, `A = (1/(ℓ_K − ℓ_0)) Σ_k (ℓ_{k+1} − ℓ_k)(s_k + s_{k+1})/2`:
//! the curve's mean height, in the score's unit (a flat curve has the area of its clean score).

use super::{Batcher, TestMetrics};
use crate::data::{Dataset, Split};
use crate::models::FusionModel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// The corruption levels, as fractions of each feature's training standard deviation (noise) or
/// as the probability that a step is dropped.
pub const ROBUSTNESS_LEVELS: [f64; 10] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// The modalities' names, in the order of the dataset's arrays (0 = text, 1 = audio, 2 = vision).
pub(crate) const MODALITY_NAMES: [&str; 3] = ["text", "audio", "vision"];

/// How a modality is corrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Corruption {
    /// Gaussian noise of `level ×` each feature's training standard deviation.
    Noise,
    /// Each valid time step zeroed with probability `level`.
    Drop,
}

impl Corruption {
    /// Both corruptions, in report order.
    pub const ALL: [Corruption; 2] = [Corruption::Noise, Corruption::Drop];

    /// `"noise"` or `"drop"`.
    pub fn name(self) -> &'static str {
        match self {
            Corruption::Noise => "noise",
            Corruption::Drop => "drop",
        }
    }

    /// What the level means, for report headers.
    pub fn describe(self) -> &'static str {
        match self {
            Corruption::Noise => "Gaussian noise (level × the feature's training sd)",
            Corruption::Drop => "time steps zeroed (level = probability)",
        }
    }
}

/// One modality's test metrics of the selected checkpoint at every corruption level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessCurve {
    /// `"text"`, `"audio"` or `"vision"`.
    pub modality: String,
    pub corruption: Corruption,
    /// The levels, ascending, starting at 0 (the clean test split).
    pub levels: Vec<f64>,
    /// The test metrics at each level.
    pub test: Vec<TestMetrics>,
}

impl RobustnessCurve {
    /// The headline score at each level in percent: binary accuracy (binary tasks) or Acc2
    /// without zero labels (regression), as Table 4 reports.
    pub fn scores(&self) -> Vec<f64> {
        self.test.iter().map(headline).collect()
    }

    /// The normalised area under [`Self::scores`] (see the module docs); `None` for fewer than two
    /// levels, a zero level range or a non-finite score.
    pub fn area(&self) -> Option<f64> {
        area(&self.levels, &self.scores())
    }
}

/// The headline score of a test evaluation in percent (accuracy, or Acc2 without zero labels).
pub(crate) fn headline(m: &TestMetrics) -> f64 {
    100.0
        * match m {
            TestMetrics::Regression(r) => r.acc2_non0,
            TestMetrics::Binary(b) => b.accuracy,
        }
}

/// `(1/(ℓ_K − ℓ_0)) Σ_k (ℓ_{k+1} − ℓ_k)(s_k + s_{k+1})/2`: the trapezoid area under `scores`
/// over `levels`, divided by the level range. `None` for mismatched lengths, fewer than two points,
/// levels that do not ascend, or a non-finite value.
pub fn area(levels: &[f64], scores: &[f64]) -> Option<f64> {
    if levels.len() != scores.len() || levels.len() < 2 {
        return None;
    }
    if levels.iter().chain(scores).any(|v| !v.is_finite()) {
        return None;
    }
    if levels.windows(2).any(|w| w[1] <= w[0]) {
        return None;
    }
    let range = levels[levels.len() - 1] - levels[0];
    let integral: f64 = levels
        .windows(2)
        .zip(scores.windows(2))
        .map(|(l, s)| (l[1] - l[0]) * (s[0] + s[1]) / 2.0)
        .sum();
    Some(integral / range)
}

/// The modalities that get curves: not the ones `zeroed` by the variant, and not the text when the
/// model reads word-pieces (`tokens`).
pub fn curve_modalities(zeroed: &[usize], tokens: bool) -> Vec<usize> {
    (0..3)
        .filter(|m| !(zeroed.contains(m) || (tokens && *m == 0)))
        .collect()
}

/// The modality's array of a split (`N × T_max × d_m`, row-major).
fn array(split: &Split, m: usize) -> &[f32] {
    match m {
        0 => &split.text,
        1 => &split.audio,
        _ => &split.vision,
    }
}

fn array_mut(split: &mut Split, m: usize) -> &mut Vec<f32> {
    match m {
        0 => &mut split.text,
        1 => &mut split.audio,
        _ => &mut split.vision,
    }
}

/// Each feature's population standard deviation over the valid steps of `split` (`t_max` padded
/// steps, width `d`); 0 for a split without valid steps.
pub fn feature_sd(values: &[f32], lengths: &[usize], t_max: usize, d: usize) -> Vec<f64> {
    let mut n = 0usize;
    let mut sum = vec![0f64; d];
    let mut sq = vec![0f64; d];
    for (i, &len) in lengths.iter().enumerate() {
        for t in 0..len.clamp(0, t_max) {
            let row = &values[(i * t_max + t) * d..(i * t_max + t + 1) * d];
            for (f, &x) in row.iter().enumerate() {
                sum[f] += x as f64;
                sq[f] += (x as f64) * (x as f64);
            }
            n += 1;
        }
    }
    if n == 0 {
        return vec![0.0; d];
    }
    (0..d)
        .map(|f| {
            let mean = sum[f] / n as f64;
            (sq[f] / n as f64 - mean * mean).max(0.0).sqrt()
        })
        .collect()
}

/// The seed of one corrupted test set: a function of the run's seed, the modality, the corruption
/// and the level's index only (so every variant of a seed sees the same corrupted set).
fn corruption_seed(seed: u64, m: usize, c: Corruption, level: usize) -> u64 {
    let c = match c {
        Corruption::Noise => 1u64,
        Corruption::Drop => 2,
    };
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (0xC0FF_EE00 + ((m as u64) << 16) + (c << 8))
        ^ level as u64
}

/// Writes the corrupted modality into `out` (a copy of `clean`, same shape): `level` of
/// corruption `c` on the valid steps given by `lengths` (clamped to `t_max`), features of width
/// `d`, per-feature training sds `sd` (noise only), draws from `rng`.
#[allow(clippy::too_many_arguments)]
pub fn corrupt_into(
    out: &mut [f32],
    clean: &[f32],
    lengths: &[usize],
    t_max: usize,
    d: usize,
    sd: &[f64],
    c: Corruption,
    level: f64,
    rng: &mut impl Rng,
) {
    out.copy_from_slice(clean);
    if level <= 0.0 {
        return;
    }
    for (i, &len) in lengths.iter().enumerate() {
        for t in 0..len.min(t_max) {
            let row = &mut out[(i * t_max + t) * d..(i * t_max + t + 1) * d];
            match c {
                Corruption::Noise => {
                    for (x, s) in row.iter_mut().zip(sd) {
                        let z: f64 = StandardNormal.sample(rng);
                        *x += (level * s * z) as f32;
                    }
                }
                Corruption::Drop => {
                    if rng.random::<f64>() < level {
                        row.fill(0.0);
                    }
                }
            }
        }
    }
}

/// The curves of the selected checkpoint of `model` (already restored): every modality of
/// [`curve_modalities`] × both corruptions × [`ROBUSTNESS_LEVELS`]; level 0 is `clean` (the run's
/// test metrics). `zeroed` stays zeroed in every evaluation.
pub(super) fn curves<M: FusionModel>(
    model: &M,
    ds: &Dataset,
    zeroed: &[usize],
    tokens: bool,
    seed: u64,
    clean: &TestMetrics,
    batcher: &Batcher<'_>,
) -> crate::synergy::Result<Vec<RobustnessCurve>> {
    let mods = curve_modalities(zeroed, tokens);
    let mut out = Vec::new();
    if mods.is_empty() {
        return Ok(out);
    }
    // one working copy of the test split; only the corrupted modality's array is rewritten
    let mut work = ds.test.clone();
    for m in mods {
        let d = ds.dims[m];
        let sd = feature_sd(array(&ds.train, m), &ds.train.lengths, ds.t_max, d);
        for c in Corruption::ALL {
            let mut test = vec![*clean];
            for (k, &level) in ROBUSTNESS_LEVELS.iter().enumerate().skip(1) {
                let mut rng = ChaCha8Rng::seed_from_u64(corruption_seed(seed, m, c, k));
                corrupt_into(
                    array_mut(&mut work, m),
                    array(&ds.test, m),
                    &ds.test.lengths,
                    ds.t_max,
                    d,
                    &sd,
                    c,
                    level,
                    &mut rng,
                );
                test.push(evaluate_split(model, ds, &work, zeroed, batcher)?);
            }
            out.push(RobustnessCurve {
                modality: MODALITY_NAMES[m].into(),
                corruption: c,
                levels: ROBUSTNESS_LEVELS.to_vec(),
                test,
            });
        }
        // restore the clean array before the next modality
        let clean_m = array(&ds.test, m).to_vec();
        *array_mut(&mut work, m) = clean_m;
    }
    Ok(out)
}

/// Test metrics of `model` on `split` (a corrupted copy of the test split, same labels).
fn evaluate_split<M: FusionModel>(
    model: &M,
    ds: &Dataset,
    split: &Split,
    drop: &[usize],
    batcher: &Batcher<'_>,
) -> crate::synergy::Result<TestMetrics> {
    let p = super::predict_with(model, split, drop, batcher)?;
    super::metrics_of(ds.task, &p, &super::labels_f64(split))
}
