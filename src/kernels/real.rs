//! What the models' fused CPU recurrences share: the float types they run in ([`Real`]), one
//! strided matrix product ([`gemm_into`]), the f32/f64 dispatch that makes a generic kernel a
//! candle op and keeps the activations a forward pass saves for its backward ([`RealKernel2`] →
//! [`RealOp`]).
//!
//! Two ops use it: the LSTM recurrence (`models::layers::lstm`'s `LstmSeq`) and MFN's gated-memory
//! recurrence (`models::mfn::memory`). Each writes its forward and backward once, generic over
//! `T: Real`; which of `f32`/`f64` runs is decided here, in one place.

use super::cpu_slice;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};
use std::sync::Mutex;

/// What the fused kernels need of a float type.
pub(crate) trait Real: WithDType {
    const ZERO: Self;
    const ONE: Self;
    fn sigmoid(self) -> Self;
    fn tanh(self) -> Self;
}

/// `tanh x = sign(x) (1 − e^{−2|x|}) / (1 + e^{−2|x|})`, evaluated in f64 (so `1 − e` keeps f32
/// precision near 0), and `x` itself for `|x| < 10⁻⁴` (relative error `x²/3 < 4·10⁻⁹`). Within
/// 3·10⁻⁸ of the exact value (2 ulp of glibc's `tanhf`, measured over [−7, 7]) and 3.5× faster:
/// glibc's `tanhf` goes through `expm1f`, which was 11 % of an EF-LSTM training step's profile.
fn tanh_f32(x: f32) -> f32 {
    if x.abs() < 1e-4 {
        return x;
    }
    let e = (-2.0 * f64::from(x).abs()).exp();
    (((1.0 - e) / (1.0 + e)) as f32).copysign(x)
}

/// `impl Real` for a float type with its `tanh`.
macro_rules! real {
    ($t:ty, $tanh:path) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            fn sigmoid(self) -> Self {
                1.0 / (1.0 + (-self).exp())
            }
            fn tanh(self) -> Self {
                $tanh(self)
            }
        }
    };
}

real!(f32, tanh_f32);
real!(f64, f64::tanh);

/// `dst (m × n) = [dst +] lhs (m × k) · rhs (k × n)` on row/column strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let last = |rs: usize, cs: usize, r: usize, c: usize| (r - 1) * rs + (c - 1) * cs;
    assert!(last(dst_rs, dst_cs, m, n) < dst.len());
    assert!(last(lhs_rs, lhs_cs, m, k) < lhs.len());
    assert!(last(rhs_rs, rhs_cs, k, n) < rhs.len());
    // one thread: the results must not depend on the thread count (runs are parallelised at the
    // grid level, `--jobs`), and at these sizes a split costs more than it saves
    let par = gemm::Parallelism::None;
    // SAFETY: the asserts above keep every strided access inside its slice; `dst` is a distinct
    // mutable slice, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

/// Whether `x` is a tensor the fused kernels run on: on the CPU, f32 or f64 (else the layers
/// take their plain-candle-ops path).
pub(crate) fn real_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// A two-input CPU op written once for any [`Real`] type; [`RealOp`] makes it a candle
/// [`CustomOp2`] on f32 and f64 storages and keeps what its forward pass saves for the backward.
pub(crate) trait RealKernel2: Send + Sync + 'static {
    /// The op's name (in its errors and candle's graph).
    const NAME: &'static str;

    /// Checks the inputs' shapes; returns the output's.
    fn out_shape(&self, a: &Shape, b: &Shape) -> Result<Shape>;

    /// The output (row-major) and the activations to keep for [`backward`](Self::backward), from
    /// the inputs' elements (`a` of shape `a_shape`, checked by [`out_shape`](Self::out_shape)).
    fn forward<T: Real>(&self, a: &[T], b: &[T], a_shape: &Shape) -> Result<(Vec<T>, Vec<T>)>;

    /// The gradients of both inputs (row-major, the inputs' shapes).
    fn backward<T: Real>(&self, g: Backward<'_, T>) -> Result<(Vec<T>, Vec<T>)>;
}

/// What a [`RealKernel2`]'s backward pass is given.
pub(crate) struct Backward<'a, T> {
    /// The op's two inputs.
    pub(crate) inputs: (&'a Tensor, &'a Tensor),
    /// The op's output, row-major.
    pub(crate) out: &'a [T],
    /// The gradient of the output, row-major.
    pub(crate) grad: &'a [T],
    /// The activations the forward pass kept.
    pub(crate) kept: &'a [T],
}

/// A [`RealKernel2`] as a candle op (`a.apply_op2(&b, RealOp::new(kernel))`): the float-type
/// dispatch of every fused recurrence (f32 or f64, both inputs of one type), the inputs read as
/// contiguous slices, and the forward pass's activations kept for the backward.
pub(crate) struct RealOp<K> {
    kernel: K,
    kept: Saved,
}

