//! LeakyReLU as one op with its hand-written gradient (the C-network's MLPs, IWas' critics).

use super::*;

/// LeakyReLU `x ↦ max(x, 0) + slope · min(x, 0)` as one op.
///
/// Forward and gradient equal candle-nn's composed `leaky_relu` bit for bit, including its
/// gradient at `x = 0` (`(1 + slope) / 2`, candle splits ties between `max` and `min` equally).
pub(crate) fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if !fusable(x) {
        return candle_nn::ops::leaky_relu(x, slope);
    }
    x.contiguous()?.apply_op1(LeakyRelu { slope })
}

pub(super) struct LeakyRelu {
    slope: f64,
}

impl Kernel for LeakyRelu {
    const NAME: &'static str = "leaky-relu";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        Ok(shapes[0].clone())
    }
    fn run<T: Float>(&self, x: &[&[T]], _: &[&Shape]) -> Vec<T> {
        let k = T::from_f64(self.slope);
        x[0].iter()
            .map(|&v| if v < T::zero() { v * k } else { v })
            .collect()
    }
}

kernel_op!(1, LeakyRelu, backward);

impl LeakyRelu {
    fn backward(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad
            .contiguous()?
            .apply_op2_no_bwd(&arg.contiguous()?, &LeakyReluGrad { slope: self.slope })?;
        Ok(Some(g))
    }
}

/// `(g, x) → ∂x`.
pub(super) struct LeakyReluGrad {
    pub(super) slope: f64,
}

impl Kernel for LeakyReluGrad {
    const NAME: &'static str = "leaky-relu-grad";
    fn shape(&self, shapes: &[&Shape]) -> Result<Shape> {
        if shapes[0] != shapes[1] {
            candle_core::bail!("{}: shapes {:?} and {:?}", Self::NAME, shapes[0], shapes[1]);
        }
        Ok(shapes[0].clone())
    }
    fn run<T: Float>(&self, gx: &[&[T]], _: &[&Shape]) -> Vec<T> {
        let k = T::from_f64(self.slope);
        let two = T::one() + T::one();
        gx[0]
            .iter()
            .zip(gx[1])
            .map(|(&g, &x)| {
                if x > T::zero() {
                    g
                } else if x < T::zero() {
                    g * k
                } else {
                    g / two + g * k / two
                }
            })
            .collect()
    }
}

kernel_op!(2, LeakyReluGrad);
