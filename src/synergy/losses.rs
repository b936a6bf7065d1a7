//! Differentiable synergy losses with the conventions of the reference estimators.

use super::{from_array2, to_array2, Result};
use crate::estimators::{self, Bandwidths, MmdVariant, StreamingKurtosis, StreamingKurtosisParams};
use candle_core::{DType, IndexOp, Tensor, D};

/// How the MMD kernel bandwidths are chosen.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BandwidthSpec {
    /// Fixed σ values.
    Fixed(Bandwidths),
    /// `σ_med × {0.25, 0.5, 1, 2, 4}`, with `σ_med` computed on the **detached** batch (no
    /// gradient flows through the bandwidth), by the reference estimator in its total form
    /// ([`estimators::median_bandwidth_or_positive`]): a batch whose representations collapsed
    /// (most pairs identical) takes the median over the pairs that differ, and a batch of one
    /// repeated point `σ = 1`, instead of failing the run on a zero bandwidth.
    Median,
}

impl BandwidthSpec {
    /// The σ values for this batch.
    pub fn resolve(&self, x: &Tensor, y: &Tensor) -> Result<Bandwidths> {
        Ok(match self {
            BandwidthSpec::Fixed(b) => b.clone(),
            BandwidthSpec::Median => {
                let (xa, ya) = (to_array2(&x.detach())?, to_array2(&y.detach())?);
                estimators::median_bandwidths_or_positive(&xa.view(), &ya.view())?
            }
        })
    }
}

/// `‖aᵢ − bⱼ‖² = ‖aᵢ‖² + ‖bⱼ‖² − 2 aᵢᵀbⱼ`, clamped at 0 (as in the reference).
pub(crate) fn sq_dists(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let na = a.sqr()?.sum_keepdim(1)?;
    let nb = b.sqr()?.sum_keepdim(1)?.t()?;
    let g = a.matmul(&b.t()?)?;
    Ok(na.broadcast_add(&nb)?.sub(&(g * 2.0)?)?.relu()?)
}

/// Mean Gaussian kernel `(1/B) Σ_b exp(−d²/(2σ_b²))`, element-wise on squared distances.
fn kernel(d2: &Tensor, bw: &Bandwidths) -> Result<Tensor> {
    let s = bw.as_slice();
    let mut acc: Option<Tensor> = None;
    for &sigma in s {
        let k = d2.affine(-0.5 / (sigma * sigma), 0.0)?.exp()?;
        acc = super::accumulate(acc, k)?;
    }
    Ok((acc.expect("non-empty bandwidths") / s.len() as f64)?)
}

fn check_pair(x: &Tensor, y: &Tensor) -> Result<(usize, usize)> {
    let (n, dx) = x.dims2()?;
    let (m, dy) = y.dims2()?;
    for (what, rows, cols) in [("x", n, dx), ("y", m, dy)] {
        if rows == 0 || cols == 0 {
            return Err(crate::EstimatorError::Empty { what, rows, cols }.into());
        }
    }
    if dx != dy {
        return Err(crate::EstimatorError::DimensionMismatch {
            x: "x",
            dx,
            y: "y",
            dy,
        }
        .into());
    }
    Ok((n, m))
}

/// Sum of the off-diagonal entries of a square kernel matrix.
fn offdiag_sum(k: &Tensor) -> Result<Tensor> {
    let n = k.dim(0)?;
    let mask =
        (Tensor::ones((n, n), k.dtype(), k.device())? - Tensor::eye(n, k.dtype(), k.device())?)?;
    Ok((k * mask)?.sum_all()?)
}

/// Differentiable MMD² between the rows of `x` and `y` (see
/// `estimators::mmd2` for the three variants' formulas). On the CPU
/// (f32/f64) the biased and unbiased variants are one fused op
/// (the crate-private `kernels::mmd2_gaussian`, accumulated in f64); elsewhere, and for
/// the linear variant, the composed candle ops of [`mmd2_composed`].
pub fn mmd2(x: &Tensor, y: &Tensor, variant: MmdVariant, bw: &BandwidthSpec) -> Result<Tensor> {
    mmd2_impl(x, y, variant, bw, true)
}

/// [`mmd2`] as composed candle ops on every device (the path off the CPU; kept callable to
/// compare the fused op against it).
pub fn mmd2_composed(
    x: &Tensor,
    y: &Tensor,
    variant: MmdVariant,
    bw: &BandwidthSpec,
) -> Result<Tensor> {
    mmd2_impl(x, y, variant, bw, false)
}

