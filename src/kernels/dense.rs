//! Dense layers: `x · wᵀ (+ b)` with a contiguous backward (`linear_nt`), gemm + bias +
//! LeakyReLU in one op (`dense`), and candle-nn `Linear`s through them (`linear_forward`,
//! `linear_rows`); their column sums and the `A · Bᵀ` gemm.

use super::*;

/// `x · wᵀ (+ b)`: a linear layer (`x` is `B × in`, `w` is `out × in`, as candle-nn stores it) as
/// one op whose backward produces both gradients contiguous.
///
/// candle-nn's `Linear` computes `x.matmul(&w.t())`; the backward of that transposed view hands
/// `w` its gradient as a transposed `in × out` view, which candle accumulates into `w`'s
/// zero-initialised gradient with a strided add. For TFN's post-fusion layer (`w` is 64 × 140,481,
/// 9 M weights) that strided add was 37 % of a training step. Here the forward is the same gemm
/// call as candle's (so the output is the same), and the backward is `∂x = g · w` and
/// `∂w = gᵀ · x`, both produced contiguous by one matmul each (equal to candle's gradients up to
/// the order of the batch sum in the gemm). Other devices, dtypes and `NEURAL_SYNERGY_FUSED_OPS=0`
/// use candle's composed ops.
pub(crate) fn linear_nt(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = if fusable_with(x, &[w]) {
        x.apply_op2(w, MatmulNt)?
    } else {
        x.matmul(&w.t()?)?
    };
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// [`linear_nt`] on a candle-nn `Linear` (same variables, same result).
pub(crate) fn linear_forward(layer: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    linear_nt(x, layer.weight(), layer.bias())
}

/// A dense layer `y = act(x · wᵀ + b)` with `act` = LeakyReLU(`slope`) or the identity (`None`)
/// as **one** op — the C-network's MLP layer (`x` is `B × in`, `w` is `out × in`, `b` is `out`).
///
/// Composed, such a layer is four graph nodes (`wᵀ` view, matmul, broadcast bias add, LeakyReLU)
/// whose backward adds a strided transpose of `w`'s gradient, a reduction for `b` and a
/// zero-then-add accumulation per node; with 60 such layers per C-network step that bookkeeping,
/// not the arithmetic on `32–64 × 64` tensors, dominated. Forward: candle's own gemm (the same
/// call as [`linear_nt`]), then the bias and the activation in one pass over the output — the
/// same f32/f64 operations as `linear_nt` followed by [`leaky_relu`], so the output is equal
/// bit for bit. Backward from the output `y` (for a slope `> 0`, `y` and the pre-activation
/// have the same sign): `∂z = g` where `y > 0`, `slope · g` where `y < 0`, `(1 + slope)/2 · g` at
/// `y = 0` (candle's tie rule, as in [`leaky_relu`]; a negative subnormal pre-activation whose
/// `slope · z` underflows to zero, `|z| ≲ 10⁻⁴³` in f32, counts as that tie), then
/// `∂x = ∂z · w`, `∂w = ∂zᵀ · x`, `∂b = Σ_rows ∂z`. A slope `≤ 0`, other devices and dtypes and
/// `NEURAL_SYNERGY_FUSED_OPS=0` use the composed ops (as does a slope below f32's smallest
/// normal number, which could round to 0 in f32).
pub(crate) fn dense(x: &Tensor, w: &Tensor, b: &Tensor, slope: Option<f64>) -> Result<Tensor> {
    // a slope must stay positive in the element type (the backward reads the sign of `y`)
    let fused = fusable_with(x, &[w, b]) && slope.is_none_or(|s| s >= f64::from(f32::MIN_POSITIVE));
    if !fused {
        let y = linear_nt(x, w, Some(b))?;
        return match slope {
            Some(s) => leaky_relu(&y, s),
            None => Ok(y),
        };
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Dense { slope })
}

pub(super) struct Dense {
    slope: Option<f64>,
}

impl Dense {
    /// Adds `b` to each row of `z` (`n × m`) and applies the activation, in place.
    fn bias_act<T: Float>(&self, z: &mut [T], b: &[T]) {
        let m = b.len();
        if m == 0 {
            return;
        }
        let k = self.slope.map(T::from_f64);
        for row in z.chunks_exact_mut(m) {
            for (v, &bj) in row.iter_mut().zip(b) {
                let u = *v + bj;
                *v = match k {
                    Some(k) if u < T::zero() => u * k,
                    _ => u,
                };
            }
        }
    }
}

impl CustomOp3 for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n_out, _) = l2.shape().dims2()?;
        if l3.shape().dims1()? != n_out {
            candle_core::bail!(
                "dense: bias {:?} does not match weight {:?}",
                l3.shape(),
                l2.shape()
            );
        }
        let (mut out, shape) = gemm_nt(s1, l1, s2, l2, "dense")?;
        match (&mut out, s3) {
            (CpuStorage::F32(z), CpuStorage::F32(_)) => {
                self.bias_act(z, cpu_slice::<f32>(s3, l3, "dense")?)
            }
            (CpuStorage::F64(z), CpuStorage::F64(_)) => {
                self.bias_act(z, cpu_slice::<f64>(s3, l3, "dense")?)
            }
            _ => candle_core::bail!("dense: mixed or unsupported dtypes"),
        }
        Ok((out, shape))
    }

    /// Each gradient only for an operand that tracks one (a variable or a result of one): a
    /// detached weight (a frozen encoder's) costs no `∂w` gemm and no `∂b` sums, an input that is
    /// data no `∂x` gemm — gradients candle would compute and then drop.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let gz = match self.slope {
            Some(slope) => grad
                .contiguous()?
                .apply_op2_no_bwd(res, &LeakyReluGrad { slope })?,
            None => grad.clone(),
        };
        let gx = x.track_op().then(|| gz.matmul(w)).transpose()?;
        let gw = w.track_op().then(|| gz.t()?.matmul(x)).transpose()?;
        let gb = b
            .track_op()
            .then(|| gz.contiguous()?.apply_op1_no_bwd(&ColumnSums))
            .transpose()?;
        Ok((gx, gw, gb))
    }
}

