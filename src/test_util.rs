//! Helpers of the unit tests beside the code (the integration tests have their own in
//! `tests/it/common.rs`): seeded Gaussian samples and a tensor's value and gradient.

use candle_core::{Device, Tensor};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// `n × d` standard normal matrix (the integration tests' `randn`: the same stream per seed).
pub(crate) fn randn(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| StandardNormal.sample(&mut r))
}

pub(crate) fn cpu() -> Device {
    Device::Cpu
}

/// A tensor's values as a flat f64 vector (any float dtype).
pub(crate) fn flat_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(candle_core::DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// Values and gradient of `f(x)` for a variable `x` (f32 or f64), the gradient of `Σ f(x) ⊙ w`.
pub(crate) fn value_and_grad(
    x: &Tensor,
    w: &Tensor,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> (Vec<f64>, Vec<f64>) {
    let v = candle_core::Var::from_tensor(x).unwrap();
    let y = f(v.as_tensor()).unwrap();
    let grads = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
    (flat_f64(&y), flat_f64(grads.get(v.as_tensor()).unwrap()))
}
