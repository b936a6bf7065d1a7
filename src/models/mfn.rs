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
//! The forward pass follows the model's dependencies instead of stepping everything together:
//!
//! 1. **Cells.** The cells never see the memory, so each is an ordinary LSTM run over its whole
//!    sequence by [`FastLstm::packed_states`]: the valid steps' rows only, in [`Packing`] order
//!    (samples by decreasing length, step after step), one input-projection matmul and one fused
//!    recurrence op with a hand-written backward, returning every valid step's `[h_t; c_t]`.
//! 2. **Attention, all rows at once.** Everything that depends only on the cell states is computed
//!    for all `N = Σ lengths` rows together: `c*` (one gather of the window's cell states), `NN1`,
//!    the softmax, `ĉ_att`, `NN2` and `tanh`, and the `ĉ_att`-columns of `G1`'s and `G2`'s first
//!    layers (their weights split into `ĉ_att`- and `u`-columns) — a handful of big matmuls.
//! 3. **Memory recurrence, one op.** Only `u` remains sequential. `MemoryRecurrence` is one candle
//!    op (CPU, f32/f64) with a hand-written backward (back-propagation through time): per step one
//!    `(n_t × mem)·(mem × (w_1+w_2))` product for the gates' `u`-columns, ReLU, dropout, both
//!    second layers, the sigmoids and the gate update, over the `n_t` samples still running; its
//!    formulas are in its doc.
//!
//! No padded step is computed at all (the step-by-step version stepped every sample to the
//! batch's longest length), and the autograd graph has a few dozen nodes instead of hundreds per
//! step. On other devices and dtypes the two fused ops fall back to the same computation in plain
//! candle ops. The step-by-step implementation is kept as `Mfn::forward_stepwise` (doc-hidden);
//! the tests check that outputs and gradients agree.
//!
//! # Variable lengths
//!
//! Each sample's rows are its valid steps only; its `h^m` and `u` are read at its own last valid
//! step, so padding cannot change any output or gradient. [`Mfn::memory_trace`] reports `u` frozen
//! at its last valid value after a sample's end.
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
//!   Each layer draws its mask once per forward pass for all `N` rows (`NN1`'s on `N × w_NN1`, the
//!   gate networks' on `N × w_1` and `N × w_2`, used by the recurrence step by step), where the
//!   step-by-step version drew one mask per step for all `B` samples. The random streams therefore
//!   differ: training runs are not bit-identical to those of the step-by-step version (nor to
//!   results produced before this change), while inference (no dropout) is the same function.
//! * **Window.** MMSA's forward pass hard-codes two steps (`t−1, t`) and uses `windowsize` only for
//!   the layer widths; here `window` ≥ 1 is honoured (default 2, identical to MMSA).
//! * Optimiser, batch size and learning rate are the trainer's (MMSA: Adam, batch 128, lr 2e-3,
//!   no weight decay on MOSI).

use super::lstm::{gemm_into, FastLstm, Packing, Real};
use super::{
    check_dropout, check_width, last_valid, masked_mean, BuildCtx, FusionModel, ModelOutput,
    ModelParams, SeededDropout,
};
use crate::data::SeqBatch;
use crate::synergy::ops::cpu_slice;
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Module, Shape, Tensor, D};
use candle_nn::ops::{sigmoid, softmax};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

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
    /// The cells' parameters as fused whole-sequence LSTMs (the same tensors as `cells`).
    lstms: [FastLstm; 3],
    nn1: Mlp,
    nn2: Mlp,
    gamma1: Mlp,
    gamma2: Mlp,
    out: Mlp,
    cfg: MfnConfig,
    fused: bool,
}

impl std::fmt::Debug for Mfn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mfn")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// States of a step-by-step forward pass, per step.
struct Trace {
    /// `h_t` per modality, each a list over steps of `B × d_m`.
    h: [Vec<Tensor>; 3],
    /// `u_t` over steps, `B × mem`.
    mem: Vec<Tensor>,
}

/// The outputs of the fused forward pass.
struct Fast {
    /// `h` of each cell at each sample's last valid step, `B × d_m`.
    h_last: [Tensor; 3],
    /// `u_t` of every valid `(sample, step)`, `N × mem` in [`Packing`] order.
    mem: Tensor,
    packing: Packing,
}

