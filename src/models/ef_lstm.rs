//! EF-LSTM (early fusion LSTM, "FLSTM" in the paper), after MMSA's `EF_LSTM`: the per-step features
//! of the three modalities are concatenated and read by a stacked LSTM; the last valid hidden state
//! goes through dropout, a ReLU linear layer and the output layer.
//!
//! For the C-network the model also exposes unimodal representations. Early fusion has none of its
//! own, so each modality first passes a per-modality linear projection `P_m: d_m → proj` applied at
//! every step **before** concatenation (part of the model, trained with it); `Z_m` is the masked
//! time-mean of `P_m(x_m)`. The fused `Z` is the top LSTM layer's last valid hidden state.
//! The LSTM is `layers` stacked single-layer [`FastLstm`]s (candle-nn's `LSTM` parameters and
//! names, `lstm{l}.weight_ih_l0` …), run on each clip's valid steps only: padding never enters.

use super::layers::lstm::FastLstm;
use super::{
    check_dropout, check_width, masked_mean, BuildCtx, Checked, FusionModel, ModelOutput,
    ModelParams, SeededDropout, Validate,
};
use crate::data::SeqBatch;
use crate::error::ParamError;
use candle_core::{Module, Tensor};
use candle_nn::rnn::LSTMConfig;
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// EF-LSTM hyper-parameters (MMSA's MOSI defaults where MMSA has the field).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EfLstmConfig {
    /// Width of each per-modality projection.
    pub proj: usize,
    /// LSTM hidden size.
    pub hidden: usize,
    /// Stacked LSTM layers.
    pub layers: usize,
    /// Width of the ReLU layer after the LSTM.
    pub post: usize,
    /// Dropout before the ReLU layer.
    pub dropout: f64,
}

impl Default for EfLstmConfig {
    fn default() -> Self {
        Self {
            proj: 32,
            hidden: 128,
            layers: 2,
            post: 64,
            dropout: 0.2,
        }
    }
}

impl ModelParams for EfLstmConfig {}

impl Validate for EfLstmConfig {
    fn validate(&self) -> Result<(), ParamError> {
        check_width("proj", self.proj)?;
        check_width("hidden", self.hidden)?;
        check_width("layers", self.layers)?;
        check_width("post", self.post)?;
        check_dropout("dropout", self.dropout)
    }
}

/// The model.
pub struct EfLstm {
    proj: Vec<Linear>,
    lstms: Vec<FastLstm>,
    post: Linear,
    out: Linear,
    dropout: SeededDropout,
    cfg: EfLstmConfig,
}

impl std::fmt::Debug for EfLstm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EfLstm")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl FusionModel for EfLstm {
    type Config = EfLstmConfig;
    const NAME: &'static str = "FLSTM";

    fn new(
        cfg: &Checked<EfLstmConfig>,
        ctx: &BuildCtx,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let cfg: EfLstmConfig = **cfg;
        let proj = ctx
            .dims
            .iter()
            .enumerate()
            .map(|(m, &d)| linear(d, cfg.proj, vb.pp(format!("proj{m}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut lstms = Vec::new();
        for l in 0..cfg.layers.max(1) {
            let inp = if l == 0 { 3 * cfg.proj } else { cfg.hidden };
            lstms.push(FastLstm::new(
                inp,
                cfg.hidden,
                LSTMConfig::default(),
                vb.pp(format!("lstm{l}")),
            )?);
        }
        Ok(Self {
            post: linear(cfg.hidden, cfg.post, vb.pp("post"))?,
            out: linear(cfg.post, 1, vb.pp("out"))?,
            proj,
            lstms,
            dropout: SeededDropout::new(cfg.dropout, ctx.seed ^ 0xD0),
            cfg,
        })
    }

    fn rep_dims(&self) -> (Vec<usize>, usize) {
        (vec![self.cfg.proj; 3], self.cfg.hidden)
    }

    fn forward(&self, b: &SeqBatch, train: bool) -> candle_core::Result<ModelOutput> {
        let projected = self
            .proj
            .iter()
            .zip(&b.inputs)
            .map(|(p, x)| p.forward(x))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let unimodal = projected
            .iter()
            .map(|p| masked_mean(p, &b.mask))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut h = Tensor::cat(&projected, 2)?;
        let mut fused = None;
        for l in &self.lstms {
            let (all, h_last, _) = l.seq_masked(&h, &b.lengths)?; // B × T × H, B × H
            (h, fused) = (all, Some(h_last));
        }
        let fused = fused.expect("at least one layer");
        let x = self.dropout.forward(&fused, train)?;
        let x = self.post.forward(&x)?.relu()?;
        let prediction = self.out.forward(&x)?.squeeze(1)?;
        Ok(ModelOutput {
            unimodal,
            fused,
            prediction,
            aux_loss: None,
        })
    }
}
