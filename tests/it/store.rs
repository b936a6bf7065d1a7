//! Results folders as a small database (`src/experiments/store.rs`), tested with real processes:
//! one writer per results file, nothing rewritten on start, unknown fields kept by `compact`,
//! `run.json` before the first run, corrupt records refused by name; and the text-only control.
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_reproduce-paper");

fn run(args: &[&str]) -> (i32, String, String) {
    crate::common::run_bin(BIN, args)
}

/// A small grid: LMF, smoke data, 2 epochs (about a second a run).
fn small(out: &str, seeds: &str) -> Vec<String> {
    [
        "--profile",
        "smoke",
        "--models",
        "lmf",
        "--variants",
        "nll,nll-smmd",
        "--max-epochs",
        "2",
        "--seeds",
        seeds,
        "--quiet",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn keys(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("every line a record")["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Waits until `cond` holds (polling), failing after `secs`.
fn wait_for(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The documented resume workflow (docs/src/results-folders.md) invites a second `reproduce-paper` into a folder that is training
/// (other seeds, or the same command twice). Before, both rewrote `results.jsonl` and records
/// were lost; now the second fails at once naming the first, and the first keeps every record.
/// Repeated trials, real processes.
#[test]
fn a_second_writer_of_one_out_fails_naming_the_holder_and_no_record_is_lost() {
    for trial in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap();
        let results = dir.path().join("results.jsonl");
        let lock = dir.path().join("results.jsonl.lock");
        let mut a = Command::new(BIN)
            .args(small(out, "0,1,2"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(120, "the first writer's lock", || {
            std::fs::metadata(&lock).is_ok_and(|m| m.len() > 0)
        });
        // the same command, and one with other seeds, while the first trains
        let same: Vec<String> = small(out, "0,1,2");
        let other: Vec<String> = small(out, "3");
        for args in [&same, &other] {
            let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            let (code, _, err) = run(&args);
            assert_ne!(code, 0, "trial {trial}: a second writer must not run");
            assert!(
                err.contains("is being written by another process")
                    && err.contains(&format!("pid {}", a.id())),
                "trial {trial}: one line naming the holder: {err}"
            );
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        }
        let status = a.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(a.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(status.success(), "trial {trial}: {stderr}");
        let k = keys(&results);
        assert_eq!(k.len(), 6, "trial {trial}: 3 seeds × 2 variants, each once");
        assert_eq!(k.iter().collect::<BTreeSet<_>>().len(), 6, "no duplicate");
        // after it, the other seeds resume into the folder and every record is still there
        let other: Vec<&str> = other.iter().map(|s| s.as_str()).collect();
        let (code, _, err) = run(&other);
        assert_eq!(code, 0, "{err}");
        let k2 = keys(&results);
        assert_eq!(k2.len(), 8, "trial {trial}: 6 + seed 3's 2 runs");
        assert_eq!(&k2[..6], &k[..], "the first 6 lines untouched");
        assert_eq!(
            std::fs::metadata(&lock).unwrap().len(),
            0,
            "a released lock holds no holder line"
        );
    }
}

/// `run.json` is written before the first run, so a folder still training (or killed in its
/// first grid) renders the runs it has; `compact` meanwhile fails instead of racing the writer.
#[test]
fn a_folder_still_training_renders_and_refuses_compact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let results = dir.path().join("results.jsonl");
    let mut a = Command::new(BIN)
        .args(small(out, "0,1,2,3"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(120, "run.json and a first record", || {
        dir.path().join("run.json").exists() && !keys(&results).is_empty()
    });
    let before = std::fs::read(&results).unwrap();
    let (code, _, err) = run(&["compact", "--from", out]);
    assert_ne!(code, 0, "compact while training must fail");
    assert!(err.contains("is being written by another process"), "{err}");
    let (code, stdout, err) = run(&["report", "--from", out, "--json"]);
    assert_eq!(code, 0, "report of a folder still training: {err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        !v["selected_runs"].as_array().unwrap().is_empty(),
        "its finished runs are in the table"
    );
    // the writer only appended meanwhile
    let after = std::fs::read(&results).unwrap();
    assert!(
        after.starts_with(&before),
        "nothing before the end rewritten"
    );
    assert!(a.wait().unwrap().success());
    assert_eq!(keys(&results).len(), 8);
}

/// A resume with nothing left to train does not rewrite the file, and `compact` keeps fields
/// this build does not know (a record written by a newer or older build loses nothing); lines
/// it does not change are copied byte for byte.
#[test]
fn resume_and_compact_keep_unknown_fields_and_untouched_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let results = dir.path().join("results.jsonl");
    // two grid points, so compact has unselected runs to strip
    let mut args = small(out, "0,1");
    args.extend(["--lr".to_string(), "1e-3,1e-2".to_string()]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    // a future build's fields, at the top level and inside the result
    let text = std::fs::read_to_string(&results).unwrap();
    let edited: String = text
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["from_the_future"] = serde_json::json!({"x": [1, 2]});
            v["result"]["future_metric"] = serde_json::json!(0.25);
            serde_json::to_string(&v).unwrap() + "\n"
        })
        .collect();
    std::fs::write(&results, &edited).unwrap();
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&results).unwrap(),
        edited,
        "a resume with nothing to train leaves the file byte-identical"
    );
    let (code, stdout, err) = run(&["compact", "--from", out]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("dropped the saved predictions of 4 runs"),
        "{stdout}"
    );
    let compacted = std::fs::read_to_string(&results).unwrap();
    let mut stripped = 0;
    for (before, after) in edited.lines().zip(compacted.lines()) {
        let v: Value = serde_json::from_str(after).unwrap();
        assert_eq!(v["from_the_future"]["x"][1], 2, "unknown fields kept");
        assert_eq!(v["result"]["future_metric"], 0.25);
        if v["result"]["test_predictions"].is_null() {
            stripped += 1;
            assert!(v["result"]["dropped"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d.get("predictions").is_none()));
        } else {
            assert_eq!(before, after, "an unchanged line is copied byte for byte");
        }
    }
    assert_eq!(stripped, 4, "2 seeds × 2 variants, one unselected lr each");
    assert_eq!(compacted.lines().count(), 8);
}

/// A record whose saved predictions are fewer than the test labels (truncated or edited) was
/// silently left out of the subset analysis, changing its verdicts; it is now refused by name.
#[test]
fn a_record_with_fewer_predictions_than_test_labels_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let results = dir.path().join("results.jsonl");
    let args = small(out, "0");
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&results).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut v: Value = serde_json::from_str(&lines[1]).unwrap();
    let key = v["key"].as_str().unwrap().to_string();
    v["result"]["test_predictions"]
        .as_array_mut()
        .unwrap()
        .truncate(10);
    lines[1] = serde_json::to_string(&v).unwrap();
    std::fs::write(&results, lines.join("\n") + "\n").unwrap();
    let (code, _, err) = run(&["report", "--from", out]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&key) && err.contains("10 saved test predictions"),
        "{err}"
    );
}

/// `--seeds 0,0` runs seed 0 once.
#[test]
fn repeated_seeds_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = small(out, "0,0");
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("repeats a seed"), "{err}");
    assert_eq!(keys(&dir.path().join("results.jsonl")).len(), 2);
}