/// `(sample, its last step)` of every sample (lengths ≥ 1).
fn last_steps(lengths: &[usize]) -> impl Iterator<Item = (usize, usize)> + '_ {
    lengths.iter().enumerate().map(|(r, &l)| (r, l.max(1) - 1))
}

/// The packed rows of `(sample, step)` pairs (each step below the sample's length), as an index.
fn packed_rows(
    packing: &Packing,
    pairs: impl Iterator<Item = (usize, usize)>,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let idx = pairs
        .map(|(r, s)| {
            packing
                .row(r, s)
                .map(|i| i as u32)
                .ok_or_else(|| candle_core::Error::Msg(format!("MFN: sample {r} has no step {s}")))
        })
        .collect::<candle_core::Result<Vec<u32>>>()?;
    let n = idx.len();
    Tensor::from_vec(idx, n, dev)
}

impl Mfn {
    /// The multi-view memory `u_1, …, u_T` of every step (each `B × mem`, `T` = the batch's
    /// longest length). After a sample's last valid step its memory is frozen (the entries repeat
    /// its last valid `u`).
    pub fn memory_trace(&self, b: &SeqBatch, train: bool) -> candle_core::Result<Vec<Tensor>> {
        let f = self.run(b, train)?;
        let (bs, t_len, _) = b.inputs[0].dims3()?;
        let lengths = &b.lengths;
        let pairs =
            (0..t_len).flat_map(|t| (0..bs).map(move |r| (r, t.min(lengths[r].max(1) - 1))));
        let idx = packed_rows(&f.packing, pairs, f.mem.device())?;
        let all = f
            .mem
            .index_select(&idx, 0)?
            .reshape((t_len, bs, self.cfg.mem))?;
        (0..t_len).map(|t| all.get(t)).collect()
    }

    /// The step-by-step reference implementation of [`memory_trace`](Self::memory_trace)
    /// (every sample stepped over the batch's `T` steps, padding included; after a sample's last
    /// valid step the entries are computed from padding). For tests.
    #[doc(hidden)]
    pub fn memory_trace_stepwise(
        &self,
        b: &SeqBatch,
        train: bool,
    ) -> candle_core::Result<Vec<Tensor>> {
        Ok(self.run_stepwise(b, train)?.mem)
    }

    /// The step-by-step reference implementation of [`FusionModel::forward`]: the three cells
    /// and the memory stepped together, one step at a time, with per-step dropout masks. The
    /// same function as `forward` (equal in inference); kept for tests and benchmarks.
    #[doc(hidden)]
    pub fn forward_stepwise(&self, b: &SeqBatch, train: bool) -> candle_core::Result<ModelOutput> {
        let trace = self.run_stepwise(b, train)?;
        // each sample's states at its own last valid step
        let at_last = |s: &[Tensor]| last_valid(&Tensor::stack(s, 1)?, &b.last);
        let unimodal = trace
            .h
            .iter()
            .map(|s| at_last(s))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let fused = at_last(&trace.mem)?;
        self.output(unimodal, fused, train)
    }

    /// Switches the fused CPU kernels (the cells' [`FastLstm`] op and the memory recurrence) off:
    /// `false` runs the same computation as plain candle ops, the path other devices take. For
    /// tests; the default is on.
    #[doc(hidden)]
    pub fn set_fused(&mut self, on: bool) {
        self.fused = on;
        for l in &mut self.lstms {
            l.set_fused(on);
        }
    }

