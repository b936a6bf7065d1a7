//! Fused CPU ops of the C-network's small networks, each one candle op forward and one backward.
//!
//! The C-network runs 15 four-layer MLPs and 12 affine couplings per step on `32–64 × 64` tensors,
//! where the cost is the number of ops, not the arithmetic. candle-nn's `leaky_relu` is five ops
//! (`zeros_like`, `maximum`, `minimum`, `affine`, `add`) whose backward takes about twenty more
//! (masks, divisions, accumulations); a coupling's `b ⊙ exp(tanh s) + t` is six ops over narrowed
//! halves. Both are written here as one op each with a hand-written backward. On other devices
//! (and dtypes other than f32/f64) the functions fall back to the composed candle ops, so results
//! are the same everywhere up to rounding; `NEURAL_SYNERGY_FUSED_OPS=0` forces that fallback.

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result,
    Shape, Tensor, WithDType, D,
};

/// Whether the fused ops are on: they are unless `NEURAL_SYNERGY_FUSED_OPS=0` (read once), which
/// falls back to the composed candle ops — for side-by-side timing and for checking a result.
pub fn fused_ops_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("NEURAL_SYNERGY_FUSED_OPS").map_or(true, |v| v.trim() != "0"))
}

fn fusable(x: &Tensor) -> bool {
    fused_ops_enabled() && x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Whether the fused CPU ops apply to `x` together with `others`: `x` is a CPU f32/f64 tensor,
/// the fused ops are on, and every other input is on the CPU with `x`'s dtype. The one check
/// behind every fused op here and their callers ([`outer3`], [`mmd2_gaussian`],
/// [`kurtosis_fixed_factor`]).
pub fn fusable_with(x: &Tensor, others: &[&Tensor]) -> bool {
    fusable(x)
        && others
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == x.dtype())
}

/// Element type of the fused ops (f32 and f64; candle's own `tanh` and `exp`, i.e. std's).
trait Float: WithDType {
    fn tanh(self) -> Self;
    fn exp(self) -> Self;
}

impl Float for f32 {
    fn tanh(self) -> Self {
        f32::tanh(self)
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
}

impl Float for f64 {
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
}

/// The elements of a contiguous CPU storage under `l` (a custom op's input); a clear error naming
/// `op` for a strided layout. Shared by every CPU kernel of the crate.
pub(crate) fn cpu_slice<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> Result<&'a [T]> {
    let (a, e) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: non-contiguous input")))?;
    Ok(&T::cpu_storage_as_slice(s)?[a..e])
}

/// A CPU kernel over one to three contiguous inputs of one dtype (f32 or f64).
trait Kernel {
    const NAME: &'static str;
    /// Checks the inputs' shapes; returns the output's.
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape>;
    fn run<T: Float>(&self, inputs: &[&[T]], shapes: &[&Shape]) -> Vec<T>;
}

/// Runs `k` on CPU storages of f32 or f64 (the same dtype for all).
fn apply<K: Kernel>(k: &K, inputs: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
    let shapes: Vec<&Shape> = inputs.iter().map(|(_, l)| l.shape()).collect();
    let out = k.shape(&shapes)?;
    let dtype = inputs[0].0.dtype();
    if inputs.iter().any(|(s, _)| s.dtype() != dtype) {
        candle_core::bail!("{}: mixed dtypes", K::NAME);
    }
    fn go<K: Kernel, T: Float>(
        k: &K,
        inputs: &[(&CpuStorage, &Layout)],
        shapes: &[&Shape],
    ) -> Result<CpuStorage> {
        let xs = inputs
            .iter()
            .map(|(s, l)| cpu_slice::<T>(s, l, K::NAME))
            .collect::<Result<Vec<_>>>()?;
        Ok(T::to_cpu_storage_owned(k.run(&xs, shapes)))
    }
    let storage = match dtype {
        DType::F32 => go::<K, f32>(k, inputs, &shapes)?,
        DType::F64 => go::<K, f64>(k, inputs, &shapes)?,
        d => candle_core::bail!("{}: unsupported dtype {d:?}", K::NAME),
    };
    Ok((storage, out))
}

