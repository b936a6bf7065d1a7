//! The cells that `Δ_p` allows (`p(x1, y) > 0` and `p(x2, y) > 0`), grouped by `(x1, x2)` pair and
//! by `y` slice, with the marginal constraints as rows and the strictly positive product start
//! `q₀ = p(x1, y) p(x2, y) / p(y)`; on them the objective `f(q) = Σ q ln q(y | x1, x2)`, the
//! barrier merit and the Lagrange dual bound that certifies the solver's gap.

use super::counts::{marginal, Counts};
use super::{PidError, QCell, Result, MAX_CELLS, MAX_PAIRS, NONE};
use std::collections::HashMap;

/// The allowed cells, grouped by `(x1, x2)` pair and by `y` slice, and the constraint rows.
///
/// Constraint rows are numbered slice by slice: slice `y` owns rows `row_off[y]..row_off[y+1]`,
/// first one per active `x1` symbol (`q(x1, y) = p(x1, y)`), then one per active `x2` symbol
/// except the most frequent one (its constraint is implied: both marginals sum to `p(y)`).
pub(super) struct Layout {
    /// Cells of pair `m` are `pair_start[m]..pair_start[m + 1]`.
    pair_start: Vec<usize>,
    pub(super) pair_of: Vec<usize>,
    /// Global constraint rows of each cell (`row_b = NONE` for the implied one).
    pub(super) row_a: Vec<usize>,
    pub(super) row_b: Vec<usize>,
    /// Compressed `(x1, x2, y)` of each cell.
    pub(super) key: Vec<(u32, u32, u32)>,
    /// Cells of each slice, in pair order.
    pub(super) slice_cells: Vec<Vec<usize>>,
    /// Runs of consecutive pairs among each slice's cells: `(first cell, first pair, length)`
    /// (a slice of a dense problem is a grid of pairs: its rows of pairs are contiguous).
    pub(super) slice_runs: Vec<Vec<(usize, usize, usize)>>,
    pub(super) row_off: Vec<usize>,
    /// Right-hand sides of the constraint rows (probabilities).
    pub(super) target: Vec<f64>,
    /// Rows that are `x1` constraints (their targets sum to 1).
    alpha_mass: f64,
    /// The product distribution, a strictly positive point of `Δ_p`.
    pub(super) q0: Vec<f64>,
    pub(super) free_dims: usize,
}

impl Layout {
    pub(super) fn new(data: &Counts) -> Result<Self> {
        let ky = data.ky;
        let n = data.n as f64;
        let n1 = marginal(&data.cells, |c| (c.0, c.2));
        let n2 = marginal(&data.cells, |c| (c.1, c.2));
        let ny = marginal(&data.cells, |c| c.2);
        // active symbols per slice, sorted
        let mut rows: Vec<Vec<(u32, u64)>> = vec![Vec::new(); ky];
        let mut cols: Vec<Vec<(u32, u64)>> = vec![Vec::new(); ky];
        for (&(i, yy), &k) in &n1 {
            rows[yy as usize].push((i, k));
        }
        for (&(j, yy), &k) in &n2 {
            cols[yy as usize].push((j, k));
        }
        for v in rows.iter_mut().chain(cols.iter_mut()) {
            v.sort_unstable();
        }
        let mut n_cells = 0usize;
        let mut free_dims = 0usize;
        for yy in 0..ky {
            n_cells = n_cells.saturating_add(rows[yy].len().saturating_mul(cols[yy].len()));
            free_dims += (rows[yy].len() - 1) * (cols[yy].len() - 1);
        }
        if n_cells > MAX_CELLS {
            return Err(PidError::TooLarge {
                what: "allowed cells (x1, x2, y)",
                got: n_cells,
                max: MAX_CELLS,
            });
        }
        // rows of each slice; the implied x2 row is the most frequent x2 (lowest label on ties)
        let mut row_off = Vec::with_capacity(ky + 1);
        let mut target = Vec::new();
        let mut fixed = Vec::with_capacity(ky);
        let mut alpha_mass = 0.0;
        // (slice, symbol) -> local row
        let mut pos1: HashMap<(u32, u32), usize> = HashMap::new();
        let mut pos2: HashMap<(u32, u32), usize> = HashMap::new();
        for yy in 0..ky {
            row_off.push(target.len());
            let base = target.len();
            for (r, &(i, k)) in rows[yy].iter().enumerate() {
                pos1.insert((yy as u32, i), base + r);
                target.push(k as f64 / n);
                alpha_mass += k as f64 / n;
            }
            let fj = cols[yy]
                .iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .expect("every y has an x2")
                .0;
            fixed.push(fj);
            for &(j, k) in &cols[yy] {
                if j != fj {
                    pos2.insert((yy as u32, j), target.len());
                    target.push(k as f64 / n);
                }
            }
        }
        row_off.push(target.len());
        let mut key: Vec<(u32, u32, u32)> = Vec::with_capacity(n_cells);
        for yy in 0..ky {
            for &(i, _) in &rows[yy] {
                for &(j, _) in &cols[yy] {
                    key.push((i, j, yy as u32));
                }
            }
        }
        key.sort_unstable();
        let mut pair_start = Vec::new();
        let mut pair_of = Vec::with_capacity(key.len());
        for (c, k) in key.iter().enumerate() {
            if c == 0 || (key[c - 1].0, key[c - 1].1) != (k.0, k.1) {
                pair_start.push(c);
            }
            pair_of.push(pair_start.len() - 1);
        }
        pair_start.push(key.len());
        let n_pairs = pair_start.len() - 1;
        if n_pairs > MAX_PAIRS {
            return Err(PidError::TooLarge {
                what: "(x1, x2) pairs",
                got: n_pairs,
                max: MAX_PAIRS,
            });
        }
        let mut row_a = Vec::with_capacity(key.len());
        let mut row_b = Vec::with_capacity(key.len());
        let mut q0 = Vec::with_capacity(key.len());
        let mut slice_cells = vec![Vec::new(); ky];
        for (c, &(i, j, yy)) in key.iter().enumerate() {
            row_a.push(pos1[&(yy, i)]);
            row_b.push(pos2.get(&(yy, j)).copied().unwrap_or(NONE));
            slice_cells[yy as usize].push(c);
            let p1 = n1[&(i, yy)] as f64;
            let p2 = n2[&(j, yy)] as f64;
            q0.push(p1 * p2 / (ny[&yy] as f64 * n));
        }
        let slice_runs = slice_cells
            .iter()
            .map(|cells| {
                let mut runs: Vec<(usize, usize, usize)> = Vec::new();
                for (l, &c) in cells.iter().enumerate() {
                    let m = pair_of[c];
                    match runs.last_mut() {
                        Some(r) if r.1 + r.2 == m => r.2 += 1,
                        _ => runs.push((l, m, 1)),
                    }
                }
                runs
            })
            .collect();
        Ok(Self {
            pair_start,
            pair_of,
            row_a,
            row_b,
            key,
            slice_cells,
            slice_runs,
            row_off,
            target,
            alpha_mass,
            q0,
            free_dims,
        })
    }

