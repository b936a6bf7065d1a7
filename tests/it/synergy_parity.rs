//! The Candle losses equal the reference estimators (f64: 1e-10, f32: 1e-4) and their gradients
//! equal central finite differences of the reference (f64: 1e-5).

use crate::common::*;
use candle_core::{DType, Device, Tensor, Var};
use ndarray::{Array1, Array2};
use neural_synergy::estimators::{self as est, Bandwidths, MmdVariant, StreamingKurtosisParams};
use neural_synergy::synergy::losses::{self, scalar, BandwidthSpec, KurtosisLoss};
use neural_synergy::synergy::{from_array2, to_array2};
use proptest::prelude::*;

const VARIANTS: [MmdVariant; 3] = [MmdVariant::Biased, MmdVariant::Unbiased, MmdVariant::Linear];

fn t(a: &Array2<f64>, dtype: DType) -> Tensor {
    from_array2(a, dtype, &Device::Cpu).unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-2)
}

fn bw_strategy() -> impl Strategy<Value = Option<Vec<f64>>> {
    prop_oneof![
        Just(None),
        prop::collection::vec(0.3f64..4.0, 1..4).prop_map(Some)
    ]
}

fn spec(b: &Option<Vec<f64>>) -> BandwidthSpec {
    match b {
        None => BandwidthSpec::Median,
        Some(v) => BandwidthSpec::Fixed(Bandwidths::new(v.clone()).unwrap()),
    }
}

/// Central finite differences of `f` at `k` entries of `x` (chosen by `pick`).
fn fd(
    x: &Array2<f64>,
    entries: &[(usize, usize)],
    h: f64,
    f: impl Fn(&Array2<f64>) -> f64,
) -> Vec<f64> {
    entries
        .iter()
        .map(|&(i, j)| {
            let mut a = x.clone();
            a[[i, j]] += h;
            let up = f(&a);
            a[[i, j]] -= 2.0 * h;
            let down = f(&a);
            (up - down) / (2.0 * h)
        })
        .collect()
}

fn entries(n: usize, d: usize, seed: u64) -> Vec<(usize, usize)> {
    (0..6)
        .map(|k| ((seed as usize + 7 * k) % n, (seed as usize / 3 + 5 * k) % d))
        .collect()
}