/// `CustomOp1/2/3` for a [`Kernel`]: its name, a `cpu_fwd` that runs it on f32/f64 storages and,
/// when given, a `bwd` that calls the type's own `backward` method (the kernels of gradients have
/// none: they are applied with `apply_opN_no_bwd`).
macro_rules! kernel_op {
    (1, $t:ty $(, $bwd:ident)?) => {
        impl CustomOp1 for $t {
            fn name(&self) -> &'static str {
                <$t as Kernel>::NAME
            }
            fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
                apply(self, &[(s, l)])
            }
            $(fn bwd(&self, a: &Tensor, res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
                self.$bwd(a, res, g)
            })?
        }
    };
    (2, $t:ty $(, $bwd:ident)?) => {
        impl CustomOp2 for $t {
            fn name(&self) -> &'static str {
                <$t as Kernel>::NAME
            }
            fn cpu_fwd(
                &self,
                s1: &CpuStorage,
                l1: &Layout,
                s2: &CpuStorage,
                l2: &Layout,
            ) -> Result<(CpuStorage, Shape)> {
                apply(self, &[(s1, l1), (s2, l2)])
            }
            $(fn bwd(
                &self,
                a: &Tensor,
                b: &Tensor,
                res: &Tensor,
                g: &Tensor,
            ) -> Result<(Option<Tensor>, Option<Tensor>)> {
                self.$bwd(a, b, res, g)
            })?
        }
    };
    (3, $t:ty $(, $bwd:ident)?) => {
        impl CustomOp3 for $t {
            fn name(&self) -> &'static str {
                <$t as Kernel>::NAME
            }
            #[allow(clippy::too_many_arguments)]
            fn cpu_fwd(
                &self,
                s1: &CpuStorage,
                l1: &Layout,
                s2: &CpuStorage,
                l2: &Layout,
                s3: &CpuStorage,
                l3: &Layout,
            ) -> Result<(CpuStorage, Shape)> {
                apply(self, &[(s1, l1), (s2, l2), (s3, l3)])
            }
            $(fn bwd(
                &self,
                a: &Tensor,
                b: &Tensor,
                c: &Tensor,
                res: &Tensor,
                g: &Tensor,
            ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
                self.$bwd(a, b, c, res, g)
            })?
        }
    };
}

/// `(n, m)` of `b` when `st` is `n × 2m`.
fn couple_dims(op: &str, b: &Shape, st: &Shape) -> Result<(usize, usize)> {
    let (n, m) = b.dims2()?;
    if st.dims2()? != (n, 2 * m) {
        candle_core::bail!("{op}: shapes {b:?} and {st:?}");
    }
    Ok((n, m))
}

/// LeakyReLU `x ↦ max(x, 0) + slope · min(x, 0)` as one op.
///
/// Forward and gradient equal candle-nn's composed `leaky_relu` bit for bit, including its
/// gradient at `x = 0` (`(1 + slope) / 2`, candle splits ties between `max` and `min` equally).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if !fusable(x) {
        return candle_nn::ops::leaky_relu(x, slope);
    }
    x.contiguous()?.apply_op1(LeakyRelu { slope })
}

struct LeakyRelu {
    slope: f64,
}

impl Kernel for LeakyRelu {
    const NAME: &'static str = "leaky-relu";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        Ok(shapes[0].clone())
    }
    fn run<T: Float>(&self, x: &[&[T]], _: &[&Shape]) -> Vec<T> {
        let k = T::from_f64(self.slope);
        x[0].iter()
            .map(|&v| if v < T::zero() { v * k } else { v })
            .collect()
    }
}

kernel_op!(1, LeakyRelu, backward);

impl LeakyRelu {
    fn backward(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad
            .contiguous()?
            .apply_op2_no_bwd(&arg.contiguous()?, &LeakyReluGrad { slope: self.slope })?;
        Ok(Some(g))
    }
}

