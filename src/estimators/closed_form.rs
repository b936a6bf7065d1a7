//! Population (closed-form) quantities for Gaussians — the ground truth the estimators converge to.

use super::kernel::Bandwidths;
use super::linalg::{cholesky_lower, logdet_from_chol, solve_lower};
use crate::error::{EstimatorError, Result};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

fn check_gauss(mu: &ArrayView1<f64>, cov: &ArrayView2<f64>) -> Result<()> {
    super::check_vector("mean", mu)?;
    super::check_matrix("covariance", cov)?;
    if cov.nrows() != cov.ncols() || cov.nrows() != mu.len() {
        return Err(EstimatorError::DimensionMismatch {
            x: "mean",
            dx: mu.len(),
            y: "covariance",
            dy: cov.nrows(),
        });
    }
    Ok(())
}

/// `E k_σ(x, y)` for independent `x ~ N(a, A)`, `y ~ N(b, B)` under the Gaussian kernel:
/// `det(I + (A+B)/σ²)^(−1/2) · exp(−½ (a−b)ᵀ (A+B+σ²I)⁻¹ (a−b))`.
pub(crate) fn gaussian_kernel_expectation(
    a: &ArrayView1<f64>,
    ca: &ArrayView2<f64>,
    b: &ArrayView1<f64>,
    cb: &ArrayView2<f64>,
    sigma: f64,
) -> Result<f64> {
    check_gauss(a, ca)?;
    check_gauss(b, cb)?;
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(EstimatorError::NonPositiveBandwidth(sigma));
    }
    let p = a.len();
    let s2 = sigma * sigma;
    let sum = ca + cb;
    let m = &sum + &(Array2::<f64>::eye(p) * s2);
    let l = cholesky_lower(&m, "A + B + σ²I", 0)?;
    // det(I + (A+B)/σ²) = det(A+B+σ²I) / σ^(2p)
    let logdet = logdet_from_chol(&l) - p as f64 * s2.ln();
    let diff = (a - b).insert_axis(Axis(1));
    let w = solve_lower(&l, &diff);
    let maha = w.iter().map(|v| v * v).sum::<f64>();
    Ok((-0.5 * logdet - 0.5 * maha).exp())
}

/// Population MMD² between `N(μ₁, Σ₁)` and `N(μ₂, Σ₂)` under the mean Gaussian kernel over
/// `bandwidths`: `E k(x,x') + E k(y,y') − 2 E k(x,y)`.
pub fn gaussian_mmd2(
    mu1: &ArrayView1<f64>,
    s1: &ArrayView2<f64>,
    mu2: &ArrayView1<f64>,
    s2: &ArrayView2<f64>,
    bandwidths: &Bandwidths,
) -> Result<f64> {
    let mut acc = 0.0;
    for &s in bandwidths.as_slice() {
        acc += gaussian_kernel_expectation(mu1, s1, mu1, s1, s)?
            + gaussian_kernel_expectation(mu2, s2, mu2, s2, s)?
            - 2.0 * gaussian_kernel_expectation(mu1, s1, mu2, s2, s)?;
    }
    Ok(acc / bandwidths.as_slice().len() as f64)
}

/// KL(N(μ₁, Σ₁) ‖ N(μ₂, Σ₂)) in closed form.
pub fn gaussian_kl_closed(
    mu1: &ArrayView1<f64>,
    s1: &ArrayView2<f64>,
    mu2: &ArrayView1<f64>,
    s2: &ArrayView2<f64>,
) -> Result<f64> {
    check_gauss(mu1, s1)?;
    check_gauss(mu2, s2)?;
    let l1 = cholesky_lower(&s1.to_owned(), "Σ₁", 0)?;
    let l2 = cholesky_lower(&s2.to_owned(), "Σ₂", 0)?;
    Ok(super::kl::gaussian_kl_from_chol(
        &mu1.to_owned(),
        &l1,
        &mu2.to_owned(),
        &l2,
    ))
}

/// Multivariate normal density in log form, for the true log-density ratio critic.
#[derive(Debug, Clone)]
pub struct GaussianLogDensity {
    mu: Array1<f64>,
    l: Array2<f64>,
    log_norm: f64,
}

impl GaussianLogDensity {
    /// `N(μ, Σ)`; Σ must be positive definite.
    pub fn new(mu: &ArrayView1<f64>, cov: &ArrayView2<f64>) -> Result<Self> {
        check_gauss(mu, cov)?;
        let l = cholesky_lower(&cov.to_owned(), "Σ", 0)?;
        let p = mu.len() as f64;
        let log_norm = -0.5 * (p * (2.0 * std::f64::consts::PI).ln() + logdet_from_chol(&l));
        Ok(Self {
            mu: mu.to_owned(),
            l,
            log_norm,
        })
    }

    /// `ln N(xᵢ; μ, Σ)` for every row `xᵢ`.
    pub(crate) fn log_pdf(&self, x: &ArrayView2<f64>) -> Array1<f64> {
        let d = (x - &self.mu).reversed_axes();
        let w = solve_lower(&self.l, &d.as_standard_layout().to_owned());
        w.map_axis(Axis(0), |c| self.log_norm - 0.5 * c.dot(&c))
    }
}

/// The true log-density ratio `T(x) = ln p(x) − ln q(x)` of two Gaussians, evaluated on rows.
pub fn gaussian_log_ratio(
    p: &GaussianLogDensity,
    q: &GaussianLogDensity,
    x: &ArrayView2<f64>,
) -> Array1<f64> {
    p.log_pdf(x) - q.log_pdf(x)
}
