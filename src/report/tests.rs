//! Unit tests of the report's internals: Table 4's paired corruption claims, the per-subset
//! metrics, the runs-behind-each-cell table, the tuned-weights table, the forest plots and the
//! main table's seed-set marks (the paper's table layouts and the data tiers are integration
//! tests in `tests/it/tables.rs`).

use super::{corruption, subsets, tables};
use crate::data::{DatasetName, TestSubset};
use crate::experiments::expected::expected;
use crate::experiments::Selected;
use crate::metrics::regression_metrics;
use crate::models::ModelKind;
use crate::report::stats::Verdict;
use crate::synergy::SynergyConfig;
use crate::train::{DroppedEval, RunConfig, RunResult, Selection, TaskLoss, TestMetrics, Variant};
use ndarray::ArrayView1;

/// `l` with the first `k` values negated (a predictor wrong on exactly those clips).
fn flip_first(l: &[f64], k: usize) -> Vec<f64> {
    l.iter()
        .enumerate()
        .map(|(i, y)| if i < k { -y } else { *y })
        .collect()
}

fn metrics(p: &[f64], l: &[f64]) -> TestMetrics {
    TestMetrics::Regression(regression_metrics(&ArrayView1::from(p), &ArrayView1::from(l)).unwrap())
}

/// A selected run with clean test predictions `p` and, per Table 4 condition, predictions `drop`.
fn run(variant: Variant, seed: u64, p: &[f64], drop: &[Vec<f64>; 3], l: &[f64]) -> Selected {
    let config = RunConfig {
        model: ModelKind::Flstm.default_config(),
        variant,
        batch_size: 32,
        lr: 1e-3,
        seed,
        max_epochs: 1,
        patience: 1,
        loss: TaskLoss::L1,
        synergy: SynergyConfig::default(),
    };
    Selected {
        model: ModelKind::Flstm,
        variant,
        seed,
        result: RunResult {
            config,
            epochs: 1,
            best_epoch: 1,
            selection: Selection::Mae,
            valid_score: 1.0,
            valid_score_baseline: 2.0,
            test: Some(metrics(p, l)),
            test_predictions: Some(p.iter().map(|x| *x as f32).collect()),
            failure: None,
            wall_s: 1.0,
            dropped: ["T", "T+V", "T+A"]
                .iter()
                .zip(drop)
                .map(|(c, q)| DroppedEval {
                    condition: c.to_string(),
                    test: metrics(q, l),
                    predictions: Some(q.iter().map(|x| *x as f32).collect()),
                })
                .collect(),
            device: None,
            robustness: Vec::new(),
        },
    }
}

/// A `paper`-profile record of `variant` and `seed` on four toy clips (perfect predictions under
/// every condition), keyed by `key`, after `edit` sets what a test varies.
fn record(
    variant: Variant,
    seed: u64,
    key: String,
    edit: impl FnOnce(&mut RunResult),
) -> crate::experiments::RunRecord {
    let l = [1.0, -1.0, 1.0, -1.0];
    let d = [l.to_vec(), l.to_vec(), l.to_vec()];
    let mut result = run(variant, seed, &l, &d, &l).result;
    edit(&mut result);
    crate::experiments::RunRecord {
        key,
        tier: crate::data::Tier::Synthetic,
        profile: crate::experiments::Profile::Paper,
        data: "test".into(),
        result,
    }
}