    pub(super) fn n_pairs(&self) -> usize {
        self.pair_start.len() - 1
    }

    pub(super) fn cells_with_labels(&self, data: &Counts, q: &[f64]) -> Vec<QCell> {
        self.key
            .iter()
            .zip(q)
            .map(|(&(a, b, c), &q)| QCell {
                x1: data.labels[0][a as usize],
                x2: data.labels[1][b as usize],
                y: data.labels[2][c as usize],
                q,
            })
            .collect()
    }

    /// `Σ_{c ∈ m} q(c)` for every pair.
    pub(super) fn pair_mass(&self, q: &[f64], qm: &mut [f64]) {
        for (m, w) in self.pair_start.windows(2).enumerate() {
            qm[m] = q[w[0]..w[1]].iter().sum();
        }
    }

    /// `(α + β)(c)` of the multipliers `nu` (the implied row has multiplier 0).
    pub(super) fn nu_sum(&self, nu: &[f64], c: usize) -> f64 {
        let b = self.row_b[c];
        nu[self.row_a[c]] + if b == NONE { 0.0 } else { nu[b] }
    }

    /// `f(q) = Σ q ln q(y | x1, x2)`, nats.
    pub(super) fn objective(&self, q: &[f64], qm: &mut [f64]) -> f64 {
        self.pair_mass(q, qm);
        q.iter()
            .enumerate()
            .map(|(c, &v)| v * (v / qm[self.pair_of[c]]).ln())
            .sum()
    }

    /// The barrier merit `t Σ q (ln q(y|x1,x2) − α − β) − Σ ln q`: `φ_t` up to a constant on `Δ_p`,
    /// evaluated relative to the multipliers so that it does not lose digits at large `t`.
    pub(super) fn merit(&self, q: &[f64], nu: &[f64], t: f64, qm: &mut [f64]) -> f64 {
        self.pair_mass(q, qm);
        let mut s = 0.0;
        for (c, &v) in q.iter().enumerate() {
            if v <= 0.0 {
                return f64::INFINITY;
            }
            s += t * v * ((v / qm[self.pair_of[c]]).ln() - self.nu_sum(nu, c)) - v.ln();
        }
        s
    }

    /// Lagrange dual lower bound on `min f` from any multipliers: `Σ target·ν`, after lowering
    /// every `α` by `max(0, max over pairs of ln Σ_y exp(α + β))` to make `(α, β)` dual feasible.
    pub(super) fn dual_bound(&self, nu: &[f64]) -> f64 {
        let mut shift = 0.0_f64;
        for w in self.pair_start.windows(2) {
            let z: Vec<f64> = (w[0]..w[1]).map(|c| self.nu_sum(nu, c)).collect();
            let mx = z.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let lse = mx + z.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
            shift = shift.max(lse);
        }
        let obj: f64 = self.target.iter().zip(nu).map(|(a, b)| a * b).sum();
        obj - shift * self.alpha_mass
    }
}
