//! Bad input never panics: every public estimator answers with a typed error (fuzzed with proptest).

use crate::common::*;
use ndarray::{arr1, Array1, Array2};
use neural_synergy::estimators::*;
use neural_synergy::EstimatorError as E;
use proptest::prelude::*;

fn bw() -> Bandwidths {
    Bandwidths::single(1.0).unwrap()
}

/// Calls every two-sample estimator; returns the errors (it must not panic).
fn all_pair(x: &Array2<f64>, y: &Array2<f64>) -> Vec<neural_synergy::Result<f64>> {
    let (x, y) = (x.view(), y.view());
    vec![
        mmd2(&x, &y, MmdVariant::Biased, &bw()),
        mmd2(&x, &y, MmdVariant::Unbiased, &bw()),
        mmd2(&x, &y, MmdVariant::Linear, &bw()),
        median_bandwidth(&x, &y),
        gaussian_kl(&x, &y),
        knn_kl(&x, &y, 1),
        mine_kl(
            &x,
            &y,
            &MineParams {
                steps: 2,
                batch: 4,
                ..MineParams::default()
            },
        )
        .map(|r| r.value),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn non_finite_values_are_rejected_by_every_estimator(n in 1usize..20, d in 1usize..4, seed in any::<u64>(), which in 0usize..3, pos in any::<prop::sample::Index>(), in_y in any::<bool>()) {
        let mut x = randn(n + 3, d, seed);
        let mut y = randn(n + 3, d, seed.wrapping_add(1));
        let bad = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][which];
        let target = if in_y { &mut y } else { &mut x };
        let i = pos.index(target.len());
        *target.iter_mut().nth(i).unwrap() = bad;
        for r in all_pair(&x, &y) {
            prop_assert!(matches!(r, Err(E::NonFinite { .. })), "{r:?}");
        }
        prop_assert!(matches!(mardia(&x.view()).and(mardia(&y.view())), Err(E::NonFinite { .. })), "unexpected result");
        let mut s = StreamingKurtosisParams::default().init().unwrap();
        prop_assert!(matches!(s.update(&x.view()).and(s.update(&y.view())), Err(E::NonFinite { .. })), "unexpected result");
        // both updates ran (`and` evaluates its argument): the clean batch advanced the state,
        // the rejected one did not — exactly one step, whichever of the two held the bad value
        prop_assert_eq!(s.steps(), 1);
    }

    #[test]
    fn mismatched_dimensions_are_rejected_by_every_estimator(n in 3usize..20, d in 1usize..4, extra in 1usize..3, seed in any::<u64>()) {
        let x = randn(n, d, seed);
        let y = randn(n, d + extra, seed);
        for r in all_pair(&x, &y) {
            prop_assert!(matches!(r, Err(E::DimensionMismatch { .. })), "{r:?}");
        }
        let mut s = StreamingKurtosisParams::default().init().unwrap();
        s.update(&randn(n + d + 2, d, seed).view()).unwrap();
        prop_assert!(matches!(s.update(&randn(n + d + 2, d + extra, seed).view()), Err(E::DimensionMismatch { .. })), "unexpected result");
    }

    #[test]
    fn covariance_methods_reject_n_not_above_p(p in 1usize..8, short in 0usize..8, seed in any::<u64>()) {
        let n = p.saturating_sub(short).max(1);
        let x = randn(n, p, seed);
        let y = randn(3 * p + 3, p, seed);
        prop_assert!(matches!(mardia(&x.view()), Err(E::TooFewSamples { .. })), "unexpected result");
        prop_assert!(matches!(gaussian_kl(&x.view(), &y.view()), Err(E::TooFewSamples { .. })), "unexpected result");
        prop_assert!(matches!(gaussian_kl(&y.view(), &x.view()), Err(E::TooFewSamples { .. })), "unexpected result");
    }

    #[test]
    fn non_positive_bandwidths_are_rejected(s in prop_oneof![Just(0.0), -10.0f64..0.0, Just(f64::NAN), Just(f64::INFINITY)]) {
        prop_assert!(matches!(Bandwidths::single(s), Err(E::NonPositiveBandwidth(_))));
        prop_assert!(matches!(Bandwidths::new(vec![1.0, s]), Err(E::NonPositiveBandwidth(_))));
    }

    #[test]
    fn arbitrary_finite_input_never_panics(n in 0usize..12, m in 0usize..12, d in 0usize..4, scale in prop_oneof![Just(0.0), Just(1e-300), Just(1.0), Just(1e150)], seed in any::<u64>()) {
        let x = randn(n, d, seed) * scale;
        let y = randn(m, d, seed.wrapping_add(1)) * scale;
        for v in all_pair(&x, &y).into_iter().flatten() {
            prop_assert!(v.is_finite());
        }
        if let Ok(m) = mardia(&x.view()) { prop_assert!(m.b2.is_finite()); }
        let tp: Array1<f64> = x.iter().cloned().collect();
        let tq: Array1<f64> = y.iter().cloned().collect();
        if let Ok(v) = dv_bound(&tp.view(), &tq.view()) { prop_assert!(v.is_finite()); }
        if let Ok(v) = nwj_bound(&tp.view(), &tq.view()) { prop_assert!(v.is_finite()); }
    }
}

