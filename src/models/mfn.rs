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
//! # Files
//! * this file: the model (its networks, the fused forward pass, [`FusionModel`]);
//! * `mfn/config.rs`: [`MfnConfig`] and [`MlpSpec`];
//! * `mfn/memory.rs`: the gated-memory recurrence op (`MemoryRecurrence`, forward and backward);
//! * `mfn/stepwise.rs`: the step-by-step reference implementation (`Mfn::forward_stepwise`).
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

mod config;
mod memory;
mod stepwise;

pub use config::{MfnConfig, MlpSpec};

use super::layers::lstm::{FastLstm, Packing};
use super::{masked_mean, BuildCtx, Checked, FusionModel, ModelOutput, SeededDropout};
use crate::data::SeqBatch;
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::ops::softmax;
use candle_nn::{linear, Linear, VarBuilder};
use memory::MemoryRecurrence;
use stepwise::Cell;

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
        let rec = MemoryRecurrence::new(
            &packing,
            mem,
            self.cfg.gamma1.width,
            self.cfg.gamma2.width,
            masks,
        );
        let gates = (&self.gamma1.fc2, &self.gamma2.fc2);
        let mem_rows = rec.apply(&pre_c, &cand, &w_u, gates, self.fused)?;
        Ok(Fast {
            h_last: [h_last[0].clone(), h_last[1].clone(), h_last[2].clone()],
            mem: mem_rows,
            packing,
        })
    }
}

impl FusionModel for Mfn {
    type Config = MfnConfig;
    const NAME: &'static str = "MFN";

    fn new(cfg: &Checked<MfnConfig>, ctx: &BuildCtx, vb: VarBuilder) -> candle_core::Result<Self> {
        let cfg: MfnConfig = **cfg;
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
