//! Partial information decomposition (PID) of `I(Y; X1, X2)` into redundancy, two unique parts
//! and synergy, with the BROJA definition (Bertschinger, Rauh, Olbrich, Jost & Ay, "Quantifying
//! unique information", Entropy 16, 2014), for discrete variables given as integer codes; a
//! permutation null for the synergy; k-means discretisation of continuous features lives in
//! [`super::kmeans`].
//!
//! # Definition
//!
//! Let `p(x1, x2, y)` be the empirical distribution of `n` samples and
//! `Δ_p = {q : q(x1, y) = p(x1, y), q(x2, y) = p(x2, y)}` the distributions with the same
//! (X1, Y) and (X2, Y) marginals. BROJA takes the `q* ∈ Δ_p` that maximises `H_q(Y | X1, X2)`
//! (a concave program), equivalently minimises `I_q(Y; X1, X2)` (`H(Y)` is fixed on `Δ_p`), and
//! sets, in bits,
//!
//! * synergy `S = I_p(Y; X1, X2) − I_q*(Y; X1, X2)`,
//! * unique information `U1 = I_q*(Y; X1 | X2)`, `U2 = I_q*(Y; X2 | X1)`,
//! * redundancy `R = I(Y; X1) − U1`.
//!
//! Because `I_q(Y; X1) = I_p(Y; X1)` and `I_q(Y; X2) = I_p(Y; X2)` on `Δ_p`, all four follow from
//! the single optimal value `I* = I_q*(Y; X1, X2)`: `U1 = I* − I(Y; X2)`, `U2 = I* − I(Y; X1)`,
//! `R = I(Y; X1) + I(Y; X2) − I*`, `S = I(Y; X1, X2) − I*`. Hence `R + U1 + U2 + S = I(Y; X1, X2)`,
//! `R + U1 = I(Y; X1)` and `R + U2 = I(Y; X2)` hold by construction, and the decomposition's
//! non-negativity (a theorem of the paper) is the statement
//! `max(I(Y;X1), I(Y;X2)) ≤ I* ≤ min(I(Y;X1,X2), I(Y;X1) + I(Y;X2))`; the computed `I*` is
//! clamped to that interval (which only removes solver round-off: the true `I*` lies in it).
//!
//! # Solver
//!
//! A dedicated primal log-barrier interior-point method (Boyd & Vandenberghe, *Convex
//! Optimization*, §11.3) on the cells that `Δ_p` allows: `q(x1, x2, y)` can be positive only where
//! `p(x1, y) > 0` and `p(x2, y) > 0`, and on those cells the product
//! `q₀ = p(x1, y) p(x2, y) / p(y)` is strictly positive and lies in `Δ_p`, so the barrier method
//! starts feasible. For a barrier weight `t` it minimises
//! `φ_t(q) = t·f(q) − Σ ln q(c)` over `Δ_p`, with `f(q) = −H_q(Y | X1, X2) = Σ q ln q(y | x1, x2)`,
//! by Newton's method with backtracking; then multiplies `t` by 100. Convergence guarantee: `φ_t`
//! is smooth and strictly convex on the bounded polytope, so the damped Newton method converges
//! to its minimiser (Boyd & Vandenberghe §9.5), and the minimiser is `N/t`-suboptimal (`N` cells).
//! The loop stops on a *certificate*, not an iteration count: the Newton system's multipliers
//! `(α, β)` of the marginal constraints, shifted to satisfy the dual constraints
//! `Σ_y exp(α(x1, y) + β(x2, y)) ≤ 1`, give a lower bound `Σ p(x1, y) α + Σ p(x2, y) β ≤ min f`
//! (Lagrange duality), and the primal iterate an upper bound; the solver returns when the two are
//! within `tol` (default 1e-10 bits), and the gap is reported.
//!
//! The Newton system has one unknown per cell (`k1·k2·ky`, 8000 at k = 20), but its structure
//! reduces it cheaply and without the ill-conditioning of a plain normal-equation solve: the
//! Hessian of `f` is block-diagonal over `(x1, x2)` pairs, each block a diagonal minus a rank-one
//! term (`f` is linear along `q(x1, x2, ·)`), so one extra unknown per pair carries the rank-one
//! parts; the marginal constraints of different `y` do not interact, so the constraint block is
//! one small `(k1 + k2 − 1)`-square matrix per `y`; what remains is one dense positive-definite
//! system over the `k1·k2` pairs (400 unknowns at k = 20), factorised by Cholesky. The gradient is
//! taken relative to the current multipliers, so nothing cancels at large `t`. A general conic
//! solver (e.g. the `clarabel` crate, exponential cones) would need one 3-dimensional cone per
//! cell and a sparse factorisation of a `~4N`-square system per iteration, and a new dependency;
//! this structured method needs neither and certifies its accuracy with the duality gap.
//!
//! Degenerate inputs are exact shortcuts: a single-symbol `Y` gives all zeros; when every `y`
//! has one active `x1` or one active `x2` symbol, `Δ_p = {p}` and `I* = I_p(Y; X1, X2)`.

