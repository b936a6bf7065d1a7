//! Variational lower bounds on KL(P‖Q) from critic values.
//!
//! Given critic values `t_P = T(x₁..x_n)` on samples of `P` and `t_Q = T(y₁..y_m)` on samples of `Q`:
//! * Donsker–Varadhan: `DV = mean(t_P) − (logsumexp(t_Q) − ln m)` (log-mean-exp, computed stably);
//! * NWJ (Nguyen–Wainwright–Jordan, "f-GAN KL" form): `NWJ = mean(t_P) − e⁻¹ · mean(exp(t_Q))`.
//!
//! For every critic `DV ≥ NWJ` (since `ln u ≤ u/e` for `u > 0`), and both are ≤ KL(P‖Q) in
//! expectation; DV is tight at `T = ln dP/dQ + c`, NWJ at `T = 1 + ln dP/dQ`.

use crate::error::Result;
use ndarray::ArrayView1;
use serde::Serialize;

/// Both bounds from one set of critic values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DvNwj {
    /// Donsker–Varadhan bound.
    pub dv: f64,
    /// NWJ bound.
    pub nwj: f64,
}

/// `ln( (1/m) Σ exp(tⱼ) )`, stably.
pub fn log_mean_exp(t: &ArrayView1<f64>) -> f64 {
    let max = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = t.iter().map(|v| (v - max).exp()).sum();
    max + s.ln() - (t.len() as f64).ln()
}

fn check(tp: &ArrayView1<f64>, tq: &ArrayView1<f64>) -> Result<()> {
    super::check_vector("t_p", tp)?;
    super::check_vector("t_q", tq)
}

/// Donsker–Varadhan bound `mean(t_P) − (logsumexp(t_Q) − ln m)`.
pub fn dv_bound(tp: &ArrayView1<f64>, tq: &ArrayView1<f64>) -> Result<f64> {
    check(tp, tq)?;
    let mean_p = tp.mean().expect("non-empty");
    super::finite("DV bound", mean_p - log_mean_exp(tq))
}

/// NWJ bound `mean(t_P) − e⁻¹ mean(exp(t_Q))`. Overflow of `exp` is an error, not an `-inf`.
pub fn nwj_bound(tp: &ArrayView1<f64>, tq: &ArrayView1<f64>) -> Result<f64> {
    check(tp, tq)?;
    let mean_p = tp.mean().expect("non-empty");
    // e⁻¹ mean(exp t) = exp(log_mean_exp(t) − 1): same overflow behaviour as the DV term
    super::finite("NWJ bound", mean_p - (log_mean_exp(tq) - 1.0).exp())
}

/// Both bounds.
pub fn dv_nwj(tp: &ArrayView1<f64>, tq: &ArrayView1<f64>) -> Result<DvNwj> {
    Ok(DvNwj {
        dv: dv_bound(tp, tq)?,
        nwj: nwj_bound(tp, tq)?,
    })
}
