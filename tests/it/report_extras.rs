//! Report features beyond the paper's protocol (issue 27 §3): the tuning budget (Dodge et al.
//! 2019's expected validation performance and the test score it selects) and the probability of
//! improvement over seed pairs (Agarwal et al. 2021).

use neural_synergy::data::DatasetName;
use neural_synergy::experiments::expected::expected;
use neural_synergy::experiments::{read_results, select, RunRecord};
use neural_synergy::report::claims::{self, ClaimMetric};
use neural_synergy::report::improvement::{self, Better, ImprovementError};
use neural_synergy::report::tuning::{
    self, budget, expected_best, expected_selected, grid_limit, TuningError,
};
use proptest::prelude::*;
use std::path::Path;

const TOL: f64 = 1e-12;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL * (1.0 + a.abs().max(b.abs()))
}

/// The expectation by enumeration of all `N^n` ordered draws: the best validation score of each
/// tuple, and the mean test score of the tuple's positions that reach it (a uniform tie-break).
fn brute_force(valid: &[f64], test: &[f64], n: usize, better: Better) -> (f64, f64) {
    let big = valid.len();
    let total = big.pow(n as u32);
    let (mut e_valid, mut e_test) = (0.0, 0.0);
    for code in 0..total {
        let idx: Vec<usize> = (0..n).map(|k| (code / big.pow(k as u32)) % big).collect();
        let best = idx
            .iter()
            .map(|&i| valid[i])
            .reduce(|a, b| if better.better(b, a) { b } else { a })
            .unwrap();
        let at: Vec<f64> = idx
            .iter()
            .filter(|&&i| valid[i] == best)
            .map(|&i| test[i])
            .collect();
        e_valid += best;
        e_test += at.iter().sum::<f64>() / at.len() as f64;
    }
    (e_valid / total as f64, e_test / total as f64)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn direction() -> impl Strategy<Value = Better> {
    prop_oneof![Just(Better::Higher), Just(Better::Lower)]
}

/// Validation scores on a coarse lattice (ties are common) with test scores, 1..=7 configurations.
fn grid() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (1usize..=7).prop_flat_map(|n| {
        (
            prop::collection::vec((0u8..5).prop_map(|k| 0.5 + 0.25 * k as f64), n),
            prop::collection::vec(-3.0f64..3.0, n),
        )
    })
}

#[test]
fn expected_best_matches_hand_computed_values() {
    // N = 2, scores 1 and 3, higher better: n = 2 draws reach 3 unless both are 1 (1/4):
    // 1·1/4 + 3·3/4 = 2.5
    let v = [1.0, 3.0];
    assert!(close(expected_best(&v, 2, Better::Higher).unwrap(), 2.5));
    // lower better: the min is 3 only when both draws are 3: 3/4 + 1·3/4 = 1.5
    assert!(close(expected_best(&v, 2, Better::Lower).unwrap(), 1.5));
    // the test score selected: test 10 for v = 1 and 20 for v = 3
    let t = [10.0, 20.0];
    assert!(close(
        expected_selected(&v, &t, 2, Better::Higher).unwrap(),
        17.5
    ));
    assert!(close(
        expected_selected(&v, &t, 2, Better::Lower).unwrap(),
        12.5
    ));
    // a tie at the top: the two tied configurations are selected equally often
    let v = [1.0, 2.0, 2.0];
    let t = [0.0, 4.0, 8.0];
    let (lim_v, lim_t) = grid_limit(&v, &t, Better::Higher).unwrap();
    assert_eq!((lim_v, lim_t), (2.0, 6.0));
    // n = 1: the mean of the test scores
    assert!(close(
        expected_selected(&v, &t, 1, Better::Higher).unwrap(),
        4.0
    ));
}

