//! The LSTM recurrence over projected inputs, in two forms that compute the same function: one
//! fused CPU op with a hand-written backward (`LstmSeq`, f32/f64 through
//! [`RealOp`](crate::kernels::real::RealOp)), and plain candle ops for every other
//! device and dtype ([`plain`], [`plain_packed`]).

use super::Packing;
use crate::kernels::real::{gemm_into, host, Backward, Real, RealKernel2};
use candle_core::{Result, Shape, Tensor};

/// One step's gate math on the pre-activations `g` (`n × 4H`, gates `i, f, g, o`) from the
/// cell state `c_prev` (`None`: a zero state, whose `f ⊙ c` term is left out):
/// `c = σ(f) ⊙ c_prev + σ(i) ⊙ tanh(g)`, `h = σ(o) ⊙ tanh(c)`; returns `(h, c)`.
fn cell(g: &Tensor, c_prev: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
    let ch = g.chunk(4, 1)?;
    let ig = candle_nn::ops::sigmoid(&ch[0])?;
    let fg = candle_nn::ops::sigmoid(&ch[1])?;
    let gg = ch[2].tanh()?;
    let og = candle_nn::ops::sigmoid(&ch[3])?;
    let c = match c_prev {
        Some(c_prev) => ((fg * c_prev)? + (ig * gg)?)?,
        None => (ig * gg)?,
    };
    let h = (og * c.tanh()?)?;
    Ok((h, c))
}

/// The recurrence as plain candle ops (any device) on padded rows.
///
/// # Shapes
/// * `xp`: `B × T × 4H`, the projected inputs with both biases; `w_hh`: `4H × H`
/// * returns: `B × T × 2H`, the states `[h_t, c_t]` (frozen after each sequence's length)
pub(super) fn plain(xp: &Tensor, w_hh: &Tensor, lengths: &[usize]) -> Result<Tensor> {
    let (b, t, g4) = xp.dims3()?;
    let (dev, dt) = (xp.device(), xp.dtype());
    let t_eff = lengths.iter().copied().max().unwrap_or(0).min(t);
    let w_hh_t = w_hh.t()?;
    let mut h = Tensor::zeros((b, g4 / 4), dt, dev)?;
    let mut c = h.clone();
    let mut states = Vec::with_capacity(t);
    for s in 0..t_eff {
        let mut g = xp.narrow(1, s, 1)?.squeeze(1)?;
        if s > 0 {
            g = (g + h.matmul(&w_hh_t)?)?;
        }
        let (h_new, c_new) = cell(&g, Some(&c))?;
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

/// The recurrence as plain candle ops (any device) on packed rows: step `s` updates the
/// `active(s)` longest sequences, rows `offset(s) ..`.
///
/// # Shapes
/// * `xp`: `N × 4H` in `packing`'s order, the projected inputs with both biases; `w_hh`: `4H × H`
/// * returns: `N × 2H`, the states `[h_t, c_t]`
pub(super) fn plain_packed(xp: &Tensor, w_hh: &Tensor, packing: &Packing) -> Result<Tensor> {
    let h = w_hh.dim(1)?;
    let w_hh_t = w_hh.t()?;
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
        let (h_new, c) = cell(&g, c_prev.as_ref())?;
        states.push(Tensor::cat(&[&h_new, &c], 1)?);
    }
    Tensor::cat(&states, 0)
}

/// The whole masked recurrence as one op: `(xp: B × T × 4H, [W_hh | b]: 4H × (H+1)) → B × T × 2H`
/// states `[h_t, c_t]`, where `xp` is the input projection without bias and `b = b_ih + b_hh` is
/// added to the gates of the active rows. The forward pass keeps the gate activations `i, f, g, o`
/// of the active rows, step after step (`Σ_t n_t × 4H`), for the backward. Packed (`packed`), inputs and states are the valid steps' rows
/// only, in [`Packing`] order: `(xp: N × 4H, [W_hh | b]) → N × 2H`, `N = Σ lengths`.
pub(super) struct LstmSeq {
    lengths: Vec<usize>,
    hidden: usize,
    /// Batch rows by decreasing length (stable): at step `t` the active rows are `perm[..n_t]`.
    perm: Vec<usize>,
    /// Rows in [`Packing`] order instead of `B × T`.
    packed: bool,
}

impl LstmSeq {
    /// The op on padded `B × T` rows of sequences of valid `lengths`.
    pub(super) fn new(lengths: Vec<usize>, hidden: usize) -> Self {
        let mut perm: Vec<usize> = (0..lengths.len()).collect();
        perm.sort_by_key(|&r| std::cmp::Reverse(lengths[r]));
        Self {
            lengths,
            hidden,
            perm,
            packed: false,
        }
    }

    /// The op on packed rows ([`Packing`] order) of sequences of valid `lengths`.
    pub(super) fn packed(lengths: Vec<usize>, hidden: usize) -> Self {
        Self {
            packed: true,
            ..Self::new(lengths, hidden)
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
}

impl RealKernel2 for LstmSeq {
    const NAME: &'static str = "fast-lstm-seq";

    fn out_shape(&self, xp: &Shape, w: &Shape) -> Result<Shape> {
        let h = self.hidden;
        let (b, t, rows) = self.dims(xp)?;
        if w.dims2()? != (4 * h, h + 1) {
            candle_core::bail!("{}: shapes {xp:?} and {w:?}", Self::NAME);
        }
        Ok(if self.packed {
            Shape::from((rows, 2 * h))
        } else {
            Shape::from((b, t, 2 * h))
        })
    }

    fn forward<T: Real>(&self, xp: &[T], w: &[T], xp_shape: &Shape) -> Result<(Vec<T>, Vec<T>)> {
        let (b, t, _) = self.dims(xp_shape)?;
        Ok(self.fwd(xp, w, b, t))
    }

    fn backward<T: Real>(&self, g: Backward<'_, T>) -> Result<(Vec<T>, Vec<T>)> {
        let (xp, w_hh) = g.inputs;
        let (b, t, _) = self.dims(xp.shape())?;
        let w = host::<T>(w_hh)?;
        Ok(self.bwd_kernel(&w, g.out, g.grad, g.kept, b, t))
    }
}