/// `(g, x) → ∂x`.
struct LeakyReluGrad {
    slope: f64,
}

impl Kernel for LeakyReluGrad {
    const NAME: &'static str = "leaky-relu-grad";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        if shapes[0] != shapes[1] {
            candle_core::bail!("{}: shapes {:?} and {:?}", Self::NAME, shapes[0], shapes[1]);
        }
        Ok(shapes[0].clone())
    }
    fn run<T: Float>(&self, gx: &[&[T]], _: &[&Shape]) -> Vec<T> {
        let k = T::from_f64(self.slope);
        let two = T::one() + T::one();
        gx[0]
            .iter()
            .zip(gx[1])
            .map(|(&g, &x)| {
                if x > T::zero() {
                    g
                } else if x < T::zero() {
                    g * k
                } else {
                    g / two + g * k / two
                }
            })
            .collect()
    }
}

kernel_op!(2, LeakyReluGrad);

/// The affine coupling's update of its second half: `y = b ⊙ exp(tanh s) + t` where
/// `st = [s | t]` (`n × 2m`) is the coupling net's output and `b` is `n × m`. One op forward; its
/// backward gives `∂b = g ⊙ e` and `∂st = [g ⊙ b ⊙ e ⊙ (1 − tanh² s) | g]` with `e = exp(tanh s)`.
pub fn affine_couple(b: &Tensor, st: &Tensor) -> Result<Tensor> {
    if !fusable(b) || b.dtype() != st.dtype() {
        let nb = st.dim(D::Minus1)? / 2;
        let s = st.narrow(D::Minus1, 0, nb)?.tanh()?;
        let t = st.narrow(D::Minus1, nb, nb)?;
        return b.mul(&s.exp()?)? + t;
    }
    b.contiguous()?
        .apply_op2(&st.contiguous()?, AffineCouple::Forward)
}

/// The coupling update and its two gradients, one kernel: inputs `(b, st)` forward, `(g, st)`
/// for `∂b`, `(g, st, b)` for `∂st`.
#[derive(Clone, Copy)]
enum AffineCouple {
    Forward,
    GradB,
    GradSt,
}

impl Kernel for AffineCouple {
    const NAME: &'static str = "affine-couple";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        couple_dims(Self::NAME, shapes[0], shapes[1])?;
        if let Self::GradSt = self {
            if shapes[2] != shapes[0] {
                candle_core::bail!("{}: shapes {:?} and {:?}", Self::NAME, shapes[0], shapes[2]);
            }
            return Ok(shapes[1].clone());
        }
        Ok(shapes[0].clone())
    }
    fn run<T: Float>(&self, x: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (n, m) = couple_dims(Self::NAME, shapes[0], shapes[1]).expect("checked by shape");
        let (first, st) = (x[0], x[1]);
        let mut out = Vec::with_capacity(if let Self::GradSt = self {
            2 * n * m
        } else {
            n * m
        });
        for r in 0..n {
            let (s, t) = st[r * 2 * m..(r + 1) * 2 * m].split_at(m);
            let row = &first[r * m..(r + 1) * m];
            match self {
                Self::Forward => {
                    out.extend((0..m).map(|j| row[j] * s[j].tanh().exp() + t[j]));
                }
                Self::GradB => out.extend((0..m).map(|j| row[j] * s[j].tanh().exp())),
                Self::GradSt => {
                    let b = &x[2][r * m..(r + 1) * m];
                    out.extend((0..m).map(|j| {
                        let th = s[j].tanh();
                        row[j] * b[j] * th.exp() * (T::one() - th * th)
                    }));
                    out.extend_from_slice(row);
                }
            }
        }
        out
    }
}

kernel_op!(2, AffineCouple, backward);

impl AffineCouple {
    fn backward(
        &self,
        b: &Tensor,
        st: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let gb = g.apply_op2_no_bwd(st, &AffineCouple::GradB)?;
        let gst = g.apply_op3_no_bwd(st, b, &AffineCouple::GradSt)?;
        Ok((Some(gb), Some(gst)))
    }
}

