//! [`FastLstm`]: a single-layer LSTM with candle-nn's parameters (`weight_ih_l0` `4H × I`,
//! `weight_hh_l0` `4H × H`, `bias_ih_l0`, `bias_hh_l0`; gates `i, f, g, o` as in PyTorch) that
//! runs a whole (masked) sequence in three autograd nodes instead of ~15 per step.
//!
//! * The input projection of every step is one matmul, `(B·T × I)·(I × 4H)`, plus both biases.
//! * The recurrence is one candle [`CustomOp2`] (`LstmSeq`) on CPU, `f32` and `f64`: per step one
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

use crate::synergy::ops::cpu_slice;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};
use candle_nn::rnn::{Direction, LSTMConfig};
use candle_nn::VarBuilder;
use std::sync::Mutex;

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

    /// All hidden states `B × T × H` of an unpadded batch `B × T × I` (what candle-nn's
    /// `states_to_tensor(&seq(x))` returns).
    pub fn seq(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(self.seq_masked(x, &vec![t; b])?.0)
    }

    /// A layer on existing tensors: `w_ih: 4H × I`, `w_hh: 4H × H`, biases of `4H` (e.g. the
    /// parameters of two `Linear` layers, so that a model keeps its variable names).
    pub fn from_tensors(
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

    /// Runs padded sequences `x: B × T × I` of valid lengths `lengths` (each `≤ T`) from a zero
    /// state. Returns all hidden states `B × T × H` (at a sequence's padded steps: its last valid
    /// `h`, the state being frozen), and `h` and `c` at each sequence's last valid step (`B × H`;
    /// zeros for a length of 0).
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
                .apply_op2(&w_aug, LstmSeq::new(lengths.to_vec(), h))?
        } else {
            let xp = match bias {
                Some(bias) => xp.broadcast_add(&bias)?,
                None => xp,
            };
            self.plain(&xp.reshape((b, t, 4 * h))?, lengths)?
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
        self.fused && x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
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
            let mut op = LstmSeq::new(packing.lengths.clone(), h);
            op.packed = true;
            return xp.apply_op2(&w_aug, op);
        }
        // plain ops: step s updates the `active(s)` longest sequences, rows `offset(s) ..`
        let xp = match bias {
            Some(bias) => xp.broadcast_add(&bias)?,
            None => xp,
        };
        let w_hh_t = self.w_hh.t()?;
        let mut states: Vec<Tensor> = Vec::with_capacity(packing.steps());
        for s in 0..packing.steps() {
            let a = packing.active(s);
            let mut g = xp.narrow(0, packing.offset(s), a)?;
            let mut c_prev = None;
            if let Some(prev) = states.last() {
                let prev = prev.narrow(0, 0, a)?;
                g = (g + prev.narrow(1, 0, h)?.matmul(&w_hh_t)?)?;
                c_prev = Some(prev.narrow(1, h, h)?);
            }
            let ch = g.chunk(4, 1)?;
            let ig = candle_nn::ops::sigmoid(&ch[0])?;
            let fg = candle_nn::ops::sigmoid(&ch[1])?;
            let gg = ch[2].tanh()?;
            let og = candle_nn::ops::sigmoid(&ch[3])?;
            let c = match c_prev {
                Some(c_prev) => ((fg * c_prev)? + (ig * gg)?)?,
                None => (ig * gg)?,
            };
            let h_new = (og * c.tanh()?)?;
            states.push(Tensor::cat(&[&h_new, &c], 1)?);
        }
        Tensor::cat(&states, 0)
    }

    /// The recurrence as plain candle ops (any device): `xp: B × T × 4H` projected inputs with
    /// biases → `B × T × 2H` states `[h_t, c_t]`.
    fn plain(&self, xp: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (b, t, _) = xp.dims3()?;
        let (dev, dt) = (xp.device(), xp.dtype());
        let t_eff = lengths.iter().copied().max().unwrap_or(0).min(t);
        let w_hh_t = self.w_hh.t()?;
        let mut h = Tensor::zeros((b, self.hidden), dt, dev)?;
        let mut c = h.clone();
        let mut states = Vec::with_capacity(t);
        for s in 0..t_eff {
            let mut g = xp.narrow(1, s, 1)?.squeeze(1)?;
            if s > 0 {
                g = (g + h.matmul(&w_hh_t)?)?;
            }
            let ch = g.chunk(4, 1)?;
            let ig = candle_nn::ops::sigmoid(&ch[0])?;
            let fg = candle_nn::ops::sigmoid(&ch[1])?;
            let gg = ch[2].tanh()?;
            let og = candle_nn::ops::sigmoid(&ch[3])?;
            let c_new = ((fg * &c)? + (ig * gg)?)?;
            let h_new = (og * c_new.tanh()?)?;
            if lengths.iter().all(|&l| l > s) {
                (h, c) = (h_new, c_new);
            } else {
                let m: Vec<f32> = lengths.iter().map(|&l| f32::from(l > s)).collect();
                let m = Tensor::from_vec(m, (b, 1), dev)?.to_dtype(dt)?;
                h = (&h + (h_new - &h)?.broadcast_mul(&m)?)?;
                c = (&c + (c_new - &c)?.broadcast_mul(&m)?)?;
            }
            states.push(Tensor::cat(&[&h, &c], 1)?);
        }
        let frozen = Tensor::cat(&[&h, &c], 1)?;
        states.resize(t, frozen);
        Tensor::stack(&states, 1)
    }
}

