//! Partial information decomposition (PID) of `I(Y; X1, X2)` into redundancy, two unique parts
//! and synergy, with the BROJA definition (Bertschinger, Rauh, Olbrich, Jost & Ay, "Quantifying
//! unique information", Entropy 16, 2014), for discrete variables given as integer codes; a
//! permutation null for the synergy; k-means discretisation of continuous features lives in
//! `super::kmeans`.
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
//!
//! # Where it lives
//!
//! This file holds the result types and the entry points; `counts.rs` the empirical distribution
//! and its informations; `layout.rs` the cells `Δ_p` allows, the constraint rows, the objective
//! and the dual bound; `solver.rs` the barrier method and its Newton step; `spd.rs` the dense
//! positive-definite solves of that step; `null.rs` the permutation null of the synergy.

use crate::error::EstimatorError;
use serde::Serialize;
use thiserror::Error;

mod counts;
mod layout;
mod null;
mod solver;
mod spd;

pub use null::{permuted, synergy_null, NullSummary};

use counts::Counts;
use layout::Layout;

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
pub(crate) const MAX_PAIRS: usize = 4096;
/// Most allowed cells `(x1, x2, y)`.
pub(crate) const MAX_CELLS: usize = 1 << 22;

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
