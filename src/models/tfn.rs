//! TFN, the Tensor Fusion Network (Zadeh et al., EMNLP 2017), after MMSA's
//! `models/singleTask/TFN.py` and `subNets/FeatureNets.py`. The paper's "LFN" row is treated as
//! this model (see the notes on the name).
//!
//! **Architecture.**
//! The sub-networks are shared with LMF ([`super::layers::subnet`], built from a
//! [`SubNetConfig`] of this configuration's fields).
//! - Audio and vision sub-networks (`SubNet`) read the time-mean `x̄_m` of the features:
//!   `z_m = ReLU(L₃ ReLU(L₂ ReLU(L₁ drop(BN(x̄_m)))))` (BatchNorm1d → dropout → 3 × (Linear + ReLU)).
//! - The text sub-network (`TextSubNet`) is a one-layer LSTM over the word vectors; its hidden
//!   state `h_L` at the last valid step gives `z_t = W drop(h_L) + b` (`text_out` wide).
//! - Fusion ([`tensor_fusion`]): each vector is extended by a constant 1 (`ẑ = [1, z]`) and the
//!   fused vector is the flattened outer product `f = vec(ẑ_a ⊗ ẑ_v ⊗ ẑ_t)`, of width
//!   `(h_a+1)(h_v+1)(t_out+1)` (33·129·33 = 140 481 at the MOSI defaults). It contains the
//!   constant, all three unimodal vectors, all bimodal products and the trimodal products.
//! - Post-fusion MLP: `y₁ = ReLU(P₁ drop(f))`, `y₂ = ReLU(P₂ y₁)`, `s = P₃ y₂` (64 → 64 → 1).
//! - Output: regression `ŷ = 6·σ(s) − 3` (MMSA's fixed `output_range` 6 and `output_shift` −3,
//!   so predictions lie in (−3, 3)); for [`Task::Binary`] the raw logit `s`.
//!
//! **Representations for the C-network.** `Z_t, Z_a, Z_v` = the sub-network outputs `z_t` (32),
//! `z_a` (32), `z_v` (128) — the vectors that enter the fusion, MMSA's `Feature_t/a/v`. MMSA's
//! `Feature_f` is the fused tensor itself, 1.4·10⁵ wide: far too wide for a critic and, being a
//! fixed multilinear function of `Z_t, Z_a, Z_v`, it carries nothing the model learned about
//! fusion. `Z` is therefore the post-fusion MLP's first hidden activation `y₁` (64 wide, after the
//! ReLU): the first learned function of the fused tensor, and the narrowest point through which
//! all trimodal interactions reach the output.
//!
//! **Deviations from MMSA** (each deliberate):
//! - Audio and vision are averaged over the **valid** steps only (`masked_mean`); MMSA's data
//!   loader (`need_normalized`) averages over all time steps, padding included, which makes the
//!   input depend on the padded length.
//! - MMSA reads the text LSTM's final state after the whole padded sequence (no packing); here it
//!   is the state at the last valid step (the fast LSTM stops each sequence at its length), so padding
//!   never reaches the model.
//! - Text dropout: MMSA's config lists 0.3, but its `TextSubNet` forces the dropout to 0 for a
//!   one-layer LSTM, so the effective value is 0; [`TfnConfig::text_dropout`] defaults to that
//!   effective 0 (set it to apply dropout to the text hidden state).
//! - In training mode a batch of one sample is normalised with the BatchNorm running statistics
//!   (PyTorch refuses such a batch; candle would set the running variance to infinity).
//! - Weights are initialised by the trainer ([`seed_varmap`](crate::synergy::nets::seed_varmap),
//!   PyTorch `nn.Linear` style for every matrix, the LSTM included), not by PyTorch's per-layer
//!   defaults; the generic trainer uses AdamW, MMSA Adam without weight decay for TFN.