/// The row order of packed variable-length sequences (as PyTorch's packed sequences): samples
/// sorted by decreasing length (a stable sort), then step after step; the rows of step `s` are
/// the [`active(s)`](Self::active) samples longer than `s`, in that order, from row
/// [`offset(s)`](Self::offset) on. `N = Σ lengths` rows in all; a sample is at the same position
/// within every step it is part of.
#[derive(Debug, Clone)]
pub struct Packing {
    lengths: Vec<usize>,
    order: Vec<usize>,
    rank: Vec<usize>,
    /// First row of each step, then `N`.
    off: Vec<usize>,
}

impl Packing {
    /// The packing of sequences of lengths `lengths` (0 allowed: such a sample has no row).
    pub fn new(lengths: &[usize]) -> Self {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&r| std::cmp::Reverse(lengths[r]));
        let mut rank = vec![0; lengths.len()];
        for (k, &r) in order.iter().enumerate() {
            rank[r] = k;
        }
        let steps = lengths.iter().copied().max().unwrap_or(0);
        let mut off = Vec::with_capacity(steps + 1);
        off.push(0);
        for s in 0..steps {
            let active = order.partition_point(|&r| lengths[r] > s);
            off.push(off[s] + active);
        }
        Self {
            lengths: lengths.to_vec(),
            order,
            rank,
            off,
        }
    }

    /// The sequences' lengths.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// Number of rows `N = Σ lengths`.
    pub fn rows(&self) -> usize {
        self.off[self.off.len() - 1]
    }

    /// Number of steps (the longest length).
    pub fn steps(&self) -> usize {
        self.off.len() - 1
    }

    /// Samples longer than `s` (0 for `s ≥ steps()`).
    pub fn active(&self, s: usize) -> usize {
        if s < self.steps() {
            self.off[s + 1] - self.off[s]
        } else {
            0
        }
    }

    /// First row of step `s` (`s ≤ steps()`).
    pub fn offset(&self, s: usize) -> usize {
        self.off[s]
    }

    /// Samples by decreasing length: the `k`-th row of every step is sample `order()[k]`.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Row of sample `sample` at step `s`; `None` past its length.
    pub fn row(&self, sample: usize, s: usize) -> Option<usize> {
        (s < *self.lengths.get(sample)?).then(|| self.off[s] + self.rank[sample])
    }

    /// For every packed row, the row `sample · t + s` of a `B × T × …` tensor flattened to
    /// `B·T` rows: gathering those rows packs a padded batch (every length must be `≤ t`).
    pub fn gather_index(&self, t: usize) -> Vec<u32> {
        let mut idx = Vec::with_capacity(self.rows());
        for s in 0..self.steps() {
            for &r in &self.order[..self.active(s)] {
                idx.push((r * t + s) as u32);
            }
        }
        idx
    }
}