kernel_op!(3, AffineCouple);

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
pub fn linear_nt(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
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
pub fn linear_forward(layer: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
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
pub fn dense(x: &Tensor, w: &Tensor, b: &Tensor, slope: Option<f64>) -> Result<Tensor> {
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

struct Dense {
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

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let gz = match self.slope {
            Some(slope) => grad
                .contiguous()?
                .apply_op2_no_bwd(res, &LeakyReluGrad { slope })?,
            None => grad.clone(),
        };
        let gx = gz.matmul(w)?;
        let gw = gz.t()?.matmul(x)?;
        let gb = gz.contiguous()?.apply_op1_no_bwd(&ColumnSums)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

/// `Σ_rows g` of an `n × m` matrix, adding the rows in order — the same additions in the same
/// order as candle's `sum(0)`, whose CPU kernel takes a generic strided path (a division per
/// element) for a reduction that is not over the last dimension: 19 % of a C-network step.
struct ColumnSums;

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
fn gemm_nt(
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

struct MatmulNt;

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
        let gx = grad.matmul(w)?;
        let gw = grad.t()?.matmul(x)?;
        Ok((Some(gx), Some(gw)))
    }
}

/// TFN's tensor fusion and the dropout after it as one op: `f[b, (i·V + j)·T + k] = (a[b,i] ·
/// v[b,j]) · t[b,k] · m[b, (i·V + j)·T + k]` for already-extended (`[1, z]`) `B × A`, `B × V`,
/// `B × T` inputs and an optional keep-mask `m` (`0` or `1/(1−p)` per element, `None` = no
/// dropout). The composed path (two batched outer-product matmuls, then `× mask`) writes the
/// `B × AVT` tensor three times forward and, backward, adds each gradient into a zeroed tensor
/// of that size; TFN's is 32 × 140,481 per step. The backward here reads the incoming gradient once:
/// with `gm = g ⊙ m` and `s[b,i,j] = Σ_k gm[b,i,j,k] · t[b,k]`,
/// `∂a[b,i] = Σ_j v[b,j] s[b,i,j]`, `∂v[b,j] = Σ_i a[b,i] s[b,i,j]`,
/// `∂t[b,k] = Σ_{i,j} a[b,i] v[b,j] gm[b,i,j,k]`.
/// The forward multiplies in the composed path's order (same values); the gradients equal its up to
/// the order of the sums (tested). Only for f32/f64 CPU tensors of one dtype: callers check
/// [`fusable_with`] and use the composed ops otherwise.
pub fn outer3(a: &Tensor, v: &Tensor, t: &Tensor, mask: Option<Vec<f32>>) -> Result<Tensor> {
    let op = Outer3 {
        mask: mask.map(std::sync::Arc::new),
    };
    a.contiguous()?
        .apply_op3(&v.contiguous()?, &t.contiguous()?, op)
}

#[derive(Clone)]
struct Outer3 {
    mask: Option<std::sync::Arc<Vec<f32>>>,
}

/// `(B, A, V, T)` of the three fusion inputs; an error naming the batch sizes if they differ.
fn outer3_dims(a: &Shape, v: &Shape, t: &Shape) -> Result<(usize, usize, usize, usize)> {
    let (b, da) = a.dims2()?;
    let (bv, dv) = v.dims2()?;
    let (bt, dt) = t.dims2()?;
    if bv != b || bt != b {
        candle_core::bail!("tensor_fusion: batch sizes differ (audio {b}, video {bv}, text {bt})");
    }
    Ok((b, da, dv, dt))
}

/// The keep-mask value at `i` in the element type (`1` without a mask).
#[inline]
fn mask_at<T: Float>(mask: Option<&[f32]>, i: usize) -> T {
    mask.map_or(T::one(), |m| T::from_f64(f64::from(m[i])))
}

impl Kernel for Outer3 {
    const NAME: &'static str = "tensor-fusion";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        let (b, da, dv, dt) = outer3_dims(shapes[0], shapes[1], shapes[2])?;
        let n = b * da * dv * dt;
        if let Some(m) = &self.mask {
            if m.len() != n {
                candle_core::bail!("{}: mask of {} for {n} values", Self::NAME, m.len());
            }
        }
        Ok(Shape::from((b, da * dv * dt)))
    }
    fn run<T: Float>(&self, x: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (b, da, dv, dt) = outer3_dims(shapes[0], shapes[1], shapes[2]).expect("checked");
        let (a, v, t) = (x[0], x[1], x[2]);
        let mask = self.mask.as_deref().map(Vec::as_slice);
        let mut out = Vec::with_capacity(b * da * dv * dt);
        for n in 0..b {
            let tn = &t[n * dt..(n + 1) * dt];
            for &ai in &a[n * da..(n + 1) * da] {
                for &vj in &v[n * dv..(n + 1) * dv] {
                    let w = ai * vj;
                    let base = out.len();
                    match mask {
                        None => out.extend(tn.iter().map(|&tk| w * tk)),
                        Some(_) => out.extend(
                            tn.iter()
                                .enumerate()
                                .map(|(k, &tk)| w * tk * mask_at::<T>(mask, base + k)),
                        ),
                    }
                }
            }
        }
        out
    }
}

kernel_op!(3, Outer3, backward);

impl Outer3 {
    fn backward(
        &self,
        a: &Tensor,
        v: &Tensor,
        t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (da, dv, dt) = (a.dim(1)?, v.dim(1)?, t.dim(1)?);
        let avt = Tensor::cat(&[a, v, t], 1)?;
        let g = grad.contiguous()?.apply_op2_no_bwd(
            &avt,
            &Outer3Grad {
                dims: (da, dv, dt),
                mask: self.mask.clone(),
            },
        )?;
        Ok((
            Some(g.narrow(1, 0, da)?),
            Some(g.narrow(1, da, dv)?),
            Some(g.narrow(1, da + dv, dt)?),
        ))
    }
}

/// [`Outer3`]'s backward: inputs `(g, [a | v | t])`, output `[∂a | ∂v | ∂t]` (`B × (A+V+T)`).
struct Outer3Grad {
    dims: (usize, usize, usize),
    mask: Option<std::sync::Arc<Vec<f32>>>,
}

impl Kernel for Outer3Grad {
    const NAME: &'static str = "tensor-fusion-grad";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        let (da, dv, dt) = self.dims;
        let (b, n) = shapes[0].dims2()?;
        if shapes[1].dims2()? != (b, da + dv + dt) || n != da * dv * dt {
            candle_core::bail!("{}: shapes {:?} and {:?}", Self::NAME, shapes[0], shapes[1]);
        }
        if self.mask.as_ref().is_some_and(|m| m.len() != b * n) {
            candle_core::bail!("{}: mask does not match the gradient", Self::NAME);
        }
        Ok(shapes[1].clone())
    }
    fn run<T: Float>(&self, x: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (da, dv, dt) = self.dims;
        let w = da + dv + dt;
        let b = shapes[1].dims()[0];
        let (g, avt) = (x[0], x[1]);
        let mask = self.mask.as_deref().map(Vec::as_slice);
        let mut out = vec![T::zero(); b * w];
        let mut gm = vec![T::zero(); dt];
        for n in 0..b {
            let inp = &avt[n * w..(n + 1) * w];
            let (a, rest) = inp.split_at(da);
            let (v, t) = rest.split_at(dv);
            let o = &mut out[n * w..(n + 1) * w];
            let (ga, rest) = o.split_at_mut(da);
            let (gv, gt) = rest.split_at_mut(dv);
            for (i, &ai) in a.iter().enumerate() {
                for (j, &vj) in v.iter().enumerate() {
                    let base = ((n * da + i) * dv + j) * dt;
                    let row = &g[base..base + dt];
                    match mask {
                        None => gm.copy_from_slice(row),
                        Some(_) => {
                            for (k, (d, &r)) in gm.iter_mut().zip(row).enumerate() {
                                *d = r * mask_at::<T>(mask, base + k);
                            }
                        }
                    }
                    let mut s = T::zero();
                    for (&gk, &tk) in gm.iter().zip(t) {
                        s += gk * tk;
                    }
                    ga[i] += vj * s;
                    gv[j] += ai * s;
                    let aivj = ai * vj;
                    for (d, &gk) in gt.iter_mut().zip(&gm) {
                        *d += aivj * gk;
                    }
                }
            }
        }
        out
    }
}

kernel_op!(2, Outer3Grad);

/// The biased or unbiased MMD² between the rows of `x` (`n × d`) and `y` (`m × d`) with the
/// Gaussian-mixture kernel `k(a, b) = (1/B) Σ_β exp(−‖a − b‖² / (2σ_β²))`, as one op (a scalar),
/// accumulated in f64 whatever the input dtype:
///
/// `MMD² = c_x Σ_{i≠j} k(x_i, x_j) + c_y Σ_{i≠j} k(y_i, y_j) − 2/(nm) Σ_{i,j} k(x_i, y_j) + a`,
/// with `c_x = 1/(n(n−1))`, `c_y = 1/(m(m−1))`, `a = 0` (unbiased) or `c_x = 1/n²`,
/// `c_y = 1/m²`, `a = 1/n + 1/m` (biased: the diagonal, `k(x, x) = 1`).
///
/// Backward, with `k'(r) = dk/d(‖a−b‖²) = −(1/B) Σ_β exp(−r/(2σ_β²)) / (2σ_β²)`:
/// `∂x_i = 4 c_x Σ_j k'(x_i, x_j)(x_i − x_j) − (4/(nm)) Σ_j k'(x_i, y_j)(x_i − y_j)` and the same
/// with the roles of `x` and `y` swapped. The composed candle ops ([`crate::synergy::losses`])
/// take about 80 graph nodes for this per modality, forward, and twice that backward; here it is
/// one node each way. Squared distances are formed from the differences (not `‖a‖² + ‖b‖² −
/// 2aᵀb`), so no clamp at zero is needed. CPU f32/f64 only ([`fusable_with`]); fewer than 1 row
/// (2 unbiased) in a sample, differing widths or no/non-positive bandwidths are errors.
pub fn mmd2_gaussian(x: &Tensor, y: &Tensor, unbiased: bool, sigmas: &[f64]) -> Result<Tensor> {
    let op = Mmd2 {
        unbiased,
        inv: sigmas.iter().map(|s| 0.5 / (s * s)).collect(),
    };
    x.contiguous()?.apply_op2(&y.contiguous()?, op)
}

#[derive(Clone)]
struct Mmd2 {
    unbiased: bool,
    /// `1/(2σ_β²)` per bandwidth.
    inv: Vec<f64>,
}

impl Mmd2 {
    fn dims(&self, shapes: &[&Shape]) -> Result<(usize, usize, usize)> {
        let (n, d) = shapes[0].dims2()?;
        let (m, d2) = shapes[1].dims2()?;
        let least = if self.unbiased { 2 } else { 1 };
        if d != d2 || n < least || m < least {
            candle_core::bail!(
                "mmd2: shapes {:?} and {:?} (the unbiased estimate needs 2 rows in each)",
                shapes[0],
                shapes[1]
            );
        }
        if self.inv.is_empty() || self.inv.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
            candle_core::bail!("mmd2: bandwidths must be finite and positive, at least one");
        }
        Ok((n, m, d))
    }

    /// `(c_x, c_y, c_xy, a)`.
    fn coefficients(&self, n: usize, m: usize) -> (f64, f64, f64, f64) {
        let (nf, mf) = (n as f64, m as f64);
        let cxy = 2.0 / (nf * mf);
        if self.unbiased {
            (1.0 / (nf * (nf - 1.0)), 1.0 / (mf * (mf - 1.0)), cxy, 0.0)
        } else {
            (1.0 / (nf * nf), 1.0 / (mf * mf), cxy, 1.0 / nf + 1.0 / mf)
        }
    }

    /// `(k(r), k'(r))` at the squared distance `r`.
    #[inline]
    fn k(&self, r: f64) -> (f64, f64) {
        let (mut k, mut dk) = (0.0, 0.0);
        for &c in &self.inv {
            let e = (-c * r).exp();
            k += e;
            dk -= c * e;
        }
        let b = self.inv.len() as f64;
        (k / b, dk / b)
    }
}