#[test]
fn empty_inputs_are_typed_errors() {
    let e = Array2::<f64>::zeros((0, 3));
    let x = randn(5, 3, 1);
    for r in all_pair(&e, &x).into_iter().chain(all_pair(&x, &e)) {
        assert!(matches!(r, Err(E::Empty { .. })), "{r:?}");
    }
    let v = Array1::<f64>::zeros(0);
    assert!(matches!(
        dv_bound(&v.view(), &arr1(&[1.0]).view()),
        Err(E::Empty { .. })
    ));
    assert!(matches!(mardia(&e.view()), Err(E::Empty { .. })));
}

#[test]
fn singular_covariance_is_a_typed_error() {
    // rank-deficient: the third column is the sum of the first two
    let mut x = randn(50, 3, 2);
    let c = &x.column(0) + &x.column(1);
    x.column_mut(2).assign(&c);
    assert!(matches!(
        mardia(&x.view()),
        Err(E::SingularCovariance { .. })
    ));
    assert!(matches!(
        gaussian_kl(&x.view(), &randn(50, 3, 3).view()),
        Err(E::SingularCovariance { .. })
    ));
    let mut s = StreamingKurtosisParams {
        alpha: 0.5,
        ridge: 0.0,
        clip: f64::INFINITY,
    }
    .init()
    .unwrap();
    assert!(matches!(
        s.update(&x.view()),
        Err(E::SingularCovariance { .. })
    ));
    // a ridge makes the same batch usable
    let mut s = StreamingKurtosisParams {
        alpha: 0.5,
        ridge: 1e-3,
        clip: f64::INFINITY,
    }
    .init()
    .unwrap();
    assert!(s.update(&x.view()).unwrap().is_finite());
}

#[test]
fn invalid_parameters_are_typed_errors() {
    for (a, r, c) in [
        (1.0, 0.0, 1.0),
        (-0.1, 0.0, 1.0),
        (0.5, -1.0, 1.0),
        (0.5, 0.0, 0.0),
        (f64::NAN, 0.0, 1.0),
    ] {
        let p = StreamingKurtosisParams {
            alpha: a,
            ridge: r,
            clip: c,
        };
        assert!(matches!(p.init(), Err(E::InvalidParameter { .. })), "{p:?}");
    }
    let x = randn(20, 2, 1);
    assert!(matches!(
        knn_kl(&x.view(), &x.view(), 0),
        Err(E::InvalidParameter { .. })
    ));
    assert!(matches!(
        knn_kl(&x.view(), &x.view(), 20),
        Err(E::TooFewSamples { .. })
    ));
    assert!(matches!(
        mine_kl(
            &x.view(),
            &x.view(),
            &MineParams {
                lr: 0.0,
                ..Default::default()
            }
        ),
        Err(E::InvalidParameter { .. })
    ));
    let y = randn(21, 2, 2);
    assert!(matches!(
        mmd2(&x.view(), &y.view(), MmdVariant::Linear, &bw()),
        Err(E::LengthMismatch { .. })
    ));
    let one = randn(1, 2, 3);
    assert!(matches!(
        mmd2(&one.view(), &x.view(), MmdVariant::Unbiased, &bw()),
        Err(E::TooFewSamples { .. })
    ));
}
