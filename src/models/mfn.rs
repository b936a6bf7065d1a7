//! MFN, the Memory Fusion Network (Zadeh et al., AAAI 2018), after MMSA's `MFN` with its MOSI
//! defaults (`config_regression.json`, `mfn.datasetParams.mosi`).
//!
//! # Model
//!
//! Three LSTM cells (text, audio, vision; hidden widths `d_l, d_a, d_v`) are stepped together over
//! the word-aligned sequence. At step `t`, with cell states `c_t = [c_t^l; c_t^a; c_t^v]` and a
//! window of `w` steps (`window`, MMSA: 2):
//!
//! * delta-memory attention: `c* = [c_{t−w+1}; …; c_t]` (width `w·Σd`, missing early steps are 0),
//!   `a_t = softmax(NN1(c*))` over all `w·Σd` entries, `ĉ_att = a_t ⊙ c*`;
//! * candidate memory `û_t = tanh(NN2(ĉ_att))` (width `mem`);
//! * multi-view gated memory: `γ1 = σ(G1([ĉ_att; u_{t−1}]))`, `γ2 = σ(G2([ĉ_att; u_{t−1}]))`,
//!   `u_t = γ1 ⊙ u_{t−1} + γ2 ⊙ û_t`, `u_0 = 0`;
//!
//! where each of `NN1, NN2, G1, G2` is `x ↦ W_2 · drop(relu(W_1 x + b_1)) + b_2` with its own width
//! and dropout. The output is `ŷ = W_o2 · drop(relu(W_o1 [h_T^l; h_T^a; h_T^v; u_T] + b_o1)) + b_o2`
//! (no final activation; for [`Task::Binary`](crate::data::Task::Binary) `ŷ` is the logit).
//!
//! **Memory bound.** Since `γ1, γ2 ∈ (0, 1)` and `|û_t| < 1`, elementwise
//! `|u_t| ≤ γ1 |u_{t−1}| + γ2 |û_t| < |u_{t−1}| + 1`, hence `|u_t| < t`. The gates are independent
//! sigmoids (not a convex pair), so the memory is *not* confined to `[−1, 1]`: with both gates
//! saturated open and `û_t → 1` it grows as `u_t = t` (the bound is tight; both facts are tested in
//! `tests/it/models_mfn.rs`).
//!
//! # Representations for the C-network
//!
//! * `Z_t, Z_a, Z_v` = the final hidden states `h_T^l, h_T^a, h_T^v` of the three cells (widths
//!   256, 32, 256): each is computed from its own modality only (the cells never see the memory),
//!   so they are genuinely unimodal.
//! * `Z` = the final multi-view memory `u_T` (width `mem` = 400): it is MFN's only cross-modal
//!   state, the place where fusion happens. MMSA's `'L'` output `[h; u]` (width 944) is rejected
//!   because it contains `Z_t, Z_a, Z_v` verbatim, so a regulariser of "information in `Z` beyond
//!   the `Z_i`" would be degenerate on it, and because it is wider than the other models' `Z`.
//!
//! # Speed
//!
//! The input-to-hidden products of every cell are computed for all time steps in one matmul per
//! modality before the loop; per step there is one hidden-to-hidden matmul per cell, one sigmoid
//! over all four gates, and the two gate networks share one first-layer matmul (their first-layer
//! weights are concatenated once per forward pass).
//!
//! # Variable lengths
//!
//! All samples are stepped to the batch's longest length `T`; each sample's `h^m` and `u` are then
//! read at its own last valid step ([`last_valid`]), so steps after it (padding) cannot change any
//! output — equivalent to masked state updates `s_t = m_t s_t' + (1 − m_t) s_{t−1}`, without their
//! per-step cost.
//!
//! # Deviations from MMSA (`models/singleTask/MFN.py` and its data pipeline)
//!
//! * **Audio/vision per step.** MMSA's MFN config sets both `need_normalized` and
//!   `need_model_aligned`, so its MFN sees the time-mean of audio and vision repeated at every step
//!   (a quirk of the data pipeline, see the notes §1.3). By default this model follows the paper and
//!   reads the per-step audio and vision sequences. `mmsa_av_mean = true` reproduces the quirk,
//!   except that the mean is taken over each sample's valid steps (MMSA averages over all 50
//!   padded steps, zeros included, which would make outputs depend on padding).
//! * **Lengths.** MMSA runs every sample through all 50 steps (padding included) and reads the
//!   states after the last one; here the states are read at each sample's last valid step.
//! * **Initialisation.** The trainer re-initialises every weight PyTorch-`nn.Linear`-style
//!   (uniform `±1/sqrt(fan_in)`); for the input-to-hidden weights and biases of the cells that is
//!   `±1/sqrt(d_m)` where PyTorch's `LSTMCell` uses `±1/sqrt(d_h)` (hidden-to-hidden: the same).
//! * **Dropout** uses [`SeededDropout`] (one seeded stream per dropout layer) for reproducibility.
//! * **Window.** MMSA's forward pass hard-codes two steps (`t−1, t`) and uses `windowsize` only for
//!   the layer widths; here `window` ≥ 1 is honoured (default 2, identical to MMSA).
//! * Optimiser, batch size and learning rate are the trainer's (MMSA: Adam, batch 128, lr 2e-3,
//!   no weight decay on MOSI).

