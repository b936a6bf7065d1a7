//! The [`Meter`]: what reading one pickle allocates, charged to the memory budget before it is
//! allocated, and the limit on copies of values referenced more than once (see the module docs
//! of [`super`]).

use super::error::{Fault, R};
use super::SHARED_COPY_FLOOR;
use crate::io::MemoryBudget;
use std::collections::HashSet;

/// Counts what reading a pickle allocates (see the module docs).
#[derive(Debug)]
pub(super) struct Meter {
    pub(super) budget: MemoryBudget,
    /// Bytes of copies of already converted values, and their limit.
    copied: u64,
    copy_limit: u64,
    /// > 0 while converting a value that was converted before.
    pub(super) copying: usize,
    /// > 0 while converting a value with several handles (or inside one).
    pub(super) under_shared: usize,
    /// Shared values (by address) converted so far.
    pub(super) seen: HashSet<usize>,
}

impl Meter {
    /// A meter charging `budget` for a pickle of `len` bytes.
    pub(super) fn new(budget: MemoryBudget, len: usize) -> Self {
        Meter {
            budget,
            copied: 0,
            copy_limit: SHARED_COPY_FLOOR.max(len as u64),
            copying: 0,
            under_shared: 0,
            seen: HashSet::new(),
        }
    }

    /// Charges `bytes` for `what` before it is allocated.
    pub(super) fn charge(&mut self, bytes: u64, what: impl FnOnce() -> String) -> R<()> {
        if let Err(over) = self.budget.charge(bytes) {
            return Err(Fault::OverBudget { what: what(), over });
        }
        if self.copying > 0 {
            self.copied = self.copied.saturating_add(bytes);
            if self.copied > self.copy_limit {
                return Err(Fault::CopyLimit {
                    limit: self.copy_limit,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_charge_keeps_what_it_was_for_and_charges_nothing() {
        let mut m = Meter::new(MemoryBudget::new(100), 0);
        m.charge(60, || "first".into()).unwrap();
        match m.charge(60, || "second".into()).unwrap_err() {
            Fault::OverBudget { what, over } => {
                assert_eq!(what, "second");
                assert_eq!((over.size, over.used, over.limit), (60, 60, 100));
            }
            f => panic!("{f:?}"),
        }
        assert_eq!(m.budget.used(), 60);
    }

    #[test]
    fn copies_count_only_while_copying_and_stop_at_the_limit() {
        let mut m = Meter::new(MemoryBudget::new(u64::MAX), 10);
        m.charge(SHARED_COPY_FLOOR + 1, String::new).unwrap();
        m.copying = 1;
        m.charge(SHARED_COPY_FLOOR, String::new).unwrap();
        match m.charge(1, String::new).unwrap_err() {
            Fault::CopyLimit { limit } => assert_eq!(limit, SHARED_COPY_FLOOR),
            f => panic!("{f:?}"),
        }
        // the limit is the pickle's length when that is larger
        assert_eq!(
            Meter::new(MemoryBudget::new(1), 1 << 30).copy_limit,
            1 << 30
        );
    }
}
