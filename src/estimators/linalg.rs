//! Small dense linear-algebra helpers: moments, Cholesky factors with typed errors (LAPACK through
//! `ndarray-linalg`), log-determinants, triangular solves, and the tall-matrix products of the hot
//! paths.
//!
//! The `n × p` products (`DᵀD`, `D·L⁻ᵀ`) use `matrixmultiply` (pure Rust, AVX2/FMA kernels chosen at
//! run time) split over row blocks with rayon, and reduce partial results in a fixed order, so they
//! are fast whatever BLAS the system has and bit-reproducible. (Debian 12's OpenBLAS 0.3.21, for
//! one, does not recognise recent Xeons and falls back to SSE3 "Prescott" kernels.) LAPACK is only
//! used on `p × p` matrices.

use crate::error::{EstimatorError, Result};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use ndarray_linalg::{cholesky::Cholesky, Diag, SolveTriangular, UPLO};
use rayon::prelude::*;

/// Column means of `x` (`n × p`, `n ≥ 1`), accumulated row by row in index order.
pub(crate) fn mean_rows(x: &ArrayView2<f64>) -> Array1<f64> {
    let mut acc = Array1::<f64>::zeros(x.ncols());
    for row in x.rows() {
        acc += &row;
    }
    acc / x.nrows() as f64
}

/// Maximum-likelihood covariance `S = (1/n) Σ dᵢ dᵢᵀ` (divisor `n`, not `n − 1`) and the mean.
pub(crate) fn mean_cov(x: &ArrayView2<f64>) -> (Array1<f64>, Array2<f64>) {
    let mu = mean_rows(x);
    let s = centred_gram(x, &mu, f64::INFINITY) / x.nrows() as f64;
    (mu, s)
}

/// Rows per parallel chunk of the tall products.
const ROWS: usize = 512;

/// `C = A B + beta·C` (single-threaded; the callers parallelise over blocks, which keeps every
/// result independent of the thread schedule). Uses the `gemm` crate, whose AVX-512/AVX2/FMA
/// kernels are chosen at run time.
pub(crate) fn gemm_into(
    a: &ArrayView2<f64>,
    b: &ArrayView2<f64>,
    beta: f64,
    c: &mut ndarray::ArrayViewMut2<f64>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!(b.nrows(), k);
    assert_eq!(c.dim(), (m, n));
    if m == 0 || n == 0 {
        return;
    }
    let (csr, csc) = (c.strides()[0], c.strides()[1]);
    // SAFETY: dimensions and strides come from valid ndarray views of matching shapes; the output
    // does not alias the inputs (it is a distinct mutable view).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            csc,
            csr,
            beta != 0.0,
            a.as_ptr(),
            a.strides()[1],
            a.strides()[0],
            b.as_ptr(),
            b.strides()[1],
            b.strides()[0],
            beta,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Copies rows of `x` minus `mu` into `buf` (resized), clipping each centred row to norm ≤ `clip`.
fn centre_chunk(x: &ArrayView2<f64>, mu: &Array1<f64>, clip: f64, buf: &mut Array2<f64>) {
    if buf.dim() != x.dim() {
        *buf = Array2::zeros(x.dim());
    }
    for (mut br, xr) in buf.rows_mut().into_iter().zip(x.rows()) {
        let mut ss = 0.0;
        for ((o, v), m) in br.iter_mut().zip(xr.iter()).zip(mu.iter()) {
            *o = v - m;
            ss += *o * *o;
        }
        if clip.is_finite() && ss > clip * clip {
            br *= clip / ss.sqrt();
        }
    }
}

/// `Σᵢ cᵢ cᵢᵀ` with `cᵢ = (xᵢ − μ)·min(1, clip/‖xᵢ − μ‖)` (`clip = ∞`: plain centred Gram matrix),
/// streamed over row blocks: the centred matrix is never materialised.
pub(crate) fn centred_gram(x: &ArrayView2<f64>, mu: &Array1<f64>, clip: f64) -> Array2<f64> {
    let p = x.ncols();
    let parts: Vec<Array2<f64>> = x
        .axis_chunks_iter(Axis(0), ROWS)
        .into_par_iter()
        .map_init(
            || Array2::zeros((0, 0)),
            |buf, blk| {
                centre_chunk(&blk, mu, clip, buf);
                let mut g = Array2::zeros((p, p));
                gemm_into(&buf.t(), &buf.view(), 0.0, &mut g.view_mut());
                g
            },
        )
        .collect();
    let mut acc = Array2::zeros((p, p));
    for g in &parts {
        acc += g;
    }
    acc
}

/// `mᵢ = (xᵢ − μ)ᵀ (L Lᵀ)⁻¹ (xᵢ − μ) = ‖L⁻¹(xᵢ − μ)‖²` for every row, as the row norms of
/// `W = D L⁻ᵀ` (the Cholesky factor is inverted, never `L Lᵀ` itself), streamed over row blocks.
pub(crate) fn centred_mahalanobis_sq(
    x: &ArrayView2<f64>,
    mu: &Array1<f64>,
    l: &Array2<f64>,
) -> Array1<f64> {
    let linv_t = inv_lower(l).reversed_axes();
    let linv_t = linv_t.as_standard_layout();
    let parts: Vec<Vec<f64>> = x
        .axis_chunks_iter(Axis(0), ROWS)
        .into_par_iter()
        .map_init(
            || (Array2::zeros((0, 0)), Array2::zeros((0, 0))),
            |(buf, w): &mut (Array2<f64>, Array2<f64>), blk| {
                centre_chunk(&blk, mu, f64::INFINITY, buf);
                if w.dim() != buf.dim() {
                    *w = Array2::zeros(buf.dim());
                }
                gemm_into(&buf.view(), &linv_t.view(), 0.0, &mut w.view_mut());
                w.rows()
                    .into_iter()
                    .map(|r| r.iter().map(|v| v * v).sum::<f64>())
                    .collect()
            },
        )
        .collect();
    parts.into_iter().flatten().collect()
}

/// `L⁻¹` of a lower-triangular factor (a `p × p` triangular solve against the identity).
pub(crate) fn inv_lower(l: &Array2<f64>) -> Array2<f64> {
    solve_lower(l, &Array2::eye(l.nrows()))
}

/// Lower Cholesky factor `L` with `A = L Lᵀ`; a non-positive-definite `A` is a
/// [`EstimatorError::SingularCovariance`].
pub(crate) fn cholesky_lower(a: &Array2<f64>, what: &'static str, n: usize) -> Result<Array2<f64>> {
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
pub(crate) fn logdet_from_chol(l: &Array2<f64>) -> f64 {
    2.0 * l.diag().iter().map(|v| v.ln()).sum::<f64>()
}

/// Solves `Lᵀ W = B` for lower-triangular `L` (an upper-triangular system; `L` is not copied).
pub(crate) fn solve_lower_transposed(l: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    l.t()
        .solve_triangular(UPLO::Upper, Diag::NonUnit, b)
        .expect("triangular solve with a checked non-singular factor")
}

/// Solves `L W = B` for lower-triangular `L`.
pub(crate) fn solve_lower(l: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    l.solve_triangular(UPLO::Lower, Diag::NonUnit, b)
        .expect("triangular solve with a checked non-singular factor")
}