use super::{
    check_dropout, check_width, last_valid, masked_mean, BuildCtx, FusionModel, ModelOutput,
    ModelParams, SeededDropout,
};
use crate::data::SeqBatch;
use candle_core::{Module, Tensor, D};
use candle_nn::ops::{sigmoid, softmax};
use candle_nn::{linear, Linear, VarBuilder};
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
    fn check(&self, field: &str) -> Result<(), String> {
        check_width(&format!("{field}.width"), self.width)?;
        check_dropout(&format!("{field}.dropout"), self.dropout)
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

impl ModelParams for MfnConfig {
    fn validate(&self) -> Result<(), String> {
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

/// `x ↦ fc2(drop(relu(fc1 x)))`.
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    drop: SeededDropout,
}

impl Mlp {
    fn new(
        input: usize,
        spec: MlpSpec,
        output: usize,
        seed: u64,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            fc1: linear(input, spec.width, vb.pp("fc1"))?,
            fc2: linear(spec.width, output, vb.pp("fc2"))?,
            drop: SeededDropout::new(spec.dropout, seed),
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.after_fc1(&self.fc1.forward(x)?, train)
    }

    /// The rest of the network given the first layer's pre-activation.
    fn after_fc1(&self, pre: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = self.drop.forward(&pre.relu()?, train)?;
        self.fc2.forward(&h)
    }
}

/// An LSTM cell (PyTorch gate order i, f, g, o) split into its input-to-hidden part (applied to
/// whole sequences at once) and its hidden-to-hidden part (applied per step).
struct Cell {
    ih: Linear,
    hh: Linear,
    hidden: usize,
}

impl Cell {
    fn new(input: usize, hidden: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            ih: linear(input, 4 * hidden, vb.pp("ih"))?,
            hh: linear(hidden, 4 * hidden, vb.pp("hh"))?,
            hidden,
        })
    }

    /// One step given the input projection `W_ih x_t + b_ih` (`B × 4H`):
    /// `c' = σ(f) c + σ(i) tanh(g)`, `h' = σ(o) tanh(c')`.
    fn step(&self, xp: &Tensor, h: &Tensor, c: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let n = self.hidden;
        let gates = (xp + self.hh.forward(h)?)?;
        let s = sigmoid(&gates)?;
        let g = gates.narrow(1, 2 * n, n)?.tanh()?;
        let c = ((s.narrow(1, n, n)? * c)? + (s.narrow(1, 0, n)? * g)?)?;
        let h = (s.narrow(1, 3 * n, n)? * c.tanh()?)?;
        Ok((h, c))
    }
}

/// The model.
pub struct Mfn {
    cells: [Cell; 3],
    nn1: Mlp,
    nn2: Mlp,
    gamma1: Mlp,
    gamma2: Mlp,
    out: Mlp,
    cfg: MfnConfig,
}

impl std::fmt::Debug for Mfn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mfn")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// States of a forward pass, per step.
struct Trace {
    /// `h_t` per modality, each a list over steps of `B × d_m`.
    h: [Vec<Tensor>; 3],
    /// `u_t` over steps, `B × mem`.
    mem: Vec<Tensor>,
}

impl Mfn {
    /// The multi-view memory `u_1, …, u_T` of every step (each `B × mem`, `T` = the batch's
    /// longest length). A sample's entries after its own last valid step are computed from
    /// padding and are not part of its output.
    pub fn memory_trace(&self, b: &SeqBatch, train: bool) -> candle_core::Result<Vec<Tensor>> {
        Ok(self.run(b, train)?.mem)
    }

