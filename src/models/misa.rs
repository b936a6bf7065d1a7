//! MISA (Hazarika et al. 2020, "Modality-Invariant and -Specific Representations for Multimodal
//! Sentiment Analysis"), after MMSA's `models/singleTask/MISA.py` and `trains/singleTask/MISA.py`
//! with MMSA's MOSI defaults (`config/config_regression.json`, `misa` → `mosi`).
//!
//! # Structure
//! 1. **Utterance encoders.** Audio and vision (and text, see below) go through MMSA's
//!    `extract_features`: a bidirectional LSTM `BiLSTM(d, h)`, a LayerNorm over its `2h` outputs, a
//!    second `BiLSTM(2h, h)`; the utterance vector is the concatenation of the final hidden states
//!    of both layers and both directions, in PyTorch's order
//!    `u = [h₁→, h₂→, h₁←, h₂←] ∈ ℝ^{4h}` (MMSA: `h = d`, the input width).
//! 2. **Projection** `z_m = LN(ReLU(W_m u_m + b_m)) ∈ ℝ^H` (`H = hidden`, 128).
//! 3. **Private / shared encoders** `p_m = σ(P_m z_m)` (one per modality) and `s_m = σ(S z_m)`
//!    (**one** `S` for all three modalities).
//! 4. **Reconstruction** `r_m = R_m (p_m + s_m)`.
//! 5. **Fusion**: the six vectors `(p_t, p_v, p_a, s_t, s_v, s_a)` form a length-6 sequence for one
//!    post-LN transformer encoder layer (PyTorch's `nn.TransformerEncoderLayer` defaults: `heads`
//!    heads, feed-forward width 2048, ReLU, dropout 0.1 on the attention weights, after the
//!    attention and inside/after the feed-forward):
//!    `x ← LN₁(x + Drop(MHA(x)))`, `x ← LN₂(x + Drop(W₂ Drop(ReLU(W₁ x))))`. The six outputs are
//!    concatenated (`6H`) and read by `W_o Drop(ReLU(W_f h))` (MMSA: Linear → Dropout → ReLU →
//!    Linear; dropout and ReLU commute for inverted dropout, so the order here is the same function).
//!
//! # Auxiliary losses (returned weighted in [`ModelOutput::aux_loss`] when `train`)
//! `L_aux = diff_weight·L_diff + sim_weight·L_sim + recon_weight·L_recon` with
//! * `L_diff = Σ_m D(p_m, s_m) + D(p_a, p_t) + D(p_a, p_v) + D(p_t, p_v)` ([`diff_loss`]);
//! * `L_sim = (CMD₅(s_t, s_v) + CMD₅(s_t, s_a) + CMD₅(s_a, s_v)) / 3` ([`cmd_loss`]);
//! * `L_recon = (1/3) Σ_m mean((r_m − z_m)²)`.
//!
//! MMSA trains MISA with the **MSE** task loss (`nn.MSELoss`); the generic trainer's default here
//! is L1, so pass MSE to reproduce MMSA's criterion.
//!
//! # Representations for the C-network
//! * `Z_t, Z_a, Z_v` = the projected utterance vectors `z_m` (`H` = 128 wide). Each is the single
//!   vector through which all of a modality's information reaches the model (both `p_m` and `s_m`
//!   are functions of it, and it is the reconstruction target), so regularising it acts on the
//!   whole modality path without favouring the private or the shared half, and its width is the
//!   same for all three modalities.
//! * `Z` = the first hidden layer of the output MLP, `ReLU(W_f h)` (before the dropout;
//!   `fusion_hidden` = 384 = 3H as in MMSA). It is the last fused representation before the
//!   prediction and is narrower than the 6H = 768 transformer concatenation (it is above the
//!   ~300 guideline only because MMSA's width is 3H; `fusion_hidden` can lower it).
//!
//! # Text path (`text_encoder`)
//! * [`TextEncoderKind::Lstm`] (default) reads the word vectors with the same BiLSTM–LN–BiLSTM as
//!   audio and vision (as the original MISA code does for GloVe input).
//! * [`TextEncoderKind::Bert`] is MMSA's MISA (`use_bert`): the clip's BERT tokens
//!   ([`SeqBatch::tokens`], `[CLS] word-pieces [SEP]`) go through a trainable BERT
//!   ([`BertBackbone`], no pooler, weights from the checkpoint via
//!   [`FusionModel::load_pretrained`]) and the text utterance vector is the **attention-masked mean
//!   of the last hidden state** over `[CLS]`, the word-pieces and `[SEP]` (MMSA's
//!   `sum(mask·h)/sum(mask)`), `H` wide (768 for bert-base, 384 for MiniLM), then the projection
//!   `z_t = LN(ReLU(W_t u_t))` as before. Options in `bert` ([`MisaBert`]): `lr` (the BERT
//!   variables' learning rate, default 1e-4 = MMSA's MISA rate on MOSI), `finetune` (default true,
//!   MMSA's `use_finetune`), `dropout` (BERT's hidden dropout, 0.1) and `feature_cache` (frozen
//!   BERT only: cache the masked means, [`super::bert::frozen`]). This path reads tokens, so it is
//!   not applicable on tiers without words (as MAG-BERT and MMIM).
//! * [`TextEncoderKind::MaskedMean`] is the BERT path minus BERT: the masked time-mean of the text
//!   inputs (e.g. precomputed BERT token outputs), projected.
//! * [`Misa::forward_with_text`] takes any precomputed text utterance vector
//!   (`B × text_utterance_dim()`) in place of the encoder.
//!
//! # Deviations from MMSA
//! * Text, LSTM path: MMSA's MISA requires BERT (`assert use_bert`); the LSTM path is the original
//!   MISA's GloVe path. The text LSTMs' hidden size is
//!   `text_hidden` = 128, not the input width (300) that the original MISA uses with GloVe: at 300
//!   the text LSTMs hold 3.6 M of 5.1 M parameters and one epoch on the synthetic MOSI tier (batch
//!   32, one thread) takes ≈ 2.5× as long. `text_hidden: null` restores the original width.
//! * Text, BERT path: MMSA trains BERT and the rest with **one** Adam at MISA's learning rate
//!   (1e-4 on MOSI); here BERT is its own parameter group at `bert.lr` (default the same 1e-4) and
//!   the rest at the protocol's grid rate, with AdamW and the protocol's norm clip. MMSA's
//!   projection `project_t` is hard-coded 768 wide; here it is the checkpoint's hidden size. The
//!   dropout on BERT's attention probabilities is omitted ([`super::bert::backbone`]). A frozen,
//!   cached BERT runs in inference mode (MMSA's frozen BERT keeps its dropout;
//!   [`super::bert::frozen`]). Audio and vision are packed with the word-step lengths (MMSA packs
//!   them with the BERT token count, see below).
//! * Bidirectional LSTMs (`BiLstm`) are two [`FastLstm`](super::layers::lstm::FastLstm)s
//!   (candle-nn's weights, whole-sequence kernel) that run each sequence's valid steps only; the backward one reads each sequence reversed within its
//!   valid length (PyTorch packs by length), so padding never changes an output.
//! * The output is one value; for [`Task::Binary`](crate::data::Task::Binary) it is a logit (MMSA's
//!   classification head has `num_classes` outputs and cross-entropy).
//! * CMD's Euclidean norms are `sqrt(Σ(·)² + 1e-30)` so that the gradient at a zero difference
//!   (e.g. a batch of one clip, whose central moments are all 0) is 0 rather than NaN; the value
//!   changes by at most 5·10⁻¹⁵.
//! * Not ported: MMSA's unused `sp_discriminator` (its output never enters a loss), the adversarial
//!   discriminator (only used when `use_cmd_sim` is false; MMSA's MOSI config sets it true), Adam
//!   with `clip_grad_value_` and gradient accumulation over `update_epochs` = 2 batches (the generic
//!   trainer's optimiser and clipping are used).
//! * The attention's key projection has no bias: `q·(k + b_k)` shifts every score of a query by
//!   the same `q·b_k`, which the softmax removes, so PyTorch's key bias never changes an output
//!   and never receives a gradient.
//! * Weights are initialised by the trainer (`seed_varmap`), not PyTorch's per-module defaults
//!   (e.g. Xavier for the attention input projection).
//! * MMSA packs audio and vision with the text token count; here all modalities share one
//!   (word-aligned) length, so the quirk does not arise.

