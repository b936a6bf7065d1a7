//! Statistics behind the verdicts: the paired t-interval, the paired bootstrap, the verdict rule.

use neural_synergy::report::claims::ClaimMetric;
use neural_synergy::report::stats::{
    holm, holm_flags, holm_summary, paired_bootstrap, paired_t_interval, seeds_for_power,
    verdict_cell, Interval, Verdict,
};
use proptest::prelude::*;

fn mae(p: &[f64], l: &[f64]) -> Option<f64> {
    ClaimMetric::Mae.compute(p, l)
}

#[test]
fn t_interval_of_two_deltas_uses_the_closed_form_quantile() {
    // n = 2: t_{0.975, 1} = 12.7062; deltas 0 and 2 → mean 1, sd √2, half width 12.7062
    let ci = paired_t_interval(&[0.0, 2.0], 0.95).unwrap();
    assert!((ci.mean - 1.0).abs() < 1e-12);
    assert!((ci.hi - 1.0 - 12.706_204_736).abs() < 1e-6, "{ci:?}");
    assert!((1.0 - ci.lo - 12.706_204_736).abs() < 1e-6, "{ci:?}");
    // n = 5: t_{0.975, 4} = 2.776445
    let d = [1.0, 2.0, 3.0, 4.0, 5.0];
    let ci = paired_t_interval(&d, 0.95).unwrap();
    let half = 2.776_445_105 * (2.5f64 / 5.0).sqrt();
    assert!((ci.hi - 3.0 - half).abs() < 1e-6, "{ci:?}");
    assert!(
        paired_t_interval(&[1.0], 0.95).is_none(),
        "one seed has no t-interval"
    );
    assert!(paired_t_interval(&[1.0, f64::NAN], 0.95).is_none());
}

#[test]
fn t_p_value_of_two_deltas_is_the_cauchy_closed_form() {
    // n = 2 → t with 1 degree of freedom = Cauchy: deltas 1 and 3 → mean 2, se 1, t = 2,
    // p = 2·(1 − (1/2 + atan(2)/π)) = 1 − 2·atan(2)/π
    let ci = paired_t_interval(&[1.0, 3.0], 0.95).unwrap();
    let want = 1.0 - 2.0 * 2f64.atan() / std::f64::consts::PI;
    assert!((ci.p - want).abs() < 1e-9, "{} vs {want}", ci.p);
    // no spread: p = 0 for a non-zero mean, 1 for a zero mean
    assert_eq!(paired_t_interval(&[0.5, 0.5, 0.5], 0.95).unwrap().p, 0.0);
    assert_eq!(paired_t_interval(&[0.0, 0.0], 0.95).unwrap().p, 1.0);
}

#[test]
fn holm_matches_a_hand_worked_family_and_summarises_by_verdict() {
    // m = 4, α = 0.05: sorted 0.01 ≤ 0.0125 ✓, 0.015 ≤ 0.0167 ✓, 0.03 > 0.025 ✗ → stop
    let p = [0.03, 0.01, 0.2, 0.015];
    assert_eq!(holm(&p, 0.05), vec![false, true, false, true]);
    assert_eq!(holm(&[], 0.05), Vec::<bool>::new());
    assert_eq!(holm(&[f64::NAN, 0.001], 0.05), vec![false, true]);
    let s = holm_summary(&[
        (Verdict::Supported, 0.001),
        (Verdict::Contradicted, 0.02),
        (Verdict::Contradicted, 0.004),
        (Verdict::Inconclusive, 0.6),
    ]);
    // 0.001 ≤ 0.0125, 0.004 ≤ 0.0167, 0.02 ≤ 0.025, 0.6 > 0.05
    assert!(
        s.contains("4 directional claims") && s.contains("1 supported, 2 contradicted"),
        "{s}"
    );
}

#[test]
fn holm_flags_mark_family_members_whose_directional_verdict_survives() {
    use Verdict::*;
    // the hand-worked family above, with a claim outside it in the middle
    let f = holm_flags(&[
        Some((Supported, 0.001)),
        None,
        Some((Contradicted, 0.02)),
        Some((Contradicted, 0.004)),
        Some((Inconclusive, 0.6)),
    ]);
    assert_eq!(
        f,
        vec![Some(true), None, Some(true), Some(true), Some(false)]
    );
    // significant one at a time, not as a family of 3: 0.03 > 0.05 / 3
    let f = holm_flags(&[
        Some((Supported, 0.03)),
        Some((Contradicted, 0.04)),
        Some((Supported, 0.5)),
    ]);
    assert_eq!(f, vec![Some(false); 3]);
    assert_eq!(holm_flags(&[None, None]), vec![None, None]);
    assert_eq!(
        verdict_cell(Some(Supported), None, Some(true), "real-text"),
        "**supported** (real-text, survives Holm)"
    );
    assert_eq!(
        verdict_cell(Some(Contradicted), None, Some(false), "synthetic"),
        "**contradicted** (synthetic, not after Holm)"
    );
    assert_eq!(
        verdict_cell(Some(Inconclusive), None, Some(false), "synthetic"),
        "**inconclusive** (synthetic)"
    );
    assert_eq!(verdict_cell(None, Some("why"), None, "t"), "— (why)");
}

