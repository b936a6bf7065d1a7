//! The Gaussian-kernel MMD² of two samples as one op forward and one backward (`L_d` of SMMD).

use super::*;

/// The biased or unbiased MMD² between the rows of `x` (`n × d`) and `y` (`m × d`) with the
/// Gaussian-mixture kernel `k(a, b) = (1/B) Σ_β exp(−‖a − b‖² / (2σ_β²))`, as one op (a scalar),
/// accumulated in f64 whatever the input dtype:
///
/// `MMD² = c_x Σ_{i≠j} k(x_i, x_j) + c_y Σ_{i≠j} k(y_i, y_j) − 2/(nm) Σ_{i,j} k(x_i, y_j) + a`,
/// with `c_x = 1/(n(n−1))`, `c_y = 1/(m(m−1))`, `a = 0` (unbiased) or `c_x = 1/n²`,
/// `c_y = 1/m²`, `a = 1/n + 1/m` (biased: the diagonal, `k(x, x) = 1`).
///
/// Backward, with `k'(r) = dk/d(‖a−b‖²) = −(1/B) Σ_β exp(−r/(2σ_β²)) / (2σ_β²)`:
/// `∂x_i = 4 c_x Σ_j k'(x_i, x_j)(x_i − x_j) − (4/(nm)) Σ_j k'(x_i, y_j)(x_i − y_j)` and the same
/// with the roles of `x` and `y` swapped. The composed candle ops ([`crate::synergy::losses`])
/// take about 80 graph nodes for this per modality, forward, and twice that backward; here it is
/// one node each way. Squared distances are formed from the differences (not `‖a‖² + ‖b‖² −
/// 2aᵀb`), so no clamp at zero is needed. CPU f32/f64 only ([`fusable_with`]); fewer than 1 row
/// (2 unbiased) in a sample, differing widths or no/non-positive bandwidths are errors.
pub(crate) fn mmd2_gaussian(
    x: &Tensor,
    y: &Tensor,
    unbiased: bool,
    sigmas: &[f64],
) -> Result<Tensor> {
    let op = Mmd2 {
        unbiased,
        inv: sigmas.iter().map(|s| 0.5 / (s * s)).collect(),
    };
    x.contiguous()?.apply_op2(&y.contiguous()?, op)
}

#[derive(Clone)]
pub(super) struct Mmd2 {
    unbiased: bool,
    /// `1/(2σ_β²)` per bandwidth.
    inv: Vec<f64>,
}

impl Mmd2 {
    fn dims(&self, shapes: &[&Shape]) -> Result<(usize, usize, usize)> {
        let (n, d) = shapes[0].dims2()?;
        let (m, d2) = shapes[1].dims2()?;
        let least = if self.unbiased { 2 } else { 1 };
        if d != d2 || n < least || m < least {
            candle_core::bail!(
                "mmd2: shapes {:?} and {:?} (the unbiased estimate needs 2 rows in each)",
                shapes[0],
                shapes[1]
            );
        }
        if self.inv.is_empty() || self.inv.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
            candle_core::bail!("mmd2: bandwidths must be finite and positive, at least one");
        }
        Ok((n, m, d))
    }

    /// `(c_x, c_y, c_xy, a)`.
    fn coefficients(&self, n: usize, m: usize) -> (f64, f64, f64, f64) {
        let (nf, mf) = (n as f64, m as f64);
        let cxy = 2.0 / (nf * mf);
        if self.unbiased {
            (1.0 / (nf * (nf - 1.0)), 1.0 / (mf * (mf - 1.0)), cxy, 0.0)
        } else {
            (1.0 / (nf * nf), 1.0 / (mf * mf), cxy, 1.0 / nf + 1.0 / mf)
        }
    }

    /// `(k(r), k'(r))` at the squared distance `r`.
    #[inline]
    fn k(&self, r: f64) -> (f64, f64) {
        let (mut k, mut dk) = (0.0, 0.0);
        for &c in &self.inv {
            let e = (-c * r).exp();
            k += e;
            dk -= c * e;
        }
        let b = self.inv.len() as f64;
        (k / b, dk / b)
    }
}

/// `‖a − b‖²` in f64.
#[inline]
pub(super) fn sq_dist<T: Float>(a: &[T], b: &[T]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&u, &v)| {
            let t = u.to_f64() - v.to_f64();
            t * t
        })
        .sum()
}