use super::bert::backbone::{config_for, load_from_ctx, BertBackbone};
use super::bert::frozen::{FrozenText, Pooling};
use super::layers::lstm::{BiLstm, Reversal};
use super::mag_bert::tokens_of;
use super::{
    check_dropout, check_width, masked_mean, BuildCtx, Checked, FusionModel, ModelOutput,
    ModelParams, SeededDropout, Validate,
};
use crate::data::{Dataset, SeqBatch};
use crate::error::{check_non_negative, check_positive, ParamError};
use candle_core::{Tensor, D};
use candle_nn::{linear, Init, Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

/// How the text utterance vector is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextEncoderKind {
    /// BiLSTM → LayerNorm → BiLSTM over the word vectors (as audio and vision).
    #[default]
    Lstm,
    /// Masked time-mean of the text inputs (MMSA's treatment of BERT token outputs).
    MaskedMean,
    /// A trainable BERT over the clip's tokens, masked mean of its last hidden state (MMSA's
    /// MISA with `use_bert`); needs a dataset with words and a text encoder.
    Bert,
}

/// Options of the BERT text path ([`TextEncoderKind::Bert`]; ignored by the other paths).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MisaBert {
    /// Learning rate of the BERT variables (default 1e-4: MMSA's single MISA rate on MOSI).
    pub lr: f64,
    /// Fine-tune BERT (MMSA `use_finetune` true); `false` freezes it.
    pub finetune: bool,
    /// BERT's hidden dropout in training mode (`hidden_dropout_prob` 0.1).
    pub dropout: f64,
    /// With a frozen BERT: compute each clip's masked mean once and cache it in memory and on
    /// disk ([`super::bert::frozen`]) instead of running BERT at every step.
    pub feature_cache: bool,
}

