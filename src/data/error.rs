//! [`DataError`], the one error type of the data readers, and [`charge`], how a reader charges
//! the memory budget. The two refusals every reader of untrusted files shares with the `.npy`
//! reader — a size beyond the file, a charge over the memory budget — are
//! [`InputError`]'s variants, wrapped here ([`DataError::Input`]), so each message is written once.

use crate::io::{BudgetEnvError, BudgetScope, InputError, MemoryBudget, OverBudget};
use std::path::Path;
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
    /// A size declared in the file is larger than what the file holds
    /// ([`InputError::BeyondFile`]; `offset`: where the declared data starts, or the object that
    /// declares it), or materialising what the file describes would take more memory than the
    /// budget ([`crate::io::MEMORY_BUDGET_ENV`]) allows ([`InputError::OverBudget`], charged by
    /// the whole load).
    #[error(transparent)]
    Input(#[from] InputError),
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
    BudgetEnv(#[from] BudgetEnvError),
}

impl DataError {
    /// The [`InputError::OverBudget`] of a refused charge of a load.
    pub(crate) fn over_budget(
        path: &Path,
        offset: u64,
        what: impl Into<String>,
        o: OverBudget,
    ) -> Self {
        DataError::Input(InputError::OverBudget {
            path: path.to_path_buf(),
            offset,
            what: what.into(),
            size: o.size,
            used: o.used,
            limit: o.limit,
            scope: BudgetScope::Load,
        })
    }

    /// The [`InputError::BeyondFile`] of `what`, declared at `offset` of `path` to take `size`
    /// bytes where the file holds `available`.
    pub(crate) fn beyond_file(
        path: &Path,
        offset: u64,
        what: String,
        size: u64,
        available: u64,
    ) -> Self {
        DataError::Input(InputError::BeyondFile {
            path: path.to_path_buf(),
            offset,
            what,
            size,
            available,
        })
    }
}

/// What a field of a feature pickle holds is not what its reader takes (`key`: the field). The
/// readers wrap it in a [`DataError::File`] naming the file (and split, or id).
#[derive(Debug, Clone, PartialEq, Error)]
pub(crate) enum FieldError {
    #[error("no '{key}' array")]
    Missing { key: String },
    /// `key` holds a `kind` of object where the reader takes `expected` (an array, strings, …).
    #[error("'{key}' is a {kind}, not {expected}")]
    WrongKind {
        key: String,
        kind: String,
        expected: &'static str,
    },
    #[error("'{key}' has dtype {dtype}, not a number type")]
    NotNumeric { key: String, dtype: String },
    #[error("'{key}' has shape {shape:?}, expected (N, T, d)")]
    NotSequences { key: String, shape: Vec<usize> },
    #[error("'{key}' has shape {shape:?}, expected one value per clip (N,) or (N, 1)")]
    NotPerClip { key: String, shape: Vec<usize> },
    #[error("'{key}'[{index}] is a {kind}, not a number")]
    NotANumber {
        key: String,
        index: usize,
        kind: String,
    },
    #[error("'{key}' holds a {kind}")]
    NotAString { key: String, kind: String },
    /// UR-FUNNY: a word index that is negative or fractional.
    #[error("word index {value} is not a non-negative integer")]
    BadWordIndex { value: f64 },
    #[error("a non-number word index")]
    NonNumberWordIndex,
    #[error("word indexes are a {kind}")]
    NotWordIndexes { kind: String },
    /// UR-FUNNY: a feature array that is not (words, d).
    #[error("a feature array of shape {shape:?}, expected (words, d)")]
    NotFeatureMatrix { shape: Vec<usize> },
    #[error("a non-number feature")]
    NonNumberFeature,
    #[error("a feature row is a {kind}")]
    NotFeatureRow { kind: String },
    #[error("feature rows of different widths")]
    RaggedFeatureRows,
    #[error("features are a {kind}")]
    NotFeatures { kind: String },
}

/// Charges `bytes` for `what` (read from `path`, at `offset`) to `budget`.
pub(crate) fn charge(
    budget: &mut MemoryBudget,
    bytes: u64,
    path: &Path,
    offset: u64,
    what: impl FnOnce() -> String,
) -> Result<(), DataError> {
    budget
        .charge(bytes)
        .map_err(|o| DataError::over_budget(path, offset, what(), o))
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: OverBudget = OverBudget {
        size: 2507673600,
        used: 412,
        limit: 2147483648,
    };

    /// The texts the two types wrote before they shared one, byte for byte.
    #[test]
    fn budget_and_beyond_file_messages_are_the_ones_users_saw() {
        let p = Path::new("x.pkl");
        let what = "an array of shape [16326, 50, 768] and dtype <f4";
        assert_eq!(
            DataError::over_budget(p, 4797, what, O).to_string(),
            "x.pkl, byte offset 4797: an array of shape [16326, 50, 768] and dtype <f4 would \
             need 2507673600 bytes of memory, over the memory budget of 2147483648 bytes (412 \
             already used by this load); if the file is genuine, raise the budget with \
             NEURAL_SYNERGY_MEMORY_BUDGET"
        );
        let npy = InputError::OverBudget {
            path: "x.npy".into(),
            offset: 128,
            what: "an array of shape [100, 10]".into(),
            size: 8000,
            used: 0,
            limit: 4000,
            scope: BudgetScope::Read,
        };
        assert_eq!(
            npy.to_string(),
            "x.npy, byte offset 128: an array of shape [100, 10] would need 8000 bytes of \
             memory, over the memory budget of 4000 bytes (0 already used by this read); if the \
             file is genuine, raise the budget with NEURAL_SYNERGY_MEMORY_BUDGET"
        );
        assert_eq!(
            DataError::beyond_file(p, 10, "'features' of shape [4]".into(), 32, 8).to_string(),
            "x.pkl, byte offset 10: 'features' of shape [4] declares 32 bytes but the file holds \
             only 8 bytes from there (a truncated or hostile file)"
        );
    }

    #[test]
    fn charge_refuses_past_the_budget_and_names_the_file() {
        let mut budget = MemoryBudget::new(100);
        charge(&mut budget, 60, Path::new("a.csd"), 0, || "first".into()).unwrap();
        let e = charge(&mut budget, 60, Path::new("a.csd"), 7, || "second".into()).unwrap_err();
        match &e {
            DataError::Input(InputError::OverBudget {
                path,
                offset: 7,
                size: 60,
                used: 60,
                limit: 100,
                scope: BudgetScope::Load,
                ..
            }) => assert!(path.ends_with("a.csd")),
            e => panic!("{e:?}"),
        }
        assert_eq!(budget.used(), 60);
    }
}
