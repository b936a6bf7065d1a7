//! Sharding a grid (`--shard K/N`): the partition's facts, and a sharded run merged by
//! `reproduce-paper report` equal to the unsharded run.
use neural_synergy::data::Tier;
use neural_synergy::experiments::shard::{is_results_file, Shard};
use neural_synergy::experiments::{run_key, Profile};
use neural_synergy::models::ModelKind;
use neural_synergy::synergy::SynergyConfig;
use neural_synergy::train::{RunConfig, TaskLoss, Variant};
use proptest::prelude::*;
use serde_json::Value;

/// A plan-like list of runs: models × variants × seeds × grid points.
fn runs(models: &[ModelKind], seeds: &[u64], grid: &[(usize, f64)]) -> Vec<RunConfig> {
    let mut out = Vec::new();
    for m in models {
        for &variant in &Variant::ALL {
            for &seed in seeds {
                for &(batch_size, lr) in grid {
                    out.push(RunConfig {
                        model: m.default_config(),
                        variant,
                        batch_size,
                        lr,
                        seed,
                        max_epochs: 3,
                        patience: 2,
                        loss: TaskLoss::L1,
                        synergy: SynergyConfig::default(),
                    });
                }
            }
        }
    }
    out
}

fn keys(c: &[RunConfig]) -> Vec<String> {
    c.iter()
        .map(|c| run_key(Tier::Synthetic, Profile::Paper, "d", c))
        .collect()
}

fn plan_strategy() -> impl Strategy<Value = (Vec<RunConfig>, usize)> {
    (
        proptest::sample::subsequence(ModelKind::ALL.to_vec(), 1..=ModelKind::ALL.len()),
        proptest::collection::btree_set(0u64..50, 1..4),
        proptest::sample::subsequence(vec![(32usize, 1e-3), (64, 1e-3), (32, 5e-4)], 1..=3),
        1usize..9,
    )
        .prop_map(|(m, s, g, n)| (runs(&m, &s.into_iter().collect::<Vec<_>>(), &g), n))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn shards_partition_the_runs_every_run_in_exactly_one((configs, n) in plan_strategy()) {
        let k = keys(&configs);
        let mut count = vec![0usize; configs.len()];
        for i in 0..n {
            let mine = Shard::new(i, n).unwrap().select(&configs, &k);
            prop_assert!(mine.windows(2).all(|w| w[0] < w[1]), "plan order within a shard");
            for j in mine {
                count[j] += 1;
            }
        }
        prop_assert!(count.iter().all(|&c| c == 1), "{count:?}");
    }

    #[test]
    fn shards_hold_equal_shares_of_every_model_within_one((configs, n) in plan_strategy()) {
        let k = keys(&configs);
        for m in ModelKind::ALL {
            let per: Vec<usize> = (0..n)
                .map(|i| {
                    Shard::new(i, n)
                        .unwrap()
                        .select(&configs, &k)
                        .into_iter()
                        .filter(|&j| configs[j].model.kind() == *m)
                        .count()
                })
                .collect();
            let (lo, hi) = (per.iter().min().unwrap(), per.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "{m:?}: {per:?}");
        }
    }

    #[test]
    fn shard_membership_is_invariant_under_reordering_the_plan(
        (configs, n) in plan_strategy(),
        perm_seed in any::<u64>(),
    ) {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let k = keys(&configs);
        let mut order: Vec<usize> = (0..configs.len()).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(perm_seed));
        let shuffled: Vec<RunConfig> = order.iter().map(|&i| configs[i].clone()).collect();
        let sk = keys(&shuffled);
        for i in 0..n {
            let s = Shard::new(i, n).unwrap();
            let mut a: Vec<&String> = s.select(&configs, &k).into_iter().map(|j| &k[j]).collect();
            let mut b: Vec<&String> = s.select(&shuffled, &sk).into_iter().map(|j| &sk[j]).collect();
            a.sort();
            b.sort();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn shard_display_parse_round_trip(n in 1usize..1000, k in 0usize..1000) {
        let k = k % n;
        let s = Shard::new(k, n).unwrap();
        prop_assert_eq!(s.to_string().parse::<Shard>().unwrap(), s);
        prop_assert!(is_results_file(&s.file_name()));
    }

    #[test]
    fn shard_parse_rejects_k_not_below_n(n in 0usize..100, extra in 0usize..100) {
        let text = format!("{}/{}", n + extra, n);
        prop_assert!(text.parse::<Shard>().is_err());
    }
}

#[test]
fn shard_syntax_errors_and_results_file_names() {
    for bad in ["", "3", "1/", "/3", "a/3", "1/b", "-1/3", "1/3/4", "1.0/3"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad:?} parsed");
    }
    assert_eq!(
        " 2 / 5 ".parse::<Shard>().unwrap(),
        Shard::new(2, 5).unwrap()
    );
    assert!(is_results_file("results.jsonl"));
    for not in [
        "results.shard-3-of-3.jsonl",
        "results.shard-0-of-0.jsonl",
        "results.shard-x-of-3.jsonl",
        "results.jsonl.tmp",
        "run.json",
    ] {
        assert!(!is_results_file(not), "{not}");
    }
}

fn run(args: &[&str]) -> (i32, String, String) {
    crate::common::run_bin(env!("CARGO_BIN_EXE_reproduce-paper"), args)
}

/// The JSON report without its wall-clock fields (a rerun changes only those).
pub fn without_wall_time(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "wall_s" | "epoch_s"))
                .map(|(k, v)| (k.clone(), without_wall_time(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_wall_time).collect()),
        v => v.clone(),
    }
}

/// The smoke grid the sharding tests use: 2 models × 3 variants, 2 epochs (6 runs, ~10 s).
pub const SMALL_GRID: [&str; 6] = [
    "--profile",
    "smoke",
    "--models",
    "flstm,lmf",
    "--max-epochs",
    "2",
];