impl Default for MisaBert {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            finetune: true,
            dropout: 0.1,
            feature_cache: true,
        }
    }
}

impl MisaBert {
    /// Whether these are the defaults (then they are left out of the serialised configuration,
    /// so the JSON — and the run keys — of every existing MISA configuration are unchanged).
    pub(crate) fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// MISA hyper-parameters (MMSA's MOSI defaults where MMSA has the field).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MisaConfig {
    /// `H`: width of the projected, private and shared vectors (MMSA `hidden_size` 128).
    pub hidden: usize,
    /// Text encoder.
    pub text_encoder: TextEncoderKind,
    /// Options of the BERT text path (serialised only when not the defaults).
    #[serde(default, skip_serializing_if = "MisaBert::is_default")]
    pub bert: MisaBert,
    /// Hidden size of the text LSTMs (default 128; `None`: the text input width, as the original
    /// MISA sets the LSTM hidden size of every modality — 300 for GloVe, ≈ 2.5× slower here).
    pub text_hidden: Option<usize>,
    /// Dropout in the output MLP (MMSA `dropout` 0.2).
    pub dropout: f64,
    /// Dropout inside the transformer layer (PyTorch's default 0.1; MMSA does not set it).
    pub transformer_dropout: f64,
    /// Attention heads (MMSA 2); must divide `hidden`.
    pub heads: usize,
    /// Feed-forward width of the transformer layer (PyTorch's default 2048).
    pub ffn: usize,
    /// Width of the output MLP's hidden layer (MMSA `3·hidden_size`); this is `Z`.
    pub fusion_hidden: usize,
    /// Weight of the difference (orthogonality) loss (MMSA 0.1).
    pub diff_weight: f64,
    /// Weight of the CMD similarity loss (MMSA 0.3).
    pub sim_weight: f64,
    /// Weight of the reconstruction loss (MMSA 1.0).
    pub recon_weight: f64,
    /// Moments matched by CMD (MMSA 5).
    pub cmd_moments: usize,
}