fn assert_grad_close(
    got: &Array2<f64>,
    e: &[(usize, usize)],
    want: &[f64],
) -> Result<(), TestCaseError> {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
    for (&(i, j), w) in e.iter().zip(want) {
        let g = got[[i, j]];
        prop_assert!(
            (g - w).abs() <= 1e-5 * scale,
            "grad[{i},{j}] = {g}, finite difference {w} (scale {scale})"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn candle_mmd2_equals_the_reference_in_f64_and_f32(n in 2usize..70, m in 2usize..70, d in 1usize..6, seed in any::<u64>(), shift in 0.2f64..1.5, b in bw_strategy()) {
        let x = randn(n, d, seed);
        let y = randn(m, d, seed.wrapping_add(1)) * 1.3 + shift;
        for v in VARIANTS {
            let y = if v == MmdVariant::Linear { randn(n, d, seed.wrapping_add(1)) + shift } else { y.clone() };
            let bw = match &b { None => est::median_bandwidths(&x.view(), &y.view()).unwrap(), Some(s) => Bandwidths::new(s.clone()).unwrap() };
            let want = est::mmd2(&x.view(), &y.view(), v, &bw).unwrap();
            let got = scalar(&losses::mmd2(&t(&x, DType::F64), &t(&y, DType::F64), v, &spec(&b)).unwrap()).unwrap();
            prop_assert!(rel(got, want) <= 1e-10, "{v:?} f64: {got} vs {want}");
            let got32 = scalar(&losses::mmd2(&t(&x, DType::F32), &t(&y, DType::F32), v, &spec(&b)).unwrap()).unwrap();
            prop_assert!(rel(got32, want) <= 1e-4, "{v:?} f32: {got32} vs {want}");
        }
    }

    #[test]
    fn candle_dv_and_nwj_equal_the_reference(tp in prop::collection::vec(-8.0f64..8.0, 1..60), tq in prop::collection::vec(-8.0f64..8.0, 1..60)) {
        let (ap, aq) = (Array1::from(tp.clone()), Array1::from(tq.clone()));
        let dv = est::dv_bound(&ap.view(), &aq.view()).unwrap();
        let nwj = est::nwj_bound(&ap.view(), &aq.view()).unwrap();
        for (dt, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
            let p = Tensor::new(tp.as_slice(), &Device::Cpu).unwrap().to_dtype(dt).unwrap();
            let q = Tensor::new(tq.as_slice(), &Device::Cpu).unwrap().to_dtype(dt).unwrap();
            let a = scalar(&losses::dv_bound(&p, &q).unwrap()).unwrap();
            let b = scalar(&losses::nwj_bound(&p, &q).unwrap()).unwrap();
            prop_assert!(rel(a, dv) <= tol, "{dt:?} DV {a} vs {dv}");
            prop_assert!(rel(b, nwj) <= tol, "{dt:?} NWJ {b} vs {nwj}");
        }
    }

    #[test]
    fn candle_streaming_kurtosis_equals_the_reference(k in 1usize..4, n in 8usize..50, p in 1usize..6, seed in any::<u64>(), alpha in 0.0f64..0.95, ridge in 0.0f64..0.5, clip in prop_oneof![Just(f64::INFINITY), 0.5f64..4.0]) {
        prop_assume!(ridge > 1e-3 || n > p + 2);
        let params = StreamingKurtosisParams { alpha, ridge, clip };
        let mut reference = params.init().unwrap();
        let mut l64 = KurtosisLoss::new(params).unwrap();
        let mut l32 = KurtosisLoss::new(params).unwrap();
        for s in 0..k {
            let z = randn(n, p, seed.wrapping_add(s as u64)).mapv(|v| v + 0.3 * v * v);
            let want = reference.update(&z.view()).unwrap();
            let got = scalar(&l64.forward(&t(&z, DType::F64)).unwrap()).unwrap();
            let got32 = scalar(&l32.forward(&t(&z, DType::F32)).unwrap()).unwrap();
            prop_assert!(rel(got, want) <= 1e-10, "batch {s} f64: {got} vs {want}");
            prop_assert!(rel(got32, want) <= 1e-4, "batch {s} f32: {got32} vs {want}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn mmd2_gradient_equals_finite_differences_of_the_reference(n in 3usize..40, d in 1usize..5, seed in any::<u64>(), b in bw_strategy()) {
        let x = randn(n, d, seed);
        let y = randn(n, d, seed.wrapping_add(1)) * 1.2 + 0.5;
        // the Candle loss treats the (median) bandwidths as constants: so does the reference here
        let bw = match &b { None => est::median_bandwidths(&x.view(), &y.view()).unwrap(), Some(s) => Bandwidths::new(s.clone()).unwrap() };
        for v in VARIANTS {
            let xv = Var::from_tensor(&t(&x, DType::F64)).unwrap();
            let loss = losses::mmd2(xv.as_tensor(), &t(&y, DType::F64), v, &BandwidthSpec::Fixed(bw.clone())).unwrap();
            let g = to_array2(loss.backward().unwrap().get(xv.as_tensor()).unwrap()).unwrap();
            let e = entries(n, d, seed);
            let want = fd(&x, &e, 1e-5, |a| est::mmd2(&a.view(), &y.view(), v, &bw).unwrap());
            assert_grad_close(&g, &e, &want)?;
        }
    }

    #[test]
    fn dv_gradient_equals_finite_differences_of_the_reference(n in 1usize..30, m in 1usize..30, seed in any::<u64>()) {
        let tp = randn(n, 1, seed) * 2.0;
        let tq = randn(m, 1, seed.wrapping_add(1)) * 2.0;
        let pv = Var::from_tensor(&t(&tp, DType::F64)).unwrap();
        let qv = Var::from_tensor(&t(&tq, DType::F64)).unwrap();
        let loss = losses::dv_bound(pv.as_tensor(), qv.as_tensor()).unwrap();
        let grads = loss.backward().unwrap();
        let gq = to_array2(grads.get(qv.as_tensor()).unwrap()).unwrap();
        let e: Vec<(usize, usize)> = (0..m).map(|i| (i, 0)).collect();
        let col = |a: &Array2<f64>| a.column(0).to_owned();
        let want = fd(&tq, &e, 1e-5, |a| est::dv_bound(&col(&tp).view(), &col(a).view()).unwrap());
        assert_grad_close(&gq, &e, &want)?;
        let gp = to_array2(grads.get(pv.as_tensor()).unwrap()).unwrap();
        prop_assert!(gp.iter().all(|g| (g - 1.0 / n as f64).abs() < 1e-12));
    }

    #[test]
    fn kurtosis_gradient_equals_finite_differences_with_the_buffer_held_fixed(n in 6usize..40, p in 1usize..5, seed in any::<u64>(), ridge in 1e-3f64..0.5) {
        let params = StreamingKurtosisParams { alpha: 0.5, ridge, clip: 3.0 };
        let warm = randn(n, p, seed.wrapping_add(99));
        let z = randn(n, p, seed).mapv(|v| v + 0.2 * v * v);
        let mut reference = params.init().unwrap();
        reference.update(&warm.view()).unwrap();
        let step = reference.prepare(&z.view()).unwrap();
        let mut loss = KurtosisLoss::new(params).unwrap();
        loss.forward(&t(&warm, DType::F64)).unwrap();
        let zv = Var::from_tensor(&t(&z, DType::F64)).unwrap();
        let l = loss.forward(zv.as_tensor()).unwrap();
        let g = to_array2(l.backward().unwrap().get(zv.as_tensor()).unwrap()).unwrap();
        let e = entries(n, p, seed);
        let want = fd(&z, &e, 1e-5, |a| est::regularised_kurtosis(&a.view(), &step.chol).unwrap());
        assert_grad_close(&g, &e, &want)?;
    }
}

#[test]
fn candle_losses_reject_bad_input_with_typed_errors() {
    let x = t(&randn(5, 3, 1), DType::F64);
    let y = t(&randn(5, 4, 2), DType::F64);
    let e = losses::mmd2(&x, &y, MmdVariant::Unbiased, &BandwidthSpec::Median).unwrap_err();
    assert!(e.to_string().contains("dimension mismatch"), "{e}");
    let mut nan = randn(5, 3, 1);
    nan[[2, 2]] = f64::NAN;
    let e = losses::mmd2(
        &t(&nan, DType::F64),
        &x,
        MmdVariant::Unbiased,
        &BandwidthSpec::Median,
    )
    .unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    let empty = Tensor::zeros((0, 3), DType::F64, &Device::Cpu).unwrap();
    assert!(losses::mmd2(&empty, &x, MmdVariant::Biased, &BandwidthSpec::Median).is_err());
    assert!(losses::dv_bound(&Tensor::zeros(0, DType::F64, &Device::Cpu).unwrap(), &x).is_err());
    let mut k = KurtosisLoss::new(StreamingKurtosisParams {
        alpha: 0.5,
        ridge: 0.0,
        clip: f64::INFINITY,
    })
    .unwrap();
    let singular = t(&Array2::from_elem((6, 2), 1.0), DType::F64);
    assert!(k.forward(&singular).is_err());
    assert_eq!(
        k.state().steps(),
        0,
        "a failed batch leaves the buffer unchanged"
    );
}

/// The fused AdamW leaves every parameter bit-identical to candle-nn's AdamW over several steps
/// (f32 and f64 variables, weight decay on, gradients of varying sign and scale, one variable
/// without a gradient in some steps).
#[test]
fn fused_adamw_is_bit_identical_to_candle_nn_adamw() {
    use candle_nn::Optimizer;
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut randv = |n: usize, s: f64| -> Vec<f64> {
        (0..n).map(|_| s * (rng.random::<f64>() - 0.5)).collect()
    };
    let dev = Device::Cpu;
    let init32 = randv(37 * 5, 2.0);
    let init64 = randv(11, 3.0);
    let mk = || {
        let a = Var::from_tensor(
            &Tensor::from_vec(init32.clone(), (37, 5), &dev)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap(),
        )
        .unwrap();
        let b = Var::from_tensor(&Tensor::from_vec(init64.clone(), 11, &dev).unwrap()).unwrap();
        (a, b)
    };
    let params = candle_nn::ParamsAdamW {
        lr: 3e-3,
        weight_decay: 0.01,
        ..Default::default()
    };
    let (a1, b1) = mk();
    let (a2, b2) = mk();
    let mut reference =
        candle_nn::AdamW::new(vec![a1.clone(), b1.clone()], params.clone()).unwrap();
    let mut fused =
        neural_synergy::synergy::AdamW::new(vec![a2.clone(), b2.clone()], params).unwrap();
    for step in 0..6 {
        let xa = Tensor::from_vec(randv(37 * 5, 4.0), (37, 5), &dev)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let xb = Tensor::from_vec(randv(11, 1e-3), 11, &dev).unwrap();
        // b gets no gradient on odd steps
        let grads = |a: &Var, b: &Var| {
            let la = (a.as_tensor() * &xa)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            let loss = if step % 2 == 0 {
                let lb = (b.as_tensor() * &xb).unwrap().sum_all().unwrap();
                (la.to_dtype(DType::F64).unwrap() + lb).unwrap()
            } else {
                la
            };
            loss.backward().unwrap()
        };
        let (g1, g2) = (grads(&a1, &b1), grads(&a2, &b2));
        reference.step(&g1).unwrap();
        fused.step(&g2).unwrap();
        let bits32 = |v: &Var| -> Vec<u32> {
            v.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        let bits64 = |v: &Var| -> Vec<u64> {
            v.to_vec1::<f64>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        assert_eq!(
            bits32(&a1),
            bits32(&a2),
            "f32 variable differs at step {step}"
        );
        assert_eq!(
            bits64(&b1),
            bits64(&b2),
            "f64 variable differs at step {step}"
        );
        // and the variables moved
        assert_ne!(
            bits32(&a2),
            init32
                .iter()
                .map(|x| (*x as f32).to_bits())
                .collect::<Vec<_>>()
        );
    }
}
