//! Graded robustness curves (issue 27 §3): the area's closed forms and bounds, the corruptions'
//! facts (level 0 is the identity, padding is never touched, dropped steps are whole steps, noise
//! has the sd it is given), the curves a trained run records, and the report's paired deltas.

use neural_synergy::experiments::Selected;
use neural_synergy::metrics::RegressionMetrics;
use neural_synergy::models::ModelKind;
use neural_synergy::report::robustness;
use neural_synergy::train::robustness::{
    area, corrupt_into, curve_modalities, feature_sd, Corruption, RobustnessCurve,
    ROBUSTNESS_LEVELS,
};
use neural_synergy::train::{train_run, RunConfig, RunResult, Selection, TestMetrics, Variant};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn levels() -> Vec<f64> {
    ROBUSTNESS_LEVELS.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn area_of_a_constant_curve_is_the_constant(c in -100.0f64..100.0) {
        let a = area(&levels(), &[c; 10]).unwrap();
        prop_assert!((a - c).abs() < 1e-9 * (1.0 + c.abs()));
    }

    #[test]
    fn area_of_a_linear_curve_is_the_mean_of_its_endpoints(a0 in -50.0f64..50.0, slope in -50.0f64..50.0) {
        let l = levels();
        let s: Vec<f64> = l.iter().map(|x| a0 + slope * x).collect();
        let got = area(&l, &s).unwrap();
        prop_assert!((got - (s[0] + s[9]) / 2.0).abs() < 1e-9);
    }

    #[test]
    fn area_lies_between_the_curves_minimum_and_maximum(s in proptest::collection::vec(0.0f64..100.0, 10)) {
        let a = area(&levels(), &s).unwrap();
        let lo = s.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        prop_assert!(a >= lo - 1e-9 && a <= hi + 1e-9);
    }

    #[test]
    fn area_is_invariant_under_shifting_and_scaling_the_levels(s in proptest::collection::vec(0.0f64..100.0, 10), shift in -5.0f64..5.0, scale in 0.1f64..10.0) {
        let l = levels();
        let moved: Vec<f64> = l.iter().map(|x| shift + scale * x).collect();
        prop_assert!((area(&l, &s).unwrap() - area(&moved, &s).unwrap()).abs() < 1e-9);
    }

    #[test]
    fn feature_sd_equals_the_two_pass_sd_over_valid_steps(
        n in 1usize..6, t_max in 1usize..6, d in 1usize..4, seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let values: Vec<f32> = (0..n * t_max * d).map(|_| rand::Rng::random_range(&mut rng, -3.0f32..3.0)).collect();
        let lengths: Vec<usize> = (0..n).map(|_| rand::Rng::random_range(&mut rng, 0..=t_max)).collect();
        let sd = feature_sd(&values, &lengths, t_max, d);
        for f in 0..d {
            let xs: Vec<f64> = (0..n)
                .flat_map(|i| (0..lengths[i]).map(move |t| (i, t)))
                .map(|(i, t)| values[(i * t_max + t) * d + f] as f64)
                .collect();
            let want = if xs.is_empty() { 0.0 } else {
                let m = xs.iter().sum::<f64>() / xs.len() as f64;
                (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
            };
            prop_assert!((sd[f] - want).abs() < 1e-5, "feature {f}: {} vs {want}", sd[f]);
        }
    }

    #[test]
    fn level_zero_is_the_identity_and_padding_is_never_touched(
        n in 1usize..6, t_max in 1usize..8, d in 1usize..4, level in 0.0f64..0.95,
        noise in any::<bool>(), seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let clean: Vec<f32> = (0..n * t_max * d).map(|_| rand::Rng::random_range(&mut rng, 0.5f32..3.0)).collect();
        let lengths: Vec<usize> = (0..n).map(|_| rand::Rng::random_range(&mut rng, 0..=t_max)).collect();
        let c = if noise { Corruption::Noise } else { Corruption::Drop };
        let sd = vec![1.0; d];
        let mut out = vec![0f32; clean.len()];
        corrupt_into(&mut out, &clean, &lengths, t_max, d, &sd, c, 0.0, &mut rng);
        prop_assert_eq!(&out, &clean);
        corrupt_into(&mut out, &clean, &lengths, t_max, d, &sd, c, level, &mut rng);
        for (i, &len) in lengths.iter().enumerate() {
            for t in len..t_max {
                let k = (i * t_max + t) * d;
                prop_assert_eq!(&out[k..k + d], &clean[k..k + d]);
            }
            if c == Corruption::Drop {
                // a step is either untouched or zeroed whole
                for t in 0..len {
                    let k = (i * t_max + t) * d;
                    let row = &out[k..k + d];
                    prop_assert!(row == &clean[k..k + d] || row.iter().all(|x| *x == 0.0));
                }
            }
        }
    }
}

/// Noise of level ℓ has sd ℓ·σ_f per feature (and none where σ_f = 0); drop zeroes a share ℓ of
/// the valid steps (20 000 steps: both within 3 %).
#[test]
fn noise_has_the_given_sd_and_drop_zeroes_the_given_share_of_steps() {
    let (n, t_max, d) = (2000, 10, 2);
    let clean = vec![1.0f32; n * t_max * d];
    let lengths = vec![t_max; n];
    let sd = [2.0, 0.0];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut corrupted = |c: Corruption, level: f64| {
        let mut out = vec![0f32; clean.len()];
        corrupt_into(
            &mut out, &clean, &lengths, t_max, d, &sd, c, level, &mut rng,
        );
        out
    };
    let out = corrupted(Corruption::Noise, 0.4);
    let dev: Vec<f64> = out.chunks(2).map(|r| r[0] as f64 - 1.0).collect();
    let m = dev.iter().sum::<f64>() / dev.len() as f64;
    let s = (dev.iter().map(|x| (x - m).powi(2)).sum::<f64>() / dev.len() as f64).sqrt();
    assert!((s - 0.8).abs() < 0.03 * 0.8, "noise sd {s}, want 0.8");
    assert!(
        out.chunks(2).all(|r| r[1] == 1.0),
        "a constant feature got noise"
    );
    let out = corrupted(Corruption::Drop, 0.3);
    let zeroed = out.chunks(2).filter(|r| r[0] == 0.0).count() as f64 / (n * t_max) as f64;
    assert!(
        (zeroed - 0.3).abs() < 0.03 * 0.3 + 0.01,
        "dropped share {zeroed}"
    );
}

#[test]
fn curves_skip_zeroed_modalities_and_word_piece_text() {
    assert_eq!(curve_modalities(&[], false), vec![0, 1, 2]);
    assert_eq!(curve_modalities(&[1, 2], false), vec![0]);
    assert_eq!(curve_modalities(&[], true), vec![1, 2]);
    assert!(curve_modalities(&[1, 2], true).is_empty());
}

/// A trained run records a curve per (modality, corruption) whose level 0 is its test metrics; the
/// text-only control has text curves only; a rerun gives the same curves (the corrupted sets are
/// drawn from the seed).
#[test]
fn a_trained_run_records_its_curves_and_reruns_reproduce_them() {
    let ds = crate::models::tiny();
    let cfg = crate::models::one_epoch_run(ModelKind::Flstm.default_config(), Variant::Nll);
    let r = train_run(&ds, &cfg, |_, _| {}).unwrap();
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(r.robustness.len(), 6, "3 modalities × 2 corruptions");
    for c in &r.robustness {
        assert_eq!(c.levels, ROBUSTNESS_LEVELS.to_vec());
        assert_eq!(c.test.len(), c.levels.len());
        assert_eq!(
            Some(&c.test[0]),
            r.test.as_ref(),
            "level 0 is the clean test"
        );
        assert!(c.area().is_some());
    }
    // at least one corrupted evaluation differs from the clean one (the corruption reaches the model)
    assert!(r
        .robustness
        .iter()
        .any(|c| c.test[1..].iter().any(|t| Some(t) != r.test.as_ref())));
    let again = train_run(&ds, &cfg, |_, _| {}).unwrap();
    assert_eq!(again.robustness, r.robustness);
    let text_only =
        crate::models::one_epoch_run(ModelKind::Flstm.default_config(), Variant::NllTextOnly);
    let t = train_run(&ds, &text_only, |_, _| {}).unwrap();
    assert!(!t.robustness.is_empty());
    assert!(t.robustness.iter().all(|c| c.modality == "text"));
}

fn regression(acc2: f64) -> TestMetrics {
    TestMetrics::Regression(RegressionMetrics {
        acc7: 0.0,
        acc2_has0: acc2,
        acc2_non0: acc2,
        f1_has0: acc2,
        f1_non0: acc2,
        mae: 1.0,
        corr: None,
    })
}

/// A selected run whose curves are `base` − `slope`·level (fractions), plus `lift` at every level.
fn selected(variant: Variant, seed: u64, base: f64, lift: f64) -> Selected {
    let curves = ["text", "audio", "vision"]
        .iter()
        .flat_map(|m| {
            Corruption::ALL.map(|c| RobustnessCurve {
                modality: m.to_string(),
                corruption: c,
                levels: ROBUSTNESS_LEVELS.to_vec(),
                test: ROBUSTNESS_LEVELS
                    .iter()
                    .map(|l| regression(base - 0.2 * l + lift))
                    .collect(),
            })
        })
        .collect();
    Selected {
        model: ModelKind::Flstm,
        variant,
        seed,
        result: RunResult {
            config: RunConfig {
                seed,
                ..crate::models::one_epoch_run(ModelKind::Flstm.default_config(), variant)
            },
            epochs: 1,
            best_epoch: 1,
            selection: Selection::Mae,
            valid_score: 1.0,
            valid_score_baseline: 2.0,
            test: Some(regression(base + lift)),
            test_predictions: None,
            failure: None,
            wall_s: 1.0,
            dropped: Vec::new(),
            device: None,
            robustness: curves,
        },
    }
}

/// Three seeds whose SMMD curves sit exactly 1 point (0.01) above NLL's: every paired area delta
/// is +1.00 with a zero-width interval, read "more robust"; the areas are the closed form
/// (base − 0.2·0.45)·100; the section and the plot are written; runs without curves give none.
#[test]
fn report_pairs_areas_by_seed() {
    let mut sel = Vec::new();
    for seed in 0..3 {
        let base = 0.7 + 0.01 * seed as f64;
        sel.push(selected(Variant::Nll, seed, base, 0.0));
        sel.push(selected(Variant::NllSmmd, seed, base, 0.01));
    }
    let (rows, deltas) = robustness::robustness(&sel);
    assert_eq!(rows.len(), 2 * 6);
    assert_eq!(deltas.len(), 6);
    for d in &deltas {
        assert_eq!(d.pairs, 3);
        assert!((d.delta - 1.0).abs() < 1e-9, "{d:?}");
        let i = d.interval.unwrap();
        assert!((i.lo - 1.0).abs() < 1e-9 && (i.hi - 1.0).abs() < 1e-9);
        assert_eq!(d.reading, Some("more robust"));
    }
    let nll = rows.iter().find(|r| r.variant == "NLL").unwrap();
    assert!(
        (nll.area - 100.0 * (0.71 - 0.2 * 0.45)).abs() < 1e-9,
        "{}",
        nll.area
    );
    assert_eq!(nll.seeds, 3);
    let md = robustness::markdown(&rows, &deltas);
    assert!(md.contains("## Graded robustness"));
    assert_eq!(md.matches("| more robust |").count(), 6);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("r.png");
    robustness::plot(&png, "test", &rows).unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    // records without curves: no rows, no section
    for s in &mut sel {
        s.result.robustness.clear();
    }
    let (rows, deltas) = robustness::robustness(&sel);
    assert!(rows.is_empty() && deltas.is_empty());
    assert!(robustness::markdown(&rows, &deltas).is_empty());
}