impl Default for MisaConfig {
    fn default() -> Self {
        Self {
            hidden: 128,
            text_encoder: TextEncoderKind::Lstm,
            bert: MisaBert::default(),
            text_hidden: Some(128),
            dropout: 0.2,
            transformer_dropout: 0.1,
            heads: 2,
            ffn: 2048,
            fusion_hidden: 384,
            diff_weight: 0.1,
            sim_weight: 0.3,
            recon_weight: 1.0,
            cmd_moments: 5,
        }
    }
}

impl ModelParams for MisaConfig {}

impl Validate for MisaConfig {
    fn validate(&self) -> Result<(), ParamError> {
        check_width("hidden", self.hidden)?;
        if let Some(h) = self.text_hidden {
            check_width("text_hidden", h)?;
        }
        check_width("heads", self.heads)?;
        if !self.hidden.is_multiple_of(self.heads) {
            return Err(ParamError::new(
                "heads",
                format!("({}) must divide hidden ({})", self.heads, self.hidden),
            ));
        }
        check_width("ffn", self.ffn)?;
        check_width("fusion_hidden", self.fusion_hidden)?;
        check_width("cmd_moments", self.cmd_moments)?;
        check_dropout("dropout", self.dropout)?;
        check_dropout("transformer_dropout", self.transformer_dropout)?;
        check_dropout("bert.dropout", self.bert.dropout)?;
        check_positive("bert.lr", self.bert.lr)?;
        check_non_negative("diff_weight", self.diff_weight)?;
        check_non_negative("sim_weight", self.sim_weight)?;
        check_non_negative("recon_weight", self.recon_weight)
    }
}

/// `sqrt(Σ x² + 1e-30)`: the Euclidean norm of a vector, with a zero gradient at `x = 0`.
fn norm2(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.sqr()?.sum_all()? + 1e-30)?.sqrt()
}

/// Central moment discrepancy (Zellinger et al. 2017, without the range normalisation, as MMSA's
/// `CMD`) between the rows of `x1` (`n₁ × d`) and `x2` (`n₂ × d`):
///
/// `CMD_K(x1, x2) = ‖μ₁ − μ₂‖₂ + Σ_{k=2..K} ‖c_k(x1) − c_k(x2)‖₂`, with `μ = mean_rows(x)` and
/// `c_k(x) = mean_rows((x − μ)^k)` (element-wise powers; column vectors of length `d`).
/// Each norm is computed as `sqrt(Σ(·)² + 1e-30)` (see the module docs).
pub fn cmd_loss(x1: &Tensor, x2: &Tensor, moments: usize) -> candle_core::Result<Tensor> {
    let m1 = x1.mean_keepdim(0)?;
    let m2 = x2.mean_keepdim(0)?;
    let c1 = x1.broadcast_sub(&m1)?;
    let c2 = x2.broadcast_sub(&m2)?;
    let mut total = norm2(&(&m1 - &m2)?)?;
    let (mut p1, mut p2) = (c1.clone(), c2.clone());
    for _ in 2..=moments {
        p1 = (&p1 * &c1)?;
        p2 = (&p2 * &c2)?;
        let d = (p1.mean(0)? - p2.mean(0)?)?;
        total = (total + norm2(&d)?)?;
    }
    Ok(total)
}

/// MMSA's `DiffLoss` (soft orthogonality) between `x1` (`n × d₁`) and `x2` (`n × d₂`):
///
/// `D(x1, x2) = (1/(d₁d₂)) Σ_{i,j} (X̃₁ᵀ X̃₂)²_{ij}`, where `X̃ = (x − mean_rows(x)) / (‖row‖₂ + 10⁻⁶)`:
/// columns are centred, then every row is divided by its L2 norm (the norm is treated as a
/// constant in the gradient, as MMSA detaches it).
pub fn diff_loss(x1: &Tensor, x2: &Tensor) -> candle_core::Result<Tensor> {
    let prep = |x: &Tensor| -> candle_core::Result<Tensor> {
        let c = x.broadcast_sub(&x.mean_keepdim(0)?)?;
        let n = (c.sqr()?.sum_keepdim(1)?.sqrt()?.detach() + 1e-6)?;
        c.broadcast_div(&n)
    };
    let a = prep(x1)?;
    let b = prep(x2)?;
    a.t()?.matmul(&b)?.sqr()?.mean_all()
}

