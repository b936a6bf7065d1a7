//! The C-network and Algorithm D's step: invertibility of g_i, L_d/L_L2 against the reference,
//! training-time-only C-network, L_reg decreasing, reproducibility, non-finite losses.

use crate::common::*;
use candle_core::{DType, Device, Module, Tensor};
use neural_synergy::app::{DemoFusion, DemoStream};
use neural_synergy::estimators::{self as est, MmdVariant};
use neural_synergy::synergy::losses::scalar;
use neural_synergy::synergy::nets::InvertibleNet;
use neural_synergy::synergy::{
    from_array2, to_array2, CNetwork, Divergence, SynergyConfig, SynergyError, SynergyStep,
};
use proptest::prelude::*;

fn cpu() -> Device {
    Device::Cpu
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn invertible_net_reconstructs_its_input(k in 2usize..12, layers in 1usize..6, n in 1usize..20, seed in any::<u64>()) {
        let vars = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vars, DType::F64, &cpu());
        let net = InvertibleNet::new(vb, k, 16, layers).unwrap();
        neural_synergy::synergy::nets::seed_varmap(&vars, seed).unwrap();
        let x = from_array2(&(randn(n, k, seed) * 3.0), DType::F64, &cpu()).unwrap();
        let y = net.forward(&x).unwrap();
        let back = net.inverse(&y).unwrap();
        let err = to_array2(&(back - &x).unwrap().abs().unwrap()).unwrap().iter().fold(0.0f64, |m, v| m.max(*v));
        prop_assert!(err < 1e-10, "max reconstruction error {err}");
        // and it is not the identity
        let moved = to_array2(&(y - &x).unwrap().abs().unwrap()).unwrap().iter().fold(0.0f64, |m, v| m.max(*v));
        prop_assert!(moved > 1e-3);
    }
}

fn reps(n: usize, seed: u64) -> (Vec<Tensor>, Tensor) {
    let uni = [6usize, 4, 5]
        .iter()
        .enumerate()
        .map(|(i, &d)| from_array2(&randn(n, d, seed + i as u64), DType::F64, &cpu()).unwrap())
        .collect();
    (
        uni,
        from_array2(&randn(n, 7, seed + 9), DType::F64, &cpu()).unwrap(),
    )
}

#[test]
fn smmd_alignment_loss_equals_the_reference_mmd_of_the_aligned_samples() {
    let cfg = SynergyConfig {
        gamma_l2: 0.0,
        gamma_k: 0.0,
        ..SynergyConfig::default()
    };
    let mut c = CNetwork::new(cfg, &[6, 4, 5], 7, DType::F64, &cpu()).unwrap();
    let (uni, fused) = reps(40, 1);
    let l = c.losses(&uni, &fused).unwrap();
    let mut want = 0.0;
    for (i, z) in uni.iter().enumerate() {
        let gi = to_array2(&c.g_unimodal(i, z).unwrap()).unwrap();
        let gf = to_array2(&c.g_fused(i, &fused).unwrap()).unwrap();
        let bw = est::median_bandwidths(&gi.view(), &gf.view()).unwrap();
        want += est::mmd2(&gi.view(), &gf.view(), MmdVariant::Unbiased, &bw).unwrap();
    }
    let got = scalar(l.ld.as_ref().unwrap()).unwrap();
    assert!(
        (got - want).abs() <= 1e-10 * want.abs().max(1e-2),
        "{got} vs {want}"
    );
    assert!(l.l2.is_none() && l.lk.is_none());
    assert!(
        (scalar(&l.total).unwrap() - got).abs() < 1e-12,
        "γ_d = 1: total = L_d"
    );
}

#[test]
fn reconstruction_loss_is_the_batch_mean_squared_error_summed_over_modalities() {
    let cfg = SynergyConfig {
        gamma_d: 0.0,
        gamma_k: 0.0,
        gamma_l2: 2.0,
        relative_l2: false,
        ..SynergyConfig::default()
    };
    let mut c = CNetwork::new(cfg, &[6, 4, 5], 7, DType::F64, &cpu()).unwrap();
    let (uni, fused) = reps(30, 2);
    let l = c.losses(&uni, &fused).unwrap();
    let mut want = 0.0;
    for (i, z) in uni.iter().enumerate() {
        let q = to_array2(&c.reconstruct(i, &uni).unwrap()).unwrap();
        let z = to_array2(z).unwrap();
        want += (&q - &z).mapv(|v| v * v).sum() / 30.0;
    }
    let got = scalar(l.l2.as_ref().unwrap()).unwrap();
    assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    assert!((scalar(&l.total).unwrap() - 2.0 * got).abs() <= 1e-12 * want);
}