impl<K: RealKernel2> RealOp<K> {
    /// The op of `kernel`.
    pub(crate) fn new(kernel: K) -> Self {
        Self {
            kernel,
            kept: Saved::default(),
        }
    }

    fn fwd<T: Real>(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
    ) -> Result<CpuStorage> {
        let a = cpu_slice::<T>(s1, l1, K::NAME)?;
        let b = cpu_slice::<T>(s2, l2, K::NAME)?;
        let (out, kept) = self.kernel.forward(a, b, l1.shape())?;
        self.kept.put(K::NAME, kept)?;
        Ok(T::to_cpu_storage_owned(out))
    }

    /// The gradients of both inputs, computed in `T`.
    fn grads<T: Real>(
        &self,
        (a, b): (&Tensor, &Tensor),
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<[Tensor; 2]> {
        let (out, g) = (host::<T>(res)?, host::<T>(grad)?);
        let (da, db) = self.kept.with(K::NAME, |kept: &[T]| {
            self.kernel.backward(Backward {
                inputs: (a, b),
                out: &out,
                grad: &g,
                kept,
            })
        })??;
        Ok([
            Tensor::from_vec(da, a.shape(), a.device())?,
            Tensor::from_vec(db, b.shape(), b.device())?,
        ])
    }
}

impl<K: RealKernel2> CustomOp2 for RealOp<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = self.kernel.out_shape(l1.shape(), l2.shape())?;
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => self.fwd::<f32>((s1, l1), (s2, l2))?,
            (CpuStorage::F64(_), CpuStorage::F64(_)) => self.fwd::<f64>((s1, l1), (s2, l2))?,
            _ => candle_core::bail!("{}: unsupported or mixed dtypes", K::NAME),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [da, db] = match a.dtype() {
            DType::F32 => self.grads::<f32>((a, b), res, grad)?,
            DType::F64 => self.grads::<f64>((a, b), res, grad)?,
            d => candle_core::bail!("{}: unsupported dtype {d:?}", K::NAME),
        };
        Ok((Some(da), Some(db)))
    }
}

/// The activations one op instance's forward pass keeps for its backward.
#[derive(Debug, Default)]
struct Saved(Mutex<Option<CpuStorage>>);

impl Saved {
    /// Keeps `values` (replacing what an earlier forward pass kept).
    fn put<T: WithDType>(&self, op: &str, values: Vec<T>) -> Result<()> {
        *self.lock(op)? = Some(T::to_cpu_storage_owned(values));
        Ok(())
    }

    /// Runs `f` on the kept values; an error before any forward pass.
    fn with<T: WithDType, R>(&self, op: &str, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        let guard = self.lock(op)?;
        let kept = guard
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg(format!("{op}: backward before forward")))?;
        Ok(f(T::cpu_storage_as_slice(kept)?))
    }

    fn lock(&self, op: &str) -> Result<std::sync::MutexGuard<'_, Option<CpuStorage>>> {
        self.0
            .lock()
            .map_err(|_| candle_core::Error::Msg(format!("{op}: lock poisoned")))
    }
}

/// A tensor's elements, row-major, as `T` (a backward pass's inputs on the host).
pub(crate) fn host<T: WithDType>(t: &Tensor) -> Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_f32_is_within_3e_8_of_the_exact_value() {
        for i in -70_000..=70_000 {
            let x = i as f32 * 1e-4;
            let exact = f64::from(x).tanh();
            let err = (f64::from(Real::tanh(x)) - exact).abs();
            assert!(err <= 3e-8, "tanh({x}): error {err}");
        }
    }

    #[test]
    fn gemm_into_equals_the_naive_product_on_strides() {
        // lhs 2 × 3 row-major, rhs 3 × 2 read transposed from a 2 × 3 buffer
        let lhs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let rhs_t = [1.0, 0.5, -1.0, 2.0, 0.0, 1.0];
        let mut dst = [10.0f64; 4];
        gemm_into(
            2,
            2,
            3,
            &mut dst,
            (2, 1),
            true,
            &lhs,
            (3, 1),
            &rhs_t,
            (1, 3),
        );
        let naive = |r: usize, c: usize| {
            (0..3)
                .map(|k| lhs[r * 3 + k] * rhs_t[c * 3 + k])
                .sum::<f64>()
        };
        for (i, d) in dst.iter().enumerate() {
            assert_eq!(*d, 10.0 + naive(i / 2, i % 2));
        }
    }

    #[test]
    fn backward_before_forward_is_an_error() {
        let err = Saved::default().with::<f32, _>("op", |_| ()).unwrap_err();
        assert!(
            err.to_string().contains("op: backward before forward"),
            "{err}"
        );
    }
}
