//! The step-by-step reference implementation of MFN: the three cells and the memory stepped
//! together, one step at a time, with per-step dropout masks (what the fused forward pass
//! replaced). The same function as the fused forward pass in inference; kept for the tests that
//! compare outputs and gradients, and for benchmarks.

use super::Mfn;
use crate::data::SeqBatch;
use crate::models::{last_valid, masked_mean, ModelOutput};
use candle_core::{Module, Tensor, D};
use candle_nn::ops::{sigmoid, softmax};
use candle_nn::{linear, Linear, VarBuilder};

/// An LSTM cell (PyTorch gate order i, f, g, o) split into its input-to-hidden part (applied to
/// whole sequences at once) and its hidden-to-hidden part (applied per step).
pub(super) struct Cell {
    pub(super) ih: Linear,
    pub(super) hh: Linear,
    hidden: usize,
}

impl Cell {
    pub(super) fn new(input: usize, hidden: usize, vb: VarBuilder) -> candle_core::Result<Self> {
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

/// States of a step-by-step forward pass, per step.
struct Trace {
    /// `h_t` per modality, each a list over steps of `B × d_m`.
    h: [Vec<Tensor>; 3],
    /// `u_t` over steps, `B × mem`.
    mem: Vec<Tensor>,
}

impl Mfn {
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

    /// The step-by-step reference implementation of
    /// [`FusionModel::forward`](crate::models::FusionModel::forward): the three cells and the
    /// memory stepped together, one step at a time, with per-step dropout masks. The same
    /// function as `forward` (equal in inference); kept for tests and benchmarks.
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
