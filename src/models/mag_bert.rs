//! MAG-BERT (Rahman et al. 2020, "Integrating Multimodal Information in Large Pretrained
//! Transformers"), after MMSA's `models/singleTask/BERT_MAG.py` with MMSA's MOSI defaults
//! (`bert_mag`: β_shift 1, dropout 0.3, lr 2e-5).
//!
//! # Structure
//! 1. BERT embeddings `E = LN(W_word[id] + W_pos + W_type)` of the `text_bert` tokens
//!    ([`crate::data::bert::tokens`]).
//! 2. The **Multimodal Adaptation Gate** at every token, with the word-aligned audio `A` and
//!    vision `V` (one frame per word-piece, zeros at `[CLS]`/`[SEP]`/padding):
//!    * `g_v = ReLU(W_hv [V; E])`, `g_a = ReLU(W_ha [A; E])` (gates, `H` wide);
//!    * `H = g_v ⊙ (W_v V) + g_a ⊙ (W_a A)` (the non-verbal shift);
//!    * `α = min(‖E‖₂ / (‖H‖₂ + 10⁻⁶) · β_shift, 1)` per token (so `‖αH‖ ≤ β_shift‖E‖`);
//!    * output `Drop(LN(αH + E))` (LayerNorm ε = 10⁻⁵, PyTorch's default).
//! 3. The BERT encoder ([`BertBackbone`]), the pooler `tanh(W_p h_[CLS])`, dropout
//!    (`hidden_dropout_prob` 0.1) and a linear head to one output (a logit for binary tasks).
//!
//! `H` = the checkpoint's hidden size (768 for bert-base-uncased, **384** for all-MiniLM-L6-v2,
//! 32 for the test fixture): every 768-wide layer of MMSA becomes `H`.
//!
//! # Representations for the C-network (MAG-BERT has no natural unimodal vectors)
//! `Z_t` = masked mean of `E` over the real tokens, `Z_a` = masked mean of `W_a A`, `Z_v` = masked
//! mean of `W_v V` (the modality's contribution before gating), all `H` wide; `Z` = the pooled
//! output (`H`).
//!
//! # Parameter groups
//! The BERT variables (`bert.*`) train at `bert_lr` (MMSA 2e-5; `finetune: false` freezes them);
//! the MAG and the head at the protocol's learning rate (the paper's grid, Appendix C). MMSA trains
//! everything at 2e-5 with Adam and no weight decay; the generic trainer uses AdamW with the
//! protocol's weight decay and gradient clip 5.
//! A frozen MAG-BERT still runs BERT at every step: it cannot use the frozen-feature cache
//! ([`super::bert::frozen`]) because the gate adds audio and vision inside BERT (after the
//! embeddings), so BERT's output depends on the other modalities and on the trained gate.
//!
//! # Deviations from MMSA / the original
//! * `‖H‖ = 0` is not replaced by 1 as in MMSA: at such a token `αH = 0` whatever `α` is, so the
//!   output is identical; the norms are `sqrt(Σ(·)² + 10⁻³⁰)` so the gradient at 0 is 0, not NaN.
//! * Audio/vision alignment comes from the tier's word steps (see [`crate::data::bert::tokens`]); the
//!   real-text tier's audio/vision are its synthetic per-word cues (74/35 wide), not COVAREP/Facet.
//! * Attention-probability dropout is omitted inside BERT (see [`super::bert::backbone`]).
//! * Loss: the protocol's task loss (L1 for MOSI, as MMSA); MAG-o used MSE with warm-up.

