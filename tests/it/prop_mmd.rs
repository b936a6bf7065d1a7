//! Properties of the MMD² estimators and the median heuristic.

use crate::common::*;
use ndarray::{arr1, s, Array2, Axis};
use neural_synergy::estimators::closed_form::gaussian_mmd2;
use neural_synergy::estimators::{
    median_bandwidth, median_bandwidth_or_positive, mmd2, Bandwidths, MmdVariant, MEDIAN_SCALES,
};
use proptest::prelude::*;

const ALL: [MmdVariant; 3] = [MmdVariant::Biased, MmdVariant::Unbiased, MmdVariant::Linear];

fn bw() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.2f64..5.0, 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn biased_mmd2_is_nonnegative(n in 2usize..40, m in 2usize..40, d in 1usize..6, seed in any::<u64>(), sig in bw(), shift in 0.0f64..2.0) {
        let x = randn(n, d, seed);
        let y = randn(m, d, seed ^ 0x55) + shift;
        let v = mmd2(&x.view(), &y.view(), MmdVariant::Biased, &Bandwidths::new(sig).unwrap()).unwrap();
        prop_assert!(v >= -1e-12, "biased MMD² = {v}");
    }

    #[test]
    fn biased_mmd2_is_zero_when_x_equals_y(n in 1usize..60, d in 1usize..6, seed in any::<u64>(), sig in bw()) {
        let x = randn(n, d, seed);
        let v = mmd2(&x.view(), &x.view(), MmdVariant::Biased, &Bandwidths::new(sig).unwrap()).unwrap();
        prop_assert!(v.abs() < 1e-12, "MMD²(X, X) = {v}");
    }

    #[test]
    fn mmd2_is_symmetric(n in 2usize..40, d in 1usize..5, seed in any::<u64>(), sig in bw()) {
        let x = randn(n, d, seed);
        let y = randn(n, d, seed.wrapping_add(1)) * 1.5;
        let b = Bandwidths::new(sig).unwrap();
        for v in ALL {
            let a = mmd2(&x.view(), &y.view(), v, &b).unwrap();
            let c = mmd2(&y.view(), &x.view(), v, &b).unwrap();
            prop_assert!((a - c).abs() <= 1e-12 * (1.0 + a.abs()), "{v:?}: {a} vs {c}");
        }
    }

    #[test]
    fn quadratic_mmd2_is_invariant_to_row_permutations(n in 2usize..300, m in 2usize..300, d in 1usize..5, seed in any::<u64>(), sig in bw()) {
        let x = randn(n, d, seed);
        let y = randn(m, d, seed.wrapping_add(7)) + 0.5;
        let mut px: Vec<usize> = (0..n).rev().collect();
        px.rotate_left(seed as usize % n);
        let xp = x.select(Axis(0), &px);
        let b = Bandwidths::new(sig).unwrap();
        for v in [MmdVariant::Biased, MmdVariant::Unbiased] {
            let a = mmd2(&x.view(), &y.view(), v, &b).unwrap();
            let c = mmd2(&xp.view(), &y.view(), v, &b).unwrap();
            prop_assert!((a - c).abs() <= 1e-11, "{v:?}: {a} vs {c}");
        }
    }

    #[test]
    fn mmd2_is_invariant_to_common_translation_and_rotation(n in 2usize..60, d in 1usize..6, seed in any::<u64>(), sig in bw(), t in -50.0f64..50.0) {
        let x = randn(n, d, seed);
        let y = randn(n, d, seed.wrapping_add(3)) * 0.7 + 0.3;
        let r = rotation(d, seed.wrapping_add(11));
        let xr = x.dot(&r) + t;
        let yr = y.dot(&r) + t;
        let b = Bandwidths::new(sig).unwrap();
        for v in ALL {
            let a = mmd2(&x.view(), &y.view(), v, &b).unwrap();
            let c = mmd2(&xr.view(), &yr.view(), v, &b).unwrap();
            prop_assert!((a - c).abs() <= 1e-9, "{v:?}: {a} vs {c}");
        }
    }

    #[test]
    fn tiled_mmd2_equals_the_naive_double_sum(n in 2usize..300, m in 2usize..300, d in 1usize..5, seed in any::<u64>(), median in any::<bool>(), sig in bw()) {
        let x = randn(n, d, seed);
        let y = randn(m, d, seed.wrapping_add(5)) * 1.3;
        let sig = if median {
            let s = median_bandwidth(&x.view(), &y.view()).unwrap();
            MEDIAN_SCALES.iter().map(|c| c * s).collect()
        } else { sig };
        let b = Bandwidths::new(sig.clone()).unwrap();
        let (nf, mf) = (n as f64, m as f64);
        let kxx = naive_kernel_sum(&x.view(), &x.view(), &sig, true);
        let kyy = naive_kernel_sum(&y.view(), &y.view(), &sig, true);
        let kxy = naive_kernel_sum(&x.view(), &y.view(), &sig, false);
        let biased = (kxx + nf) / (nf * nf) + (kyy + mf) / (mf * mf) - 2.0 * kxy / (nf * mf);
        let unbiased = kxx / (nf * (nf - 1.0)) + kyy / (mf * (mf - 1.0)) - 2.0 * kxy / (nf * mf);
        let vb = mmd2(&x.view(), &y.view(), MmdVariant::Biased, &b).unwrap();
        let vu = mmd2(&x.view(), &y.view(), MmdVariant::Unbiased, &b).unwrap();
        prop_assert!((vb - biased).abs() <= 1e-10, "{vb} vs {biased}");
        prop_assert!((vu - unbiased).abs() <= 1e-10, "{vu} vs {unbiased}");
    }

    #[test]
    fn linear_mmd2_is_the_mean_of_quad_statistics(n in 2usize..80, d in 1usize..5, seed in any::<u64>(), sig in bw()) {
        let x = randn(n, d, seed);
        let y = randn(n, d, seed.wrapping_add(9)) + 0.4;
        let b = Bandwidths::new(sig.clone()).unwrap();
        let q = n / 2;
        let mut acc = 0.0;
        for i in 0..q {
            let (x1, x2) = (x.slice(s![2*i..2*i+1, ..]), x.slice(s![2*i+1..2*i+2, ..]));
            let (y1, y2) = (y.slice(s![2*i..2*i+1, ..]), y.slice(s![2*i+1..2*i+2, ..]));
            acc += naive_kernel_sum(&x1, &x2, &sig, false) + naive_kernel_sum(&y1, &y2, &sig, false)
                - naive_kernel_sum(&x1, &y2, &sig, false) - naive_kernel_sum(&x2, &y1, &sig, false);
        }
        let v = mmd2(&x.view(), &y.view(), MmdVariant::Linear, &b).unwrap();
        prop_assert!((v - acc / q as f64).abs() <= 1e-12);
    }

    #[test]
    fn median_bandwidth_is_the_root_median_pairwise_sq_distance(n in 1usize..40, m in 1usize..40, d in 1usize..4, seed in any::<u64>()) {
        let x = randn(n, d, seed);
        let y = randn(m, d, seed.wrapping_add(2));
        let z = ndarray::concatenate(Axis(0), &[x.view(), y.view()]).unwrap();
        let mut dists = Vec::new();
        for i in 0..z.nrows() {
            for j in i + 1..z.nrows() {
                dists.push((&z.row(i) - &z.row(j)).mapv(|v| v * v).sum());
            }
        }
        dists.sort_by(|a, b| a.total_cmp(b));
        let c = dists.len();
        let med = if c % 2 == 1 { dists[c / 2] } else { 0.5 * (dists[c / 2 - 1] + dists[c / 2]) };
        let s = median_bandwidth(&x.view(), &y.view()).unwrap();
        prop_assert!((s * s - med).abs() <= 1e-9 * (1.0 + med), "{} vs {}", s * s, med);
    }

    /// Where the strict median heuristic has a bandwidth, the total form gives the same one.
    #[test]
    fn total_median_bandwidth_equals_the_strict_one_when_that_exists(n in 1usize..40, m in 1usize..40, d in 1usize..4, seed in any::<u64>()) {
        let x = randn(n, d, seed);
        let y = randn(m, d, seed.wrapping_add(2));
        if let Ok(strict) = median_bandwidth(&x.view(), &y.view()) {
            prop_assert_eq!(median_bandwidth_or_positive(&x.view(), &y.view()).unwrap(), strict);
        }
    }

    /// A collapsed batch — `k ≥ 4` copies of one point and one point at squared distance `δ²`
    /// from them, so most pairs are duplicates — has a zero median (the strict heuristic fails); the
    /// total form takes the median over the pairs that differ, all at `δ²`: `σ = δ`. A batch of
    /// one repeated point gets `σ = 1`, and MMD² there is 0 at that bandwidth.
    #[test]
    fn collapsed_batch_takes_the_median_of_the_differing_pairs(k in 4usize..30, d in 1usize..5, seed in any::<u64>(), delta in 0.1f64..10.0) {
        // integer coordinates: the GEMM-form distances between copies are exactly 0
        let p = randn(1, d, seed).mapv(|v| (3.0 * v).round());
        let x = Array2::from_shape_fn((k, d), |(_, j)| p[[0, j]]);
        let mut y = p.clone();
        y[[0, 0]] += delta;
        prop_assert!(median_bandwidth(&x.view(), &y.view()).is_err());
        let s = median_bandwidth_or_positive(&x.view(), &y.view()).unwrap();
        prop_assert!((s - delta).abs() <= 1e-6 * (1.0 + delta), "σ = {s}, δ = {delta}");
        let one = median_bandwidth_or_positive(&x.view(), &p.view()).unwrap();
        prop_assert_eq!(one, 1.0);
        let b = Bandwidths::new(MEDIAN_SCALES.iter().map(|c| c * one).collect()).unwrap();
        let v = mmd2(&x.view(), &p.view(), MmdVariant::Biased, &b).unwrap();
        prop_assert!(v.abs() < 1e-12, "MMD² of coincident points = {v}");
    }

    /// Non-finite inputs stay an error in the total form (never a NaN bandwidth).
    #[test]
    fn total_median_bandwidth_refuses_non_finite_points(n in 2usize..20, d in 1usize..4, seed in any::<u64>(), bad in prop::sample::select(vec![f64::NAN, f64::INFINITY])) {
        let mut x = randn(n, d, seed);
        let y = randn(n, d, seed ^ 7);
        x[[0, 0]] = bad;
        prop_assert!(median_bandwidth_or_positive(&x.view(), &y.view()).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Unbiased and linear MMD² are unbiased for the population MMD² between two Gaussians:
    /// the mean of independent replicates lies within 4 standard errors of the closed form.
    #[test]
    fn unbiased_and_linear_mmd2_converge_to_gaussian_closed_form(
        shift in 0.0f64..1.5, scale in 0.5f64..2.0, sigma in 0.5f64..3.0, seed in any::<u64>()
    ) {
        let d = 2;
        let mu1 = arr1(&[0.0, 0.0]);
        let mu2 = arr1(&[shift, -0.5 * shift]);
        let l1 = Array2::eye(d);
        let l2 = ndarray::arr2(&[[scale, 0.0], [0.3, 1.0]]);
        let s1 = l1.dot(&l1.t());
        let s2 = l2.dot(&l2.t());
        let b = Bandwidths::single(sigma).unwrap();
        let truth = gaussian_mmd2(&mu1.view(), &s1.view(), &mu2.view(), &s2.view(), &b).unwrap();
        for (variant, n, reps) in [(MmdVariant::Unbiased, 300, 30), (MmdVariant::Linear, 4000, 30)] {
            let vals: Vec<f64> = (0..reps).map(|r| {
                let x = gauss(n, &mu1, &l1, seed.wrapping_add(2 * r));
                let y = gauss(n, &mu2, &l2, seed.wrapping_add(2 * r + 1));
                mmd2(&x.view(), &y.view(), variant, &b).unwrap()
            }).collect();
            let (m, se) = mean_se(&vals);
            prop_assert!((m - truth).abs() <= 4.0 * se + 1e-4, "{variant:?}: mean {m} ± {se}, closed form {truth}");
        }
    }
}

#[test]
fn multi_tile_mmd2_is_bit_reproducible_across_calls_and_layouts() {
    let x = randn(1100, 7, 1);
    let y = randn(900, 7, 2) + 0.1;
    let b = Bandwidths::new(vec![0.5, 1.0, 2.0]).unwrap();
    let xf = x.t().as_standard_layout().t().to_owned(); // Fortran layout, same values
    for v in [MmdVariant::Biased, MmdVariant::Unbiased] {
        let a = mmd2(&x.view(), &y.view(), v, &b).unwrap();
        for _ in 0..3 {
            assert_eq!(
                a.to_bits(),
                mmd2(&x.view(), &y.view(), v, &b).unwrap().to_bits()
            );
        }
        assert_eq!(
            a.to_bits(),
            mmd2(&xf.view(), &y.view(), v, &b).unwrap().to_bits()
        );
    }
}