/// A linear layer through the fused row op (same values; the bias gradient without candle's
/// strided reduction): see [`crate::kernels::linear_rows`].
fn lin(layer: &Linear, x: &Tensor) -> candle_core::Result<Tensor> {
    crate::kernels::linear_rows(layer, x)
}

/// Layer normalisation over the last dimension, `γ ⊙ (x − mean) / sqrt(var + 1e-5) + β`
/// (PyTorch's `nn.LayerNorm`; written with plain tensor ops so that it runs in f32 and f64 —
/// candle-nn's fused kernel has no f64 version).
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn new(size: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let c = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = c.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = c.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        crate::kernels::scale_shift(&normed, &self.weight, &self.bias)
    }
}

/// MMSA's `extract_features`: BiLSTM → LayerNorm → BiLSTM, utterance `[h₁→, h₂→, h₁←, h₂←]`.
struct UtteranceLstm {
    rnn1: BiLstm,
    norm: LayerNorm,
    rnn2: BiLstm,
}

impl UtteranceLstm {
    fn new(d: usize, h: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            rnn1: BiLstm::new(d, h, vb.pp("rnn1"))?,
            norm: LayerNorm::new(2 * h, vb.pp("norm"))?,
            rnn2: BiLstm::new(2 * h, h, vb.pp("rnn2"))?,
        })
    }

    fn forward(&self, x: &Tensor, p: &Reversal) -> candle_core::Result<Tensor> {
        let (o1, h1f, h1b) = self.rnn1.forward(x, p)?;
        let (_, h2f, h2b) = self.rnn2.forward(&self.norm.forward(&o1)?, p)?;
        Tensor::cat(&[h1f, h2f, h1b, h2b], 1)
    }
}

/// The text path (a switch, so that other text encoders can be added).
enum TextEncoder {
    Lstm(Box<UtteranceLstm>),
    MaskedMean,
    Bert {
        bert: Box<BertBackbone>,
        /// `Some` when BERT is frozen and its outputs are cached.
        cache: Option<FrozenText>,
    },
}

/// `Linear → ReLU → LayerNorm`.
struct Projection {
    lin: Linear,
    norm: LayerNorm,
}

impl Projection {
    fn new(d: usize, h: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            lin: linear(d, h, vb.pp("lin"))?,
            norm: LayerNorm::new(h, vb.pp("norm"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.norm.forward(&lin(&self.lin, x)?.relu()?)
    }
}

/// One post-LN transformer encoder layer (PyTorch's `nn.TransformerEncoderLayer`, ReLU).
struct EncoderLayer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ff1: Linear,
    ff2: Linear,
    ln1: LayerNorm,
    ln2: LayerNorm,
    heads: usize,
    drop_attn: SeededDropout,
    drop1: SeededDropout,
    drop_ff: SeededDropout,
    drop2: SeededDropout,
}

impl EncoderLayer {
    fn new(cfg: &MisaConfig, seed: u64, vb: VarBuilder) -> candle_core::Result<Self> {
        let (h, p) = (cfg.hidden, cfg.transformer_dropout);
        Ok(Self {
            q: linear(h, h, vb.pp("q"))?,
            k: candle_nn::linear_no_bias(h, h, vb.pp("k"))?,
            v: linear(h, h, vb.pp("v"))?,
            o: linear(h, h, vb.pp("o"))?,
            ff1: linear(h, cfg.ffn, vb.pp("ff1"))?,
            ff2: linear(cfg.ffn, h, vb.pp("ff2"))?,
            ln1: LayerNorm::new(h, vb.pp("ln1"))?,
            ln2: LayerNorm::new(h, vb.pp("ln2"))?,
            heads: cfg.heads,
            drop_attn: SeededDropout::new(p, seed ^ 0xA1),
            drop1: SeededDropout::new(p, seed ^ 0xA2),
            drop_ff: SeededDropout::new(p, seed ^ 0xA3),
            drop2: SeededDropout::new(p, seed ^ 0xA4),
        })
    }

