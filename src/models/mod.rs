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

pub mod bert_backbone;
pub mod ef_lstm;
pub mod frozen_text;
pub mod lmf;
pub mod lstm;
pub mod mag_bert;
pub mod mfn;
pub mod misa;
pub mod mmim;
pub mod tfn;

use crate::data::{Dataset, SeqBatch, Task};
pub use crate::synergy::ModelOutput;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fmt::Debug;
use std::path::PathBuf;

/// What a model needs to know about the data when it is built.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildCtx {
    /// Feature widths of text, audio, vision.
    pub dims: [usize; 3],
    /// Seed of the model's dropout streams (weights are seeded by the trainer through
    /// [`seed_varmap`](crate::synergy::nets::seed_varmap)).
    pub seed: u64,
    /// Regression (one real output) or binary classification (one logit).
    pub task: Task,
    /// The BERT checkpoint folder the data's tokens were made with (`config.json`,
    /// `model.safetensors`, `tokenizer.json`): the BERT-based models read their architecture
    /// from it in [`FusionModel::new`] and their weights in [`FusionModel::load_pretrained`].
    /// `None` when the data carries no tokens.
    pub text_encoder: Option<PathBuf>,
}

/// A model-specific optimisation stage run over the training batches at the start of every epoch,
/// before the main pass (MMIM's MMILB stage). The trainer gives it its own AdamW over the variables
/// the model selects with [`FusionModel::in_extra_stage`], minimising
/// [`FusionModel::extra_stage_loss`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtraStage {
    /// Learning rate of the stage's optimiser.
    pub lr: f64,
    /// Its AdamW weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clip of its variables.
    pub grad_clip: f64,
    /// Share of each epoch's batches the stage visits (the first ones of the epoch's order).
    pub batch_fraction: f64,
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

    /// Whether the model with configuration `cfg` reads BERT tokens ([`SeqBatch::tokens`]) and so
    /// needs a dataset with words and a text encoder ([`crate::data::tokens`]). Default: no (MISA
    /// reads them only with its BERT text path).
    fn needs_tokens(_cfg: &Self::Config) -> bool {
        false
    }

    /// Loads pretrained weights into the model's variables. The trainer calls it once, **after**
    /// seeding every variable ([`crate::train::build_model`]), so pretrained values are not
    /// overwritten. Default: nothing to load.
    fn load_pretrained(&self, _vm: &VarMap, _ctx: &BuildCtx) -> candle_core::Result<()> {
        Ok(())
    }

    /// The learning rate of the variable `name` when the protocol's rate is `base` (parameter
    /// groups: e.g. a pretrained encoder at its own small rate); `None` keeps the variable out of
    /// the main optimiser (frozen, or trained only by an [`ExtraStage`]). Default: `base` for all.
    fn learning_rate(&self, _name: &str, base: f64) -> Option<f64> {
        Some(base)
    }

    /// Called by the trainer once after [`Self::load_pretrained`], with the whole dataset, before
    /// any training step: e.g. to fill a frozen encoder's feature cache for every split
    /// ([`frozen_text`]). Default: nothing.
    fn prepare(&self, _ds: &Dataset) -> candle_core::Result<()> {
        Ok(())
    }

    /// Called by the trainer at the start of every training epoch (before any stage), e.g. to
    /// clear a memory of earlier batches. Default: nothing.
    fn on_epoch_start(&self) {}

    /// The model's extra optimisation stage, if it has one. Default: none.
    fn extra_stage(&self) -> Option<ExtraStage> {
        None
    }

    /// Whether the variable `name` is optimised by the [`ExtraStage`]. Default: none is.
    fn in_extra_stage(&self, _name: &str) -> bool {
        false
    }

    /// The loss the [`ExtraStage`] minimises on a training batch. Default: an error (only called
    /// when [`Self::extra_stage`] is `Some`).
    fn extra_stage_loss(&self, _b: &SeqBatch) -> candle_core::Result<Tensor> {
        candle_core::bail!("{} has no extra optimisation stage", Self::NAME)
    }
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
            /// Whether the model **with its default configuration** reads BERT tokens
            /// ([`FusionModel::needs_tokens`]; MISA does only with its BERT text path, see
            /// [`ModelConfig::needs_tokens`]).
            pub fn needs_tokens(self) -> bool {
                self.default_config().needs_tokens()
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
            /// Whether this configuration reads BERT tokens ([`FusionModel::needs_tokens`]).
            pub fn needs_tokens(&self) -> bool {
                match self { $( ModelConfig::$variant(c) => <$ty as FusionModel>::needs_tokens(c) ),* }
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
    /// MAG-BERT ("MAGBERT"): a multimodal adaptation gate between BERT's embeddings and encoder.
    Magbert => mag_bert::MagBert,
    /// MMIM ("MIM"): BERT text, BiLSTM audio/vision, MI lower bounds and CPC, two-stage training.
    Mim => mmim::Mmim,
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
        let Some(m) = self.keep_mask(x.elem_count(), train) else {
            return Ok(x.clone());
        };
        let mask = Tensor::from_vec(m, x.shape(), &Device::Cpu)?
            .to_dtype(x.dtype())?
            .to_device(x.device())?;
        x * mask
    }

    /// The keep-mask [`forward`](Self::forward) would multiply `n` values by (`0` or `1/(1−p)`
    /// each, row-major), drawn from the same stream and advancing it the same way; `None` (and no
    /// draw) when not `train` or `p = 0`. For ops that apply the mask themselves
    /// ([`crate::synergy::ops::outer3`]).
    pub fn keep_mask(&self, n: usize, train: bool) -> Option<Vec<f32>> {
        if !train || self.p == 0.0 {
            return None;
        }
        let c = self.calls.get();
        self.calls.set(c + 1);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let keep = (1.0 / (1.0 - self.p)) as f32;
        // The stream of `rng.random::<f64>() < p` (kept identical), without its per-call cost:
        // rand's f64 is `(w >> 11) · 2⁻⁵³` of the next u64 word `w`, and `p · 2⁵³` is exact, so the
        // test is `(w >> 11) < ⌈p · 2⁵³⌉`; the words are drawn in one `fill` (the same sequence as
        // one `next_u64` per element). 15 % of a TFN step was this loop's per-element f64 draw.
        let threshold = (self.p * 2f64.powi(53)).ceil() as u64;
        let mut words = vec![0u64; n];
        rng.fill(&mut words[..]);
        Some(
            words
                .iter()
                .map(|&w| if (w >> 11) < threshold { 0.0 } else { keep })
                .collect(),
        )
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