fn mmd2_impl(
    x: &Tensor,
    y: &Tensor,
    variant: MmdVariant,
    bw: &BandwidthSpec,
    fused: bool,
) -> Result<Tensor> {
    let (n, m) = check_pair(x, y)?;
    let b = bw.resolve(x, y)?;
    let (nf, mf) = (n as f64, m as f64);
    match variant {
        MmdVariant::Biased | MmdVariant::Unbiased => {
            if variant == MmdVariant::Unbiased && (n < 2 || m < 2) {
                return Err(crate::EstimatorError::TooFewSamples {
                    what: "unbiased MMD²",
                    need: "at least 2 rows in each sample".into(),
                    got: n.min(m),
                }
                .into());
            }
            if fused && crate::kernels::fusable_with(x, &[y]) {
                let unbiased = variant == MmdVariant::Unbiased;
                return Ok(crate::kernels::mmd2_gaussian(x, y, unbiased, b.as_slice())?);
            }
            let kxx = offdiag_sum(&kernel(&sq_dists(x, x)?, &b)?)?;
            let kyy = offdiag_sum(&kernel(&sq_dists(y, y)?, &b)?)?;
            let kxy = kernel(&sq_dists(x, y)?, &b)?.sum_all()?;
            let (cx, cy, ax, ay) = if variant == MmdVariant::Biased {
                (1.0 / (nf * nf), 1.0 / (mf * mf), 1.0 / nf, 1.0 / mf)
            } else {
                (1.0 / (nf * (nf - 1.0)), 1.0 / (mf * (mf - 1.0)), 0.0, 0.0)
            };
            // biased adds the diagonal k(x, x) = 1: n/n² + m/m²
            Ok(((kxx.affine(cx, ax + ay)? + (kyy * cy)?)? - (kxy * (2.0 / (nf * mf)))?)?)
        }
        MmdVariant::Linear => {
            if n != m {
                return Err(crate::EstimatorError::LengthMismatch {
                    x: "x",
                    nx: n,
                    y: "y",
                    ny: m,
                }
                .into());
            }
            if n < 2 {
                return Err(crate::EstimatorError::TooFewSamples {
                    what: "linear MMD²",
                    need: "at least 2 rows in each sample".into(),
                    got: n,
                }
                .into());
            }
            let q = n / 2;
            let d = x.dim(1)?;
            let xs = x.narrow(0, 0, 2 * q)?.reshape((q, 2, d))?;
            let ys = y.narrow(0, 0, 2 * q)?.reshape((q, 2, d))?;
            let (x1, x2) = (xs.i((.., 0, ..))?, xs.i((.., 1, ..))?);
            let (y1, y2) = (ys.i((.., 0, ..))?, ys.i((.., 1, ..))?);
            let pd = |a: &Tensor, c: &Tensor| -> Result<Tensor> { Ok((a - c)?.sqr()?.sum(1)?) };
            let h = (((kernel(&pd(&x1, &x2)?, &b)? + kernel(&pd(&y1, &y2)?, &b)?)?
                - kernel(&pd(&x1, &y2)?, &b)?)?
                - kernel(&pd(&x2, &y1)?, &b)?)?;
            Ok(h.mean_all()?)
        }
    }
}

fn check_critic(t: &Tensor, what: &'static str) -> Result<usize> {
    let n = t.elem_count();
    if n == 0 {
        return Err(crate::EstimatorError::Empty {
            what,
            rows: 0,
            cols: 1,
        }
        .into());
    }
    Ok(n)
}

/// `ln mean exp(t)` over all elements.
fn log_mean_exp(t: &Tensor) -> Result<Tensor> {
    let m = t.elem_count() as f64;
    Ok(t.flatten_all()?.log_sum_exp(0)?.affine(1.0, -m.ln())?)
}

/// Donsker–Varadhan bound `mean(t_P) − (logsumexp(t_Q) − ln m)` (differentiable).
pub fn dv_bound(tp: &Tensor, tq: &Tensor) -> Result<Tensor> {
    check_critic(tp, "t_p")?;
    check_critic(tq, "t_q")?;
    Ok((tp.mean_all()? - log_mean_exp(tq)?)?)
}

/// NWJ bound `mean(t_P) − e⁻¹ mean(exp(t_Q))` (differentiable).
pub fn nwj_bound(tp: &Tensor, tq: &Tensor) -> Result<Tensor> {
    check_critic(tp, "t_p")?;
    check_critic(tq, "t_q")?;
    Ok((tp.mean_all()? - log_mean_exp(tq)?.affine(1.0, -1.0)?.exp()?)?)
}

/// The streaming regularised kurtosis `L_κ` as a loss with a moving-average covariance buffer.
///
/// Per batch `Z` (`N × p`): the buffer `S_t` is advanced exactly as the reference
/// [`StreamingKurtosis`] does (clipped, detached, centred rows, normalised EMA), `(S_t + ridge·I)⁻¹`
/// is computed on the host in f64 through its Cholesky factor and uploaded, and
/// `L_κ = (1/N) Σⱼ (dⱼᵀ P dⱼ)²` with `dⱼ = zⱼ − z̄` is built from tensor ops, so the gradient
/// flows through the centred batch (the buffer and `P` are constants).
#[derive(Debug, Clone)]
pub struct KurtosisLoss {
    state: StreamingKurtosis,
}

impl KurtosisLoss {
    /// A new loss with an empty buffer.
    pub fn new(params: StreamingKurtosisParams) -> Result<Self> {
        Ok(Self {
            state: params.init()?,
        })
    }

    /// The reference state (buffer `S_t`).
    pub fn state(&self) -> &StreamingKurtosis {
        &self.state
    }

    /// `L_κ` of batch `z`; advances the buffer. On the CPU one fused op from the buffer's
    /// Cholesky factor (the crate-private `kernels::kurtosis_fixed_factor`);
    /// elsewhere [`kurtosis_loss`] with the precision matrix uploaded.
    pub fn forward(&mut self, z: &Tensor) -> Result<Tensor> {
        let host = to_array2(&z.detach())?;
        let step = self.state.prepare(&host.view())?;
        let loss = if crate::kernels::fusable_with(z, &[]) {
            // one op from the factor: no precision matrix, no candle row reductions
            crate::kernels::kurtosis_fixed_factor(z, &step.chol)?
        } else {
            let p = from_array2(&step.precision(), z.dtype(), z.device())?;
            kurtosis_loss(z, &p)?
        };
        self.state.commit(step);
        Ok(loss)
    }
}

/// `(1/N) Σⱼ (dⱼᵀ P dⱼ)²` with `dⱼ = zⱼ − z̄`, for a given precision matrix `P`.
pub fn kurtosis_loss(z: &Tensor, precision: &Tensor) -> Result<Tensor> {
    let d = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let m = (d.matmul(precision)? * &d)?.sum(D::Minus1)?;
    Ok(m.sqr()?.mean_all()?)
}

/// Reads a scalar tensor as f64.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}
