//! The Candle training path: differentiable synergy losses, the C-network and Algorithm D's step.
//!
//! * [`losses`]: MMD² (biased / unbiased / linear; fixed or median bandwidths), the DV and NWJ
//!   bounds and the streaming regularised kurtosis `L_κ`, written with tensor ops so gradients
//!   flow, with exactly the conventions of the reference [`estimators`](crate::estimators) (tested
//!   to relative 1e-10 in f64).
//! * [`nets`]: the paper's four-layer LeakyReLU MLPs, fixed Johnson–Lindenstrauss projections and
//!   the invertible affine-coupling network of `g_i`.
//! * The fused CPU ops these run on (the MLPs' LeakyReLU, the couplings' `b ⊙ exp(tanh s) + t`,
//!   MMD², the kurtosis) live in the crate-private `kernels` module, beside the models' kernels.
//! * `cnet` ([`CNetwork`], [`SynergyConfig`]): the C-network (`Q_i`, `g_i`, critics) and the regulariser
//!   `L_reg = γ_L2 L_L2 + γ_d L_d + γ_κ L_κ`.
//! * `step` ([`SynergyStep`], [`TaskStep`]): Algorithm D's three-optimiser step, for any model that returns
//!   [`ModelOutput`] (unimodal representations, fused representation, prediction).
//! * `adamw` ([`AdamW`]): AdamW with each variable's update fused into one in-place pass on the CPU,
//!   bit-identical to candle-nn's.

pub(crate) mod adamw;
pub(crate) mod cnet;
pub mod iwas;
pub mod losses;
pub mod nets;
pub(crate) mod step;

pub use adamw::AdamW;
pub use cnet::{CNetwork, Divergence, KurtosisOn, RegLosses, SynergyConfig};
pub use losses::{dv_bound, kurtosis_loss, mmd2, nwj_bound, BandwidthSpec, KurtosisLoss};
pub use step::{clip_grad_norm, ModelOutput, ParamGroups, StepStats, SynergyStep, TaskStep};

use crate::error::{EstimatorError, ParamError};
use thiserror::Error;

/// Errors of the Candle path.
#[derive(Debug, Error)]
pub enum SynergyError {
    /// A tensor operation failed (shape, device, dtype).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The reference estimator refused the (detached) input.
    #[error("{0}")]
    Estimator(#[from] EstimatorError),
    /// A configuration value is out of its domain.
    #[error("invalid configuration: {0}")]
    Config(#[from] ParamError),
    /// Inputs that do not fit the C-network (too few modalities, widths it was not built for).
    #[error("{0}")]
    Mismatch(String),
    /// Inputs of incompatible shapes.
    #[error("shape: {0}")]
    Shape(String),
    /// A loss became NaN or infinite.
    #[error("non-finite {what} ({value}) at step {step}")]
    NonFinite {
        what: &'static str,
        value: f64,
        step: usize,
    },
}

/// Result alias of the Candle path.
pub type Result<T> = std::result::Result<T, SynergyError>;

/// `acc + v`, starting from `v` when nothing is accumulated yet (sums of loss terms).
pub(crate) fn accumulate(
    acc: Option<candle_core::Tensor>,
    v: candle_core::Tensor,
) -> Result<Option<candle_core::Tensor>> {
    Ok(Some(match acc {
        None => v,
        Some(a) => (a + v)?,
    }))
}

/// Copies a 2-D tensor (any float dtype, any device) to a host `f64` array.
pub fn to_array2(t: &candle_core::Tensor) -> Result<ndarray::Array2<f64>> {
    let (n, d) = t.dims2()?;
    let v: Vec<f64> = t
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    Ok(ndarray::Array2::from_shape_vec((n, d), v).expect("shape from dims2"))
}

/// Uploads a host `f64` array as a tensor of `dtype` on `device`.
pub fn from_array2(
    a: &ndarray::Array2<f64>,
    dtype: candle_core::DType,
    device: &candle_core::Device,
) -> Result<candle_core::Tensor> {
    let a = a.as_standard_layout();
    let t = candle_core::Tensor::from_slice(a.as_slice().expect("standard"), a.dim(), device)?;
    Ok(t.to_dtype(dtype)?)
}
