//! MFN's gated-memory recurrence ([`MemoryRecurrence`]): the only sequential part of the fused
//! forward pass, one candle op with a hand-written backward (f32/f64 on the CPU, through
//! [`RealOp`]), and the same computation as plain candle ops for every other device and dtype.

use crate::kernels::real::{gemm_into, host, real_cpu, Backward, Real, RealKernel2, RealOp};
use crate::models::layers::lstm::Packing;
use candle_core::{Device, Module, Shape, Tensor};
use candle_nn::ops::sigmoid;
use candle_nn::Linear;

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
pub(super) struct MemoryRecurrence {
    /// Active rows per step.
    active: Vec<usize>,
    /// First row of each step, then `N`.
    off: Vec<usize>,
    mem: usize,
    w1: usize,
    w2: usize,
    /// The gate networks' dropout masks `N × G` (`None`: no dropout).
    masks: Option<Vec<f32>>,
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
    /// The recurrence over the rows of `packing` with memory width `mem`, gate networks of widths
    /// `w1`, `w2` and their dropout masks (`N × (w1 + w2)`, row-major; `None` without dropout).
    pub(super) fn new(
        packing: &Packing,
        mem: usize,
        w1: usize,
        w2: usize,
        masks: Option<Vec<f32>>,
    ) -> Self {
        Self {
            active: (0..packing.steps()).map(|s| packing.active(s)).collect(),
            off: (0..=packing.steps()).map(|s| packing.offset(s)).collect(),
            mem,
            w1,
            w2,
            masks,
        }
    }

    /// Runs the recurrence: the fused op on CPU f32/f64 when `fused`, else plain candle ops.
    ///
    /// # Shapes
    /// * `pre_c`: `N × G` (`P`), `cand`: `N × M` (`Û`), `w_u`: `G × M`; `f1`, `f2` the gate
    ///   networks' second layers (`w_i → M`, with biases)
    /// * returns: `N × M` (`U`)
    pub(super) fn apply(
        self,
        pre_c: &Tensor,
        cand: &Tensor,
        w_u: &Tensor,
        (f1, f2): (&Linear, &Linear),
        fused: bool,
    ) -> candle_core::Result<Tensor> {
        if !(fused && real_cpu(pre_c)) {
            return self.plain(pre_c, cand, w_u, f1, f2);
        }
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
        let a = Tensor::cat(&[pre_c, cand], 1)?;
        a.apply_op2(&packed, RealOp::new(self))
    }

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

impl RealKernel2 for MemoryRecurrence {
    const NAME: &'static str = "mfn-memory";

    fn out_shape(&self, a: &Shape, w: &Shape) -> candle_core::Result<Shape> {
        self.check(a, w)?;
        Ok(Shape::from((self.off[self.off.len() - 1], self.mem)))
    }

    fn forward<T: Real>(
        &self,
        a: &[T],
        w: &[T],
        _: &Shape,
    ) -> candle_core::Result<(Vec<T>, Vec<T>)> {
        Ok(self.fwd(a, w))
    }

    fn backward<T: Real>(&self, g: Backward<'_, T>) -> candle_core::Result<(Vec<T>, Vec<T>)> {
        let (av, wv) = (host::<T>(g.inputs.0)?, host::<T>(g.inputs.1)?);
        Ok(self.bwd_kernel(&av, &wv, g.out, g.grad, g.kept))
    }
}
