//! MFN's hyper-parameters ([`MfnConfig`], one [`MlpSpec`] per two-layer network), with MMSA's
//! MOSI defaults.

use crate::error::ParamError;
use crate::models::{check_dropout, check_width, ModelParams, Validate};
use serde::{Deserialize, Serialize};

/// One two-layer network of MFN (`NN1`, `NN2`, `γ1`, `γ2`, output): `x ↦ W_2 drop(relu(W_1 x))`.
/// MMSA's `{"shapes": width, "drop": dropout}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpSpec {
    /// Width of the hidden layer (MMSA `shapes`).
    pub width: usize,
    /// Dropout after the hidden ReLU (MMSA `drop`).
    pub dropout: f64,
}

impl MlpSpec {
    fn check(&self, field: &str) -> Result<(), ParamError> {
        check_width("width", self.width)
            .and_then(|()| check_dropout("dropout", self.dropout))
            .map_err(|e| e.within(field))
    }
}

/// MFN hyper-parameters; defaults are MMSA's MOSI values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfnConfig {
    /// LSTM hidden widths `[text, audio, vision]` (MMSA `hidden_dims`: `[256, 32, 256]`).
    pub hidden: [usize; 3],
    /// Width of the multi-view memory `u` (MMSA `memsize`: 400).
    pub mem: usize,
    /// Steps of cell states seen by the attention (MMSA `windowsize`: 2).
    pub window: usize,
    /// Attention network `NN1` (MMSA `NN1Config`: width 32, dropout 0.2).
    pub nn1: MlpSpec,
    /// Candidate-memory network `NN2` (MMSA `NN2Config`: 64, 0.0).
    pub nn2: MlpSpec,
    /// Retain gate network `γ1` (MMSA `gamma1Config`: 256, 0.7).
    pub gamma1: MlpSpec,
    /// Update gate network `γ2` (MMSA `gamma2Config`: 32, 0.5).
    pub gamma2: MlpSpec,
    /// Output network (MMSA `outConfig`: 128, 0.0).
    pub out: MlpSpec,
    /// MMSA's quirk: feed the (valid-step) time-mean of audio and vision at every step instead of
    /// the sequences (default `false`: the paper's per-step inputs).
    pub mmsa_av_mean: bool,
}

impl Default for MfnConfig {
    fn default() -> Self {
        let s = |width, dropout| MlpSpec { width, dropout };
        Self {
            hidden: [256, 32, 256],
            mem: 400,
            window: 2,
            nn1: s(32, 0.2),
            nn2: s(64, 0.0),
            gamma1: s(256, 0.7),
            gamma2: s(32, 0.5),
            out: s(128, 0.0),
            mmsa_av_mean: false,
        }
    }
}

impl ModelParams for MfnConfig {}

impl Validate for MfnConfig {
    fn validate(&self) -> Result<(), ParamError> {
        for (m, h) in ["text", "audio", "vision"].iter().zip(self.hidden) {
            check_width(&format!("hidden.{m}"), h)?;
        }
        check_width("mem", self.mem)?;
        check_width("window", self.window)?;
        self.nn1.check("nn1")?;
        self.nn2.check("nn2")?;
        self.gamma1.check("gamma1")?;
        self.gamma2.check("gamma2")?;
        self.out.check("out")
    }
}
