//! [`FastLstm`]: a single-layer LSTM with candle-nn's parameters (`weight_ih_l0` `4H × I`,
//! `weight_hh_l0` `4H × H`, `bias_ih_l0`, `bias_hh_l0`; gates `i, f, g, o` as in PyTorch) that
//! runs a whole (masked) sequence in three autograd nodes instead of ~15 per step.
//!
//! * The input projection of every step is one matmul, `(B·T × I)·(I × 4H)`, plus both biases.
//! * The recurrence is one candle `CustomOp2` (`LstmSeq`) on CPU, `f32` and `f64`: per step one
//!   `gemm` of the active rows' hidden state with `W_hhᵀ` and the fused gate math; its hand-written
//!   backward is back-propagation through time with one `gemm` per step for `∂h_{t-1}` and a
//!   single `gemm` for `∂W_hh` over all steps. Slicing a step out of a `B × T × 4H` tensor inside
//!   candle's autograd would cost a zero-padded full-size gradient per step (`O(T²)` memory
//!   traffic in the backward pass); the op avoids that.
//! * Variable lengths: rows are processed in length-sorted order, so step `t` only computes the
//!   rows with `length > t` and no step runs past the batch's longest sequence. A finished
//!   sequence's state is frozen: at its padded steps the outputs repeat its last valid `(h, c)`,
//!   and padding never influences any output or gradient.
//! * Packed sequences ([`Packing`], [`FastLstm::packed_states`]): inputs and states are only the
//!   valid steps' rows, step after step in length-sorted order (PyTorch's packed sequences), so
//!   no padded step is projected, stored or back-propagated; the same op and kernels.
//! * On other devices and dtypes the same math runs as plain candle ops (masked blend
//!   `state = m·new + (1 − m)·old`), so CUDA builds work unchanged.
//!
//! # Files
//! * this file: the layer ([`FastLstm`]: its variables, shapes and which path runs);
//! * `packing`: the row order of packed sequences ([`Packing`]);
//! * `recurrence`: the recurrence itself, as the fused CPU op (`LstmSeq`, forward and
//!   back-propagation through time) and as plain candle ops;
//! * `bidirectional`: a bidirectional layer of two [`FastLstm`]s (MISA, MMIM).

mod bidirectional;
mod packing;
mod recurrence;

pub(crate) use bidirectional::{BiLstm, Reversal};
pub use packing::Packing;

use crate::kernels::real::{real_cpu, RealOp};
use candle_core::{Result, Tensor};
use candle_nn::rnn::{Direction, LSTMConfig};
use candle_nn::VarBuilder;
use recurrence::LstmSeq;

/// A single-layer LSTM, weight-compatible with `candle_nn::rnn::LSTM` (stack several for a deep
/// LSTM, as with candle-nn).
#[derive(Debug, Clone)]
pub struct FastLstm {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
    in_dim: usize,
    hidden: usize,
    fused: bool,
}

/// [`FastLstm::new`] with candle-nn's default configuration (Kaiming-uniform weights, zero biases).
pub fn fast_lstm(in_dim: usize, hidden: usize, vb: VarBuilder) -> Result<FastLstm> {
    FastLstm::new(in_dim, hidden, LSTMConfig::default(), vb)
}

impl FastLstm {
    /// Builds the layer's variables under `vb` exactly as `candle_nn::rnn::LSTM::new` does (same
    /// names, shapes and initialisers), so the two load the same weights.
    pub fn new(in_dim: usize, hidden: usize, config: LSTMConfig, vb: VarBuilder) -> Result<Self> {
        let l = config.layer_idx;
        let dir = match config.direction {
            Direction::Forward => "",
            Direction::Backward => "_reverse",
        };
        let w_ih = vb.get_with_hints(
            (4 * hidden, in_dim),
            &format!("weight_ih_l{l}{dir}"),
            config.w_ih_init,
        )?;
        let w_hh = vb.get_with_hints(
            (4 * hidden, hidden),
            &format!("weight_hh_l{l}{dir}"),
            config.w_hh_init,
        )?;
        let bias = |init: Option<candle_nn::Init>, kind: &str| -> Result<Option<Tensor>> {
            init.map(|i| vb.get_with_hints(4 * hidden, &format!("bias_{kind}_l{l}{dir}"), i))
                .transpose()
        };
        Ok(Self {
            b_ih: bias(config.b_ih_init, "ih")?,
            b_hh: bias(config.b_hh_init, "hh")?,
            w_ih,
            w_hh,
            in_dim,
            hidden,
            fused: true,
        })
    }

    /// Hidden size `H`.
    pub fn hidden_dim(&self) -> usize {
        self.hidden
    }

    /// Input width `I`.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Switches the fused CPU kernel off (`false`: plain candle ops everywhere, the path non-CPU
    /// devices always take). For tests and benchmarks; the default is on.
    pub fn set_fused(&mut self, on: bool) {
        self.fused = on;
    }

    /// All hidden states of an unpadded batch (what candle-nn's `states_to_tensor(&seq(x))`
    /// returns).
    ///
    /// # Shapes
    /// * `x`: `B × T × I`
    /// * returns: `B × T × H`
    pub fn seq(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(self.seq_masked(x, &vec![t; b])?.0)
    }