/// The text-only control zeroes audio and vision at training, validation and test: each of its
/// three corrupted test passes (T, T+V, T+A zeroed, each with audio and vision zeroed as well)
/// sees all-zero inputs, so their predictions are identical; the report adds the control's
/// multimodal − text-only rows outside the paper's claims; `--tables` runs it beside every
/// model of the tables.
#[test]
fn text_only_control_zeroes_audio_and_vision_and_reports_its_delta() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, stdout, err) = run(&[
        "--profile",
        "smoke",
        "--models",
        "lmf",
        "--variants",
        "nll,nll-text-only",
        "--max-epochs",
        "2",
        "--seeds",
        "0,1",
        "--quiet",
        "--json",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let text = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    let mut text_only = 0;
    for l in text.lines() {
        let r: Value = serde_json::from_str(l).unwrap();
        let dropped = r["result"]["dropped"].as_array().unwrap();
        assert_eq!(dropped.len(), 3);
        let same = dropped
            .iter()
            .all(|d| d["predictions"] == dropped[0]["predictions"]);
        if r["result"]["config"]["variant"] == "NLL text-only" {
            text_only += 1;
            assert!(
                same,
                "every corruption of a text-only run zeroes everything"
            );
            assert_ne!(
                r["result"]["test_predictions"], dropped[0]["predictions"],
                "its clean test pass still sees the text"
            );
        } else {
            assert!(!same, "the multimodal run's corruptions differ");
        }
    }
    assert_eq!(text_only, 2);
    let controls = v["text_only_control"].as_array().unwrap();
    assert_eq!(controls.len(), 2, "Acc2 and MAE for LMF");
    for c in controls {
        assert_eq!(c["variant"], "NLL − NLL text-only");
        assert_eq!(c["measured"]["n"], 2);
        assert!(c["verdict"].is_null(), "a control is not a paper claim");
    }
    assert!(
        v["claims"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["variant"] != "NLL text-only"),
        "no paper claim for the control"
    );
    let md = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    assert!(
        md.contains("Text-only control (NLL − NLL text-only"),
        "{md}"
    );
    // beside a table: every model of Table 6's rows gets the control
    let (code, stdout, err) = run(&[
        "--profile",
        "smoke",
        "--tables",
        "6",
        "--variants",
        "nll,nll-text-only",
        "--plan",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let pairs: BTreeSet<(String, String)> = plan["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["model"].as_str().unwrap().to_string(),
                l["variant"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for m in ["TFN", "MFN", "MISA"] {
        assert!(pairs.contains(&(m.into(), "NLL".into())), "{pairs:?}");
        assert!(
            pairs.contains(&(m.into(), "NLL text-only".into())),
            "{pairs:?}"
        );
    }
    assert_eq!(pairs.len(), 6);
}

/// A results file over `compact --max-file-mib` (the committed MOSEI folders reached 6 MB: every
/// run selected, each with 4,659 test predictions × 4 passes) is split into archive parts of
/// whole records, each within the budget; the folder holds the same lines byte for byte, its
/// tables re-render identically, a resume trains nothing, and new runs still go to
/// `results.jsonl`. A budget below one record is reported, not looped on.
#[test]
fn compact_splits_an_oversized_results_file_into_parts_that_render_and_resume_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let results = dir.path().join("results.jsonl");
    let args = small(out, "0,1,2");
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let before = std::fs::read_to_string(&results).unwrap();
    // the re-rendered tables (a training's own render also states its wall time)
    let (code, _, err) = run(&["report", "--from", out]);
    assert_eq!(code, 0, "{err}");
    let table = std::fs::read_to_string(dir.path().join("table.json")).unwrap();
    let md = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    let longest = before.lines().map(|l| l.len() + 1).max().unwrap();
    // room for two records per file, not three
    let budget = 2 * longest + 10;
    assert!(before.len() > 2 * budget, "the file must need splitting");
    let mib = format!("{}", budget as f64 / (1024.0 * 1024.0));
    let (code, stdout, err) = run(&["compact", "--from", out, "--max-file-mib", &mib]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("new archive part"), "{stdout}\n{err}");
    let budget_bytes = (budget as f64 / (1024.0 * 1024.0) * 1024.0 * 1024.0).floor() as usize;
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("results.") && n.ends_with(".jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    assert!(
        files.iter().any(|f| f.starts_with("results.part-")),
        "{files:?}"
    );
    let mut lines_after: Vec<String> = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert!(
            text.len() <= budget_bytes,
            "{f}: {} > {budget_bytes}",
            text.len()
        );
        assert!(text.ends_with('\n'), "{f} ends on a whole record");
        lines_after.extend(text.lines().map(String::from));
    }
    let mut lines_before: Vec<String> = before.lines().map(String::from).collect();
    lines_before.sort();
    lines_after.sort();
    assert_eq!(lines_before, lines_after, "the same records, byte for byte");
    // the tables re-render identically from the parts
    let (code, _, err) = run(&["report", "--from", out]);
    assert_eq!(code, 0, "{err}");
    let same = |f: &str, want: &str| std::fs::read_to_string(dir.path().join(f)).unwrap() == want;
    assert!(
        same("table.json", &table),
        "table.json re-renders identically"
    );
    assert!(same("table.md", &md), "table.md re-renders identically");
    // a resume finds every run done (in the parts too) and trains nothing
    let kept = std::fs::read_to_string(&results).unwrap();
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&results).unwrap(),
        kept,
        "nothing retrained"
    );
    // a new seed still appends to results.jsonl, and the folder renders all four seeds
    let more = small(out, "0,1,2,3");
    let more: Vec<&str> = more.iter().map(|s| s.as_str()).collect();
    let (code, _, err) = run(&more);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        keys(&results).len(),
        kept.lines().count() + 2,
        "seed 3's 2 runs appended"
    );
    // a budget below one record: reported, nothing lost
    let (code, _, err) = run(&["compact", "--from", out, "--max-file-mib", "0.000001"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("one record alone is larger"), "{err}");
    let mut total = 0;
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        if n.starts_with("results.") && n.ends_with(".jsonl") {
            total += std::fs::read_to_string(dir.path().join(&n))
                .unwrap()
                .lines()
                .count();
        }
    }
    assert_eq!(total, 8, "4 seeds × 2 variants, each once");
    let (code, _, err) = run(&["compact", "--from", out, "--max-file-mib", "0"]);
    assert_ne!(code, 0);
    assert!(err.contains("--max-file-mib must be a positive"), "{err}");
}
