//! The crate's fused CPU kernels: each a candle custom op with a hand-written backward, one file per
//! op, and the one place where a kernel written once over its float type becomes a candle op on f32
//! and f64 storages.
//!
//! Why they exist: the C-network runs 15 four-layer MLPs and 12 affine couplings per step on
//! `32–64 × 64` tensors, where the cost is the number of ops, not the arithmetic. candle-nn's
//! `leaky_relu` is five ops (`zeros_like`, `maximum`, `minimum`, `affine`, `add`) whose backward
//! takes about twenty more (masks, divisions, accumulations); a coupling's `b ⊙ exp(tanh s) + t`
//! is six ops over narrowed halves; TFN's outer product and MISA's LayerNorms have the same shape
//! of cost. On other devices (and dtypes other than f32/f64) the functions fall back to the
//! composed candle ops, so results are the same everywhere up to rounding;
//! `NEURAL_SYNERGY_FUSED_OPS=0` forces that fallback.
//!
//! # Files
//!
//! | file | op | used by |
//! |---|---|---|
//! | `leaky_relu.rs` | [`leaky_relu`] | the C-network's MLPs, IWas' critics |
//! | `couple.rs` | [`affine_couple`] | the C-network's normalising flows |
//! | `dense.rs` | [`linear_nt`], [`dense`], [`linear_forward`], [`linear_rows`] | every `Linear` of the C-network and the models |
//! | `outer3.rs` | [`outer3`] | TFN's tensor fusion |
//! | `mmd.rs` | [`mmd2_gaussian`] | `L_d` of SMMD |
//! | `kurtosis.rs` | [`kurtosis_fixed_factor`] | `L_κ` |
//! | `scale_shift.rs` | [`scale_shift`] | LayerNorm's scale and shift (MISA, BERT) |
//! | `real.rs` | `RealOp`, `RealKernel2`, `gemm_into` | the fused LSTM and MFN-memory recurrences |
//!
//! The ops of this file (`Kernel` + `kernel_op!`) are stateless: a kernel over one to three
//! inputs, written once for `T: Float`. `real.rs` is for recurrences whose forward keeps
//! activations for the backward (`RealOp` holds them). Both dispatch f32/f64 here, nowhere else.
//!
//! Two things look like duplicates and are not:
//! * **Two float traits.** `Float` (here) has std's `tanh` and `exp`; `Real` (`real.rs`) has a
//!   faster f32 `tanh` (within 2 ulp of std's, see `tanh_f32`) that only the recurrences use. One
//!   trait with both would make every kernel choose between two `tanh`s; merging them into one
//!   `tanh` would change the C-network's numbers, which the reproducibility tests pin.
//! * **`Dense` and `MatmulNt` implement `CustomOp3`/`CustomOp2` by hand** rather than through
//!   `kernel_op!`: their forward is candle's own storage `matmul` (the call candle-nn's `Linear`
//!   makes, so the product's rounding is candle's), which works on storages and layouts, not on
//!   the element slices a `Kernel` is given.

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result,
    Shape, Tensor, WithDType, D,
};

/// Whether the fused ops are on: they are unless `NEURAL_SYNERGY_FUSED_OPS=0` (read once), which
/// falls back to the composed candle ops — for side-by-side timing and for checking a result.
pub(crate) fn fused_ops_enabled() -> bool {
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
pub(crate) fn fusable_with(x: &Tensor, others: &[&Tensor]) -> bool {
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

mod couple;
mod dense;
mod kurtosis;
mod leaky_relu;
mod mmd;
mod outer3;
pub(crate) mod real;
mod scale_shift;

// the helpers other kernels share (column sums, the gemm, the LeakyReLU kernel), visible to every
// kernel file through its `use super::*`
use dense::*;
use leaky_relu::*;

pub(crate) use couple::affine_couple;
pub(crate) use dense::{dense, detached, linear_forward, linear_rows};
pub(crate) use kurtosis::kurtosis_fixed_factor;
pub(crate) use leaky_relu::leaky_relu;
pub(crate) use mmd::mmd2_gaussian;
pub(crate) use outer3::outer3;
pub(crate) use scale_shift::scale_shift;

#[cfg(test)]
mod tests;