/// `‖a − b‖²` in f64.
#[inline]
fn sq_dist<T: Float>(a: &[T], b: &[T]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&u, &v)| {
            let t = u.to_f64() - v.to_f64();
            t * t
        })
        .sum()
}

impl Kernel for Mmd2 {
    const NAME: &'static str = "mmd2";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        self.dims(shapes)?;
        Ok(Shape::from(()))
    }
    fn run<T: Float>(&self, xs: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (n, m, d) = self.dims(shapes).expect("checked by shape");
        let (x, y) = (xs[0], xs[1]);
        fn row<T>(a: &[T], i: usize, d: usize) -> &[T] {
            &a[i * d..(i + 1) * d]
        }
        // Σ_{i<j} k within a sample (each unordered pair once; the sums count both orders)
        let within = |a: &[T], len: usize| {
            let mut s = 0.0;
            for i in 0..len {
                for j in i + 1..len {
                    s += self.k(sq_dist(row(a, i, d), row(a, j, d))).0;
                }
            }
            2.0 * s
        };
        let mut kxy = 0.0;
        for i in 0..n {
            for j in 0..m {
                kxy += self.k(sq_dist(row(x, i, d), row(y, j, d))).0;
            }
        }
        let (cx, cy, cxy, a) = self.coefficients(n, m);
        let v = cx * within(x, n) + cy * within(y, m) - cxy * kxy + a;
        vec![T::from_f64(v)]
    }
}

