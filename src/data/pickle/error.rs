//! Why a pickle was refused: [`PickleError`] (where and why, for callers of
//! [`super::loads`]) and the machine's own [`Fault`] before the offset is attached — a refused
//! budget charge kept typed (what it was for, what was asked), so a file-level error is built
//! from it without reading its words back.

use super::SHARED_COPY_FLOOR;
use crate::data::DataError;
use crate::io::{BudgetScope, OverBudget};
use std::path::Path;
use thiserror::Error;

/// A pickle could not be read: where and why.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("byte offset {offset}: {reason}")]
pub struct PickleError {
    /// Byte offset of the opcode that failed (the end of the pickle for a failure while its
    /// value is converted).
    pub offset: usize,
    pub reason: String,
    /// Set when the failure is the memory budget: what was asked, used and allowed.
    pub over_budget: Option<OverBudget>,
}

/// Why the machine stopped (the offset is the caller's).
#[derive(Debug, Error)]
pub(super) enum Fault {
    /// The memory budget refused the charge for `what`.
    #[error("{}", over.refusal(what, BudgetScope::Load))]
    OverBudget { what: String, over: OverBudget },
    /// Copies of values referenced more than once passed their limit (see [`SHARED_COPY_FLOOR`]).
    #[error(
        "the values the pickle references more than once (memo GETs) expand to more than \
         {limit} bytes of copies (at most max({SHARED_COPY_FLOOR} bytes, the pickle's length) are \
         made): a pickle bomb, or a structure that is not a feature file"
    )]
    CopyLimit { limit: u64 },
    /// Anything else the reader refuses; the words name it.
    #[error("{0}")]
    Refused(String),
}

/// A [`Fault::Refused`] with the words of `format!`'s arguments.
macro_rules! refuse {
    ($($words:tt)*) => {
        $crate::data::pickle::error::Fault::Refused(format!($($words)*))
    };
}
pub(super) use refuse;

/// What the machine's steps return.
pub(super) type R<T> = Result<T, Fault>;

impl From<String> for Fault {
    fn from(reason: String) -> Self {
        Fault::Refused(reason)
    }
}

impl From<&str> for Fault {
    fn from(reason: &str) -> Self {
        Fault::Refused(reason.to_string())
    }
}

impl Fault {
    /// The [`PickleError`] of this fault at byte `offset`.
    pub(super) fn at(self, offset: usize) -> PickleError {
        let over_budget = match &self {
            Fault::OverBudget { over, .. } => Some(*over),
            Fault::CopyLimit { .. } | Fault::Refused(_) => None,
        };
        PickleError {
            offset,
            reason: self.to_string(),
            over_budget,
        }
    }

    /// The [`DataError`] of this fault at byte `offset` of the file `path`.
    pub(super) fn in_file(self, path: &Path, offset: usize) -> DataError {
        match self {
            Fault::OverBudget { what, over } => {
                DataError::over_budget(path, offset as u64, what, over)
            }
            other => DataError::Offset {
                path: path.display().to_string(),
                offset,
                reason: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: OverBudget = OverBudget {
        size: 24,
        used: 8,
        limit: 16,
    };

    #[test]
    fn faults_keep_the_words_they_had_as_strings() {
        let f = Fault::OverBudget {
            what: "a string of 24 bytes".into(),
            over: O,
        };
        assert_eq!(
            f.to_string(),
            "a string of 24 bytes would need 24 bytes of memory, over the memory budget of 16 \
             bytes (8 already used by this load); if the file is genuine, raise the budget with \
             NEURAL_SYNERGY_MEMORY_BUDGET"
        );
        assert_eq!(
            Fault::CopyLimit { limit: 99 << 20 }.to_string(),
            "the values the pickle references more than once (memo GETs) expand to more than \
             103809024 bytes of copies (at most max(67108864 bytes, the pickle's length) are \
             made): a pickle bomb, or a structure that is not a feature file"
        );
        assert_eq!(refuse!("bad GET {:?}", "x").to_string(), "bad GET \"x\"");
    }

    #[test]
    fn only_a_budget_fault_says_it_was_the_budget() {
        let e = Fault::OverBudget {
            what: "the memo".into(),
            over: O,
        }
        .at(7);
        assert_eq!((e.offset, e.over_budget), (7, Some(O)));
        assert!(e
            .to_string()
            .starts_with("byte offset 7: the memo would need 24 bytes"));
        assert_eq!(Fault::CopyLimit { limit: 1 }.at(3).over_budget, None);
        assert_eq!(Fault::from("stack underflow").at(3).over_budget, None);
        let p = Path::new("a.pkl");
        match (Fault::OverBudget {
            what: "the memo".into(),
            over: O,
        })
        .in_file(p, 5)
        {
            DataError::Input(crate::io::InputError::OverBudget {
                offset: 5, what, ..
            }) => assert_eq!(what, "the memo"),
            e => panic!("{e:?}"),
        }
        assert_eq!(
            Fault::from("stack underflow").in_file(p, 5).to_string(),
            "a.pkl, byte offset 5: stack underflow"
        );
    }
}