    /// `x`: `B × S × H` → `B × S × H`.
    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let dh = h / self.heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, self.heads, dh))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(lin(&self.q, x)?)?;
        let k = split(lin(&self.k, x)?)?;
        let v = split(lin(&self.v, x)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (dh as f64).sqrt())?;
        let w = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let w = self.drop_attn.forward(&w, train)?;
        let a = w
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, s, h))?;
        let a = self.drop1.forward(&lin(&self.o, &a)?, train)?;
        let x = self.ln1.forward(&(x + a)?)?;
        let f = lin(&self.ff1, &x)?.relu()?;
        let f = lin(&self.ff2, &self.drop_ff.forward(&f, train)?)?;
        let f = self.drop2.forward(&f, train)?;
        self.ln2.forward(&(x + f)?)
    }
}

/// The model.
pub struct Misa {
    text: TextEncoder,
    audio: UtteranceLstm,
    vision: UtteranceLstm,
    /// Projections of text, audio, vision.
    project: [Projection; 3],
    /// Private encoders of text, audio, vision.
    private: [Linear; 3],
    shared: Linear,
    /// Reconstruction decoders of text, audio, vision.
    recon: [Linear; 3],
    encoder: EncoderLayer,
    fusion1: Linear,
    fusion2: Linear,
    dropout: SeededDropout,
    text_dim: usize,
    cfg: MisaConfig,
}

impl std::fmt::Debug for Misa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Misa")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// The per-modality intermediate vectors of one forward pass (order text, audio, vision).
struct Parts {
    projected: Vec<Tensor>,
    private: Vec<Tensor>,
    shared: Vec<Tensor>,
    recon: Vec<Tensor>,
}

impl Misa {
    /// Width of the text utterance vector fed to the text projection (`4·text_hidden` for the
    /// LSTM path, the text input width for the masked mean); what [`Misa::forward_with_text`]
    /// expects.
    pub fn text_utterance_dim(&self) -> usize {
        self.text_dim
    }

    /// The text utterance vector (`B × text_utterance_dim()`) of the configured text encoder.
    pub fn text_utterance(&self, b: &SeqBatch) -> candle_core::Result<Tensor> {
        self.encode_text(b, &Reversal::new(b)?, false)
    }

    fn encode_text(&self, b: &SeqBatch, p: &Reversal, train: bool) -> candle_core::Result<Tensor> {
        match &self.text {
            TextEncoder::Lstm(enc) => enc.forward(&b.inputs[0], p),
            TextEncoder::MaskedMean => masked_mean(&b.inputs[0], &b.mask),
            TextEncoder::Bert { bert, cache } => {
                let tk = tokens_of(b, Self::NAME)?;
                if let Some(c) = cache {
                    return c.pooled(bert, tk);
                }
                let e = bert.embed_dropout(&bert.embed(&tk.ids, &tk.segment)?, train)?;
                let m = masked_mean(&bert.encode(&e, &tk.mask, train)?, &tk.mask)?;
                Ok(if self.cfg.bert.finetune {
                    m
                } else {
                    m.detach()
                })
            }
        }
    }

    /// The frozen BERT's feature cache (`None` unless the BERT text path is frozen with
    /// `feature_cache`).
    pub fn frozen_text(&self) -> Option<&FrozenText> {
        match &self.text {
            TextEncoder::Bert { cache, .. } => cache.as_ref(),
            _ => None,
        }
    }

    /// The forward pass with a precomputed text utterance vector `utt_t`
    /// (`B × text_utterance_dim()`, e.g. a pooled BERT output) in place of the text encoder;
    /// audio and vision are read from `b`.
    pub fn forward_with_text(
        &self,
        b: &SeqBatch,
        utt_t: &Tensor,
        train: bool,
    ) -> candle_core::Result<ModelOutput> {
        let want = (b.lengths.len(), self.text_dim);
        if utt_t.dims2()? != want {
            return Err(candle_core::Error::msg(format!(
                "MISA: text utterance must be {want:?}, got {:?}",
                utt_t.dims()
            )));
        }
        let p = Reversal::new(b)?;
        self.head(b, utt_t, &p, train)
    }

