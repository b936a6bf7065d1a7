//! Small dense linear-algebra helpers on top of `ndarray-linalg` (LAPACK): moments, Cholesky
//! factors with typed errors, log-determinants and triangular solves.

use crate::error::{EstimatorError, Result};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use ndarray_linalg::{cholesky::Cholesky, Diag, SolveTriangular, UPLO};

/// Column means of `x` (`n × p`).
pub fn mean_rows(x: &ArrayView2<f64>) -> Array1<f64> {
    x.mean_axis(Axis(0)).expect("caller checked non-empty")
}

/// Centred copy `D = X − 1 x̄ᵀ`.
pub fn centre(x: &ArrayView2<f64>) -> (Array1<f64>, Array2<f64>) {
    let mu = mean_rows(x);
    let d = x - &mu;
    (mu, d)
}

/// Maximum-likelihood covariance `S = (1/n) Σ dᵢ dᵢᵀ` (divisor `n`, not `n − 1`) and the mean.
pub fn mean_cov(x: &ArrayView2<f64>) -> (Array1<f64>, Array2<f64>) {
    let (mu, d) = centre(x);
    let n = x.nrows() as f64;
    let s = d.t().dot(&d) / n;
    (mu, s)
}

/// Lower Cholesky factor `L` with `A = L Lᵀ`; a non-positive-definite `A` is a
/// [`EstimatorError::SingularCovariance`].
pub fn cholesky_lower(a: &Array2<f64>, what: &'static str, n: usize) -> Result<Array2<f64>> {
    let p = a.nrows();
    let singular = || EstimatorError::SingularCovariance { what, n, p };
    let l = a.cholesky(UPLO::Lower).map_err(|_| singular())?;
    // LAPACK accepts tiny positive pivots; treat a pivot that lost all precision as singular.
    let max_diag = a.diag().iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let tol = max_diag * 1e-14 * p as f64;
    if l.diag().iter().any(|v| !v.is_finite() || v * v <= tol) {
        return Err(singular());
    }
    Ok(l)
}

/// `ln det A` from its lower Cholesky factor: `2 Σ ln Lᵢᵢ`.
pub fn logdet_from_chol(l: &Array2<f64>) -> f64 {
    2.0 * l.diag().iter().map(|v| v.ln()).sum::<f64>()
}

/// Solves `L W = B` for lower-triangular `L`.
pub fn solve_lower(l: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    l.solve_triangular(UPLO::Lower, Diag::NonUnit, b)
        .expect("triangular solve with a checked non-singular factor")
}
