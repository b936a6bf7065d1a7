//! KL divergence estimators: the Gaussian plug-in and the kNN estimator of Wang, Kulkarni & Verdú.

use super::kdtree::KdTree;
use super::linalg::{cholesky_lower, logdet_from_chol, mean_cov, solve_lower};
use crate::error::{EstimatorError, Result};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

fn need_more_rows_than_dims(what: &'static str, x: &ArrayView2<f64>) -> Result<()> {
    if x.nrows() <= x.ncols() {
        return Err(EstimatorError::TooFewSamples {
            what,
            need: format!(
                "more rows than dimensions (n > p = {}) for a non-singular covariance",
                x.ncols()
            ),
            got: x.nrows(),
        });
    }
    Ok(())
}

/// Gaussian plug-in KL(P‖Q): fit mean and covariance (divisor `n`) of each sample, then
///
/// `KL = ½ [tr(Σ₂⁻¹Σ₁) + (μ₂−μ₁)ᵀ Σ₂⁻¹ (μ₂−μ₁) − d + ln det Σ₂ − ln det Σ₁]`
///
/// with `(μ₁, Σ₁)` from `x ~ P` and `(μ₂, Σ₂)` from `y ~ Q`, evaluated via Cholesky factors
/// (`tr(Σ₂⁻¹Σ₁) = ‖L₂⁻¹L₁‖²_F`). Needs `n > d` in both samples; a singular covariance is an error.
///
/// # Example
///
/// A sample against itself is exactly 0; a mean shift of `δ` in one of `d` unit-variance
/// dimensions adds about `δ²/2` nats:
///
/// ```
/// use ndarray::Array2;
/// use neural_synergy::estimators::gaussian_kl;
///
/// let x = Array2::from_shape_fn((400, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f64 / 11.0);
/// assert!(gaussian_kl(&x.view(), &x.view())?.abs() < 1e-12);
/// let y = &x + &ndarray::array![[0.5, 0.0]];
/// assert!(gaussian_kl(&x.view(), &y.view())? > 0.0);
/// # Ok::<(), neural_synergy::EstimatorError>(())
/// ```
pub fn gaussian_kl(x: &ArrayView2<f64>, y: &ArrayView2<f64>) -> Result<f64> {
    super::check_pair(x, y)?;
    need_more_rows_than_dims("Gaussian KL (x)", x)?;
    need_more_rows_than_dims("Gaussian KL (y)", y)?;
    let (m1, s1) = mean_cov(x);
    let (m2, s2) = mean_cov(y);
    let l1 = cholesky_lower(&s1, "x", x.nrows())?;
    let l2 = cholesky_lower(&s2, "y", y.nrows())?;
    let value = gaussian_kl_from_chol(&m1, &l1, &m2, &l2);
    super::finite("Gaussian KL", value)
}

/// Closed-form KL between `N(m1, L1 L1ᵀ)` and `N(m2, L2 L2ᵀ)` from lower Cholesky factors.
pub(crate) fn gaussian_kl_from_chol(
    m1: &ndarray::Array1<f64>,
    l1: &Array2<f64>,
    m2: &ndarray::Array1<f64>,
    l2: &Array2<f64>,
) -> f64 {
    let d = m1.len() as f64;
    let a = solve_lower(l2, l1);
    let trace = a.iter().map(|v| v * v).sum::<f64>();
    let diff = (m2 - m1).insert_axis(ndarray::Axis(1));
    let w = solve_lower(l2, &diff);
    let maha = w.iter().map(|v| v * v).sum::<f64>();
    0.5 * (trace + maha - d + logdet_from_chol(l2) - logdet_from_chol(l1))
}

/// kNN estimator of KL(P‖Q) (Wang, Kulkarni & Verdú 2009, fixed `k`):
///
/// `D̂(P‖Q) = (d/n) Σᵢ ln(ν_k(i) / ρ_k(i)) + ln(m / (n − 1))`
///
/// where `ρ_k(i)` is the Euclidean distance from `xᵢ` to its `k`-th nearest neighbour in `X ∖ {xᵢ}`
/// and `ν_k(i)` to its `k`-th nearest neighbour in `Y`; `x` has `n` rows, `y` has `m`. Needs
/// `n > k`, `m ≥ k`. A zero `ρ` (duplicate points in `X`) or a zero `ν` (a point of `X` repeated in
/// `Y`) is a [`EstimatorError::DuplicatePoints`] that says how many points are affected.
/// Neighbours are found with a k-d tree (the crate-private `KdTree`) and the queries run in
/// parallel.
pub fn knn_kl(x: &ArrayView2<f64>, y: &ArrayView2<f64>, k: usize) -> Result<f64> {
    super::check_pair(x, y)?;
    if k == 0 {
        return Err(EstimatorError::InvalidParameter {
            name: "k",
            reason: "k must be at least 1".into(),
        });
    }
    let (n, m, d) = (x.nrows(), y.nrows(), x.ncols());
    if n <= k {
        return Err(EstimatorError::TooFewSamples {
            what: "kNN KL (x)",
            need: format!("more than k = {k} rows"),
            got: n,
        });
    }
    if m < k {
        return Err(EstimatorError::TooFewSamples {
            what: "kNN KL (y)",
            need: format!("at least k = {k} rows"),
            got: m,
        });
    }
    let x = x.as_standard_layout();
    let tx = KdTree::new(&x.view());
    let ty = KdTree::new(&y.view());
    let pairs: Vec<(f64, f64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let q = x.row(i);
            let q = q.as_slice().expect("standard layout");
            let rho = tx.kth_distance(q, k, i).expect("n > k");
            let nu = ty.kth_distance(q, k, usize::MAX).expect("m >= k");
            (rho, nu)
        })
        .collect();
    let zero_rho = pairs.iter().filter(|(r, _)| *r == 0.0).count();
    if zero_rho > 0 {
        return Err(EstimatorError::DuplicatePoints {
            what: "kNN KL: x has repeated rows",
            count: zero_rho,
            n,
        });
    }
    let zero_nu = pairs.iter().filter(|(_, v)| *v == 0.0).count();
    if zero_nu > 0 {
        return Err(EstimatorError::DuplicatePoints {
            what: "kNN KL: rows of x repeated in y",
            count: zero_nu,
            n,
        });
    }
    let s: f64 = pairs.iter().map(|(r, v)| (v / r).ln()).sum();
    let value = d as f64 / n as f64 * s + (m as f64 / (n as f64 - 1.0)).ln();
    super::finite("kNN KL", value)
}
