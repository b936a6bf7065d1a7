//! Fusion models, one file each, behind one trait ([`FusionModel`]) and one registry
//! ([`fusion_models!`] → [`ModelKind`], [`ModelConfig`]).
//!
//! A model is built from its configuration, the data's shape ([`BuildCtx`]) and a candle
//! [`VarBuilder`] (the trainer owns the `VarMap`, as in candle's mnist-training example); its
//! forward pass returns the unimodal representations `Z_t, Z_a, Z_v`, the fused representation `Z`
//! and the prediction ([`ModelOutput`]), so every model trains with or without the C-network
//! through the same generic trainer ([`crate::train::train_run`]).
//!
//! **Adding a model** = one new file here implementing [`FusionModel`] (with a serialisable
//! `Config: Default`) and one line in the `fusion_models!` invocation below.

pub mod ef_lstm;
pub mod lmf;
pub mod lstm;
pub mod mfn;
pub mod misa;
pub mod tfn;

use crate::data::{SeqBatch, Task};
pub use crate::synergy::ModelOutput;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fmt::Debug;

/// What a model needs to know about the data when it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildCtx {
    /// Feature widths of text, audio, vision.
    pub dims: [usize; 3],
    /// Seed of the model's dropout streams (weights are seeded by the trainer through
    /// [`seed_varmap`](crate::synergy::nets::seed_varmap)).
    pub seed: u64,
    /// Regression (one real output) or binary classification (one logit).
    pub task: Task,
}

/// Hyper-parameters of a model: a serialisable value with documented defaults, validated once.
pub trait ModelParams:
    Clone + Debug + PartialEq + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Checks every field; the error names the field and why.
    fn validate(&self) -> Result<(), String>;
}

/// A fusion model (everything except the C-network).
///
/// Contract, tested for every model: output shapes (`Z_i`: `B × rep_dims().0[i]`, `Z`:
/// `B × rep_dims().1`, prediction: `B`); predictions independent of padding; bit-identical
/// reruns from a seed; every parameter receives a gradient. Non-trainable state (BatchNorm running
/// statistics) lives in the same `VarMap` under names ending in `running_mean` / `running_var`
/// ([`is_buffer`]): the trainer snapshots it with the weights but never hands it to an optimiser.
pub trait FusionModel: Sized {
    /// The model's hyper-parameters.
    type Config: ModelParams;
    /// Name in tables (the paper's row label where it has one).
    const NAME: &'static str;
    /// Builds the model's variables under `vb`.
    fn new(cfg: &Self::Config, ctx: &BuildCtx, vb: VarBuilder) -> candle_core::Result<Self>;
    /// Forward pass on a batch (`train` switches dropout, batch statistics and auxiliary losses
    /// on). In training mode a model may return an auxiliary loss (already weighted) in
    /// [`ModelOutput::aux_loss`]; the trainer adds it to the task loss.
    fn forward(&self, b: &SeqBatch, train: bool) -> candle_core::Result<ModelOutput>;
    /// Widths of `Z_t, Z_a, Z_v` and of `Z`.
    fn rep_dims(&self) -> (Vec<usize>, usize);
}

/// Whether a variable is non-trainable state (BatchNorm running statistics), by its name.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// Something generic over the model type, run for a [`ModelConfig`] by [`ModelConfig::visit`]
/// (how the trainer and the experiments stay generic without a `match` per model).
pub trait ModelVisitor {
    type Output;
    fn visit<M: FusionModel>(self, cfg: &M::Config) -> Self::Output;
}

