//! TFN's three-way outer product `a ⊗ v ⊗ t` (with its dropout mask) as one op.

use super::*;

/// TFN's tensor fusion and the dropout after it as one op: `f[b, (i·V + j)·T + k] = (a[b,i] ·
/// v[b,j]) · t[b,k] · m[b, (i·V + j)·T + k]` for already-extended (`[1, z]`) `B × A`, `B × V`,
/// `B × T` inputs and an optional keep-mask `m` (`0` or `1/(1−p)` per element, `None` = no
/// dropout). The composed path (two batched outer-product matmuls, then `× mask`) writes the
/// `B × AVT` tensor three times forward and, backward, adds each gradient into a zeroed tensor
/// of that size; TFN's is 32 × 140,481 per step. The backward here reads the incoming gradient once:
/// with `gm = g ⊙ m` and `s[b,i,j] = Σ_k gm[b,i,j,k] · t[b,k]`,
/// `∂a[b,i] = Σ_j v[b,j] s[b,i,j]`, `∂v[b,j] = Σ_i a[b,i] s[b,i,j]`,
/// `∂t[b,k] = Σ_{i,j} a[b,i] v[b,j] gm[b,i,j,k]`.
/// The forward multiplies in the composed path's order (same values); the gradients equal its up to
/// the order of the sums (tested). Only for f32/f64 CPU tensors of one dtype: callers check
/// [`fusable_with`] and use the composed ops otherwise.
pub(crate) fn outer3(a: &Tensor, v: &Tensor, t: &Tensor, mask: Option<Vec<f32>>) -> Result<Tensor> {
    let op = Outer3 {
        mask: mask.map(std::sync::Arc::new),
    };
    a.contiguous()?
        .apply_op3(&v.contiguous()?, &t.contiguous()?, op)
}

#[derive(Clone)]
pub(super) struct Outer3 {
    mask: Option<std::sync::Arc<Vec<f32>>>,
}

/// `(B, A, V, T)` of the three fusion inputs; an error naming the batch sizes if they differ.
pub(super) fn outer3_dims(a: &Shape, v: &Shape, t: &Shape) -> Result<(usize, usize, usize, usize)> {
    let (b, da) = a.dims2()?;
    let (bv, dv) = v.dims2()?;
    let (bt, dt) = t.dims2()?;
    if bv != b || bt != b {
        candle_core::bail!("tensor_fusion: batch sizes differ (audio {b}, vision {bv}, text {bt})");
    }
    Ok((b, da, dv, dt))
}

/// The keep-mask value at `i` in the element type (`1` without a mask).
#[inline]
pub(super) fn mask_at<T: Float>(mask: Option<&[f32]>, i: usize) -> T {
    mask.map_or(T::one(), |m| T::from_f64(f64::from(m[i])))
}

impl Kernel for Outer3 {
    const NAME: &'static str = "tensor-fusion";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        let (b, da, dv, dt) = outer3_dims(shapes[0], shapes[1], shapes[2])?;
        let n = b * da * dv * dt;
        if let Some(m) = &self.mask {
            if m.len() != n {
                candle_core::bail!("{}: mask of {} for {n} values", Self::NAME, m.len());
            }
        }
        Ok(Shape::from((b, da * dv * dt)))
    }
    fn run<T: Float>(&self, x: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (b, da, dv, dt) = outer3_dims(shapes[0], shapes[1], shapes[2]).expect("checked");
        let (a, v, t) = (x[0], x[1], x[2]);
        let mask = self.mask.as_deref().map(Vec::as_slice);
        let mut out = Vec::with_capacity(b * da * dv * dt);
        for n in 0..b {
            let tn = &t[n * dt..(n + 1) * dt];
            for &ai in &a[n * da..(n + 1) * da] {
                for &vj in &v[n * dv..(n + 1) * dv] {
                    let w = ai * vj;
                    let base = out.len();
                    match mask {
                        None => out.extend(tn.iter().map(|&tk| w * tk)),
                        Some(_) => out.extend(
                            tn.iter()
                                .enumerate()
                                .map(|(k, &tk)| w * tk * mask_at::<T>(mask, base + k)),
                        ),
                    }
                }
            }
        }
        out
    }
}

kernel_op!(3, Outer3, backward);

impl Outer3 {
    fn backward(
        &self,
        a: &Tensor,
        v: &Tensor,
        t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (da, dv, dt) = (a.dim(1)?, v.dim(1)?, t.dim(1)?);
        let avt = Tensor::cat(&[a, v, t], 1)?;
        let g = grad.contiguous()?.apply_op2_no_bwd(
            &avt,
            &Outer3Grad {
                dims: (da, dv, dt),
                mask: self.mask.clone(),
            },
        )?;
        Ok((
            Some(g.narrow(1, 0, da)?),
            Some(g.narrow(1, da, dv)?),
            Some(g.narrow(1, da + dv, dt)?),
        ))
    }
}

/// [`Outer3`]'s backward: inputs `(g, [a | v | t])`, output `[∂a | ∂v | ∂t]` (`B × (A+V+T)`).
pub(super) struct Outer3Grad {
    dims: (usize, usize, usize),
    mask: Option<std::sync::Arc<Vec<f32>>>,
}

impl Kernel for Outer3Grad {
    const NAME: &'static str = "tensor-fusion-grad";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        let (da, dv, dt) = self.dims;
        let (b, n) = shapes[0].dims2()?;
        if shapes[1].dims2()? != (b, da + dv + dt) || n != da * dv * dt {
            candle_core::bail!("{}: shapes {:?} and {:?}", Self::NAME, shapes[0], shapes[1]);
        }
        if self.mask.as_ref().is_some_and(|m| m.len() != b * n) {
            candle_core::bail!("{}: mask does not match the gradient", Self::NAME);
        }
        Ok(shapes[1].clone())
    }
    fn run<T: Float>(&self, x: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (da, dv, dt) = self.dims;
        let w = da + dv + dt;
        let b = shapes[1].dims()[0];
        let (g, avt) = (x[0], x[1]);
        let mask = self.mask.as_deref().map(Vec::as_slice);
        let mut out = vec![T::zero(); b * w];
        let mut gm = vec![T::zero(); dt];
        for n in 0..b {
            let inp = &avt[n * w..(n + 1) * w];
            let (a, rest) = inp.split_at(da);
            let (v, t) = rest.split_at(dv);
            let o = &mut out[n * w..(n + 1) * w];
            let (ga, rest) = o.split_at_mut(da);
            let (gv, gt) = rest.split_at_mut(dv);
            for (i, &ai) in a.iter().enumerate() {
                for (j, &vj) in v.iter().enumerate() {
                    let base = ((n * da + i) * dv + j) * dt;
                    let row = &g[base..base + dt];
                    match mask {
                        None => gm.copy_from_slice(row),
                        Some(_) => {
                            for (k, (d, &r)) in gm.iter_mut().zip(row).enumerate() {
                                *d = r * mask_at::<T>(mask, base + k);
                            }
                        }
                    }
                    let mut s = T::zero();
                    for (&gk, &tk) in gm.iter().zip(t) {
                        s += gk * tk;
                    }
                    ga[i] += vj * s;
                    gv[j] += ai * s;
                    let aivj = ai * vj;
                    for (d, &gk) in gt.iter_mut().zip(&gm) {
                        *d += aivj * gk;
                    }
                }
            }
        }
        out
    }
}

kernel_op!(2, Outer3Grad);