use super::layers::subnet::{subnet_fields, SubNetConfig, SubNets};
use super::{
    check_dropout, check_width, BuildCtx, Checked, FusionModel, ModelOutput, ModelParams,
    SeededDropout, Validate,
};
use crate::data::{SeqBatch, Task};
use crate::error::ParamError;
use candle_core::{Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// The largest number of weights allowed in TFN's first post-fusion layer
/// (`(h_a+1)(h_v+1)(t_out+1) · post_fusion`); the MOSI defaults need 9.0·10⁶.
pub(crate) const MAX_POST_FUSION_WEIGHTS: usize = 1 << 28;

/// TFN hyper-parameters; defaults are MMSA's MOSI values (`config_regression.json`, `tfn`):
/// `hidden_dims` [text 128, audio 32, video 128], `text_out` 32, `post_fusion_dim` 64,
/// `dropouts` [audio .3, video .3, text .3 (effectively 0, see the module notes), post-fusion .5].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TfnConfig {
    /// Hidden size of the text LSTM.
    pub text_hidden: usize,
    /// Width of the audio sub-network (`Z_a`).
    pub audio_hidden: usize,
    /// Width of the vision sub-network (`Z_v`).
    /// Serialised as `video_hidden` (the name stored run keys hash; `vision_hidden` is accepted).
    #[serde(rename = "video_hidden", alias = "vision_hidden")]
    pub vision_hidden: usize,
    /// Width of the text sub-network's output (`Z_t`).
    pub text_out: usize,
    /// Width of the two post-fusion hidden layers (`Z`).
    pub post_fusion: usize,
    /// Dropout after the audio BatchNorm.
    pub audio_dropout: f64,
    /// Dropout after the vision BatchNorm.
    /// Serialised as `video_dropout` (`vision_dropout` is accepted).
    #[serde(rename = "video_dropout", alias = "vision_dropout")]
    pub vision_dropout: f64,
    /// Dropout on the text LSTM state (MMSA's effective value 0).
    pub text_dropout: f64,
    /// Dropout on the fused tensor.
    pub post_fusion_dropout: f64,
}

subnet_fields!(TfnConfig);

impl Default for TfnConfig {
    fn default() -> Self {
        Self {
            text_hidden: 128,
            audio_hidden: 32,
            vision_hidden: 128,
            text_out: 32,
            post_fusion: 64,
            audio_dropout: 0.3,
            vision_dropout: 0.3,
            text_dropout: 0.0,
            post_fusion_dropout: 0.5,
        }
    }
}

/// Width of the fused tensor `(d_a+1)(d_v+1)(d_t+1)`, or `None` on overflow.
pub(crate) fn fused_width(d_a: usize, d_v: usize, d_t: usize) -> Option<usize> {
    d_a.checked_add(1)?
        .checked_mul(d_v.checked_add(1)?)?
        .checked_mul(d_t.checked_add(1)?)
}

impl ModelParams for TfnConfig {}

impl Validate for TfnConfig {
    fn validate(&self) -> Result<(), ParamError> {
        SubNetConfig::from(self).validate()?;
        check_width("post_fusion", self.post_fusion)?;
        check_dropout("post_fusion_dropout", self.post_fusion_dropout)?;
        let weights = fused_width(self.audio_hidden, self.vision_hidden, self.text_out)
            .and_then(|w| w.checked_mul(self.post_fusion))
            .filter(|&w| w <= MAX_POST_FUSION_WEIGHTS);
        match weights {
            Some(_) => Ok(()),
            None => Err(ParamError::new(
                "post_fusion",
                format!(
                    "× (audio_hidden+1)(video_hidden+1)(text_out+1) exceeds {MAX_POST_FUSION_WEIGHTS} weights"
                ),
            )),
        }
    }
}

/// `[1, z]`: a `B × d` batch extended by a leading constant column (`B × (d+1)`).
pub(crate) fn extend_one(z: &Tensor) -> candle_core::Result<Tensor> {
    let ones = Tensor::ones((z.dim(0)?, 1), z.dtype(), z.device())?;
    Tensor::cat(&[&ones, z], 1)
}

/// Tensor fusion of a batch: `f_b = vec(ẑ_a ⊗ ẑ_v ⊗ ẑ_t)` with `ẑ = [1, z]`.
///
/// Inputs are `B × d_a`, `B × d_v`, `B × d_t`; the output is `B × (d_a+1)(d_v+1)(d_t+1)`, row-major
/// in `(i, j, k)`: `f[b, (i·(d_v+1) + j)·(d_t+1) + k] = ẑ_a[b,i] · ẑ_v[b,j] · ẑ_t[b,k]` (index 0 of
/// each `ẑ` is the constant 1, as in MMSA). Errors if the inputs are not 2-D or their batch sizes
/// differ.
pub fn tensor_fusion(a: &Tensor, v: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
    let (b, da) = a.dims2()?;
    let (bv, dv) = v.dims2()?;
    let (bt, dt) = t.dims2()?;
    if bv != b || bt != b {
        candle_core::bail!("tensor_fusion: batch sizes differ (audio {b}, vision {bv}, text {bt})");
    }
    let (a, v, t) = (extend_one(a)?, extend_one(v)?, extend_one(t)?);
    // (B × A × 1)(B × 1 × V) → B × A × V → B × AV × 1, then (B × AV × 1)(B × 1 × T) → B × AV × T
    let av = a.unsqueeze(2)?.matmul(&v.unsqueeze(1)?)?;
    let av = av.reshape((b, (da + 1) * (dv + 1), 1))?;
    let avt = av.matmul(&t.unsqueeze(1)?.contiguous()?)?;
    avt.reshape((b, (da + 1) * (dv + 1) * (dt + 1)))
}