use super::bert::backbone::{config_for, load_from_ctx, BertBackbone, Ln};
use super::{
    check_dropout, BuildCtx, Checked, FusionModel, ModelOutput, ModelParams, SeededDropout,
    Validate,
};
use crate::data::{bert::tokens::TokenBatch, SeqBatch};
use crate::error::{check_positive, ParamError};
use candle_core::{Module, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

/// MAG-BERT hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MagBertConfig {
    /// `β_shift` of the gate's scaling (MMSA 1.0).
    pub beta_shift: f64,
    /// Dropout after the gate's LayerNorm (MMSA MOSI `dropout_prob` 0.3).
    pub mag_dropout: f64,
    /// Dropout inside BERT and before the head (BERT's `hidden_dropout_prob` 0.1).
    pub dropout: f64,
    /// Learning rate of the BERT variables (MMSA 2e-5).
    pub bert_lr: f64,
    /// Fine-tune BERT (`false`: its variables are frozen).
    pub finetune: bool,
}

impl Default for MagBertConfig {
    fn default() -> Self {
        Self {
            beta_shift: 1.0,
            mag_dropout: 0.3,
            dropout: 0.1,
            bert_lr: 2e-5,
            finetune: true,
        }
    }
}

impl ModelParams for MagBertConfig {}

impl Validate for MagBertConfig {
    fn validate(&self) -> Result<(), ParamError> {
        check_positive("beta_shift", self.beta_shift)?;
        check_dropout("mag_dropout", self.mag_dropout)?;
        check_dropout("dropout", self.dropout)?;
        check_positive("bert_lr", self.bert_lr)
    }
}

/// `sqrt(Σ x² + 10⁻³⁰)` over the last dimension (keeps it): a norm with gradient 0 at `x = 0`.
pub(crate) fn safe_norm(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-30)?.sqrt()
}

/// The Multimodal Adaptation Gate (see the module docs).
#[derive(Debug)]
pub struct Mag {
    w_hv: Linear,
    w_ha: Linear,
    w_v: Linear,
    w_a: Linear,
    ln: Ln,
    beta_shift: f64,
    drop: SeededDropout,
}

/// What the gate computed on a batch.
#[derive(Debug, Clone)]
pub struct MagOutput {
    /// `Drop(LN(αH + E))`, `B × L × H`.
    pub out: Tensor,
    /// `α` per token, `B × L × 1`.
    pub alpha: Tensor,
    /// `W_a A` and `W_v V`, `B × L × H` each.
    pub projected: [Tensor; 2],
}

impl Mag {
    /// A gate for text width `h`, audio `da`, vision `dv`.
    pub fn new(
        h: usize,
        da: usize,
        dv: usize,
        beta_shift: f64,
        dropout: f64,
        seed: u64,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            w_hv: linear(dv + h, h, vb.pp("w_hv"))?,
            w_ha: linear(da + h, h, vb.pp("w_ha"))?,
            w_v: linear(dv, h, vb.pp("w_v"))?,
            w_a: linear(da, h, vb.pp("w_a"))?,
            ln: Ln::new(h, 1e-5, vb.pp("ln"))?,
            beta_shift,
            drop: SeededDropout::new(dropout, seed),
        })
    }

    /// The gate on embeddings `e` (`B × L × H`) with aligned audio `a` and vision `v`.
    pub fn forward(
        &self,
        e: &Tensor,
        a: &Tensor,
        v: &Tensor,
        train: bool,
    ) -> candle_core::Result<MagOutput> {
        let g_v = self
            .w_hv
            .forward(&Tensor::cat(&[v, e], D::Minus1)?)?
            .relu()?;
        let g_a = self
            .w_ha
            .forward(&Tensor::cat(&[a, e], D::Minus1)?)?
            .relu()?;
        let pv = self.w_v.forward(v)?;
        let pa = self.w_a.forward(a)?;
        let h = ((&g_v * &pv)? + (&g_a * &pa)?)?;
        let ratio = (safe_norm(e)? / (safe_norm(&h)? + 1e-6)?)?;
        let alpha = (ratio * self.beta_shift)?.minimum(1.0)?;
        let x = self.ln.forward(&(h.broadcast_mul(&alpha)? + e)?)?;
        Ok(MagOutput {
            out: self.drop.forward(&x, train)?,
            alpha,
            projected: [pa, pv],
        })
    }
}

