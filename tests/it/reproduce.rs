//! `reproduce-paper` end to end: the smoke profile, resuming after a killed run, the expected tables.
use neural_synergy::models::ModelKind;
use serde_json::Value;

fn run(args: &[&str]) -> (i32, String, String) {
    crate::common::run_bin(env!("CARGO_BIN_EXE_reproduce-paper"), args)
}

/// Rows without their wall-time column (the only thing a rerun may change).
fn without_timing(rows: &Value) -> Value {
    let mut r = rows.clone();
    for row in r.as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("epoch_s");
    }
    r
}

#[test]
fn smoke_profile_trains_every_model_and_each_beats_the_mean() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, stdout, err) = run(&[
        "--profile",
        "smoke",
        "--jobs",
        "2",
        "--json",
        "--quiet",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["tier"], "synthetic");
    let rows = v["rows"].as_array().unwrap();
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().to_string(),
                r["variant"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // the BERT models (MAGBERT, MIM) are not applicable on the synthetic tier (no words) and are
    // left out of the default plan with a note
    assert!(err.contains("not applicable"), "{err}");
    let word_free: Vec<ModelKind> = ModelKind::ALL
        .iter()
        .copied()
        .filter(|m| !m.needs_tokens())
        .collect();
    let mut want = Vec::new();
    for m in &word_free {
        for var in ["NLL", "NLL+SKL", "NLL+SMMD"] {
            want.push((m.name().to_string(), var.to_string()));
        }
    }
    assert_eq!(got, want, "one row per registered model and variant");
    assert_eq!(rows[0]["paper"]["acc7"], 31.2, "Table 2 FLSTM NLL Acc7");
    for s in v["selected_runs"].as_array().unwrap() {
        let r = &s["result"];
        assert!(r["failure"].is_null(), "{s}");
        // every model learns: its NLL run beats the train-mean predictor on validation (the
        // synergy variants may not, and that is a finding, not a bug: with the default weights
        // LMF+SKL/SMMD collapse to ≈ the mean on the smoke profile)
        if s["variant"] == "NLL" {
            assert!(
                r["valid_score"].as_f64().unwrap()
                    < 0.8 * r["valid_score_baseline"].as_f64().unwrap(),
                "{} NLL does not beat the training mean on validation by 20 %",
                s["model"]
            );
        }
        assert_eq!(r["test_predictions"].as_array().unwrap().len(), 256);
    }
    let md = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    assert!(md.contains("tier `synthetic`") && md.contains("not a reproduction"));
    assert!(!md.contains("NaN"), "never NaN in a table");
    assert!(dir.path().join("table.csv").exists());
    // one claim per model × synergy variant × {Acc2, MAE}, each with a bootstrap CI (one seed)
    let claims = v["claims"].as_array().unwrap();
    assert_eq!(claims.len(), word_free.len() * 2 * 2);
    for c in claims {
        let m = &c["measured"];
        assert_eq!(m["method"], "paired-bootstrap", "{c}");
        assert!(m["lo"].as_f64().unwrap() <= m["mean"].as_f64().unwrap());
        assert!(m["mean"].as_f64().unwrap() <= m["hi"].as_f64().unwrap());
    }
    assert!(md.contains("Verdicts (synthetic tier):"), "{md}");
    assert!(dir.path().join("forest.png").exists());
    // the synthetic tier's subsets get their own forest plot; the header says what each cell rests on
    assert!(dir.path().join("forest-subsets.png").exists());
    assert!(md.contains("Runs behind each cell"), "{md}");
    let cells = v["runs_per_cell"].as_array().unwrap();
    assert_eq!(cells.len(), want.len());
    for c in cells {
        assert_eq!(c["runs"], 1, "{c}");
        assert_eq!(c["diverged"], 0, "{c}");
        assert_eq!(c["seeds_finished"], serde_json::json!([0]), "{c}");
    }
    // re-rendered from the results directory without training: the same rows and claims
    let (code, again, err) = run(&["report", "--from", out, "--json"]);
    assert_eq!(code, 0, "{err}");
    let w: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["rows"], w["rows"]);
    assert_eq!(v["claims"], w["claims"]);
}