    fn run(&self, b: &SeqBatch, train: bool) -> candle_core::Result<Trace> {
        let x0 = &b.inputs[0];
        let (bs, t_len, _) = x0.dims3()?;
        let (dtype, dev) = (x0.dtype(), x0.device());
        // input projections of all steps, T × B × 4H (or one B × 4H for MMSA's time-means)
        let mut proj: Vec<(Tensor, bool)> = Vec::with_capacity(3);
        for (m, (cell, x)) in self.cells.iter().zip(&b.inputs).enumerate() {
            if m > 0 && self.cfg.mmsa_av_mean {
                proj.push((cell.ih.forward(&masked_mean(x, &b.mask)?)?, false));
            } else {
                let p = cell.ih.forward(x)?.transpose(0, 1)?.contiguous()?;
                proj.push((p, true));
            }
        }
        // both gate networks read [ĉ_att; u]: one shared first-layer matmul
        let g1w = self.gamma1.fc1.weight();
        let g2w = self.gamma2.fc1.weight();
        let gw = Tensor::cat(&[g1w, g2w], 0)?.t()?;
        let gb = match (self.gamma1.fc1.bias(), self.gamma2.fc1.bias()) {
            (Some(a), Some(c)) => Tensor::cat(&[a, c], 0)?,
            _ => candle_core::bail!("MFN gate layers are built with biases"),
        };
        let w1 = self.cfg.gamma1.width;
        let w2 = self.cfg.gamma2.width;

        let zeros = |d: usize| Tensor::zeros((bs, d), dtype, dev);
        let mut h: Vec<Tensor> = self
            .cfg
            .hidden
            .iter()
            .map(|&d| zeros(d))
            .collect::<candle_core::Result<_>>()?;
        let mut c = h.clone();
        // cell states of the last `window` steps, oldest first
        let mut window: Vec<Vec<Tensor>> = vec![c.clone(); self.cfg.window];
        let mut mem = zeros(self.cfg.mem)?;
        let mut trace = Trace {
            h: [
                Vec::with_capacity(t_len),
                Vec::with_capacity(t_len),
                Vec::with_capacity(t_len),
            ],
            mem: Vec::with_capacity(t_len),
        };
        for t in 0..t_len {
            for m in 0..3 {
                let (p, per_step) = &proj[m];
                let xp = if *per_step { p.get(t)? } else { p.clone() };
                let (hn, cn) = self.cells[m].step(&xp, &h[m], &c[m])?;
                h[m] = hn;
                c[m] = cn;
            }
            window.remove(0);
            window.push(c.clone());
            let cstar = Tensor::cat(&window.concat(), 1)?;
            // `softmax`, not `softmax_last_dim`: the latter has no backward pass in candle-nn 0.11
            let att = softmax(&self.nn1.forward(&cstar, train)?, D::Minus1)?;
            let attended = (att * cstar)?;
            let cand = self.nn2.forward(&attended, train)?.tanh()?;
            let both = Tensor::cat(&[&attended, &mem], 1)?;
            let pre = both.matmul(&gw)?.broadcast_add(&gb)?;
            let g1 = sigmoid(&self.gamma1.after_fc1(&pre.narrow(1, 0, w1)?, train)?)?;
            let g2 = sigmoid(&self.gamma2.after_fc1(&pre.narrow(1, w1, w2)?, train)?)?;
            mem = ((g1 * &mem)? + (g2 * cand)?)?;
            for (m, hm) in h.iter().enumerate() {
                trace.h[m].push(hm.clone());
            }
            trace.mem.push(mem.clone());
        }
        Ok(trace)
    }
}

impl FusionModel for Mfn {
    type Config = MfnConfig;
    const NAME: &'static str = "MFN";

    fn new(cfg: &MfnConfig, ctx: &BuildCtx, vb: VarBuilder) -> candle_core::Result<Self> {
        let cfg = *cfg;
        if let Err(e) = cfg.validate() {
            candle_core::bail!("MFN config: {e}");
        }
        let names = ["lstm_t", "lstm_a", "lstm_v"];
        let cell = |m: usize| Cell::new(ctx.dims[m], cfg.hidden[m], vb.pp(names[m]));
        let total: usize = cfg.hidden.iter().sum();
        let att_in = total * cfg.window;
        let gamma_in = att_in + cfg.mem;
        let s = ctx.seed;
        Ok(Self {
            cells: [cell(0)?, cell(1)?, cell(2)?],
            nn1: Mlp::new(att_in, cfg.nn1, att_in, s ^ 0x3F1, vb.pp("nn1"))?,
            nn2: Mlp::new(att_in, cfg.nn2, cfg.mem, s ^ 0x3F2, vb.pp("nn2"))?,
            gamma1: Mlp::new(gamma_in, cfg.gamma1, cfg.mem, s ^ 0x3F3, vb.pp("gamma1"))?,
            gamma2: Mlp::new(gamma_in, cfg.gamma2, cfg.mem, s ^ 0x3F4, vb.pp("gamma2"))?,
            out: Mlp::new(total + cfg.mem, cfg.out, 1, s ^ 0x3F5, vb.pp("out"))?,
            cfg,
        })
    }

    fn rep_dims(&self) -> (Vec<usize>, usize) {
        (self.cfg.hidden.to_vec(), self.cfg.mem)
    }

    fn forward(&self, b: &SeqBatch, train: bool) -> candle_core::Result<ModelOutput> {
        let trace = self.run(b, train)?;
        // each sample's states at its own last valid step
        let at_last = |s: &[Tensor]| last_valid(&Tensor::stack(s, 1)?, &b.last);
        let unimodal = trace
            .h
            .iter()
            .map(|s| at_last(s))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let fused = at_last(&trace.mem)?;
        let mut all = unimodal.clone();
        all.push(fused.clone());
        let prediction = self
            .out
            .forward(&Tensor::cat(&all, 1)?, train)?
            .squeeze(1)?;
        Ok(ModelOutput {
            unimodal,
            fused,
            prediction,
            aux_loss: None,
        })
    }
}
