//! Fusion models, one file each, behind one trait ([`FusionModel`]) and one registry
//! (`fusion_models!` → [`ModelKind`], [`ModelConfig`]); the building blocks they share are in
//! [`layers`].
//!
//! A model is built from its configuration, the data's shape ([`BuildCtx`]) and a candle
//! [`VarBuilder`] (the trainer owns the `VarMap`, as in candle's mnist-training example); its
//! forward pass returns the unimodal representations `Z_t, Z_a, Z_v`, the fused representation `Z`
//! and the prediction ([`ModelOutput`]), so every model trains with or without the C-network
//! through the same generic trainer ([`crate::train::train_run`]).
//!
//! **Adding a model** = one new file here implementing [`FusionModel`] (with a serialisable
//! `Config: Default`) and one line in the `fusion_models!` invocation below.
//!
//! # Names
//!
//! A model goes by several names. `--models` takes the CLI name (also the `"model"` tag of its
//! stored configuration, [`ModelConfig`]); tables and reports print [`ModelKind::name`] (the
//! type's [`FusionModel::NAME`]); the paper's tables and MMSA (the key of `MODEL_MAP` in
//! `models/AMIO.py`, the class in `models/singleTask/`) may call it otherwise.
//!
//! | CLI (`--models`) | file | Rust type | table name | paper's label | MMSA name (class) |
//! |---|---|---|---|---|---|
//! | `flstm` | [`ef_lstm.rs`](ef_lstm) | [`EfLstm`](ef_lstm::EfLstm) | FLSTM | FLSTM | `ef_lstm` (`EF_LSTM`) |
//! | `tfn` | [`tfn.rs`](tfn) | [`Tfn`](tfn::Tfn) | TFN | LFN | `tfn` (`TFN`) |
//! | `lmf` | [`lmf.rs`](lmf) | [`Lmf`](lmf::Lmf) | LMF | LMF | `lmf` (`LMF`) |
//! | `mfn` | [`mfn.rs`](mfn) (+ `mfn/`) | [`Mfn`](mfn::Mfn) | MFN | MFN | `mfn` (`MFN`) |
//! | `misa` | [`misa.rs`](misa) | [`Misa`](misa::Misa) | MISA | MISA | `misa` (`MISA`) |
//! | `magbert` | [`mag_bert.rs`](mag_bert) | [`MagBert`](mag_bert::MagBert) | MAGBERT | MAGBERT | `bert_mag` (`BERT_MAG`) |
//! | `mim` | [`mmim.rs`](mmim) | [`Mmim`](mmim::Mmim) | MIM | MIM | `mmim` (`MMIM`) |
//!
//! TFN is the paper's "LFN" row (see [`tfn`]); MAG-BERT and MMIM are the authors' names of
//! MAGBERT and MIM.
//!
//! # Layout
//! * this file: the trait, the registry, [`BuildCtx`], the validation helpers;
//! * one file per model (above); MFN's fused memory recurrence, step-by-step reference and
//!   configuration sit in `mfn/`;
//! * [`layers`]: the LSTM, the TFN/LMF sub-networks, dropout and pooling. [`lstm`],
//!   [`SeededDropout`], [`masked_mean`] and [`last_valid`] are re-exported here under their
//!   earlier paths;
//! * [`bert`]: the trainable BERT ([`bert::backbone`]) and a frozen BERT's cached pooled outputs
//!   ([`bert::frozen`]) that MAG-BERT, MISA's BERT text path and MMIM build on (the BERT inputs —
//!   tokenizer, frozen encoder, token batches — are [`crate::data::bert`]).

pub mod bert;
pub mod ef_lstm;
pub mod layers;
pub mod lmf;
pub mod mag_bert;
pub mod mfn;
pub mod misa;
pub mod mmim;
pub mod setting;
pub mod tfn;

pub use layers::lstm;
pub use layers::pool::{last_valid, masked_mean};
pub use layers::SeededDropout;
pub use setting::{ModelSetting, ModelSettingError};

use crate::data::{Dataset, SeqBatch, Task};
pub use crate::synergy::ModelOutput;
use candle_core::{DType, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
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

/// Hyper-parameters of a model: a serialisable value with documented defaults whose fields are
/// checked by [`Validate::validate`] (the error names the field and why), once: the model is
/// built from the [`Checked`] value.
pub trait ModelParams:
    Validate
    + Clone
    + Debug
    + PartialEq
    + Default
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
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
    /// Builds the model's variables under `vb` from a checked configuration (its fields are in
    /// their domains: the model does not check them again).
    fn new(
        cfg: &Checked<Self::Config>,
        ctx: &BuildCtx,
        vb: VarBuilder,
    ) -> candle_core::Result<Self>;
    /// Forward pass on a batch (`train` switches dropout, batch statistics and auxiliary losses
    /// on). In training mode a model may return an auxiliary loss (already weighted) in
    /// [`ModelOutput::aux_loss`]; the trainer adds it to the task loss.
    fn forward(&self, b: &SeqBatch, train: bool) -> candle_core::Result<ModelOutput>;
    /// Widths of `Z_t, Z_a, Z_v` and of `Z`.
    fn rep_dims(&self) -> (Vec<usize>, usize);

    /// Whether the model with configuration `cfg` reads BERT tokens ([`SeqBatch::tokens`]) and so
    /// needs a dataset with words and a text encoder ([`crate::data::bert::tokens`]). Default: no (MISA
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
    /// (`frozen_text`). Default: nothing.
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
            /// The name `--models` takes (`magbert`): clap's name of the variant.
            pub fn cli_name(self) -> String {
                clap::ValueEnum::to_possible_value(&self)
                    .map_or_else(|| self.name().to_lowercase(), |p| p.get_name().to_string())
            }
            /// Whether the model **with its default configuration** reads BERT tokens
            /// ([`FusionModel::needs_tokens`]; MISA does only with its BERT text path, see
            /// [`ModelConfig::needs_tokens`]).
            pub fn needs_tokens(self) -> bool {
                self.default_config().needs_tokens()
            }
        }

        impl Validate for ModelConfig {
            /// Checks the hyper-parameters; the error is said of the model (`tfn: …`).
            fn validate(&self) -> Result<(), ParamError> {
                match self { $( ModelConfig::$variant(c) => c.validate() ),* }
                    .map_err(|e| e.of(self.kind().name()))
            }
        }

        impl ModelConfig {
            /// Which model.
            pub fn kind(&self) -> ModelKind {
                match self { $( ModelConfig::$variant(_) => ModelKind::$variant ),* }
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

pub use crate::error::{check_dropout, check_width, ParamError};
pub use crate::params::{Checked, Validate};

/// The floating type used for training.
pub(crate) const TRAIN_DTYPE: DType = DType::F32;