kernel_op!(2, Mmd2, backward);

impl Mmd2 {
    fn backward(
        &self,
        x: &Tensor,
        y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = x.dim(0)?;
        let g = grad
            .reshape(1)?
            .apply_op3_no_bwd(x, y, &Mmd2Grad(self.clone()))?;
        Ok((Some(g.narrow(0, 0, n)?), Some(g.narrow(0, n, y.dim(0)?)?)))
    }
}

/// [`Mmd2`]'s backward: inputs `(g (1), x, y)`, output `[∂x; ∂y]` (`(n + m) × d`).
struct Mmd2Grad(Mmd2);

impl Kernel for Mmd2Grad {
    const NAME: &'static str = "mmd2-grad";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        if shapes[0].elem_count() != 1 {
            candle_core::bail!("{}: gradient of shape {:?}", Self::NAME, shapes[0]);
        }
        let (n, m, d) = self.0.dims(&shapes[1..])?;
        Ok(Shape::from((n + m, d)))
    }
    fn run<T: Float>(&self, xs: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (n, m, d) = self.0.dims(&shapes[1..]).expect("checked by shape");
        let g = xs[0][0].to_f64();
        let (x, y) = (xs[1], xs[2]);
        let (cx, cy, cxy, _) = self.0.coefficients(n, m);
        let mut out = vec![0.0f64; (n + m) * d];
        let (ox, oy) = out.split_at_mut(n * d);
        // adds `w (a − b)` to `ga` and `w (b − a)` to `gb`
        let pair = |a: &[T], b: &[T], w: f64, ga: &mut [f64], gb: &mut [f64]| {
            for k in 0..d {
                let t = w * (a[k].to_f64() - b[k].to_f64());
                ga[k] += t;
                gb[k] -= t;
            }
        };
        let within = |a: &[T], len: usize, c: f64, ga: &mut [f64]| {
            for i in 0..len {
                for j in i + 1..len {
                    let (ri, rj) = (&a[i * d..(i + 1) * d], &a[j * d..(j + 1) * d]);
                    let w = 4.0 * c * g * self.0.k(sq_dist(ri, rj)).1;
                    let (lo, hi) = ga.split_at_mut(j * d);
                    pair(ri, rj, w, &mut lo[i * d..(i + 1) * d], &mut hi[..d]);
                }
            }
        };
        within(x, n, cx, ox);
        within(y, m, cy, oy);
        for i in 0..n {
            for j in 0..m {
                let (ri, rj) = (&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]);
                let w = -2.0 * cxy * g * self.0.k(sq_dist(ri, rj)).1;
                pair(
                    ri,
                    rj,
                    w,
                    &mut ox[i * d..(i + 1) * d],
                    &mut oy[j * d..(j + 1) * d],
                );
            }
        }
        out.into_iter().map(T::from_f64).collect()
    }
}

