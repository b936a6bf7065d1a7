//! A normalisation layer's scale and shift, `x ⊙ w + b`, as one op (MISA's and the BERT
//! backbone's LayerNorms).

use super::*;

/// `x ⊙ w + b` with `w`, `b` of the last dimension's size broadcast over the leading ones (a
/// normalisation layer's scale and shift) as one op. Values and gradients are bit for bit the
/// composed `x.broadcast_mul(w)?.broadcast_add(b)`: the same two roundings forward, `∂x = g ⊙ w`,
/// and `∂w = Σ_rows g ⊙ x`, `∂b = Σ_rows g` added in row order, as candle's reduction adds them —
/// but in one pass each instead of candle's strided reduction (a division per element). Other
/// devices and dtypes use the composed ops.
pub(crate) fn scale_shift(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fused = fusable_with(x, &[w, b]) && x.rank() >= 1 && w.rank() == 1 && b.rank() == 1;
    if !fused {
        return x.broadcast_mul(w)?.broadcast_add(b);
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, ScaleShift)
}

pub(super) struct ScaleShift;

/// `(rows, m)` of an input `(…, m)` with parameters of size `m`.
pub(super) fn scale_shift_dims(x: &Shape, p: &Shape) -> Result<(usize, usize)> {
    let m = *x.dims().last().unwrap_or(&0);
    if x.rank() == 0 || p.dims() != [m] {
        candle_core::bail!("scale-shift: input {x:?} with parameters {p:?}");
    }
    Ok((x.elem_count() / m.max(1), m))
}

impl Kernel for ScaleShift {
    const NAME: &'static str = "scale-shift";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        scale_shift_dims(shapes[0], shapes[1])?;
        scale_shift_dims(shapes[0], shapes[2])?;
        Ok(shapes[0].clone())
    }
    fn run<T: Float>(&self, xs: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (_, m) = scale_shift_dims(shapes[0], shapes[1]).expect("checked by shape");
        let (w, b) = (xs[1], xs[2]);
        let mut out = Vec::with_capacity(xs[0].len());
        for row in xs[0].chunks_exact(m.max(1)) {
            out.extend(row.iter().zip(w).zip(b).map(|((&x, &w), &b)| x * w + b));
        }
        out
    }
}

impl ScaleShift {
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let m = w.dim(0)?;
        let rows = x.elem_count() / m.max(1);
        let g = grad.contiguous()?;
        let gx = g.broadcast_mul(w)?;
        let gw = (&g * x)?
            .reshape((rows, m))?
            .apply_op1_no_bwd(&ColumnSums)?;
        let gb = g.reshape((rows, m))?.apply_op1_no_bwd(&ColumnSums)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

kernel_op!(3, ScaleShift, backward);