    fn head(
        &self,
        b: &SeqBatch,
        utt_t: &Tensor,
        p: &Reversal,
        train: bool,
    ) -> candle_core::Result<ModelOutput> {
        let utt_a = self.audio.forward(&b.inputs[1], p)?;
        let utt_v = self.vision.forward(&b.inputs[2], p)?;
        let mut parts = Parts {
            projected: Vec::new(),
            private: Vec::new(),
            shared: Vec::new(),
            recon: Vec::new(),
        };
        for (m, u) in [utt_t, &utt_a, &utt_v].into_iter().enumerate() {
            let z = self.project[m].forward(u)?;
            let pm = candle_nn::ops::sigmoid(&lin(&self.private[m], &z)?)?;
            let sm = candle_nn::ops::sigmoid(&lin(&self.shared, &z)?)?;
            parts.recon.push(lin(&self.recon[m], &(&pm + &sm)?)?);
            parts.projected.push(z);
            parts.private.push(pm);
            parts.shared.push(sm);
        }
        // MMSA's token order: private t, v, a, then shared t, v, a
        let order = [0, 2, 1];
        let tokens: Vec<Tensor> = order
            .iter()
            .map(|&m| parts.private[m].clone())
            .chain(order.iter().map(|&m| parts.shared[m].clone()))
            .collect();
        let seq = Tensor::stack(&tokens, 1)?; // B × 6 × H
        let h = self.encoder.forward(&seq, train)?;
        let bsz = h.dim(0)?;
        let h = h.reshape((bsz, 6 * self.cfg.hidden))?;
        let fused = lin(&self.fusion1, &h)?.relu()?;
        let x = self.dropout.forward(&fused, train)?;
        let prediction = lin(&self.fusion2, &x)?.squeeze(1)?;
        let aux_loss = if train {
            Some(self.aux_loss(&parts)?)
        } else {
            None
        };
        Ok(ModelOutput {
            unimodal: parts.projected,
            fused,
            prediction,
            aux_loss,
        })
    }

    /// `diff_weight·L_diff + sim_weight·L_sim + recon_weight·L_recon` (module docs).
    fn aux_loss(&self, p: &Parts) -> candle_core::Result<Tensor> {
        let (pt, pa, pv) = (&p.private[0], &p.private[1], &p.private[2]);
        let (st, sa, sv) = (&p.shared[0], &p.shared[1], &p.shared[2]);
        let diff = (((((diff_loss(pt, st)? + diff_loss(pv, sv)?)? + diff_loss(pa, sa)?)?
            + diff_loss(pa, pt)?)?
            + diff_loss(pa, pv)?)?
            + diff_loss(pt, pv)?)?;
        let k = self.cfg.cmd_moments;
        let sim = (((cmd_loss(st, sv, k)? + cmd_loss(st, sa, k)?)? + cmd_loss(sa, sv, k)?)? / 3.0)?;
        let mut recon = Vec::with_capacity(3);
        for (r, z) in p.recon.iter().zip(&p.projected) {
            recon.push((r - z)?.sqr()?.mean_all()?);
        }
        let recon = (Tensor::stack(&recon, 0)?.sum_all()? / 3.0)?;
        let total = ((diff * self.cfg.diff_weight)? + (sim * self.cfg.sim_weight)?)?;
        total + (recon * self.cfg.recon_weight)?
    }
}

impl FusionModel for Misa {
    type Config = MisaConfig;
    const NAME: &'static str = "MISA";