use crate::error::EstimatorError;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

/// Why a PID (or its discretisation) refused its input.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PidError {
    /// An input has no samples.
    #[error("{what} is empty (no samples)")]
    Empty { what: &'static str },
    /// Two inputs must have one entry per sample.
    #[error("length mismatch: {x} has {nx} samples but {y} has {ny}")]
    LengthMismatch {
        x: &'static str,
        nx: usize,
        y: &'static str,
        ny: usize,
    },
    /// The alphabets are too large for the dense Newton system.
    #[error("PID problem too large: {what} = {got} exceeds {max} (discretise into fewer symbols)")]
    TooLarge {
        what: &'static str,
        got: usize,
        max: usize,
    },
    /// The interior-point method stopped without reaching its tolerance.
    #[error("BROJA solver did not converge: duality gap {gap_bits:.3e} bits after {newton_steps} Newton steps")]
    NotConverged { gap_bits: f64, newton_steps: usize },
    /// A parameter is outside its domain.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// An input matrix was refused by the shared validation (empty, NaN/Inf, mismatched width).
    #[error(transparent)]
    Input(#[from] EstimatorError),
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, PidError>;

/// The BROJA decomposition of `I(Y; X1, X2)`, in bits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pid {
    /// `R = I(Y; X1) − U1`.
    pub redundancy: f64,
    /// `U1 = I_q*(Y; X1 | X2)`.
    pub unique_x1: f64,
    /// `U2 = I_q*(Y; X2 | X1)`.
    pub unique_x2: f64,
    /// `S = I(Y; X1, X2) − I_q*(Y; X1, X2)`.
    pub synergy: f64,
    /// `I(Y; X1, X2)` of the empirical distribution (`= R + U1 + U2 + S`).
    pub mutual_information: f64,
}

/// One cell of the optimal distribution `q*`, with the caller's labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QCell {
    pub x1: usize,
    pub x2: usize,
    pub y: usize,
    pub q: f64,
}

/// The decomposition with the solver's evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PidSolution {
    pub pid: Pid,
    /// `I(Y; X1)` and `I(Y; X2)` of the empirical distribution, bits.
    pub mi_x1: f64,
    pub mi_x2: f64,
    /// `I_q(Y; X1, X2)` at the returned `q*` before clamping, bits.
    pub mi_q: f64,
    /// Certified duality gap of `min I_q(Y; X1, X2)`, bits (0 for the exact shortcuts).
    pub gap_bits: f64,
    /// Newton steps taken (0 for the exact shortcuts).
    pub newton_steps: usize,
    /// `q*` on the cells that `Δ_p` allows (those with `p(x1, y) > 0` and `p(x2, y) > 0`).
    pub q_star: Vec<QCell>,
}

/// Solver settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PidOptions {
    /// Stop when the certified duality gap is at most this many bits.
    pub tol_bits: f64,
    /// Give up (with [`PidError::NotConverged`]) after this many Newton steps.
    pub max_newton: usize,
}

impl Default for PidOptions {
    fn default() -> Self {
        Self {
            tol_bits: 1e-10,
            max_newton: 2000,
        }
    }
}

/// Most `(x1, x2)` pairs (unknowns of the dense Newton system; its cost grows as their cube).
pub const MAX_PAIRS: usize = 4096;
/// Most allowed cells `(x1, x2, y)`.
pub const MAX_CELLS: usize = 1 << 22;

const LN2: f64 = std::f64::consts::LN_2;
const NONE: usize = usize::MAX;

/// The BROJA PID of three equal-length code vectors (any `usize` labels; only equality matters).
/// See the module documentation for the definition and the solver.
///
/// # Example
///
/// `Y = X1 XOR X2` with independent fair bits: neither input alone says anything about `Y`, both
/// together say everything — one bit of pure synergy:
///
/// ```
/// use neural_synergy::estimators::pid_discrete;
///
/// let (x1, x2) = (vec![0, 0, 1, 1], vec![0, 1, 0, 1]);
/// let y: Vec<usize> = x1.iter().zip(&x2).map(|(a, b)| a ^ b).collect();
/// let pid = pid_discrete(&x1, &x2, &y)?;
/// assert!((pid.synergy - 1.0).abs() < 1e-6);
/// assert!(pid.redundancy.abs() < 1e-6 && pid.unique_x1.abs() < 1e-6);
/// # Ok::<(), neural_synergy::estimators::PidError>(())
/// ```
pub fn pid_discrete(x1: &[usize], x2: &[usize], y: &[usize]) -> Result<Pid> {
    Ok(pid_discrete_with(x1, x2, y, &PidOptions::default())?.pid)
}

