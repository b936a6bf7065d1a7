//! Properties of Mardia's kurtosis and the streaming regularised kurtosis.

use crate::common::*;
use ndarray::{s, Array2};
use neural_synergy::estimators::{mardia, StreamingKurtosisParams};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mardia_b2_is_at_least_p_squared(n in 3usize..200, p in 1usize..6, seed in any::<u64>(), heavy in any::<bool>()) {
        prop_assume!(n > p + 1);
        let mut x = randn(n, p, seed);
        if heavy { x.mapv_inplace(|v| v * v * v); }
        let m = mardia(&x.view()).unwrap();
        let pp = (p * p) as f64;
        prop_assert!(m.b2 >= pp * (1.0 - 1e-10), "b2 = {} < p² = {pp}", m.b2);
    }

    #[test]
    fn mardia_is_invariant_to_invertible_affine_maps(n in 5usize..200, p in 1usize..6, seed in any::<u64>(), t in -20.0f64..20.0) {
        prop_assume!(n > p + 2);
        let x = randn(n, p, seed).mapv(|v| v + 0.3 * v * v);
        // A = R · diag(scales) · R', well conditioned and invertible
        let r = rotation(p, seed.wrapping_add(1));
        let r2 = rotation(p, seed.wrapping_add(2));
        let scales = Array2::from_diag(&ndarray::Array1::linspace(0.5, 3.0, p));
        let a = r.dot(&scales).dot(&r2);
        let y = x.dot(&a) + t;
        let (bx, by) = (mardia(&x.view()).unwrap().b2, mardia(&y.view()).unwrap().b2);
        prop_assert!((bx - by).abs() <= 1e-8 * bx, "{bx} vs {by}");
    }

    #[test]
    fn streaming_kurtosis_with_alpha0_no_clip_no_ridge_equals_mardia_per_batch(k in 1usize..5, n in 6usize..60, p in 1usize..5, seed in any::<u64>()) {
        prop_assume!(n > p + 1);
        let data = randn(k * n, p, seed).mapv(|v| v + 0.2 * v * v * v);
        let mut s = StreamingKurtosisParams { alpha: 0.0, ridge: 0.0, clip: f64::INFINITY }.init().unwrap();
        for t in 0..k {
            let b = data.slice(s![t * n..(t + 1) * n, ..]);
            let kappa = s.update(&b).unwrap();
            let m = mardia(&b).unwrap().b2;
            prop_assert!((kappa - m).abs() <= 1e-9 * m, "batch {t}: {kappa} vs {m}");
        }
    }

    #[test]
    fn streaming_kurtosis_decreases_as_the_ridge_grows(n in 6usize..60, p in 1usize..5, seed in any::<u64>(), r1 in 0.0f64..1.0, dr in 1e-3f64..2.0, alpha in 0.0f64..0.99) {
        prop_assume!(n > p + 1);
        let x = randn(2 * n, p, seed);
        let mut a = StreamingKurtosisParams { alpha, ridge: r1, clip: f64::INFINITY }.init().unwrap();
        let mut b = StreamingKurtosisParams { alpha, ridge: r1 + dr, clip: f64::INFINITY }.init().unwrap();
        for t in 0..2 {
            let batch = x.slice(s![t * n..(t + 1) * n, ..]);
            let (ka, kb) = (a.update(&batch).unwrap(), b.update(&batch).unwrap());
            prop_assert!(kb <= ka * (1.0 + 1e-12), "ridge {r1}: {ka}, ridge {}: {kb}", r1 + dr);
        }
    }

    #[test]
    fn streaming_covariance_is_the_normalised_exponential_average(k in 2usize..5, n in 4usize..30, p in 1usize..4, seed in any::<u64>(), alpha in 0.0f64..0.99, clip in 0.1f64..5.0) {
        let x = randn(k * n, p, seed);
        let mut s = StreamingKurtosisParams { alpha, ridge: 0.5, clip }.init().unwrap();
        let mut expect: Option<Array2<f64>> = None;
        for t in 0..k {
            let b = x.slice(s![t * n..(t + 1) * n, ..]);
            s.update(&b).unwrap();
            let mut d = &b - &b.mean_axis(ndarray::Axis(0)).unwrap();
            for mut row in d.rows_mut() {
                let norm = row.dot(&row).sqrt();
                let f = (clip / norm).min(1.0);
                row *= f;
            }
            let c = d.t().dot(&d) / n as f64;
            expect = Some(match expect { None => c, Some(prev) => prev * alpha + c * (1.0 - alpha) });
            let got = s.covariance().unwrap();
            let e = expect.as_ref().unwrap();
            prop_assert!((got - e).iter().all(|v| v.abs() <= 1e-12), "step {t}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// b₂,p → p(p+2) for Gaussian samples: the normal-theory z statistic stays within ±4.5.
    #[test]
    fn mardia_converges_to_p_p_plus_2_for_gaussian_samples(p in 1usize..8, seed in any::<u64>()) {
        let x = randn(5000, p, seed);
        let m = mardia(&x.view()).unwrap();
        let target = (p * (p + 2)) as f64;
        prop_assert!(m.z.abs() < 4.5, "b2 = {}, p(p+2) = {target}, z = {}", m.b2, m.z);
        prop_assert!((m.b2 - target).abs() / target < 0.1);
    }
}