impl Kernel for Mmd2 {
    const NAME: &'static str = "mmd2";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        self.dims(shapes)?;
        Ok(Shape::from(()))
    }
    fn run<T: Float>(&self, xs: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (n, m, d) = self.dims(shapes).expect("checked by shape");
        let (x, y) = (xs[0], xs[1]);
        fn row<T>(a: &[T], i: usize, d: usize) -> &[T] {
            &a[i * d..(i + 1) * d]
        }
        // Σ_{i<j} k within a sample (each unordered pair once; the sums count both orders)
        let within = |a: &[T], len: usize| {
            let mut s = 0.0;
            for i in 0..len {
                for j in i + 1..len {
                    s += self.k(sq_dist(row(a, i, d), row(a, j, d))).0;
                }
            }
            2.0 * s
        };
        let mut kxy = 0.0;
        for i in 0..n {
            for j in 0..m {
                kxy += self.k(sq_dist(row(x, i, d), row(y, j, d))).0;
            }
        }
        let (cx, cy, cxy, a) = self.coefficients(n, m);
        let v = cx * within(x, n) + cy * within(y, m) - cxy * kxy + a;
        vec![T::from_f64(v)]
    }
}

kernel_op!(2, Mmd2, backward);

impl Mmd2 {
    fn backward(
        &self,
        x: &Tensor,
        y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = x.dim(0)?;
        let g = grad
            .reshape(1)?
            .apply_op3_no_bwd(x, y, &Mmd2Grad(self.clone()))?;
        Ok((Some(g.narrow(0, 0, n)?), Some(g.narrow(0, n, y.dim(0)?)?)))
    }
}

/// [`Mmd2`]'s backward: inputs `(g (1), x, y)`, output `[∂x; ∂y]` (`(n + m) × d`).
pub(super) struct Mmd2Grad(Mmd2);

impl Kernel for Mmd2Grad {
    const NAME: &'static str = "mmd2-grad";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        if shapes[0].elem_count() != 1 {
            candle_core::bail!("{}: gradient of shape {:?}", Self::NAME, shapes[0]);
        }
        let (n, m, d) = self.0.dims(&shapes[1..])?;
        Ok(Shape::from((n + m, d)))
    }
    fn run<T: Float>(&self, xs: &[&[T]], shapes: &[&Shape]) -> Vec<T> {
        let (n, m, d) = self.0.dims(&shapes[1..]).expect("checked by shape");
        let g = xs[0][0].to_f64();
        let (x, y) = (xs[1], xs[2]);
        let (cx, cy, cxy, _) = self.0.coefficients(n, m);
        let mut out = vec![0.0f64; (n + m) * d];
        let (ox, oy) = out.split_at_mut(n * d);
        // adds `w (a − b)` to `ga` and `w (b − a)` to `gb`
        let pair = |a: &[T], b: &[T], w: f64, ga: &mut [f64], gb: &mut [f64]| {
            for k in 0..d {
                let t = w * (a[k].to_f64() - b[k].to_f64());
                ga[k] += t;
                gb[k] -= t;
            }
        };
        let within = |a: &[T], len: usize, c: f64, ga: &mut [f64]| {
            for i in 0..len {
                for j in i + 1..len {
                    let (ri, rj) = (&a[i * d..(i + 1) * d], &a[j * d..(j + 1) * d]);
                    let w = 4.0 * c * g * self.0.k(sq_dist(ri, rj)).1;
                    let (lo, hi) = ga.split_at_mut(j * d);
                    pair(ri, rj, w, &mut lo[i * d..(i + 1) * d], &mut hi[..d]);
                }
            }
        };
        within(x, n, cx, ox);
        within(y, m, cy, oy);
        for i in 0..n {
            for j in 0..m {
                let (ri, rj) = (&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]);
                let w = -2.0 * cxy * g * self.0.k(sq_dist(ri, rj)).1;
                pair(
                    ri,
                    rj,
                    w,
                    &mut ox[i * d..(i + 1) * d],
                    &mut oy[j * d..(j + 1) * d],
                );
            }
        }
        out.into_iter().map(T::from_f64).collect()
    }
}

kernel_op!(3, Mmd2Grad);