/// [`pid_discrete`] with settings, returning `q*`, the certified gap and the step count.
pub fn pid_discrete_with(
    x1: &[usize],
    x2: &[usize],
    y: &[usize],
    opts: &PidOptions,
) -> Result<PidSolution> {
    check_codes(x1, x2, y)?;
    if !(opts.tol_bits > 0.0 && opts.tol_bits.is_finite()) {
        return Err(PidError::InvalidParameter {
            name: "tol_bits",
            reason: format!("must be positive and finite, got {}", opts.tol_bits),
        });
    }
    let data = Counts::new(x1, x2, y);
    let ent = data.information();
    let (mi_q_nats, gap_nats, newton_steps, q_star) = if data.ky == 1 {
        // H(Y) = 0: every information is zero and q* = p.
        (0.0, 0.0, 0, data.empirical_cells())
    } else {
        let layout = Layout::new(&data)?;
        if layout.free_dims == 0 {
            // Δ_p = {p}
            (ent.i12, 0.0, 0, data.empirical_cells())
        } else {
            let sol = layout.solve(opts)?;
            let cells = layout.cells_with_labels(&data, &sol.q);
            (ent.hy + sol.f, sol.gap, sol.newton_steps, cells)
        }
    };
    let lo = ent.i1.max(ent.i2);
    let hi = ent.i12.min(ent.i1 + ent.i2);
    let mi = mi_q_nats.max(lo).min(hi);
    let pid = Pid {
        redundancy: (ent.i1 + ent.i2 - mi) / LN2,
        unique_x1: (mi - ent.i2) / LN2,
        unique_x2: (mi - ent.i1) / LN2,
        synergy: (ent.i12 - mi) / LN2,
        mutual_information: ent.i12 / LN2,
    };
    Ok(PidSolution {
        pid,
        mi_x1: ent.i1 / LN2,
        mi_x2: ent.i2 / LN2,
        mi_q: mi_q_nats / LN2,
        gap_bits: gap_nats / LN2,
        newton_steps,
        q_star,
    })
}

fn check_codes(x1: &[usize], x2: &[usize], y: &[usize]) -> Result<()> {
    for (what, v) in [("x1", x1), ("x2", x2), ("y", y)] {
        if v.is_empty() {
            return Err(PidError::Empty { what });
        }
    }
    for (what, v) in [("x2", x2), ("y", y)] {
        if v.len() != x1.len() {
            return Err(PidError::LengthMismatch {
                x: "x1",
                nx: x1.len(),
                y: what,
                ny: v.len(),
            });
        }
    }
    Ok(())
}

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
struct Counts {
    n: usize,
    ky: usize,
    labels: [Vec<usize>; 3],
    /// Distinct `(x1, x2, y)` cells with their counts, sorted.
    cells: Vec<((u32, u32, u32), u64)>,
}