    fn output(
        &self,
        unimodal: Vec<Tensor>,
        fused: Tensor,
        train: bool,
    ) -> candle_core::Result<ModelOutput> {
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

    /// The fused forward pass: the three cells over whole sequences, the attention of every
    /// active `(sample, step)` row at once, then the memory recurrence (see the module doc).
    fn run(&self, b: &SeqBatch, train: bool) -> candle_core::Result<Fast> {
        let (bs, t_len, _) = b.inputs[0].dims3()?;
        for x in &b.inputs {
            let (bm, tm, _) = x.dims3()?;
            if (bm, tm) != (bs, t_len) {
                candle_core::bail!("MFN: inputs of {bm} × {tm} and {bs} × {t_len} steps");
            }
        }
        if b.lengths.len() != bs {
            candle_core::bail!("MFN: {} lengths for a batch of {bs}", b.lengths.len());
        }
        if let Some(&l) = b.lengths.iter().find(|&&l| l == 0 || l > t_len) {
            candle_core::bail!("MFN: length {l} outside 1..={t_len} (the batch's steps)");
        }
        let packing = Packing::new(&b.lengths);
        let dev = b.inputs[0].device();
        let (n, w) = (packing.rows(), self.cfg.window);
        // every valid step's [h_t, c_t] of each cell, N × 2d_m in packed order
        let steps = Tensor::from_vec(packing.gather_index(t_len), n, dev)?;
        let mut states = Vec::with_capacity(3);
        for (m, (lstm, x)) in self.lstms.iter().zip(&b.inputs).enumerate() {
            let d = x.dim(2)?;
            let rows = if m > 0 && self.cfg.mmsa_av_mean {
                // the sample's time-mean at each of its steps
                let of_row: Vec<u32> = (0..packing.steps())
                    .flat_map(|s| &packing.order()[..packing.active(s)])
                    .map(|&r| r as u32)
                    .collect();
                let of_row = Tensor::from_vec(of_row, n, dev)?;
                masked_mean(x, &b.mask)?.index_select(&of_row, 0)?
            } else {
                x.reshape((bs * t_len, d))?.index_select(&steps, 0)?
            };
            states.push(lstm.packed_states(&rows, &packing)?);
        }
        // h of each cell at each sample's last valid step (contiguous: consumers index its rows)
        let last = packed_rows(&packing, last_steps(&b.lengths), dev)?;
        let mut h_last = Vec::with_capacity(3);
        for (st, &d) in states.iter().zip(&self.cfg.hidden) {
            h_last.push(st.index_select(&last, 0)?.narrow(1, 0, d)?.contiguous()?);
        }
        // c* of every row: [c_{s−w+1}; …; c_s] of the same sample (0 before its first step); in
        // packed order the sample at position k of step s is at position k of every earlier step
        let mut cells = Vec::with_capacity(3);
        for (st, &d) in states.iter().zip(&self.cfg.hidden) {
            cells.push(st.narrow(1, d, d)?);
        }
        let c_all = Tensor::cat(&cells, 1)?;
        let total: usize = self.cfg.hidden.iter().sum();
        let att_in = w * total;
        let cstar = if w == 1 {
            c_all
        } else {
            let mut idx: Vec<u32> = Vec::with_capacity(n * w);
            for s in 0..packing.steps() {
                for k in 0..packing.active(s) {
                    for j in 0..w {
                        idx.push(if s + j + 1 < w {
                            n as u32 // the zero row
                        } else {
                            (packing.offset(s + j + 1 - w) + k) as u32
                        });
                    }
                }
            }
            let idx = Tensor::from_vec(idx, n * w, dev)?;
            let zero = Tensor::zeros((1, total), c_all.dtype(), dev)?;
            Tensor::cat(&[&c_all, &zero], 0)?
                .index_select(&idx, 0)?
                .reshape((n, att_in))?
        };
        // `softmax`, not `softmax_last_dim`: the latter has no backward pass in candle-nn 0.11
        let att = softmax(&self.nn1.forward(&cstar, train)?, D::Minus1)?;
        let attended = (att * &cstar)?;
        let cand = self.nn2.forward(&attended, train)?.tanh()?;
        // the gate networks' first layers split into their ĉ columns (all rows at once) and
        // their u columns (in the recurrence)
        let mem = self.cfg.mem;
        let (g1w, g2w) = (self.gamma1.fc1.weight(), self.gamma2.fc1.weight());
        let w_c = Tensor::cat(&[g1w.narrow(1, 0, att_in)?, g2w.narrow(1, 0, att_in)?], 0)?;
        let w_u = Tensor::cat(
            &[g1w.narrow(1, att_in, mem)?, g2w.narrow(1, att_in, mem)?],
            0,
        )?;
        let gb = match (self.gamma1.fc1.bias(), self.gamma2.fc1.bias()) {
            (Some(a), Some(c)) => Tensor::cat(&[a, c], 0)?,
            _ => candle_core::bail!("MFN gate layers are built with biases"),
        };
        let pre_c = attended.matmul(&w_c.t()?)?.broadcast_add(&gb)?;
        let masks = if train && (self.cfg.gamma1.dropout > 0.0 || self.cfg.gamma2.dropout > 0.0) {
            let draw = |drop: &SeededDropout, width: usize| {
                let ones = Tensor::ones((n, width), DType::F32, &Device::Cpu)?;
                drop.forward(&ones, true)
            };
            let m1 = draw(&self.gamma1.drop, self.cfg.gamma1.width)?;
            let m2 = draw(&self.gamma2.drop, self.cfg.gamma2.width)?;
            Some(Tensor::cat(&[m1, m2], 1)?.flatten_all()?.to_vec1::<f32>()?)
        } else {
            None
        };
        let rec = MemoryRecurrence {
            active: (0..packing.steps()).map(|s| packing.active(s)).collect(),
            off: (0..=packing.steps()).map(|s| packing.offset(s)).collect(),
            mem,
            w1: self.cfg.gamma1.width,
            w2: self.cfg.gamma2.width,
            masks,
            saved: Mutex::new(None),
        };
        let (f1, f2) = (&self.gamma1.fc2, &self.gamma2.fc2);
        let mem_rows = if self.fused && fusable(&pre_c) {
            let bias = |l: &Linear| match l.bias() {
                Some(b) => Ok(b.clone()),
                None => Err(candle_core::Error::Msg(
                    "MFN gate layers are built with biases".into(),
                )),
            };
            let packed = Tensor::cat(
                &[
                    w_u.flatten_all()?,
                    f1.weight().flatten_all()?,
                    bias(f1)?,
                    f2.weight().flatten_all()?,
                    bias(f2)?,
                ],
                0,
            )?;
            let a = Tensor::cat(&[&pre_c, &cand], 1)?;
            a.apply_op2(&packed, rec)?
        } else {
            rec.plain(&pre_c, &cand, &w_u, f1, f2)?
        };
        Ok(Fast {
            h_last: [h_last[0].clone(), h_last[1].clone(), h_last[2].clone()],
            mem: mem_rows,
            packing,
        })
    }

    fn run_stepwise(&self, b: &SeqBatch, train: bool) -> candle_core::Result<Trace> {
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
        let cells = [cell(0)?, cell(1)?, cell(2)?];
        let lstm = |c: &Cell| {
            FastLstm::from_tensors(
                c.ih.weight().clone(),
                c.hh.weight().clone(),
                c.ih.bias().cloned(),
                c.hh.bias().cloned(),
            )
        };
        let lstms = [lstm(&cells[0])?, lstm(&cells[1])?, lstm(&cells[2])?];
        Ok(Self {
            cells,
            lstms,
            nn1: Mlp::new(att_in, cfg.nn1, att_in, s ^ 0x3F1, vb.pp("nn1"))?,
            nn2: Mlp::new(att_in, cfg.nn2, cfg.mem, s ^ 0x3F2, vb.pp("nn2"))?,
            gamma1: Mlp::new(gamma_in, cfg.gamma1, cfg.mem, s ^ 0x3F3, vb.pp("gamma1"))?,
            gamma2: Mlp::new(gamma_in, cfg.gamma2, cfg.mem, s ^ 0x3F4, vb.pp("gamma2"))?,
            out: Mlp::new(total + cfg.mem, cfg.out, 1, s ^ 0x3F5, vb.pp("out"))?,
            cfg,
            fused: true,
        })
    }

    fn rep_dims(&self) -> (Vec<usize>, usize) {
        (self.cfg.hidden.to_vec(), self.cfg.mem)
    }

    fn forward(&self, b: &SeqBatch, train: bool) -> candle_core::Result<ModelOutput> {
        let f = self.run(b, train)?;
        // u at each sample's last valid step
        let last = packed_rows(&f.packing, last_steps(&b.lengths), f.mem.device())?;
        let fused = f.mem.index_select(&last, 0)?;
        self.output(f.h_last.to_vec(), fused, train)
    }
}

fn fusable(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// MFN's gated-memory recurrence over packed rows ([`Packing`] order), as one op.
///
/// Inputs: `A = [P | Û]` (`N × (G + M)`, rows in schedule order; `G = w_1 + w_2` the two gate
/// networks' widths, `M` the memory width), where `P` holds the `ĉ`-part of both gate networks'
/// first layers with their biases and `Û` the candidate memories `û_t`; and the packed weights
/// `w = [W_u; F_1; c_1; F_2; c_2]` (flattened row-major: `W_u` `G × M` the first layers' `u`
/// columns, `F_i` `M × w_i` and `c_i` `M` the second layers). For every step `s` and every
/// active row, with `u'` the same sample's row at step `s − 1` (0 at the first step):
///
/// `pre = P + W_u u'`, `r = relu(pre) ⊙ d` (`d` the gate networks' dropout mask, 1 without),
/// `γ1 = σ(F_1 r_{1..w_1} + c_1)`, `γ2 = σ(F_2 r_{w_1+1..G} + c_2)`, `u = γ1 ⊙ u' + γ2 ⊙ û`.
///
/// Output: `U` (`N × M`). Backward (through time, from `∂U`, last step first), per row:
/// `δu = ∂U + W_uᵀ δpre_next + γ1_next ⊙ δu_next` (the carried terms from the same sample's next
/// step), `∂û = δu ⊙ γ2`, `δz_1 = δu ⊙ u' ⊙ γ1 (1 − γ1)`, `δz_2 = δu ⊙ û ⊙ γ2 (1 − γ2)`,
/// `δpre = [F_1ᵀ δz_1; F_2ᵀ δz_2] ⊙ d ⊙ [pre ≥ 0]` (candle's ReLU gradient at 0), `∂P = δpre`;
/// `∂W_u = Σ δpre u'ᵀ`, `∂F_i = Σ δz_i r_iᵀ`, `∂c_i = Σ δz_i` over all rows. Per step the op runs
/// three small `gemm`s forward (`W_u u'`, `F_1 r_1`, `F_2 r_2`) and three backward; the weight
/// gradients are one `gemm` each over all rows.
struct MemoryRecurrence {
    /// Active rows per step.
    active: Vec<usize>,
    /// First row of each step, then `N`.
    off: Vec<usize>,
    mem: usize,
    w1: usize,
    w2: usize,
    /// The gate networks' dropout masks `N × G` (`None`: no dropout).
    masks: Option<Vec<f32>>,
    /// Per row `[pre (G) | γ1 (M) | γ2 (M)]` of the forward pass, for the backward.
    saved: Mutex<Option<CpuStorage>>,
}

/// The packed weights of [`MemoryRecurrence`], row-major.
struct GateWeights<'a, T> {
    /// `W_u`, `(w_1 + w_2) × M`.
    wu: &'a [T],
    /// `F_1`, `M × w_1`.
    f1: &'a [T],
    /// `c_1`, `M`.
    c1: &'a [T],
    /// `F_2`, `M × w_2`.
    f2: &'a [T],
    /// `c_2`, `M`.
    c2: &'a [T],
}

impl MemoryRecurrence {
    const NAME: &'static str = "mfn-memory";

