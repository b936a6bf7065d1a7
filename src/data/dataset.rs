//! What a loaded dataset is: its three [`Split`]s of padded sequences, the [`Dataset`] that holds
//! them with what is known about it ([`TestSubset`]s, reference [`Ceiling`]s), and the check
//! every loader runs before returning one ([`Dataset::check`]: shapes agree, no id twice).

use super::{bert::tokens, DataError, DatasetName, Task, Tier};
use serde::{Deserialize, Serialize};

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
}