/// Compares the merged report in `sharded` with the unsharded one in `whole`: table.csv byte for
/// byte, table.json equal but for wall-clock fields.
pub fn assert_same_tables(whole: &std::path::Path, sharded: &std::path::Path) {
    let csv = |d: &std::path::Path| std::fs::read(d.join("table.csv")).unwrap();
    assert_eq!(csv(whole), csv(sharded), "table.csv differs");
    let json = |d: &std::path::Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("table.json")).unwrap()).unwrap()
    };
    let (a, b) = (
        without_wall_time(&json(whole)),
        without_wall_time(&json(sharded)),
    );
    assert_eq!(a["rows"], b["rows"]);
    assert_eq!(a["claims"], b["claims"]);
    assert_eq!(
        a["selected_runs"], b["selected_runs"],
        "bit-identical predictions"
    );
    assert_eq!(a, b);
}

/// Trains [`SMALL_GRID`] unsharded into a fresh folder.
fn train_small_grid() -> tempfile::TempDir {
    let whole = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&[
        &SMALL_GRID[..],
        &["--quiet", "--out", whole.path().to_str().unwrap()],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    whole
}

#[test]
fn three_shards_merge_to_the_unsharded_table_and_a_corrupt_shard_is_named() {
    let whole = train_small_grid();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // shards in reverse order and with the model list reordered: same partition
    for k in [2, 1, 0] {
        let shard = format!("{k}/3");
        let (code, stdout, err) = run(&[
            "--models",
            "lmf,flstm",
            "--profile",
            "smoke",
            "--max-epochs",
            "2",
            "--quiet",
            "--json",
            "--out",
            out,
            "--shard",
            &shard,
        ]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["shard"], shard.as_str());
        assert_eq!(v["planned_runs"], 6);
        assert_eq!(v["runs"], 2, "6 runs over 3 shards, balanced: {v}");
        assert!(
            !dir.path().join("table.csv").exists(),
            "a shard renders no table"
        );
    }
    let (code, _, err) = run(&["report", "--from", out]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_same_tables(whole.path(), dir.path());

    // a corrupt shard file (a bad line that is not the last): named, skipped, the rest merge
    let bad = dir.path().join("results.shard-1-of-3.jsonl");
    let text = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(&bad, format!("{{not json\n{text}")).unwrap();
    let (code, stdout, err) = run(&["report", "--from", out, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("results.shard-1-of-3.jsonl"),
        "names the file: {err}"
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("results.shard-1-of-3.jsonl"),
        "{warnings}"
    );
    assert!(warnings.contains("4 of the 6 planned runs"), "{warnings}");
    let md = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    assert!(md.starts_with("> **warning:**"), "{md}");

    // the same run in two files is kept once
    std::fs::write(&bad, &text).unwrap();
    std::fs::copy(
        dir.path().join("results.shard-0-of-3.jsonl"),
        dir.path().join("results.jsonl"),
    )
    .unwrap();
    let (code, _, err) = run(&["report", "--from", out]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("2 runs appear in more than one results file"),
        "{err}"
    );
    assert_same_tables(whole.path(), dir.path());
}

#[test]
fn bad_shard_values_are_one_line_errors() {
    for bad in ["3/3", "x/2", "1/0"] {
        let (code, _, err) = run(&["--profile", "smoke", "--shard", bad]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("--shard"), "{err}");
    }
}

/// One table from folders trained separately (one model each) equals the table of the folder
/// that trained both; several folders need --out, and folders whose runs are not comparable (here
/// another epoch cap) are refused, naming what differs.
#[test]
fn report_from_several_folders_equals_the_folder_that_trained_them_all() {
    let whole = train_small_grid();
    let folder = |model: &str, epochs: &str| {
        let d = tempfile::tempdir().unwrap();
        let (code, _, err) = run(&[
            "--profile",
            "smoke",
            "--models",
            model,
            "--max-epochs",
            epochs,
            "--quiet",
            "--out",
            d.path().to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        d
    };
    let (a, b) = (folder("flstm", "2"), folder("lmf", "2"));
    let (a, b) = (a.path().to_str().unwrap(), b.path().to_str().unwrap());
    let combined = tempfile::tempdir().unwrap();
    let c = combined.path().to_str().unwrap();
    let (code, _, err) = run(&["report", "--from", b, "--from", a, "--out", c]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let csv = |d: &std::path::Path| std::fs::read(d.join("table.csv")).unwrap();
    assert_eq!(csv(whole.path()), csv(combined.path()), "table.csv differs");
    let json = |d: &std::path::Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("table.json")).unwrap()).unwrap()
    };
    let (w, m) = (json(whole.path()), json(combined.path()));
    for field in [
        "rows",
        "claims",
        "selected_runs",
        "runs_per_cell",
        "corruption",
        "seeds",
    ] {
        assert_eq!(
            without_wall_time(&w[field]),
            without_wall_time(&m[field]),
            "{field}"
        );
    }
    assert_eq!(m["sources"], serde_json::json!([b, a]));
    let md = std::fs::read_to_string(combined.path().join("table.md")).unwrap();
    assert!(md.starts_with("> Combined from 2 results folders"), "{md}");
    assert!(md.contains("FLSTM") && md.contains("LMF"), "{md}");

    let (code, _, err) = run(&["report", "--from", a, "--from", b]);
    assert_ne!(code, 0);
    assert!(err.contains("--out"), "{err}");
    let other = folder("lmf", "3");
    let (code, _, err) = run(&[
        "report",
        "--from",
        a,
        "--from",
        other.path().to_str().unwrap(),
        "--out",
        c,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("epoch cap"), "{err}");
}