kernel_op!(3, Mmd2Grad);

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
pub fn kurtosis_fixed_factor(z: &Tensor, chol: &ndarray::Array2<f64>) -> Result<Tensor> {
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
struct Kurtosis {
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
struct KurtosisGrad(Kurtosis);

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

/// A candle-nn `Linear` (with bias) applied to the last dimension of an input of any rank
/// `(…, in)` through [`dense`]: the leading dimensions are flattened into rows, so the bias
/// gradient is one pass of column sums instead of candle's strided reduction over the broadcast
/// dimensions. A layer without a bias, a rank-0 input and other devices use candle-nn's forward.
pub fn linear_rows(layer: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
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

/// `x ⊙ w + b` with `w`, `b` of the last dimension's size broadcast over the leading ones (a
/// normalisation layer's scale and shift) as one op. Values and gradients are bit for bit the
/// composed `x.broadcast_mul(w)?.broadcast_add(b)`: the same two roundings forward, `∂x = g ⊙ w`,
/// and `∂w = Σ_rows g ⊙ x`, `∂b = Σ_rows g` added in row order, as candle's reduction adds them —
/// but in one pass each instead of candle's strided reduction (a division per element). Other
/// devices and dtypes use the composed ops.
pub fn scale_shift(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fused = fusable_with(x, &[w, b]) && x.rank() >= 1 && w.rank() == 1 && b.rank() == 1;
    if !fused {
        return x.broadcast_mul(w)?.broadcast_add(b);
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, ScaleShift)
}

struct ScaleShift;

/// `(rows, m)` of an input `(…, m)` with parameters of size `m`.
fn scale_shift_dims(x: &Shape, p: &Shape) -> Result<(usize, usize)> {
    let m = *x.dims().last().unwrap_or(&0);
    if x.rank() == 0 || p.dims() != [m] {
        candle_core::bail!("scale-shift: input {x:?} with parameters {p:?}");
    }
    Ok((x.elem_count() / m.max(1), m))
}

impl Kernel for ScaleShift {
    const NAME: &'static str = "scale-shift";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        scale_shift_dims(shapes[0], shapes[1])?;
        scale_shift_dims(shapes[0], shapes[2])?;
        Ok(shapes[0].clone())
    }
    fn run<T: Float>(&self, xs: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (_, m) = scale_shift_dims(shapes[0], shapes[1]).expect("checked by shape");
        let (w, b) = (xs[1], xs[2]);
        let mut out = Vec::with_capacity(xs[0].len());
        for row in xs[0].chunks_exact(m.max(1)) {
            out.extend(row.iter().zip(w).zip(b).map(|((&x, &w), &b)| x * w + b));
        }
        out
    }
}

impl ScaleShift {
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let m = w.dim(0)?;
        let rows = x.elem_count() / m.max(1);
        let g = grad.contiguous()?;
        let gx = g.broadcast_mul(w)?;
        let gw = (&g * x)?
            .reshape((rows, m))?
            .apply_op1_no_bwd(&ColumnSums)?;
        let gb = g.reshape((rows, m))?.apply_op1_no_bwd(&ColumnSums)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

kernel_op!(3, ScaleShift, backward);
