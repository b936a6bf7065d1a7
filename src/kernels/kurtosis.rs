//! The streaming kurtosis with its buffer held fixed, as one op (the C-network's `L_κ`).

use super::*;

/// The streaming kurtosis with its buffer held fixed, as one CPU op (a scalar):
/// `κ = (1/N) Σ_j m_j²`, `m_j = d_jᵀ (L Lᵀ)⁻¹ d_j = ‖L⁻¹ d_j‖²`, `d_j = z_j − z̄`, for the
/// Cholesky factor `L` of the ridge-regularised buffer (`p × p` for `z` of `N × p`).
///
/// The composed path forms the precision `L⁻ᵀ L⁻¹` on the host (an inverse and a `p³` product),
/// uploads it and runs centring, a matmul and the reductions as candle ops — among them a mean
/// over rows, which candle's CPU reduction takes through its slow strided path, forward and
/// backward. Here, in f64 on the host: forward `Y = L⁻¹ Dᵀ` by one triangular solve with `N`
/// right-hand sides; backward `∂κ/∂d_j = (4/N) m_j (LLᵀ)⁻¹ d_j` with `(LLᵀ)⁻¹ d_j = L⁻ᵀ y_j` (a
/// second solve), then `∂z_k = ∂d_k − (1/N) Σ_j ∂d_j` (the batch mean depends on every row). The
/// factor is a constant of the step (no gradient flows into the buffer). CPU f32/f64 only
/// ([`fusable_with`]); `chol` must be the checked factor of `StreamingKurtosis::prepare`.
pub(crate) fn kurtosis_fixed_factor(z: &Tensor, chol: &ndarray::Array2<f64>) -> Result<Tensor> {
    let p = chol.nrows();
    if chol.ncols() != p || (0..p).any(|i| !(chol[[i, i]].is_finite() && chol[[i, i]] > 0.0)) {
        candle_core::bail!(
            "kurtosis: the factor must be a square lower-triangular matrix with a positive \
             diagonal, got {:?}",
            chol.dim()
        );
    }
    z.contiguous()?.apply_op1(Kurtosis {
        chol: std::sync::Arc::new(chol.clone()),
    })
}

#[derive(Clone)]
pub(super) struct Kurtosis {
    chol: std::sync::Arc<ndarray::Array2<f64>>,
}

impl Kurtosis {
    fn dims(&self, shape: &Shape) -> Result<(usize, usize)> {
        let (n, p) = shape.dims2()?;
        if n == 0 || p != self.chol.nrows() {
            candle_core::bail!(
                "kurtosis: batch {shape:?} for a {}-wide buffer",
                self.chol.nrows()
            );
        }
        Ok((n, p))
    }

    /// `(Dᵀ, Y = L⁻¹ Dᵀ, m)` of a batch (`Dᵀ` and `Y` are `p × N`).
    fn whiten<T: Float>(
        &self,
        z: &[T],
        n: usize,
        p: usize,
    ) -> (ndarray::Array2<f64>, ndarray::Array2<f64>, Vec<f64>) {
        let z = ndarray::Array2::from_shape_fn((p, n), |(i, j)| z[j * p + i].to_f64());
        let mean = z.mean_axis(ndarray::Axis(1)).expect("n ≥ 1");
        let dt = &z - &mean.insert_axis(ndarray::Axis(1));
        let y = crate::estimators::linalg::solve_lower(&self.chol, &dt);
        let m = y.columns().into_iter().map(|c| c.dot(&c)).collect();
        (dt, y, m)
    }

    fn backward(&self, z: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad
            .reshape(1)?
            .apply_op2_no_bwd(z, &KurtosisGrad(self.clone()))?;
        Ok(Some(g))
    }
}

impl Kernel for Kurtosis {
    const NAME: &'static str = "kurtosis";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        self.dims(shapes[0])?;
        Ok(Shape::from(()))
    }
    fn run<T: Float>(&self, xs: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (n, p) = self.dims(shapes[0]).expect("checked by shape");
        let (_, _, m) = self.whiten(xs[0], n, p);
        vec![T::from_f64(m.iter().map(|v| v * v).sum::<f64>() / n as f64)]
    }
}

kernel_op!(1, Kurtosis, backward);

/// [`Kurtosis`]' backward: inputs `(g (1), z)`, output `∂z` (`N × p`).
pub(super) struct KurtosisGrad(Kurtosis);

impl Kernel for KurtosisGrad {
    const NAME: &'static str = "kurtosis-grad";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        if shapes[0].elem_count() != 1 {
            candle_core::bail!("{}: gradient of shape {:?}", Self::NAME, shapes[0]);
        }
        self.0.dims(shapes[1])?;
        Ok(shapes[1].clone())
    }
    fn run<T: Float>(&self, xs: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (n, p) = self.0.dims(shapes[1]).expect("checked by shape");
        let g = xs[0][0].to_f64();
        let (_, y, m) = self.0.whiten(xs[1], n, p);
        // columns of X = L⁻ᵀ Y are (LLᵀ)⁻¹ d_j
        let mut gd = crate::estimators::linalg::solve_lower_transposed(&self.0.chol, &y);
        for (mut col, &mj) in gd.columns_mut().into_iter().zip(&m) {
            col *= 4.0 * g * mj / n as f64;
        }
        let mean = gd.mean_axis(ndarray::Axis(1)).expect("n ≥ 1");
        let mut out = Vec::with_capacity(n * p);
        for j in 0..n {
            out.extend((0..p).map(|i| T::from_f64(gd[[i, j]] - mean[i])));
        }
        out
    }
}

kernel_op!(2, KurtosisGrad);
