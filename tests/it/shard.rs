//! A sharded run merged by `reproduce-paper report` equal to the unsharded run (the partition's
//! facts are unit tests beside `experiments/shard.rs`).
use serde_json::Value;

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