/// [`tensor_fusion`] followed by `drop` (training only), as TFN's forward pass applies them: one
/// fused op on the CPU (the crate-private `kernels::outer3`: the same values and dropout masks, one
/// pass over the `B × (d_a+1)(d_v+1)(d_t+1)` tensor each way), the composed ops elsewhere.
pub fn tensor_fusion_dropout(
    a: &Tensor,
    v: &Tensor,
    t: &Tensor,
    drop: &SeededDropout,
    train: bool,
) -> candle_core::Result<Tensor> {
    use crate::kernels::{fusable_with, outer3};
    if !fusable_with(a, &[v, t]) {
        return drop.forward(&tensor_fusion(a, v, t)?, train);
    }
    let (a, v, t) = (extend_one(a)?, extend_one(v)?, extend_one(t)?);
    let n = a.elem_count() * v.dim(1)? * t.dim(1)?;
    let mask = drop.keep_mask(n, train);
    outer3(&a, &v, &t, mask)
}

/// The model (variables: `text.*`, `audio.*`, `video.*`, `post1`, `post2`, `post3`).
pub struct Tfn {
    subnets: SubNets,
    post_drop: SeededDropout,
    post1: Linear,
    post2: Linear,
    post3: Linear,
    task: Task,
    cfg: TfnConfig,
}

impl std::fmt::Debug for Tfn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tfn")
            .field("cfg", &self.cfg)
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

/// MMSA's fixed `output_range`: regression predictions are `6·σ(s) − 3`.
pub(crate) const OUTPUT_RANGE: f64 = 6.0;
/// MMSA's fixed `output_shift`.
pub(crate) const OUTPUT_SHIFT: f64 = -3.0;

impl FusionModel for Tfn {
    type Config = TfnConfig;
    const NAME: &'static str = "TFN";

    fn new(cfg: &Checked<TfnConfig>, ctx: &BuildCtx, vb: VarBuilder) -> candle_core::Result<Self> {
        let cfg: TfnConfig = **cfg;
        let subnets = SubNets::new(&SubNetConfig::from(&cfg), ctx, &vb)?;
        // the checked configuration bounded the product, so it cannot overflow here
        let fused = fused_width(cfg.audio_hidden, cfg.vision_hidden, cfg.text_out).unwrap_or(0);
        Ok(Self {
            subnets,
            post_drop: SeededDropout::new(cfg.post_fusion_dropout, ctx.seed ^ 0xF0_5E),
            post1: linear(fused, cfg.post_fusion, vb.pp("post1"))?,
            post2: linear(cfg.post_fusion, cfg.post_fusion, vb.pp("post2"))?,
            post3: linear(cfg.post_fusion, 1, vb.pp("post3"))?,
            task: ctx.task,
            cfg,
        })
    }

    fn rep_dims(&self) -> (Vec<usize>, usize) {
        (
            vec![
                self.cfg.text_out,
                self.cfg.audio_hidden,
                self.cfg.vision_hidden,
            ],
            self.cfg.post_fusion,
        )
    }

    fn forward(&self, b: &SeqBatch, train: bool) -> candle_core::Result<ModelOutput> {
        let (zt, za, zv) = self.subnets.forward(b, train)?;
        let f = tensor_fusion_dropout(&za, &zv, &zt, &self.post_drop, train)?;
        // The 9 M-weight layer: contiguous gradients (see `linear_forward`).
        let y1 = crate::kernels::linear_forward(&self.post1, &f)?.relu()?;
        let y2 = self.post2.forward(&y1)?.relu()?;
        let s = self.post3.forward(&y2)?.squeeze(1)?;
        let prediction = match self.task {
            Task::Regression => candle_nn::ops::sigmoid(&s)?.affine(OUTPUT_RANGE, OUTPUT_SHIFT)?,
            Task::Binary => s,
        };
        Ok(ModelOutput {
            unimodal: vec![zt, za, zv],
            fused: y1,
            prediction,
            aux_loss: None,
        })
    }
}