#[test]
fn corruption_claims_pair_seeds_and_follow_the_delta_sign() {
    // 8 clips, labels ±1; the synergy variant is right on 2 more clips under every corruption
    let l = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0];
    let right: Vec<f64> = l.to_vec();
    let wrong_k = |k: usize| flip_first(&l, k);
    let mut sel = Vec::new();
    for seed in 0..3u64 {
        // NLL: 4 of 8 wrong under corruption; SMMD: 2 (+ seed-dependent noise: seed 2 gets 3)
        let nll = [wrong_k(4), wrong_k(4), wrong_k(4)];
        let k = if seed == 2 { 3 } else { 2 };
        let smmd = [wrong_k(k), wrong_k(k), wrong_k(k)];
        sel.push(run(Variant::Nll, seed, &right, &nll, &l));
        sel.push(run(Variant::NllSmmd, seed, &right, &smmd, &l));
    }
    let (rows, claims) = corruption::corruption(&sel, &expected(), DatasetName::Mosi, Some(&l));
    assert_eq!(rows.len(), 2);
    let nll = &rows[0];
    assert_eq!(nll.variant, "NLL");
    assert!((nll.acc2[0].unwrap().mean - 100.0).abs() < 1e-9);
    assert!((nll.acc2[1].unwrap().mean - 50.0).abs() < 1e-9);
    assert_eq!(claims.len(), 3);
    for c in &claims {
        let m = c.measured.unwrap();
        // deltas 25, 25, 12.5 points
        assert!((m.mean - 62.5 / 3.0).abs() < 1e-9, "{m:?}");
        assert_eq!(m.n, 3);
        // FLSTM has no Table 4 row: §5.5's direction (+) decides
        assert!(c.paper_delta.is_none());
        assert_eq!(c.verdict, Some(Verdict::Supported));
    }
    // a variant that predicts a constant gets no verdict, whatever its corrupted metrics
    let constant = vec![0.1; l.len()];
    let mut col = Vec::new();
    for seed in 0..3u64 {
        col.push(run(
            Variant::Nll,
            seed,
            &right,
            &[wrong_k(4), wrong_k(4), wrong_k(4)],
            &l,
        ));
        let c = [constant.clone(), constant.clone(), constant.clone()];
        col.push(run(Variant::NllSkl, seed, &constant, &c, &l));
    }
    let (_, cc) = corruption::corruption(&col, &expected(), DatasetName::Mosi, Some(&l));
    assert_eq!(cc.len(), 3);
    assert!(cc
        .iter()
        .all(|c| c.verdict.is_none() && c.note.as_deref().unwrap().contains("constant")));
    // one seed: a paired bootstrap over the clips' saved corrupted predictions (the variant is
    // right on 2 more of 8 clips: +25 points, an interval from resampling the clips)
    let one: Vec<Selected> = sel.iter().filter(|s| s.seed == 0).cloned().collect();
    let (_, c1) = corruption::corruption(&one, &expected(), DatasetName::Mosi, Some(&l));
    for c in &c1 {
        let m = c.measured.expect("one seed is bootstrapped");
        assert_eq!((m.method, m.n), ("paired-bootstrap", 8));
        assert!((m.mean - 25.0).abs() < 1e-9, "{m:?}");
        assert!(m.lo <= m.mean && m.mean <= m.hi && m.lo < m.hi, "{m:?}");
    }
    // without labels, or from runs recorded before the corrupted predictions were saved: no
    // interval, and the note says why
    let (_, c2) = corruption::corruption(&one, &expected(), DatasetName::Mosi, None);
    assert!(c2
        .iter()
        .all(|c| c.verdict.is_none() && c.note.as_deref().unwrap().contains("no test labels")));
    let mut old = one.clone();
    for s in &mut old {
        s.result
            .dropped
            .iter_mut()
            .for_each(|d| d.predictions = None);
    }
    let (_, c3) = corruption::corruption(&old, &expected(), DatasetName::Mosi, Some(&l));
    assert!(c3
        .iter()
        .all(|c| c.measured.is_none() && c.note.as_deref().unwrap().contains("did not save")));
    // a record without the field (written before it existed) still reads
    let json = serde_json::to_string(&old[0].result.dropped[0]).unwrap();
    assert!(!json.contains("predictions"), "{json}");
    let back: DroppedEval = serde_json::from_str(&json).unwrap();
    assert_eq!(back, old[0].result.dropped[0]);
}