/// A killed run (torn last line) is redone on resume, and redone with another thread count: the
/// numbers are identical (everything is a function of the seed, not of the thread count).
#[test]
fn resume_after_a_torn_write_and_another_thread_count_give_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = [
        "--profile",
        "smoke",
        "--models",
        "flstm",
        "--json",
        "--quiet",
        "--out",
        out,
    ];
    let (code, stdout, err) = run(&[&args[..], &["--threads", "1"]].concat());
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let path = dir.path().join("results.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    // simulate kill -9 in the middle of writing the last run (NLL+SMMD)
    let torn = format!(
        "{}\n{}\n{}",
        lines[0],
        lines[1],
        &lines[2][..lines[2].len() / 2]
    );
    std::fs::write(&path, torn).unwrap();
    let (code, stdout2, err) = run(&[&args[..], &["--threads", "2"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("truncated last line"),
        "warns about the torn line: {err}"
    );
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(after.lines().count(), 3, "two kept, one redone");
    let v2: Value = serde_json::from_str(&stdout2).unwrap();
    assert_eq!(
        without_timing(&v["rows"]),
        without_timing(&v2["rows"]),
        "the run redone with 2 threads is identical (but for its wall time)"
    );
    let redo: Value = serde_json::from_str(after.lines().nth(2).unwrap()).unwrap();
    let orig: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(
        redo["result"]["test_predictions"], orig["result"]["test_predictions"],
        "bit-identical predictions across thread counts"
    );
}

#[test]
fn expected_json_covers_tables_2_to_6() {
    let (code, stdout, err) = run(&["--expected", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    for t in 2..=6 {
        assert!(v.iter().any(|r| r["table"] == t), "table {t}");
    }
    for r in &v {
        for k in [
            "table",
            "dataset",
            "model",
            "variant",
            "condition",
            "metric",
            "value",
        ] {
            assert!(r.get(k).is_some(), "{k} in {r}");
        }
    }
    let find = |t: u64, m: &str, var: &str, cond: &str, metric: &str| {
        v.iter()
            .find(|r| {
                r["table"] == t
                    && r["model"] == m
                    && r["variant"] == var
                    && r["condition"] == cond
                    && r["metric"] == metric
            })
            .map(|r| r["value"].as_f64().unwrap())
    };
    assert_eq!(
        find(2, "TFN", "NLL+SMMD", "none", "acc7"),
        Some(35.4),
        "LFN rows are TFN"
    );
    assert_eq!(find(3, "MIM", "NLL+IWas", "none", "acc2"), Some(82.1));
    assert_eq!(find(4, "MAGBERT", "NLL+SKL", "T+A", "acc2"), Some(45.5));
    assert_eq!(find(5, "MIM", "+Lk", "none", "mae"), Some(0.54));
    assert_eq!(find(6, "TFN", "NLL+SMMD", "none", "acc"), Some(67.8));
    assert_eq!(v.len(), 19 * 4 * 2 + 12 + 5 * 4 + 9);
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let (code, _, err) = run(&["--tier", "real-text", "--profile", "smoke"]);
    assert_ne!(code, 0);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("--data-dir"), "{err}");
    let (code, _, err) = run(&["--profile", "fast"]);
    assert_eq!(code, 2);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for (args, needle) in [
        (&["--tables", "2,3", "--plan"][..], "different corpora"),
        (&["--tables", "9", "--plan"][..], "no Table 9"),
        (
            &["--cues", "intensity", "--plan"][..],
            "real-text tier only",
        ),
        (
            &["--tables", "2", "--dataset", "mosei", "--plan"][..],
            "are on mosi",
        ),
        (&["--tune", "gamma_q=1,2", "--plan"][..], "unknown weight"),
        (&["--time-limit", "2h30", "--plan"][..], "is not a duration"),
        (
            &["--time-limit", "0:00", "--plan"][..],
            "at least one second",
        ),
        (
            &["--tune", "beta=0.1,-1", "--plan"][..],
            "must be finite and >= 0",
        ),
        (
            &["--tune", "gamma_l2", "--plan"][..],
            "expected WEIGHT=V1,V2",
        ),
        (
            &["--lr", "1e-3,0", "--plan"][..],
            "--lr must be finite and > 0",
        ),
        (
            &["--batch-size", "0", "--plan"][..],
            "--batch-size must be >= 2",
        ),
        (
            &["--batch-size", "32,1", "--plan"][..],
            "--batch-size must be >= 2, got 1",
        ),
        (
            &[
                "--models",
                "tfn",
                "--model-param",
                "tfn.post_fusoin=8",
                "--plan",
            ][..],
            "TFN has no field \"post_fusoin\"",
        ),
        (
            &[
                "--models",
                "tfn",
                "--model-param",
                "tfn.post_fusion=0",
                "--plan",
            ][..],
            "must be >= 1",
        ),
        (
            &[
                "--models",
                "tfn",
                "--model-param",
                "tfn.post_fusion=wide",
                "--plan",
            ][..],
            "invalid type",
        ),
        (
            &["--models", "tfn", "--model-param", "lmf.rank=2", "--plan"][..],
            "LMF is not among the models this command trains",
        ),
        (
            &["--model-param", "tfn=2", "--plan"][..],
            "expected MODEL.FIELD=VALUE",
        ),
    ] {
        let (code, _, err) = run(args);
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// `--model-param MODEL.FIELD=VALUE`: the field is set in every run of the model (the stored
/// configuration says so), the runs get other keys than the defaults' (nothing is resumed across
/// values), and run.json and the table record the setting.
#[test]
fn a_model_param_sets_the_field_in_every_run_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let smoke = [
        "--profile",
        "smoke",
        "--models",
        "tfn",
        "--variants",
        "nll",
        "--seeds",
        "0",
        "--max-epochs",
        "1",
        "--quiet",
        "--out",
        out,
    ];
    let (code, _, err) = run(&[&smoke[..], &["--model-param", "tfn.post_fusion=8"]].concat());
    assert_eq!(code, 0, "{err}");
    let records = |p: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p.join("results.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let set = records(dir.path());
    assert!(!set.is_empty());
    for r in &set {
        assert_eq!(r["result"]["config"]["model"]["post_fusion"], 8, "{r}");
    }
    let ctx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(
        ctx["model_settings"],
        serde_json::json!(["tfn.post_fusion=8"])
    );
    let table = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    assert!(table.contains("`tfn.post_fusion=8`"), "{table}");
    // the default's runs are other runs: none of the set runs' keys comes back
    let other = tempfile::tempdir().unwrap();
    let plain = smoke.map(|a| {
        if a == out {
            other.path().to_str().unwrap()
        } else {
            a
        }
    });
    let (code, _, err) = run(&plain);
    assert_eq!(code, 0, "{err}");
    let defaults = records(other.path());
    assert_eq!(defaults.len(), set.len());
    for (a, b) in set.iter().zip(&defaults) {
        assert_ne!(a["key"], b["key"]);
        assert_ne!(b["result"]["config"]["model"]["post_fusion"], 8);
    }
}

/// `--time-limit`: a run starts only when its epoch cap × the slowest measured seconds per epoch
/// of its model and variant (else of its model's other variants) fits in what is left; the runs
/// that do not fit are not started, are named on stderr and resume with the next command. The
/// measured run's wall time is doctored in the results file to make the projections exact.
#[test]
fn time_limit_starts_only_the_runs_projected_to_end_within_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let path = dir.path().join("results.jsonl");
    let lines = || std::fs::read_to_string(&path).unwrap().lines().count();
    let smoke = [
        "--profile",
        "smoke",
        "--models",
        "flstm",
        "--max-epochs",
        "1",
    ];
    // one epoch that took 10^6 s: a run of this model is projected at 10^6 s (11.6 days)
    crate::common::one_run_taking(
        dir.path(),
        &[&smoke[..], &["--variants", "nll", "--seeds", "0"]].concat(),
        1e6,
    );
    let base = [&smoke[..], &["--quiet", "--out", out]].concat();

    let nll = [&base[..], &["--variants", "nll", "--seeds", "0,1,2"]].concat();
    // `--plan --time-limit 12d` on `args`: its output (the command succeeds)
    let plan_12d = |args: &[&str]| {
        let (code, plan, err) = run(&[args, &["--plan", "--time-limit", "12d"]].concat());
        assert_eq!(code, 0, "{err}");
        plan
    };
    // `--plan --time-limit` simulates it: in 12 days one worker fits one of the two 10^6 s runs
    // left, two workers fit both; nothing trains
    let plan = plan_12d(&nll);
    assert!(
        plan.contains("1 of the 2 runs not yet in --out would start")
            && plan.contains("1 would not (first: FLSTM NLL seed 2, 16667 min projected)"),
        "{plan}"
    );
    // runs are seed-major: with NLL+SKL beside NLL, the one run that fits is seed 0's NLL+SKL
    // (completing seed 0's pair), so the first not started is seed 1's NLL, not seed 2's
    let plan = plan_12d(
        &[
            &base[..],
            &["--variants", "nll,nll-skl", "--seeds", "0,1,2"],
        ]
        .concat(),
    );
    assert!(
        plan.contains("1 of the 5 runs not yet in --out would start")
            && plan.contains("4 would not (first: FLSTM NLL seed 1, 16667 min projected)"),
        "{plan}"
    );
    let (code, plan, err) = run(&[
        &nll[..],
        &["--plan", "--json", "--jobs", "2", "--time-limit", "12d"],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["time_limit"]["would_start"], 2, "{plan}");
    assert_eq!(plan["time_limit"]["not_started"], 0, "{plan}");
    assert_eq!(lines(), 1, "a plan trains nothing");
    let (code, _, err) = run(&[&nll[..], &["--time-limit", "11d"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("--time-limit 11-00:00:00: 2 runs not started")
            && err.contains("first: FLSTM NLL seed 1, 16667 min projected"),
        "{err}"
    );
    assert_eq!(lines(), 1, "nothing trained");
    // 12 days hold a 10^6 s run: both start
    let (code, _, err) = run(&[&nll[..], &["--time-limit", "12d"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("not started"), "{err}");
    assert_eq!(lines(), 3);

    // NLL+SKL has no run: its projection falls back to FLSTM's other variants, and takes the
    // slowest of them (the mean of the three NLL runs would fit in 11 days)
    let skl = [
        &base[..],
        &[
            "--variants",
            "nll-skl",
            "--seeds",
            "0",
            "--shard",
            "0/1",
            "--json",
        ],
    ]
    .concat();
    for (limit, runs, not_started) in [("11d", 0, 1), ("12d", 1, 0)] {
        let (code, stdout, err) = run(&[&skl[..], &["--time-limit", limit]].concat());
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            (v["runs"].as_u64(), v["not_started"].as_u64()),
            (Some(runs), Some(not_started)),
            "{limit}: {v}"
        );
        assert_eq!(
            err.contains("first: FLSTM NLL+SKL seed 0"),
            not_started == 1,
            "{limit}: {err}"
        );
    }
}

/// `--tables 3,5 --plan`: the plan holds exactly the pairs of Tables 3 and 5 that this build has
/// (Table 3's FLSTM has no IWas row, so none is planned) on MOSEI.
#[test]
fn tables_flag_plans_exactly_the_tables_pairs_on_their_corpus() {
    let (code, stdout, err) = run(&[
        "--tables",
        "3,5",
        "--plan",
        "--json",
        "--models",
        "flstm,mfn",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    // quick profile: 1 seed × 1 grid point; FLSTM 3 variants, MFN 4
    assert_eq!(v["runs"], 3 + 4, "{v}");
    assert_eq!(v["dataset"], "mosei");
}

/// `--tune`: the synergy variants' runs take every combination of the listed weights (an
/// ablation only its own γ), NLL runs are not multiplied.
#[test]
fn tune_multiplies_only_the_synergy_variants_runs() {
    let (code, stdout, err) = run(&[
        "--models",
        "flstm",
        "--variants",
        "nll,nll-smmd,nll-l2,nll-ld",
        "--tune",
        "gamma_l2=1,0.1",
        "--tune",
        "beta=0.01,0.1",
        "--plan",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    // quick profile (1 seed, 1 grid point): NLL 1, SMMD 2×2, +LL2 2×2, +Ld 2 (β only)
    assert_eq!(v["runs"], 1 + 4 + 4 + 2, "{v}");
}

/// `--lr` / `--batch-size` replace the profile's grid: the runs are the product of the given (or
/// the profile's) batch sizes and learning rates, duplicates counted once, for every variant.
#[test]
fn lr_and_batch_size_replace_the_profiles_grid() {
    use neural_synergy::experiments::{grid_with, Profile};
    let plan_runs = |args: &[&str]| {
        let mut a = vec![
            "--models",
            "flstm",
            "--variants",
            "nll,nll-smmd",
            "--plan",
            "--json",
        ];
        a.extend_from_slice(args);
        let (code, stdout, err) = run(&a);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&stdout).unwrap()["runs"].clone()
    };
    // quick: 1 grid point per variant
    assert_eq!(plan_runs(&[]), 2);
    assert_eq!(plan_runs(&["--lr", "5e-4,1e-4,1e-4"]), 2 * 2);
    assert_eq!(
        plan_runs(&["--lr", "5e-4,1e-4", "--batch-size", "32,64"]),
        2 * 4
    );
    // paper: {32, 64} × 5 learning rates; --batch-size 32 keeps the five rates
    assert_eq!(
        plan_runs(&["--profile", "paper", "--seeds", "0", "--batch-size", "32"]),
        2 * 5
    );
    assert_eq!(
        grid_with(Profile::Paper, None, Some(&[1e-4])).unwrap(),
        vec![(32, 1e-4), (64, 1e-4)]
    );
    assert_eq!(
        grid_with(Profile::Quick, None, None).unwrap(),
        Profile::Quick.grid()
    );
    assert!(grid_with(Profile::Quick, Some(&[]), None).is_err());
    assert!(grid_with(Profile::Quick, None, Some(&[f64::NAN])).is_err());
}

/// `--plan`: runs × epoch cap × seconds per epoch, from the embedded table and, once runs of the
/// same data have finished in `--out`, from their measured wall time; nothing is trained.
#[test]
fn plan_costs_runs_from_the_embedded_table_then_from_measured_runs() {
    use neural_synergy::experiments::cost::{MOSI_EPOCH_S, MOSI_TRAIN_CLIPS};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, stdout, err) = run(&[
        "--profile",
        "paper",
        "--models",
        "flstm",
        "--plan",
        "--json",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["runs"],
        3 * 5 * 10,
        "3 variants × 5 seeds × 10 grid points"
    );
    assert_eq!(v["train_clips"], MOSI_TRAIN_CLIPS);
    let (_, nll, syn) = MOSI_EPOCH_S.iter().find(|m| m.0 == "FLSTM").unwrap();
    let want = 50.0 * 60.0 * (nll + 2.0 * syn) / 3600.0;
    let got = v["cpu_hours"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "--plan trains nothing"
    );

    // after a smoke run in the same folder, the smoke plan uses its measured seconds per epoch
    let smoke = [
        "--profile",
        "smoke",
        "--models",
        "flstm",
        "--max-epochs",
        "1",
    ];
    let (code, _, err) = run(&[&smoke[..], &["--quiet", "--out", out]].concat());
    assert_eq!(code, 0, "{err}");
    let (code, stdout, err) = run(&[&smoke[..], &["--plan", "--json", "--out", out]].concat());
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let recs = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    for line in v["lines"].as_array().unwrap() {
        let rec = recs
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|r| r["result"]["config"]["variant"] == line["variant"])
            .unwrap();
        let r = &rec["result"];
        let per_epoch = r["wall_s"].as_f64().unwrap() / r["epochs"].as_f64().unwrap();
        assert!(
            line["source"].as_str().unwrap().starts_with("measured"),
            "{line}"
        );
        assert!((line["epoch_s"].as_f64().unwrap() - per_epoch).abs() < 1e-9);
        assert_eq!(line["runs"], 1);
        // the run is in --out already: counted as finished, nothing left to cost
        assert_eq!(line["finished"], 1, "{line}");
        assert_eq!(line["cpu_hours"], 0.0, "{line}");
        assert!(line["gpu_epoch_s"].is_null(), "no GPU run yet: {line}");
    }
    assert!(v["gpu_hours"].is_null());
    assert_eq!(v["finished"], 3, "{v}");
    // a variant with no finished run takes the mean of the model's other variants' runs
    let (code, stdout, err) = run(&[
        &smoke[..],
        &[
            "--variants",
            "nll,nll-iwas",
            "--plan",
            "--json",
            "--out",
            out,
        ],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    let w: Value = serde_json::from_str(&stdout).unwrap();
    let iwas = w["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["variant"] == "NLL+IWas")
        .unwrap_or_else(|| panic!("{w}"));
    let all: Vec<f64> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["epoch_s"].as_f64().unwrap())
        .collect();
    assert_eq!(all.len(), 3, "{v}");
    let mean = all.iter().sum::<f64>() / 3.0;
    assert!(
        (iwas["epoch_s"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{iwas} vs {mean}"
    );
    assert_eq!(
        iwas["source"], "measured, other variants of FLSTM (3 finished runs)",
        "{iwas}"
    );
    let (_, text, _) = run(&[&smoke[..], &["--plan", "--out", out]].concat());
    assert!(
        text.contains("no run of this data has trained on a GPU"),
        "{text}"
    );

    // a GPU run of each (the same records, as if trained with --device cuda, 10× faster) fills
    // the GPU column and leaves the CPU column to the CPU runs
    let gpu_lines: Vec<String> = recs
        .lines()
        .map(|l| {
            let mut r: Value = serde_json::from_str(l).unwrap();
            r["key"] = Value::from(format!("{}-cuda", r["key"].as_str().unwrap()));
            r["result"]["device"] = Value::from("cuda:0");
            let w = r["result"]["wall_s"].as_f64().unwrap();
            r["result"]["wall_s"] = Value::from(w / 10.0);
            r.to_string()
        })
        .collect();
    std::fs::write(
        dir.path().join("results.jsonl"),
        format!("{recs}{}\n", gpu_lines.join("\n")),
    )
    .unwrap();
    // seeds 0 and 1: seed 0's runs are finished, seed 1's are the ones costed
    let (code, stdout, err) = run(&[
        &smoke[..],
        &["--seeds", "0,1", "--plan", "--json", "--out", out],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    let g: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (g["runs"].clone(), g["finished"].clone()),
        (6.into(), 3.into()),
        "{g}"
    );
    let mut gpu_total = 0.0;
    for (line, before) in g["lines"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["lines"].as_array().unwrap())
    {
        assert_eq!(
            line["epoch_s"], before["epoch_s"],
            "the CPU column ignores GPU runs"
        );
        let cpu = line["epoch_s"].as_f64().unwrap();
        let gpu = line["gpu_epoch_s"].as_f64().unwrap();
        assert!((gpu - cpu / 10.0).abs() < 1e-9, "{gpu} vs {cpu}");
        assert_eq!(line["gpu_runs_measured"], 1);
        assert_eq!(
            (line["runs"].clone(), line["finished"].clone()),
            (2.into(), 1.into())
        );
        let cap = line["epoch_cap"].as_f64().unwrap();
        assert!((line["gpu_hours"].as_f64().unwrap() - gpu * cap / 3600.0).abs() < 1e-12);
        assert!((line["cpu_hours"].as_f64().unwrap() - cpu * cap / 3600.0).abs() < 1e-12);
        gpu_total += line["gpu_hours"].as_f64().unwrap();
    }
    assert!((g["gpu_hours"].as_f64().unwrap() - gpu_total).abs() < 1e-12);
    let (_, text, _) = run(&[&smoke[..], &["--plan", "--out", out]].concat());
    assert!(text.contains("on one GPU for the"), "{text}");
}

/// The smoke profile covers MAGBERT and MIM on the real-text tier (real MOSI transcripts) with the
/// tiny fixture BERT: both train through the generic trainer without failure (needs
/// `SYNERGY_SHARED`). Without an encoder, naming them is a one-line error saying how to fetch one;
/// on the synthetic tier they are not applicable and say why.
#[test]
fn smoke_profile_covers_the_bert_models_on_real_text_with_the_tiny_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, _, err) = run(&[
        "--profile",
        "smoke",
        "--models",
        "magbert",
        "--quiet",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("MAGBERT: not applicable") && err.contains("no words"),
        "{err}"
    );
    let Some(shared) = crate::common::shared() else {
        return;
    };
    let data = shared.join("data");
    let data = data.to_str().unwrap();
    let (code, _, err) = crate::common::run_bin_with(
        env!("CARGO_BIN_EXE_reproduce-paper"),
        &[
            "--profile",
            "smoke",
            "--tier",
            "real-text",
            "--data-dir",
            data,
            "--models",
            "magbert,mim",
            "--text-encoder",
            "/nonexistent/encoder",
            "--quiet",
            "--out",
            out,
        ],
        "",
        &[],
    );
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("fetch-encoder.sh"), "{err}");
    let tiny = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/bert-tiny");
    let (code, stdout, err) = run(&[
        "--profile",
        "smoke",
        "--tier",
        "real-text",
        "--data-dir",
        data,
        "--models",
        "magbert,mim",
        "--variants",
        "nll,nll-smmd",
        "--max-epochs",
        "2",
        "--text-encoder",
        tiny,
        "--json",
        "--quiet",
        "--jobs",
        "2",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let models: Vec<&str> = rows.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["MAGBERT", "MAGBERT", "MIM", "MIM"], "{stdout}");
    for s in v["selected_runs"].as_array().unwrap() {
        assert!(s["result"]["failure"].is_null(), "{s}");
        assert!(s["result"]["valid_score"].as_f64().unwrap().is_finite());
    }
}

/// A GloVe model and a BERT model trained into one real-text folder by separate commands share
/// it: the GloVe model's runs record the data without the BERT token note (their keys do not
/// depend on a tokenizer they never read), `run.json` keeps the note for the BERT rows, the table
/// has both models, and a command naming both resumes every run without training (needs
/// `SYNERGY_SHARED`). Before, the second command replaced the first's `run.json`.
#[test]
fn a_glove_model_joins_a_bert_models_real_text_folder_and_both_resume() {
    let Some(shared) = crate::common::shared() else {
        eprintln!("skipped: SYNERGY_SHARED unset (needs the real MOSI transcripts)");
        return;
    };
    let data = shared.join("data");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let tiny = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/bert-tiny");
    let cmd = |models: &str, extra: &[&str]| {
        let base = [
            "--profile",
            "smoke",
            "--tier",
            "real-text",
            "--data-dir",
            data.to_str().unwrap(),
            "--variants",
            "nll",
            "--max-epochs",
            "1",
            "--quiet",
            "--out",
            out,
            "--models",
            models,
        ];
        run(&[&base[..], extra].concat())
    };
    let (code, _, err) = cmd("mim", &["--text-encoder", tiny]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cmd("flstm", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("described other runs"), "{err}");
    let records: Vec<Value> = std::fs::read_to_string(dir.path().join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    let data_of = |model: &str| {
        records
            .iter()
            .find(|r| r["result"]["config"]["model"]["model"] == model)
            .map(|r| r["data"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (mim, flstm) = (data_of("mim"), data_of("flstm"));
    assert!(mim.contains(neural_synergy::data::TOKEN_NOTE), "{mim}");
    assert!(!flstm.contains(neural_synergy::data::TOKEN_NOTE), "{flstm}");
    assert_eq!(neural_synergy::data::split_token_note(&mim).0, flstm);
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(run_json["data"], mim.as_str());
    assert_eq!(run_json["models"], serde_json::json!(["FLSTM", "MIM"]));
    let table = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    assert!(
        table.contains("| FLSTM") && table.contains("| MIM"),
        "{table}"
    );
    // one command naming both: its keys are the two commands' keys, so nothing trains
    let (code, _, err) = cmd("flstm,mim", &["--text-encoder", tiny]);
    assert_eq!(code, 0, "{err}");
    let lines = std::fs::read_to_string(dir.path().join("results.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 2);
}

/// `compact` drops the predictions of exactly the unselected runs of finished seeds (a seed whose
/// grid is incomplete keeps everything until it completes), and the tables re-render identically.
#[test]
fn compact_drops_only_unselected_runs_of_finished_seeds_and_tables_rerender_identically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // 2 seeds × (NLL + 2 weights × {SKL, SMMD}) = 10 runs
    let (code, _, err) = run(&[
        "--profile",
        "smoke",
        "--models",
        "flstm",
        "--max-epochs",
        "2",
        "--seeds",
        "0,1",
        "--tune",
        "beta=0.01,0.1",
        "--quiet",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{err}");
    let path = dir.path().join("results.jsonl");
    // compaction goes by the stored keys, never recomputed ones (a GPU run's key has its device
    // in it): give every run a key no configuration hashes to
    let rekeyed: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["key"] = Value::from(format!("stored-{i:02}"));
            format!("{v}\n")
        })
        .collect();
    std::fs::write(&path, rekeyed).unwrap();
    let table = || std::fs::read_to_string(dir.path().join("table.json")).unwrap();
    let (code, _, err) = run(&["report", "--from", out]);
    assert_eq!(code, 0, "{err}");
    let before = table();
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 10);
    let field = |l: &str, f: &str| -> Value {
        let v: Value = serde_json::from_str(l).unwrap();
        v["result"]["config"][f].clone()
    };
    // seed 1 of NLL+SKL loses one grid point: incomplete, so nothing of it may be pruned
    let cut = lines
        .iter()
        .position(|l| field(l, "variant") == "NLL+SKL" && field(l, "seed") == 1)
        .unwrap();
    let kept: Vec<&String> = lines
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != cut)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(
        &path,
        kept.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let (code, stdout, err) = run(&["compact", "--from", out]);
    assert_eq!(code, 0, "{err}");
    // seed 0: one of SKL's and one of SMMD's two runs; seed 1: one of SMMD's
    assert_eq!(
        stdout.trim(),
        "dropped the saved predictions of 3 runs",
        "{err}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let r = &v["result"];
        if r["config"]["variant"] == "NLL+SKL" && r["config"]["seed"] == 1 {
            assert!(r["test_predictions"].is_array(), "incomplete seed kept");
        }
        // configuration, metrics and wall time stay
        assert!(r["test"]["mae"].is_f64() && r["wall_s"].is_f64(), "{l}");
    }
    let nulls = text.matches("\"test_predictions\":null").count();
    assert_eq!(nulls, 3);
    // the missing run comes back (as on resume): compacting again prunes the other one of seed 1
    std::fs::write(&path, format!("{text}{}\n", lines[cut])).unwrap();
    let (code, stdout, err) = run(&["compact", "--from", out]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        stdout.trim(),
        "dropped the saved predictions of 1 run",
        "{err}"
    );
    let (code, stdout, _) = run(&["compact", "--from", out]);
    assert_eq!(
        (code, stdout.trim()),
        (0, "dropped the saved predictions of 0 runs")
    );
    let (code, _, err) = run(&["report", "--from", out]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(before, table(), "the tables do not change");
    let v: Value = serde_json::from_str(&table()).unwrap();
    for s in v["selected_runs"].as_array().unwrap() {
        assert!(s["result"]["test_predictions"].is_array(), "{s}");
    }
    // two seeds: paired-t claims, each planning the seeds the paper's delta would need
    let mut planned = 0;
    for c in v["claims"].as_array().unwrap() {
        let m = &c["measured"];
        assert_eq!(m["method"], "paired-t", "{c}");
        let (sd, d) = (
            m["sd"].as_f64().unwrap(),
            c["paper_delta"].as_f64().unwrap(),
        );
        let want = neural_synergy::report::stats::seeds_for_power(sd, d, 0.8, 1000);
        assert_eq!(c["seeds_needed"].as_u64().map(|n| n as usize), want, "{c}");
        planned += usize::from(want.is_some());
    }
    let md = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    assert!(md.contains("| seeds needed |"), "{md}");
    assert_eq!(md.contains("*Seeds needed*"), planned > 0, "{md}");
    // the invariant is that no record is removed: without one β value's runs every cell selects
    // its run at the other value, pruned in one cell of two, and the table says so instead of
    // silently losing its bootstrap and subset cells
    let text = std::fs::read_to_string(&path).unwrap();
    let mut bare = 0;
    for beta in [0.01, 0.1] {
        let narrow = tempfile::tempdir().unwrap();
        std::fs::copy(dir.path().join("run.json"), narrow.path().join("run.json")).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let c = &v["result"]["config"];
                c["variant"] == "NLL" || c["synergy"]["beta"].as_f64() != Some(beta)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(narrow.path().join("results.jsonl"), kept).unwrap();
        let (code, _, err) = run(&["report", "--from", narrow.path().to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let md = std::fs::read_to_string(narrow.path().join("table.md")).unwrap();
        if let Some(i) = md.find(" selected runs have no saved test predictions") {
            bare += md[..i]
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap();
        }
    }
    // one pruned run per (synergy variant, seed) cell, at one of the two values
    assert_eq!(bare, 4);
}

/// `run` (the default subcommand) in a folder of its own: plain progress lines on a non-terminal
/// standard error (each run's start and end with an ETA), the newcomer's summary after the
/// tables, and its default `--out` `runs/PROFILE-DATASET-TIER` (not `results/`) holding
/// `report.html`.
#[test]
fn run_prints_progress_lines_and_a_summary_into_its_own_default_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reproduce-paper"))
        .args([
            "run",
            "--profile",
            "smoke",
            "--models",
            "flstm",
            "--max-epochs",
            "1",
        ])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    for (i, v) in ["NLL", "NLL+SKL", "NLL+SMMD"].iter().enumerate() {
        let start = format!("[{}/3] FLSTM {v} seed 0", i + 1);
        assert!(
            stderr.contains(&format!("{start} b32")),
            "{start}: {stderr}"
        );
    }
    assert_eq!(stderr.matches(": training").count(), 3, "{stderr}");
    assert_eq!(stderr.matches("ETA").count(), 2, "{stderr}");
    assert!(stderr.contains("; done"), "{stderr}");
    let folder = cwd.path().join("runs/smoke-mosi-synthetic");
    for f in [
        "table.md",
        "table.json",
        "report.html",
        "results.jsonl",
        "run.json",
    ] {
        assert!(
            folder.join(f).is_file(),
            "{f} missing in {}",
            folder.display()
        );
    }
    assert!(!cwd.path().join("results").exists(), "wrote into results/");
    let summary = &stdout[stdout
        .find("Summary: what the C-network did to Acc2")
        .unwrap_or_else(|| panic!("no summary: {stdout}"))..];
    assert!(summary.contains("FLSTM"), "{summary}");
    assert_eq!(summary.matches("paper +").count(), 2, "{summary}");
    assert!(summary.contains("Caveat: one seed"), "{summary}");
    assert!(
        summary.contains("runs/smoke-mosi-synthetic/report.html"),
        "{summary}"
    );
    // a second identical run resumes everything and says so
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_reproduce-paper"))
        .args([
            "--profile",
            "smoke",
            "--models",
            "flstm",
            "--max-epochs",
            "1",
        ])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(!err.contains(": training"), "retrained: {err}");
}

/// Every subcommand has its own `--help`, in plain text (no rustdoc link syntax), and the old
/// `--plan`/`--expected` flags still do what `plan`/`expected` do.
#[test]
fn subcommands_have_plain_help_and_the_old_flags_still_work() {
    for sub in ["run", "plan", "report", "compact", "expected", "scoreboard"] {
        let (code, stdout, err) = run(&[sub, "--help"]);
        assert_eq!(code, 0, "{sub}: {err}");
        assert!(stdout.contains("Usage: reproduce-paper"), "{sub}: {stdout}");
        assert!(
            !stdout.contains("[`"),
            "{sub} --help shows rustdoc links: {stdout}"
        );
    }
    let (_, top, _) = run(&["--help"]);
    assert!(!top.contains("[`"), "{top}");
    let (c1, plan_sub, e1) = run(&[
        "plan",
        "--models",
        "flstm",
        "--json",
        "--out",
        "/nonexistent-x",
    ]);
    let (c2, plan_flag, e2) = run(&[
        "--plan",
        "--models",
        "flstm",
        "--json",
        "--out",
        "/nonexistent-x",
    ]);
    assert_eq!((c1, c2), (0, 0), "{e1} {e2}");
    assert_eq!(plan_sub, plan_flag);
    let (_, exp_sub, _) = run(&["expected", "--json"]);
    let (_, exp_flag, _) = run(&["--expected", "--json"]);
    assert_eq!(exp_sub, exp_flag);
    assert!(exp_sub.len() > 1000);
}

/// A second command that trains another seed into the same `--out` keeps the first command's seed
/// in `run.json` and in the table it writes: the folder's context is widened, not replaced (a
/// folder trained by several commands is described by one header).
#[test]
fn a_second_command_into_the_same_out_widens_its_run_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let base = [
        "--profile",
        "smoke",
        "--models",
        "flstm",
        "--variants",
        "nll",
        "--quiet",
        "--out",
        out,
    ];
    for seed in ["0", "1"] {
        let (code, _, err) = run(&[&base[..], &["--seeds", seed]].concat());
        assert_eq!(code, 0, "{err}");
    }
    let ctx: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(ctx["seeds"], serde_json::json!([0, 1]));
    let md = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    assert!(md.contains("seeds [0, 1]"), "{}", &md[..md.len().min(400)]);
    assert!(
        md.contains("| FLSTM | NLL | 2 |"),
        "both runs behind the cell"
    );
    // a third command with the same models and seeds but only another variant: the folder's
    // table still shows every cell (it used to shrink to this command's plan until `report`)
    let (code, _, err) = run(&[
        "--profile",
        "smoke",
        "--models",
        "flstm",
        "--variants",
        "nll-smmd",
        "--seeds",
        "0,1",
        "--quiet",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    assert!(
        md.contains("| FLSTM | NLL | 2 |"),
        "the earlier variant's cell stays: {}",
        &md[..md.len().min(1200)]
    );
}
