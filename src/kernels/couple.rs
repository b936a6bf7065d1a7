//! The affine coupling's update of its second half, `b ⊙ exp(tanh s) + t`, as one op (the
//! C-network's normalising flows).

use super::*;

/// `(n, m)` of `b` when `st` is `n × 2m`.
pub(super) fn couple_dims(op: &str, b: &Shape, st: &Shape) -> Result<(usize, usize)> {
    let (n, m) = b.dims2()?;
    if st.dims2()? != (n, 2 * m) {
        candle_core::bail!("{op}: shapes {b:?} and {st:?}");
    }
    Ok((n, m))
}

/// The affine coupling's update of its second half: `y = b ⊙ exp(tanh s) + t` where
/// `st = [s | t]` (`n × 2m`) is the coupling net's output and `b` is `n × m`. One op forward; its
/// backward gives `∂b = g ⊙ e` and `∂st = [g ⊙ b ⊙ e ⊙ (1 − tanh² s) | g]` with `e = exp(tanh s)`.
pub(crate) fn affine_couple(b: &Tensor, st: &Tensor) -> Result<Tensor> {
    if !fusable(b) || b.dtype() != st.dtype() {
        let nb = st.dim(D::Minus1)? / 2;
        let s = st.narrow(D::Minus1, 0, nb)?.tanh()?;
        let t = st.narrow(D::Minus1, nb, nb)?;
        return b.mul(&s.exp()?)? + t;
    }
    b.contiguous()?
        .apply_op2(&st.contiguous()?, AffineCouple::Forward)
}

/// The coupling update and its two gradients, one kernel: inputs `(b, st)` forward, `(g, st)`
/// for `∂b`, `(g, st, b)` for `∂st`.
#[derive(Clone, Copy)]
enum AffineCouple {
    Forward,
    GradB,
    GradSt,
}

impl Kernel for AffineCouple {
    const NAME: &'static str = "affine-couple";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        couple_dims(Self::NAME, shapes[0], shapes[1])?;
        if let Self::GradSt = self {
            if shapes[2] != shapes[0] {
                candle_core::bail!("{}: shapes {:?} and {:?}", Self::NAME, shapes[0], shapes[2]);
            }
            return Ok(shapes[1].clone());
        }
        Ok(shapes[0].clone())
    }
    fn run<T: Float>(&self, x: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (n, m) = couple_dims(Self::NAME, shapes[0], shapes[1]).expect("checked by shape");
        let (first, st) = (x[0], x[1]);
        let mut out = Vec::with_capacity(if let Self::GradSt = self {
            2 * n * m
        } else {
            n * m
        });
        for r in 0..n {
            let (s, t) = st[r * 2 * m..(r + 1) * 2 * m].split_at(m);
            let row = &first[r * m..(r + 1) * m];
            match self {
                Self::Forward => {
                    out.extend((0..m).map(|j| row[j] * s[j].tanh().exp() + t[j]));
                }
                Self::GradB => out.extend((0..m).map(|j| row[j] * s[j].tanh().exp())),
                Self::GradSt => {
                    let b = &x[2][r * m..(r + 1) * m];
                    out.extend((0..m).map(|j| {
                        let th = s[j].tanh();
                        row[j] * b[j] * th.exp() * (T::one() - th * th)
                    }));
                    out.extend_from_slice(row);
                }
            }
        }
        out
    }
}

kernel_op!(2, AffineCouple, backward);

impl AffineCouple {
    fn backward(
        &self,
        b: &Tensor,
        st: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let gb = g.apply_op2_no_bwd(st, &AffineCouple::GradB)?;
        let gst = g.apply_op3_no_bwd(st, b, &AffineCouple::GradSt)?;
        Ok((Some(gb), Some(gst)))
    }
}

kernel_op!(3, AffineCouple);