/// `layer` with its weight and bias detached: views of the same storage (a later `Var::set` shows
/// through) from which no gradient flows back — a frozen layer (a pretrained encoder whose
/// weights do not train). Through [`linear_rows`] it is the same value `x · wᵀ + b` with the
/// gradient flowing to `x` only, `∂x = ∂y · w`.
///
/// Why: candle's `Linear` on a `B × L × in` input multiplies by `w` broadcast to `B` copies, so a
/// backward computes `B` per-example weight gradients (`B × in × out`, e.g. 32 × 384 × 1536 for a
/// MiniLM feed-forward layer) and then sums them over the batch — for weights that do not train.
/// Detaching the weights alone drops the sum but not the gemm: candle's matmul backward computes
/// both operands' gradients. The fused dense op computes a gradient only for an operand that
/// tracks one, so the backward of a detached layer through [`linear_rows`] is one gemm (`∂x`),
/// and a frozen BERT that gradients must pass through (MAG-BERT's gate sits below its encoder)
/// costs a forward and one input-gradient gemm per layer. A layer without a bias, other devices
/// and dtypes and `NEURAL_SYNERGY_FUSED_OPS=0` use candle-nn's forward on the detached weights
/// (the same values and input gradient, computed by the composed ops).
pub(crate) fn detached(layer: &candle_nn::Linear) -> candle_nn::Linear {
    candle_nn::Linear::new(layer.weight().detach(), layer.bias().map(Tensor::detach))
}

/// `Σ_rows g` of an `n × m` matrix, adding the rows in order — the same additions in the same
/// order as candle's `sum(0)`, whose CPU kernel takes a generic strided path (a division per
/// element) for a reduction that is not over the last dimension: 19 % of a C-network step.
pub(super) struct ColumnSums;

impl Kernel for ColumnSums {
    const NAME: &'static str = "column-sums";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        let (_, m) = shapes[0].dims2()?;
        Ok(Shape::from(m))
    }
    fn run<T: Float>(&self, x: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (_, m) = shapes[0].dims2().expect("checked by shape");
        let mut out = vec![T::zero(); m];
        for row in x[0].chunks_exact(m.max(1)) {
            for (o, &v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        out
    }
}

kernel_op!(1, ColumnSums);

/// `x · wᵀ` for `x` (`m × k`) and `w` (`n × k`) by candle's own CPU gemm (the call candle-nn's
/// `Linear` makes); a width mismatch is an error naming `op`.
pub(super) fn gemm_nt(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    op: &str,
) -> Result<(CpuStorage, Shape)> {
    let (m, k) = l1.shape().dims2()?;
    let (n, k2) = l2.shape().dims2()?;
    if k != k2 {
        candle_core::bail!("{op}: input width {k} does not match weight {n} × {k2}");
    }
    let out = s1.matmul(s2, (1, m, n, k), l1, &l2.transpose(0, 1)?)?;
    Ok((out, Shape::from((m, n))))
}

pub(super) struct MatmulNt;

impl CustomOp2 for MatmulNt {
    fn name(&self) -> &'static str {
        "matmul-nt"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        gemm_nt(s1, l1, s2, l2, "linear")
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // as the dense op: a gradient only for an operand that tracks one
        let gx = x.track_op().then(|| grad.matmul(w)).transpose()?;
        let gw = w.track_op().then(|| grad.t()?.matmul(x)).transpose()?;
        Ok((gx, gw))
    }
}

/// A candle-nn `Linear` (with bias) applied to the last dimension of an input of any rank
/// `(…, in)` through [`dense`]: the leading dimensions are flattened into rows, so the bias
/// gradient is one pass of column sums instead of candle's strided reduction over the broadcast
/// dimensions. A layer without a bias, a rank-0 input and other devices use candle-nn's forward.
pub(crate) fn linear_rows(layer: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    use candle_core::Module;
    let (Some(b), Some((&inp, lead))) = (layer.bias(), x.dims().split_last()) else {
        return layer.forward(x);
    };
    if !fusable(x) {
        return layer.forward(x);
    }
    let rows: usize = lead.iter().product();
    let y = dense(&x.reshape((rows, inp))?, layer.weight(), b, None)?;
    let mut dims = lead.to_vec();
    dims.push(y.dim(1)?);
    y.reshape(dims)
}