#[test]
fn subset_metrics_find_a_gain_confined_to_the_synergy_clips() {
    // 40 clips; the first 10 "need synergy". The variant fixes 6 of them that NLL gets wrong and is
    // identical elsewhere.
    let n = 40;
    let l: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 1.5 } else { -1.5 })
        .collect();
    let members: Vec<bool> = (0..n).map(|i| i < 10).collect();
    let subs = vec![
        TestSubset {
            name: "synergy".into(),
            why: "test".into(),
            members: members.clone(),
        },
        TestSubset {
            name: "rest".into(),
            why: "test".into(),
            members: members.iter().map(|m| !m).collect(),
        },
    ];
    let nll: Vec<f64> = l
        .iter()
        .enumerate()
        .map(|(i, y)| if i < 6 { -y } else { *y })
        .collect();
    let drop = [nll.clone(), nll.clone(), nll.clone()];
    let sel = vec![
        run(Variant::Nll, 0, &nll, &drop, &l),
        run(Variant::NllSmmd, 0, &l, &drop, &l),
    ];
    let cells = subsets::subset_cells(&sel, &l, &subs);
    let acc = |v: &str, s: &str| {
        cells
            .iter()
            .find(|c| c.variant == v && c.subset == s && c.metric.name() == "Acc2")
            .unwrap()
            .clone()
    };
    assert!((acc("NLL", "synergy").value.unwrap() - 40.0).abs() < 1e-9);
    assert!((acc("NLL+SMMD", "synergy").value.unwrap() - 100.0).abs() < 1e-9);
    assert_eq!(acc("NLL+SMMD", "synergy").clips, 10);
    let d = acc("NLL+SMMD", "synergy").delta.unwrap();
    assert!((d.mean - 60.0).abs() < 1e-9 && d.method == "paired-bootstrap");
    assert_eq!(acc("NLL+SMMD", "synergy").reading, Some("helps"));
    let r = acc("NLL+SMMD", "rest");
    assert_eq!(r.delta.unwrap().mean, 0.0);
    assert_eq!(r.reading, Some("unclear"));
    // a subset of the wrong length is skipped, not misaligned
    let bad = vec![TestSubset {
        name: "short".into(),
        why: String::new(),
        members: vec![true; 3],
    }];
    assert!(subsets::subset_cells(&sel, &l, &bad).is_empty());
}

#[test]
fn cell_runs_count_diverged_runs_grid_points_and_finished_seeds() {
    let rec = |variant, seed, lr: f64, failure: Option<&str>| {
        record(variant, seed, format!("{variant:?}-{seed}-{lr}"), |r| {
            r.config.lr = lr;
            // an NLL run took 15 min, a synergy run (diverged or not) 7.5 min
            r.wall_s = if variant == Variant::Nll {
                900.0
            } else {
                450.0
            };
            if let Some(f) = failure {
                r.failure = Some(f.into());
                r.test = None;
            }
        })
    };
    let records = vec![
        // NLL: seeds 0 and 1 at two learning rates, all fine
        rec(Variant::Nll, 0, 1e-3, None),
        rec(Variant::Nll, 0, 1e-2, None),
        rec(Variant::Nll, 1, 1e-3, None),
        rec(Variant::Nll, 1, 1e-2, None),
        // SMMD: seed 0 diverges at lr 1e-2 only; seed 1 diverges at both points
        rec(Variant::NllSmmd, 0, 1e-3, None),
        rec(
            Variant::NllSmmd,
            0,
            1e-2,
            Some("epoch 2, step 7: non-finite loss"),
        ),
        rec(
            Variant::NllSmmd,
            1,
            1e-3,
            Some("epoch 1, step 3: non-finite loss"),
        ),
        rec(
            Variant::NllSmmd,
            1,
            1e-2,
            Some("epoch 1, step 1: non-finite loss"),
        ),
    ];
    let cells = tables::cell_runs(&records);
    assert_eq!(cells.len(), 2);
    let (nll, smmd) = (&cells[0], &cells[1]);
    assert_eq!(
        (nll.variant.as_str(), smmd.variant.as_str()),
        ("NLL", "NLL+SMMD")
    );
    assert_eq!((nll.runs, nll.diverged, nll.grid_points), (4, 0, 2));
    assert_eq!(nll.seeds_finished, vec![0, 1]);
    assert!(nll.first_failure.is_none());
    assert_eq!((smmd.runs, smmd.diverged, smmd.grid_points), (4, 3, 2));
    // seed 1 has no usable run: the cell rests on seed 0 alone, and the table says so
    assert_eq!(smmd.seeds_finished, vec![0]);
    assert!(smmd
        .first_failure
        .as_deref()
        .unwrap()
        .contains("non-finite"));
    let md = tables::cell_runs_markdown(&cells);
    assert!(
        md.contains("| FLSTM | NLL+SMMD | 4 | 2 | 1 [0] | 3 (first: epoch 2, step 7"),
        "{md}"
    );
    // the cost column and line sum every run's own wall time, diverged runs included
    assert_eq!((nll.wall_s, smmd.wall_s), (3600.0, 1800.0));
    assert!(md.contains("non-finite loss) | 0.50 |"), "{md}");
    assert!(
        md.contains("Training cost: 1.50 run-hours in 8 runs"),
        "{md}"
    );
}