    fn new(cfg: &Checked<MisaConfig>, ctx: &BuildCtx, vb: VarBuilder) -> candle_core::Result<Self> {
        let cfg: MisaConfig = **cfg;
        let [dt, da, dv] = ctx.dims;
        let hidden = cfg.hidden;
        let (text, text_dim) = match cfg.text_encoder {
            TextEncoderKind::Lstm => {
                let th = cfg.text_hidden.unwrap_or(dt);
                (
                    TextEncoder::Lstm(Box::new(UtteranceLstm::new(dt, th, vb.pp("text_rnn"))?)),
                    4 * th,
                )
            }
            TextEncoderKind::MaskedMean => (TextEncoder::MaskedMean, dt),
            TextEncoderKind::Bert => {
                let bc = config_for(ctx, Self::NAME)?;
                let h = bc.hidden_size;
                let bert = BertBackbone::new(
                    &bc,
                    false,
                    cfg.bert.dropout,
                    ctx.seed ^ 0xB2,
                    vb.pp("bert"),
                )?
                .frozen(!cfg.bert.finetune);
                let cache = (!cfg.bert.finetune && cfg.bert.feature_cache)
                    .then(|| FrozenText::new(Pooling::Mean, h, FrozenText::default_dir()));
                (
                    TextEncoder::Bert {
                        bert: Box::new(bert),
                        cache,
                    },
                    h,
                )
            }
        };
        let names = ["t", "a", "v"];
        let in_dims = [text_dim, 4 * da, 4 * dv];
        let mk =
            |f: &dyn Fn(usize) -> candle_core::Result<Linear>| -> candle_core::Result<[Linear; 3]> {
                Ok([f(0)?, f(1)?, f(2)?])
            };
        let project = [
            Projection::new(in_dims[0], hidden, vb.pp("project_t"))?,
            Projection::new(in_dims[1], hidden, vb.pp("project_a"))?,
            Projection::new(in_dims[2], hidden, vb.pp("project_v"))?,
        ];
        let private = mk(&|m| linear(hidden, hidden, vb.pp(format!("private_{}", names[m]))))?;
        let recon = mk(&|m| linear(hidden, hidden, vb.pp(format!("recon_{}", names[m]))))?;
        Ok(Self {
            text,
            audio: UtteranceLstm::new(da, da, vb.pp("audio_rnn"))?,
            vision: UtteranceLstm::new(dv, dv, vb.pp("vision_rnn"))?,
            project,
            private,
            shared: linear(hidden, hidden, vb.pp("shared"))?,
            recon,
            encoder: EncoderLayer::new(&cfg, ctx.seed ^ 0x715A_0000, vb.pp("transformer"))?,
            fusion1: linear(6 * hidden, cfg.fusion_hidden, vb.pp("fusion1"))?,
            fusion2: linear(cfg.fusion_hidden, 1, vb.pp("fusion2"))?,
            dropout: SeededDropout::new(cfg.dropout, ctx.seed ^ 0x715A_00F0),
            text_dim,
            cfg,
        })
    }

    fn rep_dims(&self) -> (Vec<usize>, usize) {
        (vec![self.cfg.hidden; 3], self.cfg.fusion_hidden)
    }

    fn forward(&self, b: &SeqBatch, train: bool) -> candle_core::Result<ModelOutput> {
        let p = Reversal::new(b)?;
        let utt_t = self.encode_text(b, &p, train)?;
        self.head(b, &utt_t, &p, train)
    }

    fn needs_tokens(cfg: &MisaConfig) -> bool {
        cfg.text_encoder == TextEncoderKind::Bert
    }

    fn load_pretrained(&self, vm: &VarMap, ctx: &BuildCtx) -> candle_core::Result<()> {
        match self.text {
            TextEncoder::Bert { .. } => load_from_ctx(vm, ctx),
            _ => Ok(()),
        }
    }

    fn learning_rate(&self, name: &str, base: f64) -> Option<f64> {
        if name.starts_with("bert.") {
            self.cfg.bert.finetune.then_some(self.cfg.bert.lr)
        } else {
            Some(base)
        }
    }

    fn prepare(&self, ds: &Dataset) -> candle_core::Result<()> {
        match &self.text {
            TextEncoder::Bert {
                bert,
                cache: Some(c),
            } => c
                .prepare_dataset(bert, ds)
                .map_err(|e| candle_core::Error::Msg(format!("MISA: {e}"))),
            _ => Ok(()),
        }
    }
}
