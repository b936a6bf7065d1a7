//! The row order of packed variable-length sequences ([`Packing`]), shared by the LSTM's packed
//! path ([`super::FastLstm::packed_states`]) and MFN's per-step rows.

/// The row order of packed variable-length sequences (as PyTorch's packed sequences): samples
/// sorted by decreasing length (a stable sort), then step after step; the rows of step `s` are
/// the [`active(s)`](Self::active) samples longer than `s`, in that order, from row
/// [`offset(s)`](Self::offset) on. `N = Σ lengths` rows in all; a sample is at the same position
/// within every step it is part of.
#[derive(Debug, Clone)]
pub struct Packing {
    lengths: Vec<usize>,
    order: Vec<usize>,
    rank: Vec<usize>,
    /// First row of each step, then `N`.
    off: Vec<usize>,
}

impl Packing {
    /// The packing of sequences of lengths `lengths` (0 allowed: such a sample has no row).
    pub fn new(lengths: &[usize]) -> Self {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&r| std::cmp::Reverse(lengths[r]));
        let mut rank = vec![0; lengths.len()];
        for (k, &r) in order.iter().enumerate() {
            rank[r] = k;
        }
        let steps = lengths.iter().copied().max().unwrap_or(0);
        let mut off = Vec::with_capacity(steps + 1);
        off.push(0);
        for s in 0..steps {
            let active = order.partition_point(|&r| lengths[r] > s);
            off.push(off[s] + active);
        }
        Self {
            lengths: lengths.to_vec(),
            order,
            rank,
            off,
        }
    }

    /// The sequences' lengths.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// Number of rows `N = Σ lengths`.
    pub fn rows(&self) -> usize {
        self.off[self.off.len() - 1]
    }

    /// Number of steps (the longest length).
    pub fn steps(&self) -> usize {
        self.off.len() - 1
    }

    /// Samples longer than `s` (0 for `s ≥ steps()`).
    pub fn active(&self, s: usize) -> usize {
        if s < self.steps() {
            self.off[s + 1] - self.off[s]
        } else {
            0
        }
    }

    /// First row of step `s` (`s ≤ steps()`).
    pub fn offset(&self, s: usize) -> usize {
        self.off[s]
    }

    /// Samples by decreasing length: the `k`-th row of every step is sample `order()[k]`.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Row of sample `sample` at step `s`; `None` past its length.
    pub fn row(&self, sample: usize, s: usize) -> Option<usize> {
        (s < *self.lengths.get(sample)?).then(|| self.off[s] + self.rank[sample])
    }

    /// For every packed row, the row `sample · t + s` of a `B × T × …` tensor flattened to
    /// `B·T` rows: gathering those rows packs a padded batch (every length must be `≤ t`).
    pub fn gather_index(&self, t: usize) -> Vec<u32> {
        let mut idx = Vec::with_capacity(self.rows());
        for s in 0..self.steps() {
            for &r in &self.order[..self.active(s)] {
                idx.push((r * t + s) as u32);
            }
        }
        idx
    }
}