/// The left side of the power inequality at `n` seeds (≤ 1 means enough).
fn power_lhs(ratio: f64, n: usize) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).unwrap();
    (t.inverse_cdf(0.975) + t.inverse_cdf(0.8)) * ratio / (n as f64).sqrt()
}

#[test]
fn seeds_for_power_approaches_the_normal_formula_and_rejects_what_has_no_answer() {
    // sd / delta = 5: ((1.95996 + 0.84162) · 5)² = 196.2 by the normal formula; the t version
    // needs slightly more
    let n = seeds_for_power(5.0, 1.0, 0.8, 1000).unwrap();
    assert!((197..=201).contains(&n), "{n}");
    assert_eq!(
        seeds_for_power(0.0, 0.5, 0.8, 1000),
        None,
        "a zero spread plans nothing"
    );
    assert_eq!(seeds_for_power(0.1, 0.5, 0.8, 1), None, "a cap below 2");
    assert_eq!(
        seeds_for_power(0.1, 0.5, 0.3, 1000),
        None,
        "power below a half"
    );
    assert_eq!(seeds_for_power(1.0, 0.0, 0.8, 1000), None, "no direction");
    assert_eq!(seeds_for_power(f64::NAN, 1.0, 0.8, 1000), None);
    assert_eq!(seeds_for_power(50.0, 1.0, 0.8, 1000), None, "above the cap");
    // the FLSTM paper-profile shape: sd 0.64 Acc2 points per seed, the paper's +0.5
    let n = seeds_for_power(0.644, 0.5, 0.8, 1000).unwrap();
    assert!((14..=17).contains(&n), "{n}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seeds_for_power_is_the_smallest_n_that_satisfies_the_power_inequality(sd in 0.01f64..3.0, delta in 0.05f64..2.0, neg in any::<bool>()) {
        let d = if neg { -delta } else { delta };
        if let Some(n) = seeds_for_power(sd, d, 0.8, 1000) {
            prop_assert!(power_lhs(sd / delta, n) <= 1.0 + 1e-12);
            if n > 2 {
                prop_assert!(power_lhs(sd / delta, n - 1) > 1.0);
            }
        } else {
            prop_assert!(power_lhs(sd / delta, 1000) > 1.0);
        }
    }

    #[test]
    fn seeds_for_power_is_scale_invariant_and_monotone_in_the_spread(sd in 0.01f64..3.0, delta in 0.05f64..2.0, c in 0.01f64..100.0, more in 1.0f64..3.0) {
        let n = seeds_for_power(sd, delta, 0.8, 1000);
        prop_assert_eq!(seeds_for_power(sd * c, delta * c, 0.8, 1000), n);
        prop_assert_eq!(seeds_for_power(sd, -delta, 0.8, 1000), n);
        let wider = seeds_for_power(sd * more, delta, 0.8, 1000);
        match (n, wider) {
            (Some(a), Some(b)) => prop_assert!(b >= a),
            (None, Some(_)) => prop_assert!(false, "a wider spread cannot need fewer seeds"),
            _ => {}
        }
    }

    #[test]
    fn t_p_value_is_below_005_exactly_when_the_95_interval_excludes_zero(d in prop::collection::vec(-5.0f64..5.0, 2..12), c in -3.0f64..3.0) {
        let shifted: Vec<f64> = d.iter().map(|x| x + c).collect();
        let ci = paired_t_interval(&shifted, 0.95).unwrap();
        prop_assert!((0.0..=1.0).contains(&ci.p));
        let excludes = ci.lo > 0.0 || ci.hi < 0.0;
        // duality of the t-test and its interval (away from the boundary's rounding)
        prop_assume!((ci.p - 0.05).abs() > 1e-9);
        prop_assert_eq!(ci.p < 0.05, excludes, "{:?}", ci);
    }

    #[test]
    fn holm_rejects_what_bonferroni_rejects_and_nothing_unadjusted_keeps(p in prop::collection::vec(0.0f64..0.2, 0..15), rot in 0usize..15) {
        let m = p.len().max(1) as f64;
        let r = holm(&p, 0.05);
        for (pi, ri) in p.iter().zip(&r) {
            if *pi <= 0.05 / m { prop_assert!(*ri, "Bonferroni rejects {}", pi); }
            if *pi > 0.05 { prop_assert!(!*ri, "unadjusted keeps {}", pi); }
        }
        // invariant under reordering the family
        let k = if p.is_empty() { 0 } else { rot % p.len() };
        let mut q = p.clone();
        q.rotate_left(k);
        let mut rq = r.clone();
        rq.rotate_left(k);
        prop_assert_eq!(holm(&q, 0.05), rq);
    }

    #[test]
    fn bootstrap_p_value_is_small_for_a_constant_gain_and_one_for_none(l in prop::collection::vec(-3.0f64..3.0, 5..40), off in 0.1f64..2.0, seed in any::<u64>()) {
        let b: Vec<f64> = l.iter().map(|x| x + off).collect();
        // every resample's difference is −off < 0: the smallest p of 200 resamples, 2/201
        let ci = paired_bootstrap(&l, &b, &l, mae, 200, 0.95, seed).unwrap();
        prop_assert!((ci.p - 2.0 / 201.0).abs() < 1e-12, "{}", ci.p);
        // identical predictions: every difference is 0 → p capped at 1
        let ci = paired_bootstrap(&b, &b, &l, mae, 200, 0.95, seed).unwrap();
        prop_assert_eq!(ci.p, 1.0);
    }

    #[test]
    fn t_interval_contains_its_mean_and_is_shift_equivariant(d in prop::collection::vec(-5.0f64..5.0, 2..12), c in -3.0f64..3.0) {
        let a = paired_t_interval(&d, 0.95).unwrap();
        prop_assert!(a.lo <= a.mean && a.mean <= a.hi);
        let shifted: Vec<f64> = d.iter().map(|x| x + c).collect();
        let b = paired_t_interval(&shifted, 0.95).unwrap();
        prop_assert!((b.lo - a.lo - c).abs() < 1e-9 && (b.hi - a.hi - c).abs() < 1e-9);
        // a wider level gives a wider interval
        let w = paired_t_interval(&d, 0.99).unwrap();
        prop_assert!(w.lo <= a.lo + 1e-12 && w.hi >= a.hi - 1e-12);
    }

    #[test]
    fn bootstrap_of_identical_predictions_is_exactly_zero(p in prop::collection::vec(-3.0f64..3.0, 5..40), seed in any::<u64>()) {
        let l: Vec<f64> = p.iter().map(|x| x * 0.5 + 0.1).collect();
        let ci = paired_bootstrap(&p, &p, &l, mae, 200, 0.95, seed).unwrap();
        prop_assert_eq!((ci.lo, ci.mean, ci.hi), (0.0, 0.0, 0.0));
    }

    #[test]
    fn bootstrap_of_a_constant_offset_is_that_offset(l in prop::collection::vec(-3.0f64..3.0, 5..40), off in 0.1f64..2.0, seed in any::<u64>()) {
        // a = labels (MAE 0), b = labels + off (MAE off) → every resample's difference is −off
        let b: Vec<f64> = l.iter().map(|x| x + off).collect();
        let ci = paired_bootstrap(&l, &b, &l, mae, 200, 0.95, seed).unwrap();
        prop_assert!((ci.mean + off).abs() < 1e-9 && (ci.lo + off).abs() < 1e-9 && (ci.hi + off).abs() < 1e-9);
    }

    #[test]
    fn bootstrap_interval_contains_the_full_sample_difference_for_paired_noise(seed in 0u64..1000) {
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let l: Vec<f64> = (0..200).map(|_| r.random_range(-3.0..3.0)).collect();
        let a: Vec<f64> = l.iter().map(|x| x + r.random_range(-1.0..1.0)).collect();
        let b: Vec<f64> = l.iter().map(|x| x + r.random_range(-1.0..1.0)).collect();
        let ci = paired_bootstrap(&a, &b, &l, mae, 500, 0.95, seed).unwrap();
        prop_assert!(ci.lo < ci.hi);
        prop_assert!(ci.lo <= ci.mean + 0.02 && ci.mean - 0.02 <= ci.hi, "{:?}", ci);
    }
}