/// What the fused kernels need of a float type (also used by MFN's memory recurrence).
pub(crate) trait Real: WithDType {
    const ZERO: Self;
    const ONE: Self;
    fn sigmoid(self) -> Self;
    fn tanh(self) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn sigmoid(self) -> Self {
        1.0 / (1.0 + (-self).exp())
    }
    /// `tanh x = sign(x) (1 − e^{−2|x|}) / (1 + e^{−2|x|})`, evaluated in f64 (so `1 − e` keeps
    /// f32 precision near 0), and `x` itself for `|x| < 10⁻⁴` (relative error `x²/3 < 4·10⁻⁹`).
    /// Within 3·10⁻⁸ of the exact value (2 ulp of glibc's `tanhf`, measured over [−7, 7]) and
    /// 3.5× faster: glibc's `tanhf` goes through `expm1f`, which was 11 % of an EF-LSTM training
    /// step's profile.
    fn tanh(self) -> Self {
        if self.abs() < 1e-4 {
            return self;
        }
        let e = (-2.0 * f64::from(self).abs()).exp();
        (((1.0 - e) / (1.0 + e)) as f32).copysign(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn sigmoid(self) -> Self {
        1.0 / (1.0 + (-self).exp())
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
}

/// `dst (m × n) = [dst +] lhs (m × k) · rhs (k × n)` on row/column strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let last = |rs: usize, cs: usize, r: usize, c: usize| (r - 1) * rs + (c - 1) * cs;
    assert!(last(dst_rs, dst_cs, m, n) < dst.len());
    assert!(last(lhs_rs, lhs_cs, m, k) < lhs.len());
    assert!(last(rhs_rs, rhs_cs, k, n) < rhs.len());
    // one thread: the results must not depend on the thread count (runs are parallelised at the
    // grid level, `--jobs`), and at these sizes a split costs more than it saves
    let par = gemm::Parallelism::None;
    // SAFETY: the asserts above keep every strided access inside its slice; `dst` is a distinct
    // mutable slice, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

/// The whole masked recurrence as one op: `(xp: B × T × 4H, [W_hh | b]: 4H × (H+1)) → B × T × 2H`
/// states `[h_t, c_t]`, where `xp` is the input projection without bias and `b = b_ih + b_hh` is
/// added to the gates of the active rows. The forward pass keeps the gate activations of the
/// active rows for the backward. Packed (`packed`), inputs and states are the valid steps' rows
/// only, in [`Packing`] order: `(xp: N × 4H, [W_hh | b]) → N × 2H`, `N = Σ lengths`.
struct LstmSeq {
    lengths: Vec<usize>,
    hidden: usize,
    /// Batch rows by decreasing length (stable): at step `t` the active rows are `perm[..n_t]`.
    perm: Vec<usize>,
    /// Rows in [`Packing`] order instead of `B × T`.
    packed: bool,
    /// `i, f, g, o` of the active rows, step after step (`Σ_t n_t × 4H`).
    acts: Mutex<Option<CpuStorage>>,
}

impl LstmSeq {
    fn new(lengths: Vec<usize>, hidden: usize) -> Self {
        let mut perm: Vec<usize> = (0..lengths.len()).collect();
        perm.sort_by_key(|&r| std::cmp::Reverse(lengths[r]));
        Self {
            lengths,
            hidden,
            perm,
            packed: false,
            acts: Mutex::new(None),
        }
    }

    /// Row (in `xp`'s and the output's numbering) of sample `row`, `r`-th by length, at step `s`.
    fn at(&self, off: &[usize], row: usize, r: usize, s: usize, t: usize) -> usize {
        if self.packed {
            off[s] + r
        } else {
            row * t + s
        }
    }

    /// How many of `perm`'s rows have a state at step `s`: all (frozen after their end), or
    /// packed, the active ones.
    fn stored(&self, off: &[usize], s: usize) -> usize {
        if !self.packed {
            self.perm.len()
        } else if s + 1 < off.len() {
            off[s + 1] - off[s]
        } else {
            0
        }
    }

    /// `(B, T, rows of xp)` for an input of shape `shape`.
    fn dims(&self, shape: &Shape) -> Result<(usize, usize, usize)> {
        let g4 = 4 * self.hidden;
        let b = self.lengths.len();
        if self.packed {
            let n: usize = self.lengths.iter().sum();
            if shape.dims2()? != (n, g4) {
                candle_core::bail!("fast-lstm-seq: packed input {shape:?}, expected [{n}, {g4}]");
            }
            Ok((b, self.lengths.iter().copied().max().unwrap_or(0), n))
        } else {
            let (bb, t, g) = shape.dims3()?;
            if g != g4 || bb != b {
                candle_core::bail!("fast-lstm-seq: input {shape:?}, expected [{b}, T, {g4}]");
            }
            Ok((b, t, b * t))
        }
    }

    /// Active rows at step `s`.
    fn active(&self, s: usize) -> usize {
        self.perm.partition_point(|&r| self.lengths[r] > s)
    }

    /// Steps actually run and the first row (in `Σ_t n_t` numbering) of each.
    fn schedule(&self, t: usize) -> (usize, Vec<usize>) {
        let t_eff = self.lengths.iter().copied().max().unwrap_or(0).min(t);
        let mut off = Vec::with_capacity(t_eff + 1);
        let mut acc = 0;
        for s in 0..t_eff {
            off.push(acc);
            acc += self.active(s);
        }
        off.push(acc);
        (t_eff, off)
    }

    fn fwd<T: Real>(&self, xp: &[T], w: &[T], b: usize, t: usize) -> (Vec<T>, Vec<T>) {
        let h = self.hidden;
        let g4 = 4 * h;
        let (t_eff, off) = self.schedule(t);
        let mut acts = vec![T::ZERO; off[t_eff] * g4];
        let rows = if self.packed { off[t_eff] } else { b * t };
        let mut out = vec![T::ZERO; rows * 2 * h];
        let mut hs = vec![T::ZERO; b * h];
        let mut cs = vec![T::ZERO; b * h];
        let mut gates = vec![T::ZERO; b * g4];
        // w = [W_hh | b], rows of H + 1
        let bias: Vec<T> = (0..g4).map(|j| w[j * (h + 1) + h]).collect();
        for s in 0..t {
            if s < t_eff {
                let n = off[s + 1] - off[s];
                for (r, &row) in self.perm[..n].iter().enumerate() {
                    let src = self.at(&off, row, r, s, t) * g4;
                    for ((g, x), bj) in gates[r * g4..(r + 1) * g4]
                        .iter_mut()
                        .zip(&xp[src..src + g4])
                        .zip(&bias)
                    {
                        *g = *x + *bj;
                    }
                }
                if s > 0 {
                    // gates += h_{s-1} · W_hhᵀ (W_hhᵀ[k][j] = W_hh[j][k] = w[j(H+1) + k])
                    gemm_into(
                        n,
                        g4,
                        h,
                        &mut gates,
                        (g4, 1),
                        true,
                        &hs,
                        (h, 1),
                        w,
                        (1, h + 1),
                    );
                }
                let a_s = &mut acts[off[s] * g4..off[s + 1] * g4];
                for r in 0..n {
                    let g = &gates[r * g4..(r + 1) * g4];
                    let a = &mut a_s[r * g4..(r + 1) * g4];
                    let (hr, cr) = (&mut hs[r * h..(r + 1) * h], &mut cs[r * h..(r + 1) * h]);
                    for j in 0..h {
                        let ig = g[j].sigmoid();
                        let fg = g[h + j].sigmoid();
                        let gg = g[2 * h + j].tanh();
                        let og = g[3 * h + j].sigmoid();
                        let c = fg * cr[j] + ig * gg;
                        cr[j] = c;
                        hr[j] = og * c.tanh();
                        (a[j], a[h + j], a[2 * h + j], a[3 * h + j]) = (ig, fg, gg, og);
                    }
                }
            }
            for (r, &row) in self.perm[..self.stored(&off, s)].iter().enumerate() {
                let dst = self.at(&off, row, r, s, t) * 2 * h;
                out[dst..dst + h].copy_from_slice(&hs[r * h..(r + 1) * h]);
                out[dst + h..dst + 2 * h].copy_from_slice(&cs[r * h..(r + 1) * h]);
            }
        }
        (out, acts)
    }

    /// Back-propagation through time: `(∂xp, ∂[W_hh | b])` from the states `out`, their gradient
    /// `grad` and the kept activations.
    fn bwd_kernel<T: Real>(
        &self,
        w: &[T],
        out: &[T],
        grad: &[T],
        acts: &[T],
        b: usize,
        t: usize,
    ) -> (Vec<T>, Vec<T>) {
        let h = self.hidden;
        let g4 = 4 * h;
        let (t_eff, off) = self.schedule(t);
        let rows = off[t_eff];
        let mut dxp = vec![T::ZERO; if self.packed { rows } else { b * t } * g4];
        let mut dg_all = vec![T::ZERO; rows * g4];
        let mut hprev_all = vec![T::ZERO; rows * h];
        let mut dh = vec![T::ZERO; b * h];
        let mut dc = vec![T::ZERO; b * h];
        for s in (0..t).rev() {
            for (r, &row) in self.perm[..self.stored(&off, s)].iter().enumerate() {
                let src = self.at(&off, row, r, s, t) * 2 * h;
                for j in 0..h {
                    dh[r * h + j] += grad[src + j];
                    dc[r * h + j] += grad[src + h + j];
                }
            }
            if s >= t_eff {
                continue;
            }
            let n = off[s + 1] - off[s];
            let dg_s = &mut dg_all[off[s] * g4..off[s + 1] * g4];
            let hp_s = &mut hprev_all[off[s] * h..off[s + 1] * h];
            for (r, &row) in self.perm[..n].iter().enumerate() {
                let a = &acts[(off[s] + r) * g4..(off[s] + r + 1) * g4];
                let cur = self.at(&off, row, r, s, t) * 2 * h;
                let prev = (s > 0).then(|| self.at(&off, row, r, s - 1, t) * 2 * h);
                let dg = &mut dg_s[r * g4..(r + 1) * g4];
                for j in 0..h {
                    let (ig, fg, gg, og) = (a[j], a[h + j], a[2 * h + j], a[3 * h + j]);
                    let c_prev = prev.map_or(T::ZERO, |p| out[p + h + j]);
                    let tc = out[cur + h + j].tanh();
                    let (dhj, dcj) = (dh[r * h + j], dc[r * h + j]);
                    let dct = dcj + dhj * og * (T::ONE - tc * tc);
                    dg[j] = dct * gg * ig * (T::ONE - ig);
                    dg[h + j] = dct * c_prev * fg * (T::ONE - fg);
                    dg[2 * h + j] = dct * ig * (T::ONE - gg * gg);
                    dg[3 * h + j] = dhj * tc * og * (T::ONE - og);
                    dc[r * h + j] = dct * fg;
                }
                let dst = self.at(&off, row, r, s, t) * g4;
                dxp[dst..dst + g4].copy_from_slice(dg);
                if let Some(p) = prev {
                    hp_s[r * h..(r + 1) * h].copy_from_slice(&out[p..p + h]);
                }
            }
            if s > 0 {
                // ∂h_{s-1} = ∂gates · W_hh for the active rows (the others carry theirs)
                gemm_into(
                    n,
                    h,
                    g4,
                    &mut dh,
                    (h, 1),
                    false,
                    dg_s,
                    (g4, 1),
                    w,
                    (h + 1, 1),
                );
            }
        }
        // ∂W_hh = Σ_{s ≥ 1} ∂gates_sᵀ · h_{s-1}: one product over every active row of steps ≥ 1,
        // into the first H columns of the H + 1 wide rows
        let mut dw = vec![T::ZERO; g4 * (h + 1)];
        if t_eff > 1 {
            let (r0, k) = (off[1], rows - off[1]);
            gemm_into(
                g4,
                h,
                k,
                &mut dw,
                (h + 1, 1),
                false,
                &dg_all[r0 * g4..],
                (1, g4),
                &hprev_all[r0 * h..],
                (h, 1),
            );
        }
        // ∂b = Σ over every active row of every step of ∂gates
        for dg in dg_all.chunks_exact(g4) {
            for (j, &d) in dg.iter().enumerate() {
                dw[j * (h + 1) + h] += d;
            }
        }
        (dxp, dw)
    }

    fn cpu_fwd_t<T: Real>(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let h = self.hidden;
        let (b, t, rows) = self.dims(l1.shape())?;
        if l2.shape().dims2()? != (4 * h, h + 1) {
            candle_core::bail!(
                "fast-lstm-seq: shapes {:?} and {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let xp = cpu_slice::<T>(s1, l1, "fast-lstm-seq")?;
        let w = cpu_slice::<T>(s2, l2, "fast-lstm-seq")?;
        let (out, acts) = self.fwd(xp, w, b, t);
        *self.acts.lock().expect("fast-lstm-seq lock") = Some(T::to_cpu_storage_owned(acts));
        let shape = if self.packed {
            Shape::from((rows, 2 * h))
        } else {
            Shape::from((b, t, 2 * h))
        };
        Ok((T::to_cpu_storage_owned(out), shape))
    }

    fn bwd_t<T: Real>(
        &self,
        xp: &Tensor,
        w_hh: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, t, _) = self.dims(xp.shape())?;
        let w = w_hh.flatten_all()?.to_vec1::<T>()?;
        let out = res.flatten_all()?.to_vec1::<T>()?;
        let g = grad.flatten_all()?.to_vec1::<T>()?;
        let guard = self.acts.lock().expect("fast-lstm-seq lock");
        let acts = guard
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("fast-lstm-seq: no forward pass".into()))?;
        let (dxp, dw) = self.bwd_kernel(&w, &out, &g, T::cpu_storage_as_slice(acts)?, b, t);
        Ok((
            Some(Tensor::from_vec(dxp, xp.shape(), xp.device())?),
            Some(Tensor::from_vec(dw, w_hh.shape(), w_hh.device())?),
        ))
    }
}

impl CustomOp2 for LstmSeq {
    fn name(&self) -> &'static str {
        "fast-lstm-seq"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match s1 {
            CpuStorage::F32(_) => self.cpu_fwd_t::<f32>(s1, l1, s2, l2),
            CpuStorage::F64(_) => self.cpu_fwd_t::<f64>(s1, l1, s2, l2),
            _ => candle_core::bail!("fast-lstm-seq: unsupported dtype"),
        }
    }

    fn bwd(
        &self,
        xp: &Tensor,
        w_hh: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        match xp.dtype() {
            DType::F32 => self.bwd_t::<f32>(xp, w_hh, res, grad),
            DType::F64 => self.bwd_t::<f64>(xp, w_hh, res, grad),
            d => candle_core::bail!("fast-lstm-seq: unsupported dtype {d:?}"),
        }
    }
}