#[test]
fn bad_input_is_a_typed_error() {
    assert_eq!(
        expected_best(&[], 1, Better::Higher),
        Err(TuningError::Empty)
    );
    assert_eq!(
        expected_best(&[1.0], 0, Better::Higher),
        Err(TuningError::ZeroDraws)
    );
    assert!(matches!(
        expected_best(&[1.0, f64::NAN], 2, Better::Lower),
        Err(TuningError::NonFinite {
            index: 1,
            what: "validation",
            ..
        })
    ));
    assert!(matches!(
        expected_selected(&[1.0, 2.0], &[0.0, f64::INFINITY], 2, Better::Lower),
        Err(TuningError::NonFinite {
            index: 1,
            what: "test",
            ..
        })
    ));
    assert_eq!(
        expected_selected(&[1.0, 2.0], &[0.0], 2, Better::Lower),
        Err(TuningError::LengthMismatch { valid: 2, test: 1 })
    );
    assert_eq!(
        improvement::paired(&[], Better::Higher, 100, 0.95, 1),
        Err(ImprovementError::Empty)
    );
    assert!(matches!(
        improvement::probability(&[(1.0, f64::NAN)], Better::Higher),
        Err(ImprovementError::NonFinite { index: 0, .. })
    ));
    assert!(matches!(
        improvement::paired(&[(1.0, 2.0)], Better::Higher, 0, 0.95, 1),
        Err(ImprovementError::Bootstrap { .. })
    ));
    assert!(matches!(
        improvement::paired(&[(1.0, 2.0)], Better::Higher, 100, 1.0, 1),
        Err(ImprovementError::Bootstrap { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// One draw: the expected best is the mean score, and the selected test score the mean test.
    #[test]
    fn one_draw_gives_the_mean((v, t) in grid(), better in direction()) {
        prop_assert!(close(expected_best(&v, 1, better).unwrap(), mean(&v)));
        prop_assert!(close(expected_selected(&v, &t, 1, better).unwrap(), mean(&t)));
    }

    /// Many draws: the best score of the grid, and the mean test score of its tie group.
    #[test]
    fn many_draws_tend_to_the_grid((v, t) in grid(), better in direction()) {
        let best = v.iter().copied().reduce(|a, b| if better.better(b, a) { b } else { a }).unwrap();
        let (lim_v, lim_t) = grid_limit(&v, &t, better).unwrap();
        prop_assert_eq!(lim_v, best);
        let top: Vec<f64> = v.iter().zip(&t).filter(|(x, _)| **x == best).map(|(_, y)| *y).collect();
        prop_assert!(close(lim_t, mean(&top)));
        let far = 100_000;
        prop_assert!((expected_best(&v, far, better).unwrap() - best).abs() < 1e-9);
        prop_assert!((expected_selected(&v, &t, far, better).unwrap() - lim_t).abs() < 1e-9);
    }

    /// More draws never make the expected best worse: non-decreasing for higher-is-better,
    /// non-increasing for MAE; and it stays between the mean and the best.
    #[test]
    fn expected_best_is_monotone_in_n((v, _t) in grid(), better in direction()) {
        let curve: Vec<f64> = (1..=12).map(|n| expected_best(&v, n, better).unwrap()).collect();
        for w in curve.windows(2) {
            match better {
                Better::Higher => prop_assert!(w[1] >= w[0] - TOL, "{:?}", curve),
                Better::Lower => prop_assert!(w[1] <= w[0] + TOL, "{:?}", curve),
            }
        }
        let (best, _) = grid_limit(&v, &v, better).unwrap();
        for e in &curve {
            match better {
                Better::Higher => prop_assert!(*e <= best + TOL && *e >= mean(&v) - TOL),
                Better::Lower => prop_assert!(*e >= best - TOL && *e <= mean(&v) + TOL),
            }
        }
    }

    /// The estimators are functions of the multiset of (validation, test) pairs.
    #[test]
    fn invariant_under_permuting_the_configurations(
        (v, t) in grid(),
        keys in prop::collection::vec(any::<u32>(), 7),
        n in 1usize..15,
        better in direction(),
    ) {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by_key(|&i| (keys[i], i));
        let pv: Vec<f64> = order.iter().map(|&i| v[i]).collect();
        let pt: Vec<f64> = order.iter().map(|&i| t[i]).collect();
        prop_assert!(close(expected_best(&v, n, better).unwrap(), expected_best(&pv, n, better).unwrap()));
        prop_assert!(close(
            expected_selected(&v, &t, n, better).unwrap(),
            expected_selected(&pv, &pt, n, better).unwrap()
        ));
    }

    /// The closed forms equal the enumeration of every ordered n-tuple of draws (ties included).
    #[test]
    fn closed_form_equals_brute_force_enumeration(
        (v, t) in (1usize..=4).prop_flat_map(|n| (
            prop::collection::vec((0u8..3).prop_map(|k| k as f64), n),
            prop::collection::vec(-3.0f64..3.0, n),
        )),
        n in 1usize..=4,
        better in direction(),
    ) {
        let (bv, bt) = brute_force(&v, &t, n, better);
        prop_assert!((expected_best(&v, n, better).unwrap() - bv).abs() < 1e-10);
        prop_assert!((expected_selected(&v, &t, n, better).unwrap() - bt).abs() < 1e-10);
    }

    /// MAE's direction is the mirror image: the expected min of v is minus the expected max of −v.
    #[test]
    fn lower_is_better_mirrors_higher_is_better((v, t) in grid(), n in 1usize..12) {
        let neg: Vec<f64> = v.iter().map(|x| -x).collect();
        prop_assert!(close(
            expected_best(&v, n, Better::Lower).unwrap(),
            -expected_best(&neg, n, Better::Higher).unwrap()
        ));
        prop_assert!(close(
            expected_selected(&v, &t, n, Better::Lower).unwrap(),
            expected_selected(&neg, &t, n, Better::Higher).unwrap()
        ));
    }
}

// ----------------------------------------------------------------- probability of improvement

fn pairs() -> impl Strategy<Value = Vec<(f64, f64)>> {
    prop::collection::vec(((0u8..4), (0u8..4)), 1..9).prop_map(|v| {
        v.into_iter()
            .map(|(a, b)| (a as f64 * 0.5, b as f64 * 0.5))
            .collect()
    })
}

#[test]
fn winning_every_pair_is_one_and_losing_every_pair_is_zero() {
    let win = [(1.0, 2.0), (0.5, 0.7), (3.0, 3.1)];
    let up = improvement::paired(&win, Better::Higher, 500, 0.95, 7).unwrap();
    assert_eq!((up.p, up.lo, up.hi), (1.0, 1.0, 1.0));
    assert_eq!((up.wins, up.ties, up.losses, up.n), (3, 0, 0, 3));
    // the same pairs read as MAE: the variant is higher, so it loses every pair
    let down = improvement::paired(&win, Better::Lower, 500, 0.95, 7).unwrap();
    assert_eq!((down.p, down.lo, down.hi), (0.0, 0.0, 0.0));
    assert_eq!(down.losses, 3);
    // ties count one half
    let tied = improvement::probability(&[(1.0, 1.0), (2.0, 2.0)], Better::Higher).unwrap();
    assert_eq!(tied, 0.5);
    assert_eq!(
        improvement::probability(
            &[(1.0, 2.0), (2.0, 2.0), (3.0, 1.0), (0.0, 4.0)],
            Better::Lower
        )
        .unwrap(),
        (1.0 + 0.5) / 4.0
    );
    assert_eq!(improvement::cell(&up), "1.00 [1.00, 1.00]");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Swapping the roles of NLL and the variant gives 1 − p, and mirrors the interval (same
    /// resamples).
    #[test]
    fn swapping_the_roles_gives_one_minus_p(p in pairs(), better in direction(), seed in any::<u64>()) {
        let a = improvement::paired(&p, better, 400, 0.95, seed).unwrap();
        let swapped: Vec<(f64, f64)> = p.iter().map(|(b, v)| (*v, *b)).collect();
        let b = improvement::paired(&swapped, better, 400, 0.95, seed).unwrap();
        prop_assert!((a.p + b.p - 1.0).abs() < 1e-12);
        prop_assert!((a.lo + b.hi - 1.0).abs() < 1e-9, "{:?} {:?}", a, b);
        prop_assert!((a.hi + b.lo - 1.0).abs() < 1e-9, "{:?} {:?}", a, b);
        prop_assert_eq!((a.wins, a.ties, a.losses), (b.losses, b.ties, b.wins));
    }

    /// Under exchange symmetry (every pair also present with the roles swapped) p = ½.
    #[test]
    fn exchange_symmetric_pairs_give_one_half(p in pairs(), better in direction()) {
        let mut both = p.clone();
        both.extend(p.iter().map(|(b, v)| (*v, *b)));
        prop_assert_eq!(improvement::probability(&both, better).unwrap(), 0.5);
    }

    /// The bootstrap interval contains the point estimate, lies in [0, 1], and a fixed seed
    /// reproduces it exactly.
    #[test]
    fn bootstrap_interval_contains_p_and_is_deterministic(p in pairs(), better in direction(), seed in any::<u64>()) {
        let a = improvement::paired(&p, better, 1000, 0.95, seed).unwrap();
        prop_assert!(0.0 <= a.lo && a.lo <= a.p && a.p <= a.hi && a.hi <= 1.0, "{:?}", a);
        prop_assert_eq!(a, improvement::paired(&p, better, 1000, 0.95, seed).unwrap());
        prop_assert_eq!(a.p, improvement::probability(&p, better).unwrap());
        prop_assert_eq!(a.wins + a.ties + a.losses, p.len());
    }
}

// ------------------------------------------------------------------- the committed folders

/// The records of a committed results folder, read from a copy in a scratch directory.
fn committed(folder: &str) -> (tempfile::TempDir, Vec<RunRecord>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("results")
        .join(folder);
    let tmp = tempfile::tempdir().unwrap();
    for f in ["results.jsonl", "run.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let records = read_results(&tmp.path().join("results.jsonl")).unwrap();
    (tmp, records)
}

/// On a paper-profile folder (5 seeds × 10 configurations per model × variant) the budget
/// curves cover n = 1 … 10, their n = 1 point is the mean over every run, their whole-grid point
/// is the protocol's selection (the claims' numbers), and the section and plot render.
#[test]
fn budget_curves_of_a_committed_paper_folder() {
    let (tmp, records) = committed("paper-flstm-mosi-synthetic");
    let curves = budget(&records);
    let names: Vec<&str> = curves.iter().map(|c| c.variant.as_str()).collect();
    assert_eq!(names, ["NLL", "NLL+SKL", "NLL+SMMD"]);
    let selected = select(&records);
    for c in &curves {
        assert_eq!(c.model, "FLSTM");
        assert_eq!((c.configurations, c.metric), (10, "MAE"));
        assert_eq!(c.seeds, [0, 1, 2, 3, 4]);
        assert_eq!(c.points.len(), 10);
        assert_eq!(c.points[0].n, Some(1));
        assert_eq!(c.grid.n, None);
        // n = 1: the mean test MAE of every run of the cell (10 per seed, so per-seed means
        // average to the mean of all 50)
        let runs: Vec<f64> = records
            .iter()
            .filter(|r| r.result.config.variant.name() == c.variant)
            .map(|r| r.result.test.unwrap().regression().unwrap().mae)
            .collect();
        assert_eq!(runs.len(), 50);
        assert!((c.points[0].test.mean - mean(&runs)).abs() < 1e-12);
        // the grid: the selected runs' test MAE and validation MAE, averaged over seeds
        let sel: Vec<&_> = selected
            .iter()
            .filter(|s| s.variant.name() == c.variant)
            .collect();
        assert_eq!(sel.len(), 5);
        let sel_test: Vec<f64> = sel
            .iter()
            .map(|s| s.result.test.unwrap().regression().unwrap().mae)
            .collect();
        let sel_valid: Vec<f64> = sel.iter().map(|s| s.result.valid_score).collect();
        assert!((c.grid.test.mean - mean(&sel_test)).abs() < 1e-12);
        assert!((c.grid.valid.mean - mean(&sel_valid)).abs() < 1e-12);
        // MAE: the expected best validation never rises with n and ends above the grid's
        for w in c.points.windows(2) {
            assert!(w[1].valid.mean <= w[0].valid.mean + 1e-12);
        }
        assert!(c.points[9].valid.mean >= c.grid.valid.mean - 1e-12);
        assert!(c.points.iter().all(|p| p.test_acc2.is_some()));
        // deltas against NLL for the variants, none for NLL
        let has_delta = c.variant != "NLL";
        assert!(c.points.iter().chain([&c.grid]).all(
            |p| p.delta_test.is_some() == has_delta && p.delta_test_acc2.is_some() == has_delta
        ));
    }
    // the whole grid's delta is the claim's paired delta
    let cl = claims::claims(&selected, &expected(), None, DatasetName::Mosi);
    for c in curves.iter().filter(|c| c.variant != "NLL") {
        let claim = cl
            .iter()
            .find(|k| k.variant == c.variant && k.metric == ClaimMetric::Mae)
            .unwrap();
        let (a, b) = (c.grid.delta_test.unwrap(), claim.measured.unwrap());
        assert!((a.mean - b.mean).abs() < 1e-12 && (a.lo - b.lo).abs() < 1e-12);
        let claim = cl
            .iter()
            .find(|k| k.variant == c.variant && k.metric == ClaimMetric::Acc2)
            .unwrap();
        assert!((c.grid.delta_test_acc2.unwrap().mean - claim.measured.unwrap().mean).abs() < 1e-9);
    }
    let md = tuning::markdown(&curves);
    assert!(md.contains("| grid |"), "{md}");
    assert_eq!(md.matches("\n| 10 |").count(), 1, "{md}");
    assert_eq!(
        md.matches("FLSTM NLL+SKL − NLL, expected test MAE").count(),
        1,
        "{md}"
    );
    let png = tmp.path().join("tuning-budget.png");
    tuning::plot(&png, "tuning budget", &curves).unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    // a re-render is byte-identical
    assert_eq!(tuning::markdown(&budget(&records)), md);
}

/// A quick-profile folder (one configuration per seed) has no tuning budget.
#[test]
fn a_one_configuration_folder_has_no_budget() {
    let (_tmp, records) = committed("quick5-flstm-mosi-synthetic");
    assert!(!records.is_empty());
    let curves = budget(&records);
    assert!(curves.is_empty());
    assert_eq!(tuning::markdown(&curves), "");
}

/// Every claim of a five-seed folder carries its probability of improvement, computed from the
/// same seed pairs as its delta, and the claims table shows it beside the delta.
#[test]
fn claims_carry_the_probability_of_improvement() {
    let (_tmp, records) = committed("paper-tfn-mosi-real-text");
    let selected = select(&records);
    let cl = claims::claims(&selected, &expected(), None, DatasetName::Mosi);
    assert!(!cl.is_empty());
    for c in &cl {
        let m = c.measured.unwrap();
        let p = c.p_improve.unwrap();
        assert_eq!((p.n, m.n), (5, 5));
        // recompute from the selected runs, paired by seed
        let metric = |s: &neural_synergy::experiments::Selected| {
            let r = s.result.test.unwrap();
            let r = r.regression().unwrap();
            match c.metric {
                ClaimMetric::Mae => r.mae,
                _ => 100.0 * r.acc2_non0,
            }
        };
        let of = |v: &str| -> Vec<f64> {
            let mut s: Vec<_> = selected
                .iter()
                .filter(|s| s.model.name() == c.model && s.variant.name() == v)
                .collect();
            s.sort_by_key(|s| s.seed);
            s.iter().map(|s| metric(s)).collect()
        };
        let (b, v) = (of("NLL"), of(&c.variant));
        let lower = c.metric == ClaimMetric::Mae;
        let wins = b
            .iter()
            .zip(&v)
            .filter(|(b, v)| if lower { v < b } else { v > b })
            .count();
        let ties = b.iter().zip(&v).filter(|(b, v)| v == b).count();
        assert_eq!((p.wins, p.ties), (wins, ties), "{c:?}");
        assert!(p.lo <= p.p && p.p <= p.hi);
        let deltas: Vec<f64> = b.iter().zip(&v).map(|(b, v)| v - b).collect();
        assert!((mean(&deltas) - m.mean).abs() < 1e-9);
    }
    let md = claims::markdown(&cl, "real-text");
    assert!(md.contains("| P(variant better) [95 % CI] |"), "{md}");
    let first = cl[0].p_improve.unwrap();
    assert!(md.contains(&improvement::cell(&first)), "{md}");
    // serialised beside the delta
    let js = serde_json::to_value(&cl[0]).unwrap();
    assert_eq!(js["p_improve"]["n"], 5);
    // one seed: no probability of improvement, and no column for it
    let one: Vec<_> = selected.iter().filter(|s| s.seed == 0).cloned().collect();
    let single = claims::claims(&one, &expected(), None, DatasetName::Mosi);
    assert!(!single.is_empty() && single.iter().all(|c| c.p_improve.is_none()));
    assert!(!claims::markdown(&single, "real-text").contains("P(variant better)"));
    // deterministic: a second computation is identical
    let again = claims::claims(&selected, &expected(), None, DatasetName::Mosi);
    assert_eq!(claims::markdown(&again, "real-text"), md);
}

/// The measured budget curves of every committed paper-profile folder (what the book quotes):
/// `cargo test --release --test it report_extras::print -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_budget_of_the_committed_paper_folders() {
    for folder in [
        "paper-flstm-mosi-synthetic",
        "paper-tfn-mosi-synthetic",
        "paper-flstm-mosi-real-text",
        "paper-tfn-mosi-real-text",
    ] {
        let (_tmp, records) = committed(folder);
        let selected = select(&records);
        println!("## {folder}\n");
        let curves = budget(&records);
        println!("{}", tuning::markdown(&curves));
        let png = std::env::temp_dir().join(format!("tuning-budget-{folder}.png"));
        tuning::plot(&png, &format!("Tuning budget: {folder}"), &curves).unwrap();
        println!("plot: {}\n", png.display());
        println!(
            "{}",
            claims::markdown(
                &claims::claims(&selected, &expected(), None, DatasetName::Mosi),
                "measured"
            )
        );
    }
}