#[test]
fn relative_reconstruction_loss_divides_by_the_batch_variance_and_is_scale_free() {
    let cfg = SynergyConfig {
        gamma_d: 0.0,
        gamma_k: 0.0,
        ..SynergyConfig::default()
    };
    let mut c = CNetwork::new(cfg, &[6, 4, 5], 7, DType::F64, &cpu()).unwrap();
    let (uni, fused) = reps(30, 2);
    let got = scalar(c.losses(&uni, &fused).unwrap().l2.as_ref().unwrap()).unwrap();
    let mut want = 0.0;
    for (i, z) in uni.iter().enumerate() {
        let q = to_array2(&c.reconstruct(i, &uni).unwrap()).unwrap();
        let z = to_array2(z).unwrap();
        let var = (&z - &z.mean_axis(ndarray::Axis(0)).unwrap())
            .mapv(|v| v * v)
            .sum()
            / 30.0;
        want += (&q - &z).mapv(|v| v * v).sum() / 30.0 / (var + 1e-8);
    }
    assert!((got - want).abs() <= 1e-10 * want, "{got} vs {want}");
}

#[test]
fn kurtosis_penalty_is_normalised_by_the_gaussian_value_per_representation() {
    let cfg = SynergyConfig {
        gamma_d: 0.0,
        gamma_l2: 0.0,
        ..SynergyConfig::default()
    };
    let mut c = CNetwork::new(cfg.clone(), &[6, 4, 5], 7, DType::F64, &cpu()).unwrap();
    let (uni, fused) = reps(50, 3);
    let l = c.losses(&uni, &fused).unwrap();
    let mut want = 0.0;
    for z in uni.iter().chain(std::iter::once(&fused)) {
        let a = to_array2(z).unwrap();
        let p = a.ncols() as f64;
        let mut s = cfg.kurtosis.init().unwrap();
        want += s.update(&a.view()).unwrap() / (p * (p + 2.0));
    }
    let got = scalar(l.lk.as_ref().unwrap()).unwrap();
    assert!((got - want).abs() <= 1e-10 * want, "{got} vs {want}");
}

fn train(cfg: SynergyConfig, steps: usize, seed: u64) -> (Vec<f64>, Vec<f64>, DemoFusion) {
    let dev = cpu();
    let model = DemoFusion::new(seed, DType::F32, &dev).unwrap();
    let h = DemoFusion::HIDDEN;
    let cnet = CNetwork::new(cfg, &[h, h, h], h, DType::F32, &dev).unwrap();
    let mut step = SynergyStep::new(cnet, model.varmap().all_vars(), 3e-3).unwrap();
    let mut stream = DemoStream::new(seed, DType::F32, &dev);
    let (mut reg, mut task) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        let b = stream.batch(64).unwrap();
        let out = model.forward(&b, true).unwrap();
        let loss = (&out.prediction - &b.label)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        let s = step.step(&out, &loss).unwrap();
        reg.push(s.reg);
        task.push(s.task);
    }
    (reg, task, model)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn algorithm_d_decreases_the_regulariser_and_the_task_loss() {
    for div in [Divergence::Mmd, Divergence::Kl] {
        let cfg = SynergyConfig {
            divergence: div,
            lr_mi: 3e-3,
            ..SynergyConfig::default()
        };
        let (reg, task, _) = train(cfg, 150, 5);
        let (r0, r1) = (mean(&reg[..20]), mean(&reg[130..]));
        let (t0, t1) = (mean(&task[..20]), mean(&task[130..]));
        assert!(r1 < r0, "{div:?}: L_reg {r0} -> {r1}");
        assert!(t1 < 0.7 * t0, "{div:?}: task {t0} -> {t1}");
    }
}

#[test]
fn training_is_reproducible_from_the_seed() {
    let (a, ta, _) = train(SynergyConfig::default(), 15, 11);
    let (b, tb, _) = train(SynergyConfig::default(), 15, 11);
    assert_eq!(a, b);
    assert_eq!(ta, tb);
    let (c, _, _) = train(SynergyConfig::default(), 15, 12);
    assert_ne!(a, c);
}

