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

/// The start of the note [`crate::data::bert::tokens::attach`] appends to a dataset's
/// description when it tokenises the words for the BERT-based models: `"; BERT tokens: text_bert
/// max_len L from checkpoint K"`. Only the runs of models that read the tokens depend on it
/// ([`Dataset::description_for`]).
pub const TOKEN_NOTE: &str = "; BERT tokens: ";

/// A data description split into what every model reads and its BERT token note (the
/// [`TOKEN_NOTE`] segment, up to the next `"; "` or the end; `None` when no tokens were
/// attached).
pub fn split_token_note(description: &str) -> (String, Option<&str>) {
    let Some(i) = description.find(TOKEN_NOTE) else {
        return (description.to_string(), None);
    };
    let rest = &description[i + TOKEN_NOTE.len()..];
    let end = rest
        .find("; ")
        .map_or(description.len(), |j| i + TOKEN_NOTE.len() + j);
    (
        format!("{}{}", &description[..i], &description[end..]),
        Some(&description[i..end]),
    )
}

/// Whether runs recorded on data `a` and runs recorded on data `b` belong in one table: the same
/// data apart from the BERT token note, and the same note where both carry one. A run of a model
/// that reads no tokens records the description without the note, so it shares a folder (and a
/// table) with the BERT models' runs on the same data; two BERT checkpoints' runs do not mix.
pub fn same_data(a: &str, b: &str) -> bool {
    let (base_a, note_a) = split_token_note(a);
    let (base_b, note_b) = split_token_note(b);
    base_a == base_b && !matches!((note_a, note_b), (Some(x), Some(y)) if x != y)
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
    /// The description of the data as a model reads it, which is what its runs' keys and records
    /// carry: the whole [`Dataset::description`] for a model that reads BERT tokens, and the
    /// description without the token note ([`TOKEN_NOTE`]) for one that does not. So a GloVe
    /// model's run has the same key whether or not its plan also held a BERT model, and the
    /// BERT models' keys are what they were when every run carried the note.
    pub fn description_for(&self, reads_tokens: bool) -> String {
        if reads_tokens {
            self.description.clone()
        } else {
            split_token_note(&self.description).0
        }
    }

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

    /// The corpus this dataset is (from [`Dataset::name`]; see `DatasetName::of_dataset`).
    pub fn corpus(&self) -> Option<DatasetName> {
        DatasetName::of_dataset(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Description text without the note's marker (`;` is kept out so no segment is invented).
    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ,()/.-]{0,40}"
    }

    proptest! {
        /// Splitting inverts appending the note, also with later segments after it.
        #[test]
        fn split_token_note_inverts_appending_a_note(base in text(), note in text(), tail in text()) {
            let with_note = format!("{base}{TOKEN_NOTE}{note}");
            let (b, n) = split_token_note(&with_note);
            prop_assert_eq!(&b, &base);
            let expected = format!("{TOKEN_NOTE}{note}");
            prop_assert_eq!(n, Some(expected.as_str()));
            let later = format!("{with_note}; {tail}");
            let (b, n) = split_token_note(&later);
            prop_assert_eq!(b, format!("{base}; {tail}"));
            prop_assert_eq!(n, Some(expected.as_str()));
            prop_assert_eq!(split_token_note(&base), (base.clone(), None));
        }

        /// `same_data` is reflexive and symmetric, ignores a one-sided note, and tells two notes
        /// or two bases apart.
        #[test]
        fn same_data_ignores_a_one_sided_note_and_nothing_else(
            a in text(), b in text(), n1 in text(), n2 in text()
        ) {
            let na = format!("{a}{TOKEN_NOTE}{n1}");
            prop_assert!(same_data(&a, &a));
            prop_assert!(same_data(&na, &na));
            prop_assert!(same_data(&a, &na) && same_data(&na, &a));
            prop_assert_eq!(same_data(&a, &b), a == b);
            prop_assert_eq!(same_data(&na, &format!("{a}{TOKEN_NOTE}{n2}")), n1 == n2);
        }
    }
}