/// Information quantities of the empirical distribution, nats.
struct Information {
    hy: f64,
    i1: f64,
    i2: f64,
    i12: f64,
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
fn marginal<K: Ord>(
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
    fn new(x1: &[usize], x2: &[usize], y: &[usize]) -> Self {
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

    fn information(&self) -> Information {
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
    fn empirical_cells(&self) -> Vec<QCell> {
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

/// The allowed cells, grouped by `(x1, x2)` pair and by `y` slice, and the constraint rows.
///
/// Constraint rows are numbered slice by slice: slice `y` owns rows `row_off[y]..row_off[y+1]`,
/// first one per active `x1` symbol (`q(x1, y) = p(x1, y)`), then one per active `x2` symbol
/// except the most frequent one (its constraint is implied: both marginals sum to `p(y)`).
struct Layout {
    /// Cells of pair `m` are `pair_start[m]..pair_start[m + 1]`.
    pair_start: Vec<usize>,
    pair_of: Vec<usize>,
    /// Global constraint rows of each cell (`row_b = NONE` for the implied one).
    row_a: Vec<usize>,
    row_b: Vec<usize>,
    /// Compressed `(x1, x2, y)` of each cell.
    key: Vec<(u32, u32, u32)>,
    /// Cells of each slice, in pair order.
    slice_cells: Vec<Vec<usize>>,
    /// Runs of consecutive pairs among each slice's cells: `(first cell, first pair, length)`
    /// (a slice of a dense problem is a grid of pairs: its rows of pairs are contiguous).
    slice_runs: Vec<Vec<(usize, usize, usize)>>,
    row_off: Vec<usize>,
    /// Right-hand sides of the constraint rows (probabilities).
    target: Vec<f64>,
    /// Rows that are `x1` constraints (their targets sum to 1).
    alpha_mass: f64,
    /// The product distribution, a strictly positive point of `Δ_p`.
    q0: Vec<f64>,
    free_dims: usize,
}

/// What the interior-point method returns.
struct Solved {
    q: Vec<f64>,
    /// `min f = −max H_q(Y | X1, X2)` at the returned `q` (upper bound), nats.
    f: f64,
    gap: f64,
    newton_steps: usize,
}

impl Layout {
    fn new(data: &Counts) -> Result<Self> {
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

    fn n_pairs(&self) -> usize {
        self.pair_start.len() - 1
    }

    fn cells_with_labels(&self, data: &Counts, q: &[f64]) -> Vec<QCell> {
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
    fn pair_mass(&self, q: &[f64], qm: &mut [f64]) {
        for (m, w) in self.pair_start.windows(2).enumerate() {
            qm[m] = q[w[0]..w[1]].iter().sum();
        }
    }

    /// `(α + β)(c)` of the multipliers `nu` (the implied row has multiplier 0).
    fn nu_sum(&self, nu: &[f64], c: usize) -> f64 {
        let b = self.row_b[c];
        nu[self.row_a[c]] + if b == NONE { 0.0 } else { nu[b] }
    }

    /// `f(q) = Σ q ln q(y | x1, x2)`, nats.
    fn objective(&self, q: &[f64], qm: &mut [f64]) -> f64 {
        self.pair_mass(q, qm);
        q.iter()
            .enumerate()
            .map(|(c, &v)| v * (v / qm[self.pair_of[c]]).ln())
            .sum()
    }

    /// The barrier merit `t Σ q (ln q(y|x1,x2) − α − β) − Σ ln q`: `φ_t` up to a constant on `Δ_p`,
    /// evaluated relative to the multipliers so that it does not lose digits at large `t`.
    fn merit(&self, q: &[f64], nu: &[f64], t: f64, qm: &mut [f64]) -> f64 {
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
    fn dual_bound(&self, nu: &[f64]) -> f64 {
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

    /// The barrier method; see the module documentation.
    fn solve(&self, opts: &PidOptions) -> Result<Solved> {
        let n_cells = self.key.len();
        let n_rows = self.target.len();
        let mut ws = Workspace::new(self);
        let mut q = self.q0.clone();
        let mut nu = vec![0.0; n_rows];
        let mut qm = vec![0.0; self.n_pairs()];
        let tol = opts.tol_bits * LN2;
        let f0 = self.objective(&q, &mut qm);
        let gap0 = (f0 - self.dual_bound(&nu)).max(1e-3);
        let mut t = n_cells as f64 / gap0;
        let mut steps = 0usize;
        let mut best = (f64::INFINITY, f64::INFINITY, q.clone());
        loop {
            // centring: Newton's method on φ_t over Δ_p
            for _ in 0..200 {
                if steps >= opts.max_newton {
                    break;
                }
                let lam2 = self.newton(&q, &nu, t, &mut ws);
                steps += 1;
                if !lam2.is_finite() {
                    break;
                }
                let mut a = 1.0_f64;
                for (v, d) in q.iter().zip(&ws.dq) {
                    if *d < 0.0 {
                        a = a.min(-0.99 * v / d);
                    }
                }
                if lam2 > 1e-2 {
                    let m0 = self.merit(&q, &nu, t, &mut qm);
                    loop {
                        for ((tr, v), d) in ws.trial.iter_mut().zip(&q).zip(&ws.dq) {
                            *tr = v + a * d;
                        }
                        let m1 = self.merit(&ws.trial, &nu, t, &mut qm);
                        if m1 <= m0 - 0.01 * a * lam2 || a < 1e-12 {
                            break;
                        }
                        a *= 0.5;
                    }
                    if a < 1e-12 {
                        break; // no progress possible at this t
                    }
                }
                for (v, d) in q.iter_mut().zip(&ws.dq) {
                    *v += a * d;
                }
                for (v, d) in nu.iter_mut().zip(&ws.dnu) {
                    *v += a * d;
                }
                if lam2 < 1e-9 {
                    break;
                }
            }
            let f = self.objective(&q, &mut qm);
            let gap = f - self.dual_bound(&nu);
            let gap = if gap.is_finite() {
                gap.max(0.0)
            } else {
                f64::INFINITY
            };
            if gap < best.1 {
                best = (f, gap, q.clone());
            }
            if gap <= tol || steps >= opts.max_newton || t > 1e18 {
                break;
            }
            t *= 100.0;
        }
        let (f, gap, q) = best;
        // a gap a thousand times the tolerance is still far below any reported digit; beyond
        // that the answer is refused
        if gap.is_nan() || gap > tol.max(1e-7 * LN2) {
            return Err(PidError::NotConverged {
                gap_bits: gap / LN2,
                newton_steps: steps,
            });
        }
        Ok(Solved {
            q,
            f,
            gap,
            newton_steps: steps,
        })
    }

    /// One Newton step of `φ_t` at `q` (with the multiplier estimate `nu`): writes the step
    /// `ws.dq` and the multiplier correction `ws.dnu`, returns the Newton decrement `λ²`.
    ///
    /// The system `[∇²φ/t  Aᵀ; A  0]` is solved as follows (`s = 1/(t q)`, `d = (1 + s)/q`):
    /// `∇²φ/t = diag(d) − Σ_m (1/q_m) 1_m 1_mᵀ`; with `w_m = 1_mᵀΔq / q_m` the step is
    /// `Δq = D⁻¹(h + E w + AᵀΔν)`, where `(ρ + Zᵀ K⁻¹ Z) w = Zᵀ K⁻¹ g₂ + Eᵀ D⁻¹ h`,
    /// `K = A D⁻¹ Aᵀ` (block-diagonal over `y`), `Z = A D⁻¹ E`, `ρ_m = Σ_{c∈m} q s/(1 + s)`,
    /// `g₂ = −(A q − b) − A D⁻¹ h`, `Δν = K⁻¹(g₂ − Z w)` and `h = −(ln q(y|x1,x2) − α − β) + s`.
    fn newton(&self, q: &[f64], nu: &[f64], t: f64, ws: &mut Workspace) -> f64 {
        let np = self.n_pairs();
        self.pair_mass(q, &mut ws.qm);
        ws.rho.iter_mut().for_each(|v| *v = 0.0);
        ws.rhs_t.iter_mut().for_each(|v| *v = 0.0);
        for (c, &v) in q.iter().enumerate() {
            let m = self.pair_of[c];
            let s = 1.0 / (t * v);
            let ell = (v / ws.qm[m]).ln();
            ws.h[c] = -(ell - self.nu_sum(nu, c)) + s;
            ws.dinv[c] = v / (1.0 + s);
            ws.rho[m] += v / (t * v + 1.0);
            ws.rhs_t[m] += ws.dinv[c] * ws.h[c];
        }
        let tm = &mut ws.t;
        tm.iter_mut().for_each(|v| *v = 0.0);
        for m in 0..np {
            tm[m * np + m] = ws.rho[m];
        }
        // per slice: K, its inverse, g2, and the slice's share of T and of its right-hand side
        for (yy, cells) in self.slice_cells.iter().enumerate() {
            let off = self.row_off[yy];
            let dim = self.row_off[yy + 1] - off;
            let nc = cells.len();
            let k = &mut ws.kinv[yy];
            k.iter_mut().for_each(|v| *v = 0.0);
            let g2 = &mut ws.g2[off..off + dim];
            g2.copy_from_slice(&self.target[off..off + dim]); // −(Aq − b) accumulates below
                                                              // local rows of the cells (b = a for the implied row: its column of V is e_a only)
            ws.la.clear();
            ws.lb.clear();
            ws.lp.clear();
            ws.ld.clear();
            for &c in cells {
                let a = self.row_a[c] - off;
                let di = ws.dinv[c];
                let add = q[c] + di * ws.h[c];
                k[a * dim + a] += di;
                g2[a] -= add;
                let b = self.row_b[c];
                let b = if b == NONE {
                    NONE
                } else {
                    let b = b - off;
                    k[b * dim + b] += di;
                    k[a * dim + b] += di;
                    k[b * dim + a] += di;
                    g2[b] -= add;
                    b
                };
                ws.la.push(a);
                ws.lb.push(b);
                ws.lp.push(self.pair_of[c]);
                ws.ld.push(di);
            }
            invert_spd(k, dim, &mut ws.scratch);
            // kg2 = K⁻¹ g2
            let kg2 = &mut ws.kg2[off..off + dim];
            for r in 0..dim {
                kg2[r] = dot(&k[r * dim..(r + 1) * dim], g2);
            }
            // Ut[r, l] = dinv_l (K⁻¹[r, a_l] + K⁻¹[r, b_l]): row r of K⁻¹ V, contiguous in l
            ws.ut.resize(dim * nc, 0.0);
            for r in 0..dim {
                let kr = &k[r * dim..(r + 1) * dim];
                let ur = &mut ws.ut[r * nc..(r + 1) * nc];
                for (l, u) in ur.iter_mut().enumerate() {
                    let b = ws.lb[l];
                    let v = kr[ws.la[l]] + if b == NONE { 0.0 } else { kr[b] };
                    *u = ws.ld[l] * v;
                }
            }
            // T[m(l), m(l2)] += dinv_l (Ut[a_l, l2] + Ut[b_l, l2]) for l2 ≤ l: the cells of a
            // slice belong to distinct pairs, in increasing order, so this is the lower triangle
            let runs = &self.slice_runs[yy];
            for l in 0..nc {
                let m = ws.lp[l];
                let di = ws.ld[l];
                let ua = &ws.ut[ws.la[l] * nc..ws.la[l] * nc + l + 1];
                let row = &mut tm[m * np..(m + 1) * np];
                let b = ws.lb[l];
                let ub = if b == NONE {
                    None
                } else {
                    Some(&ws.ut[b * nc..b * nc + l + 1])
                };
                // contiguous runs of pairs: vectorisable slices of the row of T
                for &(l0, m0, len) in runs {
                    if l0 > l {
                        break;
                    }
                    let len = len.min(l + 1 - l0);
                    let dst = &mut row[m0..m0 + len];
                    let ua = &ua[l0..l0 + len];
                    match ub {
                        None => {
                            for (d, &u) in dst.iter_mut().zip(ua) {
                                *d += di * u;
                            }
                        }
                        Some(ub) => {
                            for ((d, &u), &v) in dst.iter_mut().zip(ua).zip(&ub[l0..l0 + len]) {
                                *d += di * (u + v);
                            }
                        }
                    }
                }
                let v = kg2[ws.la[l]] + if b == NONE { 0.0 } else { kg2[b] };
                ws.rhs_t[m] += di * v;
            }
        }
        let w = &mut ws.w;
        w.copy_from_slice(&ws.rhs_t);
        if !solve_spd(tm, np, w, &mut ws.tcopy) {
            return f64::NAN;
        }
        // Δν = K⁻¹ (g2 − Z w) per slice, then Δq
        for (yy, cells) in self.slice_cells.iter().enumerate() {
            let off = self.row_off[yy];
            let dim = self.row_off[yy + 1] - off;
            let zr = &mut ws.zr[off..off + dim];
            zr.copy_from_slice(&ws.g2[off..off + dim]);
            for &c in cells {
                let v = ws.dinv[c] * w[self.pair_of[c]];
                zr[self.row_a[c] - off] -= v;
                if self.row_b[c] != NONE {
                    zr[self.row_b[c] - off] -= v;
                }
            }
            let k = &ws.kinv[yy];
            for r in 0..dim {
                ws.dnu[off + r] = dot(&k[r * dim..(r + 1) * dim], zr);
            }
        }
        let mut lam2 = 0.0;
        for c in 0..q.len() {
            let d = ws.dinv[c] * (ws.h[c] + w[self.pair_of[c]] + self.nu_sum(&ws.dnu, c));
            ws.dq[c] = d;
            lam2 += ws.h[c] * d;
        }
        t * lam2
    }
}

/// Buffers of the Newton step.
struct Workspace {
    qm: Vec<f64>,
    h: Vec<f64>,
    dinv: Vec<f64>,
    rho: Vec<f64>,
    rhs_t: Vec<f64>,
    kinv: Vec<Vec<f64>>,
    g2: Vec<f64>,
    kg2: Vec<f64>,
    zr: Vec<f64>,
    ut: Vec<f64>,
    la: Vec<usize>,
    lb: Vec<usize>,
    lp: Vec<usize>,
    ld: Vec<f64>,
    scratch: Vec<f64>,
    /// The pair system (row-major `np × np`, lower triangle), a copy for retries, its solution.
    t: Vec<f64>,
    tcopy: Vec<f64>,
    w: Vec<f64>,
    dq: Vec<f64>,
    dnu: Vec<f64>,
    trial: Vec<f64>,
}

impl Workspace {
    fn new(l: &Layout) -> Self {
        let nc = l.key.len();
        let np = l.n_pairs();
        let nr = l.target.len();
        let kinv = (0..l.slice_cells.len())
            .map(|y| {
                let d = l.row_off[y + 1] - l.row_off[y];
                vec![0.0; d * d]
            })
            .collect();
        Self {
            qm: vec![0.0; np],
            h: vec![0.0; nc],
            dinv: vec![0.0; nc],
            rho: vec![0.0; np],
            rhs_t: vec![0.0; np],
            kinv,
            g2: vec![0.0; nr],
            kg2: vec![0.0; nr],
            zr: vec![0.0; nr],
            ut: Vec::new(),
            la: Vec::new(),
            lb: Vec::new(),
            lp: Vec::new(),
            ld: Vec::new(),
            scratch: Vec::new(),
            t: vec![0.0; np * np],
            tcopy: Vec::new(),
            w: vec![0.0; np],
            dq: vec![0.0; nc],
            dnu: vec![0.0; nr],
            trial: vec![0.0; nc],
        }
    }
}

/// In-place inverse of a small symmetric positive-definite row-major matrix (Cholesky, then
/// `L⁻ᵀ L⁻¹`). A pivot that lost its precision is lifted to a tiny positive value: the
/// directions it stands for carry vanishing probability mass.
fn invert_spd(a: &mut [f64], d: usize, l: &mut Vec<f64>) {
    if d == 0 {
        return;
    }
    let max_diag = (0..d).map(|i| a[i * d + i]).fold(0.0_f64, f64::max);
    let floor = (max_diag * 1e-300).max(f64::MIN_POSITIVE);
    l.clear();
    l.resize(d * d, 0.0);
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= l[j * d + k] * l[j * d + k];
        }
        let piv = s.max(floor).sqrt();
        l[j * d + j] = piv;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            l[i * d + j] = s / piv;
        }
    }
    // L⁻¹ in place of the lower triangle (column by column), then A⁻¹ = L⁻ᵀ L⁻¹
    let mut inv = vec![0.0; d * d];
    for j in 0..d {
        inv[j * d + j] = 1.0 / l[j * d + j];
        for i in j + 1..d {
            let mut s = 0.0;
            for k in j..i {
                s -= l[i * d + k] * inv[k * d + j];
            }
            inv[i * d + j] = s / l[i * d + i];
        }
    }
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (i..d).map(|k| inv[k * d + i] * inv[k * d + j]).sum();
            a[i * d + j] = s;
            a[j * d + i] = s;
        }
    }
}

/// Solves `T w = r` in place of `r` for the symmetric positive-definite pair system (row-major,
/// lower triangle) by [`cholesky_lower_in_place`]; if rounding made `T` indefinite, a growing ridge
/// is added until it factorises. Returns false when nothing helps.
fn solve_spd(t: &mut [f64], n: usize, r: &mut [f64], copy: &mut Vec<f64>) -> bool {
    let max_diag = (0..n).map(|i| t[i * n + i].abs()).fold(0.0_f64, f64::max);
    copy.clear();
    copy.extend_from_slice(t);
    let mut ridge = 0.0;
    while !cholesky_lower_in_place(t, n) {
        ridge = if ridge == 0.0 {
            max_diag * 1e-15
        } else {
            ridge * 100.0
        };
        if !ridge.is_finite() || ridge > max_diag {
            return false;
        }
        t.copy_from_slice(copy);
        for i in 0..n {
            t[i * n + i] += ridge;
        }
    }
    // L y = r, then Lᵀ w = y
    for i in 0..n {
        r[i] = (r[i] - dot(&t[i * n..i * n + i], &r[..i])) / t[i * n + i];
    }
    for i in (0..n).rev() {
        let v = r[i] / t[i * n + i];
        r[i] = v;
        for (k, rk) in r[..i].iter_mut().enumerate() {
            *rk -= t[i * n + k] * v;
        }
    }
    r.iter().all(|v| v.is_finite())
}

/// `Σ aᵢ bᵢ` with four independent partial sums (vectorisable; a fixed order, so reproducible).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a4, b4) = (a[..n].chunks_exact(4), b[..n].chunks_exact(4));
    let (ra, rb) = (a4.remainder(), b4.remainder());
    let mut acc = [0.0; 4];
    for (x, y) in a4.zip(b4) {
        for ((s, u), v) in acc.iter_mut().zip(x).zip(y) {
            *s += u * v;
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Blocked right-looking Cholesky `A = L Lᵀ` of a row-major `n × n` matrix, in place of its lower
/// triangle (the upper one is used as scratch). Panels of 32 columns are factorised by scalar
/// loops; the trailing updates, where the flops are, go through the `gemm` crate (its
/// AVX-512/AVX2/FMA kernels are chosen at run time; single-threaded, so bit-reproducible).
/// Returns false on a non-positive pivot.
fn cholesky_lower_in_place(a: &mut [f64], n: usize) -> bool {
    const NB: usize = 32;
    let mut k0 = 0;
    while k0 < n {
        let kb = NB.min(n - k0);
        let k1 = k0 + kb;
        // columns k0..k1 of every row i ≥ k0 (row by row: a row needs only rows above it);
        // earlier columns were already subtracted by the trailing updates
        for i in k0..n {
            let (head, tail) = a.split_at_mut(i * n);
            let ri = &mut tail[..n];
            for j in k0..k1.min(i) {
                let rj = &head[j * n..j * n + n];
                ri[j] = (ri[j] - dot(&ri[k0..j], &rj[k0..j])) / rj[j];
            }
            if i < k1 {
                let d = ri[i] - dot(&ri[k0..i], &ri[k0..i]);
                if !(d > 0.0 && d.is_finite()) {
                    return false;
                }
                ri[i] = d.sqrt();
            }
        }
        if k1 < n {
            let m = n - k1;
            // A22 −= P Pᵀ with P = A[k1.., k0..k1]
            // SAFETY: P (columns k0..k1) and A22 (columns k1..n) of rows k1..n are disjoint
            // elements of `a`; all strides and extents stay inside the n × n buffer.
            unsafe {
                let base = a.as_mut_ptr();
                let p = base.add(k1 * n + k0) as *const f64;
                gemm::gemm(
                    m,
                    m,
                    kb,
                    base.add(k1 * n + k1),
                    1,
                    n as isize,
                    true,
                    p,
                    1,
                    n as isize,
                    p,
                    n as isize,
                    1,
                    1.0,
                    -1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
        k0 = k1;
    }
    true
}

/// The synergy of `(x1, x2, y)` against a permutation null: `Y` shuffled `draws` times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NullSummary {
    /// The PID of the data as given.
    pub observed: Pid,
    /// Number of permutations.
    pub draws: usize,
    pub seed: u64,
    /// Mean of the null synergies, bits.
    pub mean: f64,
    /// 95th percentile of the null synergies (nearest rank: the `⌈0.95·draws⌉`-th smallest), bits.
    pub p95: f64,
    /// `(1 + #{null ≥ observed}) / (1 + draws)`.
    pub p_value: f64,
    /// The null synergies, in draw order.
    pub synergy: Vec<f64>,
}

/// Permutation null of the synergy: draw `d` shuffles `y` (positions) with the ChaCha8 stream
/// `d` of `seed`, which breaks every dependence of `Y` on `(X1, X2)` while keeping the marginal
/// of `Y` and the joint of `(X1, X2)`; the draws run in parallel and do not depend on the thread
/// count. "Synergy present" means the observed synergy above the null (e.g. above `p95`).
pub fn synergy_null(
    x1: &[usize],
    x2: &[usize],
    y: &[usize],
    draws: usize,
    seed: u64,
) -> Result<NullSummary> {
    check_codes(x1, x2, y)?;
    if draws == 0 {
        return Err(PidError::InvalidParameter {
            name: "draws",
            reason: "the null needs at least one permutation".into(),
        });
    }
    let observed = pid_discrete(x1, x2, y)?;
    let synergy: Vec<f64> = (0..draws)
        .into_par_iter()
        .map(|d| {
            let yp = permuted(y, seed, d as u64);
            pid_discrete(x1, x2, &yp).map(|p| p.synergy)
        })
        .collect::<Result<_>>()?;
    let mean = synergy.iter().sum::<f64>() / draws as f64;
    let mut sorted = synergy.clone();
    sorted.sort_by(f64::total_cmp);
    let rank = ((0.95 * draws as f64).ceil() as usize).clamp(1, draws);
    let p95 = sorted[rank - 1];
    let above = synergy.iter().filter(|&&s| s >= observed.synergy).count();
    Ok(NullSummary {
        observed,
        draws,
        seed,
        mean,
        p95,
        p_value: (1 + above) as f64 / (1 + draws) as f64,
        synergy,
    })
}

/// `y` with its positions shuffled by the ChaCha8 stream `stream` of `seed` (the permutation of
/// null draw `stream` in [`synergy_null`]).
pub fn permuted(y: &[usize], seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut v = y.to_vec();
    v.shuffle(&mut rng);
    v
}
