//! IWas (`synergy::iwas`): spectral normalisation, the critic's Lipschitz bound, and the
//! Wasserstein dependency estimate (≈ 0 for independent inputs, growing with dependence).
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ndarray::Array2;
use ndarray_linalg::SVD;
use neural_synergy::synergy::iwas::{critic, IwasCritic};
use neural_synergy::synergy::{from_array2, to_array2};
use proptest::prelude::*;

fn gaussian_pair(n: usize, d: usize, rho: f64, seed: u64) -> (Tensor, Tensor) {
    let x = crate::common::randn(n, d, seed);
    let e = crate::common::randn(n, d, seed + 1000);
    let y = &x * rho + &e * (1.0 - rho * rho).sqrt();
    let dev = Device::Cpu;
    (
        from_array2(&x, DType::F64, &dev).unwrap(),
        from_array2(&y, DType::F64, &dev).unwrap(),
    )
}

fn largest_singular_value(w: &Array2<f64>) -> f64 {
    let (_, s, _) = w.svd(false, false).unwrap();
    s[0]
}

#[test]
fn spectrally_normalised_layers_have_unit_spectral_norm() {
    let (c, _map) = critic(5, 3, 32, 7, DType::F64, &Device::Cpu).unwrap();
    for l in c.layers() {
        let w = to_array2(l.weight()).unwrap();
        let sigma = l.sigma(false).unwrap().to_scalar::<f64>().unwrap();
        let exact = largest_singular_value(&w);
        assert!(
            (sigma - exact).abs() < 1e-4 * exact,
            "σ {sigma} vs SVD {exact}"
        );
        let normalised = w.mapv(|v| v / sigma);
        assert!((largest_singular_value(&normalised) - 1.0).abs() < 1e-4);
    }
}

fn trained(rho: f64, seed: u64) -> (IwasCritic, f64) {
    let (c, map) = critic(3, 3, 32, seed, DType::F64, &Device::Cpu).unwrap();
    let mut opt = AdamW::new(
        map.all_vars(),
        ParamsAdamW {
            lr: 3e-3,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    for step in 0..300 {
        let (x, y) = gaussian_pair(256, 3, rho, seed * 10_000 + step);
        let est = c.estimate(&x, &y, true).unwrap();
        opt.backward_step(&est.neg().unwrap()).unwrap();
    }
    // held-out estimate on a large fresh sample
    let (x, y) = gaussian_pair(4096, 3, rho, seed * 10_000 + 99_999);
    let e = c
        .estimate(&x, &y, false)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    (c, e)
}

#[test]
fn wasserstein_dependency_is_near_zero_for_independent_inputs_and_grows_with_dependence() {
    let (_, e0) = trained(0.0, 1);
    let (_, e5) = trained(0.5, 1);
    let (_, e9) = trained(0.9, 1);
    assert!(e0.abs() < 0.05, "independent: {e0}");
    assert!(e5 > e0 + 0.05, "ρ = 0.5: {e5} vs {e0}");
    assert!(e9 > e5 + 0.05, "ρ = 0.9: {e9} vs ρ = 0.5: {e5}");
    // a 1-Lipschitz critic cannot separate the joint from the product by more than the
    // expected distance between a pair and a shuffled pair: E‖(x,y) − (x,y')‖ = E‖y − y'‖ ≤ √(2d)
    assert!(e9 < (2.0f64 * 3.0).sqrt(), "{e9}");
}

#[test]
fn iwas_rejects_batches_of_one_or_of_different_sizes() {
    let (c, _map) = critic(2, 2, 8, 0, DType::F64, &Device::Cpu).unwrap();
    let (x, y) = gaussian_pair(4, 2, 0.0, 3);
    assert!(c
        .estimate(
            &x.narrow(0, 0, 1).unwrap(),
            &y.narrow(0, 0, 1).unwrap(),
            false
        )
        .is_err());
    assert!(c.estimate(&x, &y.narrow(0, 0, 3).unwrap(), false).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn critic_is_1_lipschitz(seed in 0u64..1000, scale in 0.01f64..10.0) {
        let (c, _map) = critic(4, 2, 16, seed, DType::F64, &Device::Cpu).unwrap();
        let a = crate::common::randn(64, 6, seed + 1) * scale;
        let b = crate::common::randn(64, 6, seed + 2) * scale;
        let dev = Device::Cpu;
        let score = |m: &Array2<f64>| {
            let t = from_array2(m, DType::F64, &dev).unwrap();
            let (x, y) = (t.narrow(1, 0, 4).unwrap(), t.narrow(1, 4, 2).unwrap());
            c.score(&x, &y, false).unwrap().to_vec1::<f64>().unwrap()
        };
        let (ta, tb) = (score(&a), score(&b));
        for i in 0..64 {
            let dist = (&a.row(i) - &b.row(i)).mapv(|v| v * v).sum().sqrt();
            prop_assert!((ta[i] - tb[i]).abs() <= dist * (1.0 + 1e-3) + 1e-12,
                "|ΔT| {} > ‖Δ‖ {dist}", (ta[i] - tb[i]).abs());
        }
    }
}