#[test]
fn a_seed_whose_grid_search_is_incomplete_is_not_selected() {
    use crate::experiments::select;
    let rec = |seed, lr: f64, valid: f64| {
        record(Variant::Nll, seed, format!("{seed}-{lr}"), |r| {
            r.config.lr = lr;
            r.valid_score = valid;
        })
    };
    // seed 0 tried both grid points; seed 1 (still running) only the one with the worse score
    let records = vec![rec(0, 1e-3, 0.9), rec(0, 1e-2, 0.5), rec(1, 1e-3, 0.9)];
    let sel = select(&records);
    assert_eq!(sel.len(), 1, "only seed 0 is selected");
    assert_eq!((sel[0].seed, sel[0].result.config.lr), (0, 1e-2));
    let cells = tables::cell_runs(&records);
    assert_eq!(cells[0].seeds_finished, vec![0]);
    assert_eq!(cells[0].seeds_incomplete, vec![1]);
    let md = tables::cell_runs_markdown(&cells);
    assert!(
        md.contains("1 [0] (grid incomplete, left out: [1])"),
        "{md}"
    );
    // once seed 1 has run its last point it is selected like seed 0
    let mut all = records.clone();
    all.push(rec(1, 1e-2, 0.4));
    let sel = select(&all);
    assert_eq!(sel.iter().map(|s| s.seed).collect::<Vec<_>>(), vec![0, 1]);
    assert!(tables::cell_runs(&all)[0].seeds_incomplete.is_empty());
}

/// With `--tune`, each seed's selection on validation picks the synergy weights together with the
/// batch size and learning rate, and the report lists the weights tried and picked.
#[test]
fn tuned_weights_are_selected_per_seed_on_validation_and_reported() {
    use crate::experiments::{select, WeightGrid};
    let mut grid = WeightGrid::default();
    grid.add("gamma_l2=1,0.1,1").unwrap();
    assert_eq!(grid.gamma_l2, vec![1.0, 0.1], "repeated values count once");
    assert!(grid.add("gamma_l2=0.5").unwrap_err().contains("twice"));
    let base = SynergyConfig::default();
    assert_eq!(grid.configs(&base, Variant::Nll), vec![base.clone()]);
    assert_eq!(grid.configs(&base, Variant::NllSmmd).len(), 2);
    // L_d alone does not use γ_L2: not varied
    assert_eq!(grid.configs(&base, Variant::NllLd), vec![base.clone()]);

    let rec = |variant, seed, g: f64, valid: f64| {
        record(variant, seed, format!("{variant:?}-{seed}-{g}"), |r| {
            r.config.synergy.gamma_l2 = g;
            r.valid_score = valid;
        })
    };
    let records = vec![
        rec(Variant::Nll, 0, 1.0, 0.5),
        rec(Variant::NllSmmd, 0, 1.0, 0.6),
        rec(Variant::NllSmmd, 0, 0.1, 0.4),
        rec(Variant::NllSmmd, 1, 1.0, 0.3),
        rec(Variant::NllSmmd, 1, 0.1, 0.7),
    ];
    let sel = select(&records);
    let picked: Vec<(u64, f64)> = sel
        .iter()
        .filter(|s| s.variant == Variant::NllSmmd)
        .map(|s| (s.seed, s.result.config.synergy.gamma_l2))
        .collect();
    assert_eq!(picked, vec![(0, 0.1), (1, 1.0)]);
    let cells = tables::cell_runs(&records);
    assert_eq!(cells[1].grid_points, 2, "the weights are grid points");
    let md = tables::weights_markdown(&records, &sel);
    assert!(md.contains("γ_L2 ∈ {0.1, 1}"), "{md}");
    assert!(
        md.contains("| FLSTM | NLL+SMMD | seed 0: γ_L2 = 0.1; seed 1: γ_L2 = 1 |"),
        "{md}"
    );
    // without tuning: one sentence with the weights
    let one = tables::weights_markdown(&records[..2], &sel[..2]);
    assert!(
        one.contains("Synergy weights of these runs: β = 0.01, γ_L2 = 1"),
        "{one}"
    );
}