/// The registry: one line per model generates [`ModelKind`] (clap's `ValueEnum`, for
/// `--models`) and [`ModelConfig`] (a serde-tagged enum stored with every run).
macro_rules! fusion_models {
    ($( $(#[$doc:meta])* $variant:ident => $ty:path ),* $(,)?) => {
        /// Which model (`--models flstm,tfn,…`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
        #[serde(rename_all = "lowercase")]
        pub enum ModelKind { $( $(#[$doc])* $variant ),* }

        /// A model with its hyper-parameters (what a run stores; `{"model": "tfn", …}`).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "model", rename_all = "lowercase")]
        pub enum ModelConfig { $( $(#[$doc])* $variant(<$ty as FusionModel>::Config) ),* }

        impl ModelKind {
            /// Every registered model, in table order.
            pub const ALL: &'static [ModelKind] = &[ $( ModelKind::$variant ),* ];
            /// The model with its default hyper-parameters.
            pub fn default_config(self) -> ModelConfig {
                match self { $( ModelKind::$variant => ModelConfig::$variant(Default::default()) ),* }
            }
            /// Name in tables.
            pub fn name(self) -> &'static str {
                match self { $( ModelKind::$variant => <$ty as FusionModel>::NAME ),* }
            }
        }

        impl ModelConfig {
            /// Which model.
            pub fn kind(&self) -> ModelKind {
                match self { $( ModelConfig::$variant(_) => ModelKind::$variant ),* }
            }
            /// Checks the hyper-parameters.
            pub fn validate(&self) -> Result<(), String> {
                match self { $( ModelConfig::$variant(c) => c.validate() ),* }
                    .map_err(|e| format!("{}: {e}", self.kind().name()))
            }
            /// Runs `v` with the concrete model type.
            pub fn visit<V: ModelVisitor>(&self, v: V) -> V::Output {
                match self { $( ModelConfig::$variant(c) => v.visit::<$ty>(c) ),* }
            }
        }
    };
}

fusion_models! {
    /// EF-LSTM ("FLSTM"): early fusion, stacked LSTM.
    Flstm => ef_lstm::EfLstm,
    /// TFN ("LFN" in the paper's tables): tensor fusion of three sub-networks.
    Tfn => tfn::Tfn,
    /// LMF: low-rank multimodal fusion with modality-specific factors.
    Lmf => lmf::Lmf,
    /// MFN: Memory Fusion Network (three LSTMs, delta-memory attention, gated multi-view memory).
    Mfn => mfn::Mfn,
    /// MISA: modality-invariant and -specific representations.
    Misa => misa::Misa,
}

/// Inverted dropout with masks drawn from a seeded stream (candle's own dropout uses an unseeded
/// generator, which would make CPU runs irreproducible).
#[derive(Debug)]
pub struct SeededDropout {
    p: f64,
    seed: u64,
    calls: Cell<u64>,
}

impl SeededDropout {
    /// Drop probability `p ∈ [0, 1)`.
    pub fn new(p: f64, seed: u64) -> Self {
        Self {
            p,
            seed,
            calls: Cell::new(0),
        }
    }

    /// Applies dropout when `train`; identity otherwise.
    pub fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let c = self.calls.get();
        self.calls.set(c + 1);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let keep = 1.0 / (1.0 - self.p);
        let m: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if rng.random::<f64>() < self.p {
                    0.0
                } else {
                    keep as f32
                }
            })
            .collect();
        let mask = Tensor::from_vec(m, x.shape(), &Device::Cpu)?
            .to_dtype(x.dtype())?
            .to_device(x.device())?;
        x * mask
    }
}

/// Masked time-mean `Σ_t mask_t x_t / Σ_t mask_t` of `B × T × d` features.
pub fn masked_mean(x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.unsqueeze(2)?;
    let s = x.broadcast_mul(&m)?.sum(1)?;
    s.broadcast_div(&mask.sum_keepdim(1)?)
}

/// The hidden state at each sequence's last valid step: `Σ_t last_t h_t` of `B × T × d` states.
pub fn last_valid(h: &Tensor, last: &Tensor) -> candle_core::Result<Tensor> {
    h.broadcast_mul(&last.unsqueeze(2)?)?.sum(1)
}

/// Validation helper: `Err` naming `field` unless `p ∈ [0, 1)`.
pub fn check_dropout(field: &str, p: f64) -> Result<(), String> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("{field} must be in [0, 1), got {p}"))
    }
}

/// Validation helper: `Err` naming `field` unless `v ≥ 1`.
pub fn check_width(field: &str, v: usize) -> Result<(), String> {
    if v >= 1 {
        Ok(())
    } else {
        Err(format!("{field} must be >= 1"))
    }
}

/// The floating type used for training.
pub const TRAIN_DTYPE: DType = DType::F32;