fn iv(lo: f64, mean: f64, hi: f64) -> Interval {
    Interval {
        mean,
        lo,
        hi,
        n: 5,
        method: "paired-t",
        p: 0.5,
        sd: None,
    }
}

#[test]
fn verdicts_follow_the_sign_of_the_paper_delta() {
    assert_eq!(Verdict::of(0.5, &iv(0.1, 0.4, 0.7)), Verdict::Supported);
    assert_eq!(
        Verdict::of(0.5, &iv(-0.7, -0.4, -0.1)),
        Verdict::Contradicted
    );
    assert_eq!(Verdict::of(0.5, &iv(-0.1, 0.4, 0.9)), Verdict::Inconclusive);
    // MAE: the paper's delta is negative (an improvement), the measured one too
    assert_eq!(
        Verdict::of(-0.03, &iv(-0.05, -0.03, -0.01)),
        Verdict::Supported
    );
    assert_eq!(
        Verdict::of(-0.03, &iv(0.01, 0.03, 0.05)),
        Verdict::Contradicted
    );
    assert_eq!(
        Verdict::of(0.0, &iv(0.1, 0.4, 0.7)),
        Verdict::Inconclusive,
        "no direction claimed"
    );
}

#[test]
fn acc2_claim_metric_drops_zero_labels() {
    let p = [0.5, -0.5, 1.0, -2.0];
    let l = [1.0, 0.0, -1.0, -1.0];
    // non-zero labels: (0.5,1) ok, (1,−1) wrong, (−2,−1) ok → 2/3
    assert!((ClaimMetric::Acc2.compute(&p, &l).unwrap() - 200.0 / 3.0).abs() < 1e-12);
    assert!(ClaimMetric::Acc2.compute(&[1.0], &[0.0]).is_none());
}