/// MAG-BERT (see the module docs).
#[derive(Debug)]
pub struct MagBert {
    cfg: MagBertConfig,
    bert: BertBackbone,
    mag: Mag,
    head: Linear,
    drop: SeededDropout,
}

/// The batch's tokens, or an error saying where they come from.
pub(crate) fn tokens_of<'a>(b: &'a SeqBatch, model: &str) -> candle_core::Result<&'a TokenBatch> {
    b.tokens.as_ref().ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{model} needs BERT tokens: a dataset with words (the real-text tier) tokenised with \
             a text encoder (data::bert::tokens::attach); the synthetic tiers have no words"
        ))
    })
}

/// Masked mean over the token axis of `x` (`B × L × H`) with a 0/1 mask (`B × L`).
pub(crate) fn token_mean(x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    super::masked_mean(x, mask)
}

impl MagBert {
    /// The gate's `α` on a batch (inference mode), `B × L × 1`.
    pub fn alpha(&self, b: &SeqBatch) -> candle_core::Result<Tensor> {
        let tk = tokens_of(b, Self::NAME)?;
        let e = self.bert.embed(&tk.ids, &tk.segment)?;
        Ok(self
            .mag
            .forward(&e, &tk.aligned[0], &tk.aligned[1], false)?
            .alpha)
    }
}

impl FusionModel for MagBert {
    type Config = MagBertConfig;
    const NAME: &'static str = "MAGBERT";

    fn needs_tokens(_cfg: &Self::Config) -> bool {
        true
    }

    fn new(
        cfg: &Checked<MagBertConfig>,
        ctx: &BuildCtx,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let bc = config_for(ctx, Self::NAME)?;
        let h = bc.hidden_size;
        let bert = BertBackbone::new(&bc, true, cfg.dropout, ctx.seed ^ 0xB0, vb.pp("bert"))?
            .frozen(!cfg.finetune);
        let [_, da, dv] = ctx.dims;
        Ok(Self {
            mag: Mag::new(
                h,
                da,
                dv,
                cfg.beta_shift,
                cfg.mag_dropout,
                ctx.seed ^ 0x3A6,
                vb.pp("mag"),
            )?,
            head: linear(h, 1, vb.pp("head"))?,
            drop: SeededDropout::new(cfg.dropout, ctx.seed ^ 0x4EAD),
            bert,
            cfg: **cfg,
        })
    }

    fn forward(&self, b: &SeqBatch, train: bool) -> candle_core::Result<ModelOutput> {
        let tk = tokens_of(b, Self::NAME)?;
        let e = self.bert.embed(&tk.ids, &tk.segment)?;
        let ed = self.bert.embed_dropout(&e, train)?;
        let g = self
            .mag
            .forward(&ed, &tk.aligned[0], &tk.aligned[1], train)?;
        let hidden = self.bert.encode(&g.out, &tk.mask, train)?;
        let pooled = self.bert.pool(&hidden)?;
        let prediction = self
            .head
            .forward(&self.drop.forward(&pooled, train)?)?
            .squeeze(1)?;
        Ok(ModelOutput {
            unimodal: vec![
                token_mean(&e, &tk.mask)?,
                token_mean(&g.projected[0], &tk.mask)?,
                token_mean(&g.projected[1], &tk.mask)?,
            ],
            fused: pooled,
            prediction,
            aux_loss: None,
        })
    }

    fn rep_dims(&self) -> (Vec<usize>, usize) {
        let h = self.bert.hidden();
        (vec![h, h, h], h)
    }

    fn load_pretrained(&self, vm: &VarMap, ctx: &BuildCtx) -> candle_core::Result<()> {
        load_from_ctx(vm, ctx)
    }

    fn learning_rate(&self, name: &str, base: f64) -> Option<f64> {
        if name.starts_with("bert.") {
            self.cfg.finetune.then_some(self.cfg.bert_lr)
        } else {
            Some(base)
        }
    }
}
