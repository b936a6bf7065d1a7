//! The empirical distribution of `(x1, x2, y)`: codes compressed to `0..k`, the distinct cells
//! with their counts, the marginals, and the informations `H(Y)`, `I(Y; X1)`, `I(Y; X2)` and
//! `I(Y; X1, X2)` from counts (`H = ln n − (1/n) Σ c ln c`, nats).

use super::QCell;
use std::collections::BTreeMap;

/// Dense codes `0..k` (in increasing label order) and the labels.
fn compress(v: &[usize]) -> (Vec<u32>, Vec<usize>) {
    let mut labels = v.to_vec();
    labels.sort_unstable();
    labels.dedup();
    let codes = v
        .iter()
        .map(|x| labels.binary_search(x).expect("label present") as u32)
        .collect();
    (codes, labels)
}

/// Empirical counts over compressed alphabets.
pub(super) struct Counts {
    pub(super) n: usize,
    pub(super) ky: usize,
    pub(super) labels: [Vec<usize>; 3],
    /// Distinct `(x1, x2, y)` cells with their counts, sorted.
    pub(super) cells: Vec<((u32, u32, u32), u64)>,
}

/// Information quantities of the empirical distribution, nats.
pub(super) struct Information {
    pub(super) hy: f64,
    pub(super) i1: f64,
    pub(super) i2: f64,
    pub(super) i12: f64,
}

/// `H = ln n − (1/n) Σ c ln c` from counts.
fn entropy<I: IntoIterator<Item = u64>>(counts: I, n: usize) -> f64 {
    let nf = n as f64;
    let s: f64 = counts
        .into_iter()
        .filter(|&c| c > 0)
        .map(|c| {
            let c = c as f64;
            c * c.ln()
        })
        .sum();
    (nf.ln() - s / nf).max(0.0)
}

/// Counts of a function of the cells (ordered, so sums over it are reproducible).
pub(super) fn marginal<K: Ord>(
    cells: &[((u32, u32, u32), u64)],
    key: impl Fn(&(u32, u32, u32)) -> K,
) -> BTreeMap<K, u64> {
    let mut m = BTreeMap::new();
    for (c, k) in cells {
        *m.entry(key(c)).or_insert(0) += k;
    }
    m
}

impl Counts {
    pub(super) fn new(x1: &[usize], x2: &[usize], y: &[usize]) -> Self {
        let (c1, l1) = compress(x1);
        let (c2, l2) = compress(x2);
        let (cy, ly) = compress(y);
        let mut triples: Vec<(u32, u32, u32)> =
            (0..x1.len()).map(|s| (c1[s], c2[s], cy[s])).collect();
        triples.sort_unstable();
        let mut cells: Vec<((u32, u32, u32), u64)> = Vec::new();
        for t in triples {
            match cells.last_mut() {
                Some((c, k)) if *c == t => *k += 1,
                _ => cells.push((t, 1)),
            }
        }
        Self {
            n: x1.len(),
            ky: ly.len(),
            labels: [l1, l2, ly],
            cells,
        }
    }

    pub(super) fn information(&self) -> Information {
        let n = self.n;
        fn h<K>(m: BTreeMap<K, u64>, n: usize) -> f64 {
            entropy(m.into_values(), n)
        }
        let hy = h(marginal(&self.cells, |c| c.2), n);
        let h1 = h(marginal(&self.cells, |c| c.0), n);
        let h2 = h(marginal(&self.cells, |c| c.1), n);
        let h1y = h(marginal(&self.cells, |c| (c.0, c.2)), n);
        let h2y = h(marginal(&self.cells, |c| (c.1, c.2)), n);
        let h12 = h(marginal(&self.cells, |c| (c.0, c.1)), n);
        let h12y = entropy(self.cells.iter().map(|c| c.1), n);
        Information {
            hy,
            i1: (h1 + hy - h1y).max(0.0),
            i2: (h2 + hy - h2y).max(0.0),
            i12: (h12 + hy - h12y).max(0.0),
        }
    }

    /// `p` itself, as the optimum of the shortcuts.
    pub(super) fn empirical_cells(&self) -> Vec<QCell> {
        let nf = self.n as f64;
        self.cells
            .iter()
            .map(|&((a, b, c), k)| QCell {
                x1: self.labels[0][a as usize],
                x2: self.labels[1][b as usize],
                y: self.labels[2][c as usize],
                q: k as f64 / nf,
            })
            .collect()
    }
}