    fn packed_len(&self) -> usize {
        let g = self.w1 + self.w2;
        2 * g * self.mem + 2 * self.mem
    }

    /// The parts of the packed weights.
    fn split<'a, T>(&self, w: &'a [T]) -> GateWeights<'a, T> {
        let (m, w1, w2) = (self.mem, self.w1, self.w2);
        let (wu, rest) = w.split_at((w1 + w2) * m);
        let (f1, rest) = rest.split_at(m * w1);
        let (c1, rest) = rest.split_at(m);
        let (f2, c2) = rest.split_at(m * w2);
        GateWeights { wu, f1, c1, f2, c2 }
    }

    fn mask<T: Real>(&self, row: usize, j: usize) -> T {
        match &self.masks {
            Some(d) => T::from_f64(f64::from(d[row * (self.w1 + self.w2) + j])),
            None => T::ONE,
        }
    }

    fn check(&self, a: &Shape, w: &Shape) -> candle_core::Result<()> {
        let (g, m) = (self.w1 + self.w2, self.mem);
        let n = self.off[self.off.len() - 1];
        if a.dims2()? != (n, g + m) || w.dims1()? != self.packed_len() {
            candle_core::bail!("{}: shapes {a:?} and {w:?}", Self::NAME);
        }
        if self.masks.as_ref().is_some_and(|d| d.len() != n * g) {
            candle_core::bail!("{}: dropout mask of the wrong size", Self::NAME);
        }
        Ok(())
    }

    /// `(U, saved)` from `A` and the packed weights.
    fn fwd<T: Real>(&self, a: &[T], w: &[T]) -> (Vec<T>, Vec<T>) {
        let (m, w1, w2) = (self.mem, self.w1, self.w2);
        let g = w1 + w2;
        let (ac, sc) = (g + m, g + 2 * m);
        let n_rows = self.off[self.off.len() - 1];
        let GateWeights { wu, f1, c1, f2, c2 } = self.split(w);
        let mut u = vec![T::ZERO; n_rows * m];
        let mut saved = vec![T::ZERO; n_rows * sc];
        let widest = self.active.first().copied().unwrap_or(0);
        let mut r = vec![T::ZERO; widest * g];
        for (s, &n) in self.active.iter().enumerate() {
            let o = self.off[s];
            let (prev, cur) = u.split_at_mut(o * m);
            let sv = &mut saved[o * sc..(o + n) * sc];
            for i in 0..n {
                let row = &mut sv[i * sc..(i + 1) * sc];
                row[..g].copy_from_slice(&a[(o + i) * ac..(o + i) * ac + g]);
                row[g..g + m].copy_from_slice(c1);
                row[g + m..].copy_from_slice(c2);
            }
            let po = if s > 0 { self.off[s - 1] } else { 0 };
            if s > 0 {
                // pre += u' · W_uᵀ (W_uᵀ[k][j] = W_u[j][k] = wu[j·M + k])
                gemm_into(
                    n,
                    g,
                    m,
                    sv,
                    (sc, 1),
                    true,
                    &prev[po * m..],
                    (m, 1),
                    wu,
                    (1, m),
                );
            }
            for i in 0..n {
                for j in 0..g {
                    let p = sv[i * sc + j];
                    let v = if p > T::ZERO { p } else { T::ZERO };
                    r[i * g + j] = v * self.mask::<T>(o + i, j);
                }
            }
            // z_1 = c_1 + r_1 · F_1ᵀ, z_2 = c_2 + r_2 · F_2ᵀ (F_iᵀ[j][k] = f_i[k·w_i + j])
            gemm_into(
                n,
                m,
                w1,
                &mut sv[g..],
                (sc, 1),
                true,
                &r,
                (g, 1),
                f1,
                (1, w1),
            );
            gemm_into(
                n,
                m,
                w2,
                &mut sv[g + m..],
                (sc, 1),
                true,
                &r[w1..],
                (g, 1),
                f2,
                (1, w2),
            );
            for i in 0..n {
                let row = &mut sv[i * sc + g..(i + 1) * sc];
                let cand = &a[(o + i) * ac + g..(o + i + 1) * ac];
                let out = &mut cur[i * m..(i + 1) * m];
                for k in 0..m {
                    let (g1, g2) = (row[k].sigmoid(), row[m + k].sigmoid());
                    (row[k], row[m + k]) = (g1, g2);
                    let up = if s > 0 {
                        prev[(po + i) * m + k]
                    } else {
                        T::ZERO
                    };
                    out[k] = g1 * up + g2 * cand[k];
                }
            }
        }
        (u, saved)
    }

    /// `(∂A, ∂w)` from `A`, the packed weights, the output `U`, its gradient and the saved
    /// activations.
    fn bwd_kernel<T: Real>(
        &self,
        a: &[T],
        w: &[T],
        u: &[T],
        grad: &[T],
        saved: &[T],
    ) -> (Vec<T>, Vec<T>) {
        let (m, w1, w2) = (self.mem, self.w1, self.w2);
        let g = w1 + w2;
        let (ac, sc) = (g + m, g + 2 * m);
        let n_rows = self.off[self.off.len() - 1];
        let GateWeights { wu, f1, f2, .. } = self.split(w);
        let mut da = vec![T::ZERO; n_rows * ac];
        let mut dz = vec![T::ZERO; n_rows * 2 * m];
        let widest = self.active.first().copied().unwrap_or(0);
        // ∂u' of the rows of the step after the current one (rows past it: 0)
        let mut carry = vec![T::ZERO; widest * m];
        for (s, &n) in self.active.iter().enumerate().rev() {
            let o = self.off[s];
            let po = if s > 0 { self.off[s - 1] } else { 0 };
            for i in 0..n {
                let row = o + i;
                let sv = &saved[row * sc..(row + 1) * sc];
                for k in 0..m {
                    let d = grad[row * m + k] + carry[i * m + k];
                    let (g1, g2) = (sv[g + k], sv[g + m + k]);
                    let up = if s > 0 { u[(po + i) * m + k] } else { T::ZERO };
                    let cand = a[row * ac + g + k];
                    da[row * ac + g + k] = d * g2;
                    dz[row * 2 * m + k] = d * up * g1 * (T::ONE - g1);
                    dz[row * 2 * m + m + k] = d * cand * g2 * (T::ONE - g2);
                    carry[i * m + k] = d * g1;
                }
            }
            // δr_i = δz_i · F_i (F_i[k][j] = f_i[k·w_i + j]) into the P columns of ∂A
            gemm_into(
                n,
                w1,
                m,
                &mut da[o * ac..],
                (ac, 1),
                false,
                &dz[o * 2 * m..],
                (2 * m, 1),
                f1,
                (w1, 1),
            );
            gemm_into(
                n,
                w2,
                m,
                &mut da[o * ac + w1..],
                (ac, 1),
                false,
                &dz[o * 2 * m + m..],
                (2 * m, 1),
                f2,
                (w2, 1),
            );
            for i in 0..n {
                let row = o + i;
                for j in 0..g {
                    let keep = saved[row * sc + j] >= T::ZERO;
                    let v = &mut da[row * ac + j];
                    *v = if keep {
                        *v * self.mask::<T>(row, j)
                    } else {
                        T::ZERO
                    };
                }
            }
            if s > 0 {
                // ∂u' += δpre · W_u
                gemm_into(
                    n,
                    m,
                    g,
                    &mut carry,
                    (m, 1),
                    true,
                    &da[o * ac..],
                    (ac, 1),
                    wu,
                    (m, 1),
                );
            }
        }
        let mut dw = vec![T::ZERO; self.packed_len()];
        let (o_f1, o_c1) = (g * m, g * m + m * w1);
        let (o_f2, o_c2) = (o_c1 + m, o_c1 + m + m * w2);
        // ∂W_u = Σ_{s ≥ 1} δpreᵀ · u' over the rows of steps ≥ 1
        if self.active.len() > 1 {
            let r0 = self.off[1];
            let mut uprev = vec![T::ZERO; (n_rows - r0) * m];
            for s in 1..self.active.len() {
                let (o, po) = (self.off[s], self.off[s - 1]);
                let n = self.active[s];
                uprev[(o - r0) * m..(o - r0 + n) * m].copy_from_slice(&u[po * m..(po + n) * m]);
            }
            gemm_into(
                g,
                m,
                n_rows - r0,
                &mut dw,
                (m, 1),
                false,
                &da[r0 * ac..],
                (1, ac),
                &uprev,
                (m, 1),
            );
        }
        // ∂F_i = Σ δz_iᵀ · r_i, ∂c_i = Σ δz_i
        let mut r = vec![T::ZERO; n_rows * g];
        for row in 0..n_rows {
            for j in 0..g {
                let p = saved[row * sc + j];
                let v = if p > T::ZERO { p } else { T::ZERO };
                r[row * g + j] = v * self.mask::<T>(row, j);
            }
        }
        gemm_into(
            m,
            w1,
            n_rows,
            &mut dw[o_f1..],
            (w1, 1),
            false,
            &dz,
            (1, 2 * m),
            &r,
            (g, 1),
        );
        gemm_into(
            m,
            w2,
            n_rows,
            &mut dw[o_f2..],
            (w2, 1),
            false,
            &dz[m..],
            (1, 2 * m),
            &r[w1..],
            (g, 1),
        );
        for dzr in dz.chunks_exact(2 * m) {
            for k in 0..m {
                dw[o_c1 + k] += dzr[k];
                dw[o_c2 + k] += dzr[m + k];
            }
        }
        (da, dw)
    }

    fn cpu_fwd_t<T: Real>(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.check(l1.shape(), l2.shape())?;
        let a = cpu_slice::<T>(s1, l1, Self::NAME)?;
        let w = cpu_slice::<T>(s2, l2, Self::NAME)?;
        let (u, saved) = self.fwd(a, w);
        *self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg(format!("{}: lock poisoned", Self::NAME)))? =
            Some(T::to_cpu_storage_owned(saved));
        let n = self.off[self.off.len() - 1];
        Ok((T::to_cpu_storage_owned(u), Shape::from((n, self.mem))))
    }

    fn bwd_t<T: Real>(
        &self,
        a: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let av = a.flatten_all()?.to_vec1::<T>()?;
        let wv = w.flatten_all()?.to_vec1::<T>()?;
        let u = res.flatten_all()?.to_vec1::<T>()?;
        let g = grad.flatten_all()?.to_vec1::<T>()?;
        let guard = self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg(format!("{}: lock poisoned", Self::NAME)))?;
        let saved = guard.as_ref().ok_or_else(|| {
            candle_core::Error::Msg(format!("{}: backward before forward", Self::NAME))
        })?;
        let (da, dw) = self.bwd_kernel(&av, &wv, &u, &g, T::cpu_storage_as_slice(saved)?);
        Ok((
            Some(Tensor::from_vec(da, a.shape(), a.device())?),
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
        ))
    }

    /// The same recurrence as plain candle ops (any device and dtype): `pre_c = P` (`N × G`),
    /// `cand = Û` (`N × M`), `w_u = W_u` (`G × M`), `f1`, `f2` the gate networks' second layers.
    fn plain(
        &self,
        pre_c: &Tensor,
        cand: &Tensor,
        w_u: &Tensor,
        f1: &Linear,
        f2: &Linear,
    ) -> candle_core::Result<Tensor> {
        let (g, m) = (self.w1 + self.w2, self.mem);
        let n_rows = self.off[self.off.len() - 1];
        if pre_c.dims2()? != (n_rows, g) || cand.dims2()? != (n_rows, m) {
            candle_core::bail!(
                "{}: shapes {:?} and {:?}",
                Self::NAME,
                pre_c.shape(),
                cand.shape()
            );
        }
        let masks = match &self.masks {
            Some(d) => Some(
                Tensor::from_slice(d, (n_rows, g), &Device::Cpu)?
                    .to_dtype(pre_c.dtype())?
                    .to_device(pre_c.device())?,
            ),
            None => None,
        };
        let w_u_t = w_u.t()?;
        let mut steps: Vec<Tensor> = Vec::with_capacity(self.active.len());
        for (s, &n) in self.active.iter().enumerate() {
            let o = self.off[s];
            let prev = steps.last().map(|u| u.narrow(0, 0, n)).transpose()?;
            let mut pre = pre_c.narrow(0, o, n)?;
            if let Some(up) = &prev {
                pre = (pre + up.matmul(&w_u_t)?)?;
            }
            let mut r = pre.relu()?;
            if let Some(d) = &masks {
                r = (r * d.narrow(0, o, n)?)?;
            }
            let g1 = sigmoid(&f1.forward(&r.narrow(1, 0, self.w1)?)?)?;
            let g2 = sigmoid(&f2.forward(&r.narrow(1, self.w1, self.w2)?)?)?;
            let upd = (g2 * cand.narrow(0, o, n)?)?;
            steps.push(match &prev {
                Some(up) => ((g1 * up)? + upd)?,
                None => upd,
            });
        }
        Tensor::cat(&steps, 0)
    }
}

impl CustomOp2 for MemoryRecurrence {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => self.cpu_fwd_t::<f32>(s1, l1, s2, l2),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => self.cpu_fwd_t::<f64>(s1, l1, s2, l2),
            _ => candle_core::bail!("{}: unsupported or mixed dtypes", Self::NAME),
        }
    }

    fn bwd(
        &self,
        a: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        match a.dtype() {
            DType::F32 => self.bwd_t::<f32>(a, w, res, grad),
            DType::F64 => self.bwd_t::<f64>(a, w, res, grad),
            d => candle_core::bail!("{}: unsupported dtype {d:?}", Self::NAME),
        }
    }
}