    /// A layer on existing tensors: `w_ih: 4H × I`, `w_hh: 4H × H`, biases of `4H` (e.g. the
    /// parameters of two `Linear` layers, so that a model keeps its variable names).
    pub(crate) fn from_tensors(
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Option<Tensor>,
        b_hh: Option<Tensor>,
    ) -> Result<Self> {
        let (g4, in_dim) = w_ih.dims2()?;
        let hidden = g4 / 4;
        if g4 == 0 || g4 % 4 != 0 || w_hh.dims2()? != (g4, hidden) {
            candle_core::bail!(
                "FastLstm: weights {:?} and {:?} are not 4H × I and 4H × H",
                w_ih.shape(),
                w_hh.shape()
            );
        }
        for b in b_ih.iter().chain(&b_hh) {
            if b.dims() != [g4] {
                candle_core::bail!("FastLstm: bias {:?}, expected [{g4}]", b.shape());
            }
        }
        Ok(Self {
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            in_dim,
            hidden,
            fused: true,
        })
    }

    /// Runs padded sequences `x` of valid lengths `lengths` (each `≤ T`) from a zero state.
    /// Returns all hidden states (at a sequence's padded steps: its last valid `h`, the state
    /// being frozen), and `h` and `c` at each sequence's last valid step (zeros for a length of
    /// 0).
    ///
    /// # Shapes
    /// * `x`: `B × T × I`, `lengths`: `B` values `≤ T`
    /// * returns `(states, h_last, c_last)`: `B × T × H`, `B × H`, `B × H`
    pub fn seq_masked(&self, x: &Tensor, lengths: &[usize]) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, i) = x.dims3()?;
        let h = self.hidden;
        if i != self.in_dim {
            candle_core::bail!("FastLstm: input width {i}, expected {}", self.in_dim);
        }
        if lengths.len() != b {
            candle_core::bail!("FastLstm: {} lengths for a batch of {b}", lengths.len());
        }
        if let Some(&l) = lengths.iter().find(|&&l| l > t) {
            candle_core::bail!("FastLstm: length {l} exceeds the {t} steps of the input");
        }
        if t == 0 || b == 0 {
            let z = Tensor::zeros((b, h), x.dtype(), x.device())?;
            return Ok((
                Tensor::zeros((b, t, h), x.dtype(), x.device())?,
                z.clone(),
                z,
            ));
        }
        let xp = x.reshape((b * t, i))?.matmul(&self.w_ih.t()?)?;
        let bias = self.bias()?;
        let out = if self.use_op(x) {
            let w_aug = self.w_hh_with_bias(bias.as_ref(), x)?;
            xp.reshape((b, t, 4 * h))?
                .apply_op2(&w_aug, RealOp::new(LstmSeq::new(lengths.to_vec(), h)))?
        } else {
            let xp = match bias {
                Some(bias) => xp.broadcast_add(&bias)?,
                None => xp,
            };
            recurrence::plain(&xp.reshape((b, t, 4 * h))?, &self.w_hh, lengths)?
        };
        let last = out.narrow(1, t - 1, 1)?.squeeze(1)?;
        Ok((
            out.narrow(2, 0, h)?,
            last.narrow(1, 0, h)?,
            last.narrow(1, h, h)?,
        ))
    }

    /// `b_ih + b_hh` (either alone when the other is absent; `None` without biases).
    fn bias(&self) -> Result<Option<Tensor>> {
        Ok(match (&self.b_ih, &self.b_hh) {
            (Some(a), Some(c)) => Some((a + c)?),
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        })
    }

    /// Whether `x` goes through the fused CPU op (else plain candle ops).
    fn use_op(&self, x: &Tensor) -> bool {
        self.fused && real_cpu(x)
    }

    /// `[W_hh | b]` (`4H × (H + 1)`), the fused op's weight: the bias rides as W_hh's last
    /// column, added to the active rows only and its gradient summed inside (a broadcast add over
    /// all B·T rows and candle's reduction over them were 15 % of an EF-LSTM step).
    fn w_hh_with_bias(&self, bias: Option<&Tensor>, x: &Tensor) -> Result<Tensor> {
        let col = match bias {
            Some(bias) => bias.unsqueeze(1)?,
            None => Tensor::zeros((4 * self.hidden, 1), x.dtype(), x.device())?,
        };
        Tensor::cat(&[&self.w_hh, &col], 1)
    }

    /// Every valid step's state `[h_t, c_t]` (`N × 2H`, rows in `packing`'s order) of sequences
    /// given as their valid steps' inputs `x: N × I` in the same order (`N = Σ lengths`), from a
    /// zero state, as PyTorch's packed sequences: one `(N × I)·(I × 4H)` matmul and the fused
    /// recurrence; no padded step is stored or computed. At the valid steps the states
    /// of [`seq_masked`](Self::seq_masked), row for row.
    ///
    /// # Shapes
    /// * `x`: `N × I`, `N = packing.rows()` (rows in [`Packing`] order)
    /// * returns: `N × 2H`, each row `[h_t, c_t]`
    pub fn packed_states(&self, x: &Tensor, packing: &Packing) -> Result<Tensor> {
        let (n, i) = x.dims2()?;
        let h = self.hidden;
        if (n, i) != (packing.rows(), self.in_dim) {
            candle_core::bail!(
                "FastLstm: packed input {n} × {i}, expected {} × {}",
                packing.rows(),
                self.in_dim
            );
        }
        if n == 0 {
            return Tensor::zeros((0, 2 * h), x.dtype(), x.device());
        }
        let xp = x.matmul(&self.w_ih.t()?)?;
        let bias = self.bias()?;
        if self.use_op(x) {
            let w_aug = self.w_hh_with_bias(bias.as_ref(), x)?;
            let op = LstmSeq::packed(packing.lengths().to_vec(), h);
            return xp.apply_op2(&w_aug, RealOp::new(op));
        }
        let xp = match bias {
            Some(bias) => xp.broadcast_add(&bias)?,
            None => xp,
        };
        recurrence::plain_packed(&xp, &self.w_hh, packing)
    }
}