/// The PNG header's width and height.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn forest_plots_have_a_panel_per_condition_and_a_row_per_claim() {
    use crate::report::forest;
    let l = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0];
    let wrong = |k: usize| flip_first(&l, k);
    let mut sel = Vec::new();
    for seed in 0..3u64 {
        sel.push(run(
            Variant::Nll,
            seed,
            &l,
            &[wrong(4), wrong(4), wrong(4)],
            &l,
        ));
        sel.push(run(
            Variant::NllSkl,
            seed,
            &l,
            &[wrong(3), wrong(2), wrong(seed as usize)],
            &l,
        ));
        sel.push(run(
            Variant::NllSmmd,
            seed,
            &l,
            &[wrong(5), wrong(4), wrong(3)],
            &l,
        ));
    }
    let (_, claims) = corruption::corruption(&sel, &expected(), DatasetName::Mosi, Some(&l));
    assert_eq!(claims.len(), 6, "2 variants × 3 conditions");
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("t4.png");
    corruption::forest_plot(&png, "Table 4", &claims).unwrap();
    // three panels (T, T+V, T+A) of two lines each: 3 × 520 px wide, 120 + 2 × 40 px high
    assert_eq!(png_size(&png), (1560, 200));
    // subsets: a panel per metric, one line per (variant, subset) with a delta
    let members: Vec<bool> = (0..l.len()).map(|i| i < 4).collect();
    let subs = vec![
        TestSubset {
            name: "synergy".into(),
            why: String::new(),
            members: members.clone(),
        },
        TestSubset {
            name: "rest".into(),
            why: String::new(),
            members: members.iter().map(|m| !m).collect(),
        },
    ];
    let cells = subsets::subset_cells(&sel, &l, &subs);
    let png = dir.path().join("sub.png");
    subsets::forest_plot(&png, "subsets", &cells).unwrap();
    // 2 variants × 2 subsets = 4 lines per panel, 2 panels (Acc2, MAE): 1000 px minimum width
    assert_eq!(png_size(&png), (1040, 280));
    // nothing to draw is an error, not an empty picture
    assert!(forest::plot(&dir.path().join("e.png"), "empty", &[]).is_err());
}

/// The main table's "Δ vs NLL" subtracts cell means: when the two cells rest on different seed
/// sets the delta is marked "†" with a footnote; on the same seeds it is not.
#[test]
fn main_table_marks_deltas_over_different_seed_sets() {
    let l = [1.0, -1.0, 1.0, -1.0];
    let d = [l.to_vec(), l.to_vec(), l.to_vec()];
    let ctx: tables::RunContext = serde_json::from_value(serde_json::json!({
        "tier": "synthetic", "profile": "quick", "seeds": [0, 1], "models": ["FLSTM"],
        "data": "toy", "ceilings": [], "test_ids": ["a", "b", "c", "d"], "test_labels": l,
    }))
    .unwrap();
    let render = |smmd_seeds: &[u64]| {
        let mut sel: Vec<Selected> = (0..2).map(|s| run(Variant::Nll, s, &l, &d, &l)).collect();
        sel.extend(
            smmd_seeds
                .iter()
                .map(|&s| run(Variant::NllSmmd, s, &l, &d, &l)),
        );
        let rows = tables::rows(&sel, &expected(), DatasetName::Mosi);
        tables::markdown(&ctx, &rows, &[], &[], &[])
    };
    let partial = render(&[1]);
    assert!(partial.contains("+0.0 †"), "{partial}");
    assert!(partial.contains("rest on different seed sets"), "{partial}");
    let full = render(&[1, 0]);
    assert!(!full.contains('†'), "{full}");
}