#[test]
fn a_non_finite_task_loss_stops_the_step_without_updating() {
    let dev = cpu();
    let model = DemoFusion::new(1, DType::F32, &dev).unwrap();
    let h = DemoFusion::HIDDEN;
    let cnet = CNetwork::new(SynergyConfig::default(), &[h, h, h], h, DType::F32, &dev).unwrap();
    let mut step = SynergyStep::new(cnet, model.varmap().all_vars(), 1e-3).unwrap();
    let b = DemoStream::new(1, DType::F32, &dev).batch(16).unwrap();
    let out = model.forward(&b, true).unwrap();
    let before = out.prediction.to_vec1::<f32>().unwrap();
    let nan = (out.prediction.sum_all().unwrap() * f64::NAN).unwrap();
    match step.step(&out, &nan) {
        Err(SynergyError::NonFinite { what, step, .. }) => {
            assert_eq!(what, "task loss");
            assert_eq!(step, 0);
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    let again = model
        .forward(&b, true)
        .unwrap()
        .prediction
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(before, again, "no parameter moved");
}

#[test]
fn widths_that_do_not_match_the_c_network_are_a_clear_error() {
    let mut c = CNetwork::new(SynergyConfig::default(), &[6, 4, 5], 7, DType::F64, &cpu()).unwrap();
    let (uni, _) = reps(10, 1);
    let fused = from_array2(&randn(10, 3, 1), DType::F64, &cpu()).unwrap();
    let e = c.losses(&uni, &fused).unwrap_err();
    assert!(e.to_string().contains("do not match"), "{e}");
    assert!(CNetwork::new(SynergyConfig::default(), &[6], 7, DType::F64, &cpu()).is_err());
    let bad = SynergyConfig {
        beta: -1.0,
        ..SynergyConfig::default()
    };
    assert!(CNetwork::new(bad, &[6, 4], 7, DType::F64, &cpu()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The fused MMD² op equals the composed candle ops — value (1e-10 relative in f64; 1e-5
    /// absolute in f32, where the op accumulates in f64 and the composed ops do not) and the
    /// gradients for both samples (1e-9 in f64, 1e-4 in f32, of the largest component) —
    /// for the biased and unbiased variants, fixed and median bandwidths, unequal sample sizes.
    #[test]
    fn fused_mmd2_equals_the_composed_ops(n in 2usize..30, m in 2usize..30, d in 1usize..9, seed in any::<u64>(), unbiased in any::<bool>(), median in any::<bool>(), f32_ in any::<bool>()) {
        use neural_synergy::synergy::losses::{mmd2, mmd2_composed, BandwidthSpec};
        let dt = if f32_ { DType::F32 } else { DType::F64 };
        let variant = if unbiased { MmdVariant::Unbiased } else { MmdVariant::Biased };
        let bw = if median { BandwidthSpec::Median } else { BandwidthSpec::Fixed(est::Bandwidths::new(vec![0.5, 1.0, 2.5]).unwrap()) };
        let x = from_array2(&randn(n, d, seed), dt, &cpu()).unwrap();
        let y = from_array2(&(randn(m, d, seed ^ 1) * 1.3 + 0.4), dt, &cpu()).unwrap();
        let one = Tensor::ones((), dt, &cpu()).unwrap();
        let (vf, gxf) = value_and_grad(&x, &one, |x| mmd2(x, &y, variant, &bw).map_err(|e| candle_core::Error::Msg(e.to_string())));
        let (vc, gxc) = value_and_grad(&x, &one, |x| mmd2_composed(x, &y, variant, &bw).map_err(|e| candle_core::Error::Msg(e.to_string())));
        // MMD² is a difference of kernel means of order 1: in f32 the composed ops' own rounding
        // (~1e-7 per term) sets the scale, so the f32 bound is absolute
        let (vtol, floor) = if f32_ { (1e-5, 1.0) } else { (1e-10, 1e-2) };
        prop_assert!((vf[0] - vc[0]).abs() <= vtol * vc[0].abs().max(floor), "{} vs {}", vf[0], vc[0]);
        // gradients: 1e-9 in f64; in f32 1e-4 of the largest component (the composed f32 ops'
        // rounding)
        let close = |a: &[f64], c: &[f64]| {
            let scale = c.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            let tol = if f32_ { 1e-4 * scale } else { 1e-9 * scale };
            a.len() == c.len() && a.iter().zip(c).all(|(x, y)| (x - y).abs() <= tol)
        };
        prop_assert!(close(&gxf, &gxc), "{gxf:?} vs {gxc:?}");
        let (_, gyf) = value_and_grad(&y, &one, |y| mmd2(&x, y, variant, &bw).map_err(|e| candle_core::Error::Msg(e.to_string())));
        let (_, gyc) = value_and_grad(&y, &one, |y| mmd2_composed(&x, y, variant, &bw).map_err(|e| candle_core::Error::Msg(e.to_string())));
        prop_assert!(close(&gyf, &gyc), "{gyf:?} vs {gyc:?}");
    }
}

/// A zero-width representation is a configuration error of the C-network, not a panic.
#[test]
fn cnetwork_rejects_a_zero_width_representation() {
    let e = CNetwork::new(SynergyConfig::default(), &[3, 0], 4, DType::F32, &cpu()).unwrap_err();
    assert!(e.to_string().contains(">= 1"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// `clip_grad_norm` returns the global L2 norm — bit for bit the host sum of the per-variable
    /// f32 sums of squares, in order, as before it summed on the device — skips variables without
    /// a gradient, rescales to `max_norm` when the norm exceeds it and leaves the gradients alone
    /// otherwise.
    #[test]
    fn clip_grad_norm_is_the_global_norm_and_clips_to_max_norm(shapes in prop::collection::vec((1usize..9, 1usize..9), 1..6), seed in any::<u64>(), scale in 0.01f64..10.0, frac in 0.1f64..2.0) {
        use candle_core::Var;
        let vars: Vec<Var> = shapes.iter().enumerate().map(|(i, &(r, c))| {
            Var::from_tensor(&from_array2(&randn(r, c, seed ^ i as u64), DType::F32, &cpu()).unwrap()).unwrap()
        }).collect();
        let unused = Var::from_tensor(&from_array2(&randn(2, 2, seed ^ 99), DType::F32, &cpu()).unwrap()).unwrap();
        let weights: Vec<Tensor> = shapes.iter().enumerate().map(|(i, &(r, c))| {
            from_array2(&(randn(r, c, seed ^ (i as u64 + 50)) * scale), DType::F32, &cpu()).unwrap()
        }).collect();
        let loss = vars.iter().zip(&weights).map(|(v, w)| (v.as_tensor() * w).unwrap().sum_all().unwrap())
            .reduce(|a, b| (a + b).unwrap()).unwrap();
        let mut all = vars.clone();
        all.push(unused.clone());
        let mut want_sq = 0.0f64;
        for w in &weights {
            want_sq += scalar(&w.sqr().unwrap().sum_all().unwrap()).unwrap();
        }
        let want = want_sq.sqrt();
        let max_norm = want * frac;
        let mut grads = loss.backward().unwrap();
        let norm = neural_synergy::synergy::clip_grad_norm(&mut grads, &all, max_norm).unwrap();
        prop_assert_eq!(norm, want);
        prop_assert!(grads.get(unused.as_tensor()).is_none());
        let mut after = 0.0f64;
        for (v, w) in vars.iter().zip(&weights) {
            let g = grads.get(v.as_tensor()).unwrap();
            after += scalar(&g.sqr().unwrap().sum_all().unwrap()).unwrap();
            if frac >= 1.0 {
                prop_assert_eq!(flat_f64(g), flat_f64(w));
            }
        }
        // PyTorch's factor max_norm / (norm + 1e-6)
        let expected = if frac >= 1.0 { want } else { max_norm * want / (want + 1e-6) };
        prop_assert!((after.sqrt() - expected).abs() <= 1e-5 * expected, "{} vs {expected}", after.sqrt());
    }
}

/// SMMD on a collapsed batch (what TFN +SMMD's C-network did at epoch 7 of a real-text MOSEI run:
/// most representations exactly 0) is a finite loss with finite gradients under the median
/// heuristic, not a zero-bandwidth error; an all-zero batch gives MMD² = 0 and a zero gradient.
#[test]
fn smmd_of_a_collapsed_batch_is_finite_under_the_median_heuristic() {
    use neural_synergy::synergy::losses::{mmd2, BandwidthSpec};
    let dt = DType::F64;
    // 12 rows of zeros and 2 distinct rows: 66 of the 91 pooled pairs are duplicates
    let mut xa = ndarray::Array2::<f64>::zeros((8, 4));
    let ya = ndarray::Array2::<f64>::zeros((6, 4));
    xa[[0, 1]] = 0.7;
    xa[[1, 2]] = -1.1;
    let x = from_array2(&xa, dt, &cpu()).unwrap();
    let y = from_array2(&ya, dt, &cpu()).unwrap();
    assert!(est::median_bandwidth(&xa.view(), &ya.view()).is_err());
    let one = Tensor::ones((), dt, &cpu()).unwrap();
    for variant in [MmdVariant::Biased, MmdVariant::Unbiased] {
        let (v, g) = value_and_grad(&x, &one, |x| {
            mmd2(x, &y, variant, &BandwidthSpec::Median)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
        });
        assert!(
            v[0].is_finite() && v[0] > 0.0,
            "{variant:?}: MMD² = {}",
            v[0]
        );
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        let zeros = from_array2(&ndarray::Array2::<f64>::zeros((8, 4)), dt, &cpu()).unwrap();
        let (v0, g0) = value_and_grad(&zeros, &one, |x| {
            mmd2(x, &y, variant, &BandwidthSpec::Median)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
        });
        assert!(
            v0[0].abs() < 1e-12 && g0.iter().all(|v| v.abs() < 1e-12),
            "{v0:?} {g0:?}"
        );
    }
}
