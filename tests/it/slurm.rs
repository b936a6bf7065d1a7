//! The job-array workflow on a real Slurm (slurmctld + slurmd + munge): `scripts/slurm/submit.sh`
//! runs a 3-task array of the smoke grid and the report job; the merged table equals an unsharded
//! run; a shard cancelled mid-run and resubmitted finishes without redoing finished runs.
//!
//! Needs a cluster: `scripts/slurm/local-cluster.sh start` (what `.ci/run` does) and
//! `NEURAL_SYNERGY_SLURM=1` with `SLURM_CONF` exported. Without `NEURAL_SYNERGY_SLURM` the tests
//! skip and say why; with it, a cluster that does not answer is a failure.
use crate::shard::{assert_same_tables, SMALL_GRID};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn cluster() -> bool {
    if std::env::var_os("NEURAL_SYNERGY_SLURM").is_none() {
        eprintln!(
            "skipping: NEURAL_SYNERGY_SLURM is unset (start a local cluster with \
             scripts/slurm/local-cluster.sh start, export the SLURM_CONF it prints and \
             NEURAL_SYNERGY_SLURM=1)"
        );
        return false;
    }
    let out = Command::new("sinfo").args(["-h", "-o", "%a"]).output();
    let ok = out.as_ref().is_ok_and(|o| o.status.success());
    assert!(ok, "NEURAL_SYNERGY_SLURM is set but sinfo fails: {out:?}");
    true
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until no task of `job` is pending or running, then returns each task's final state.
fn wait(job: &str, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let q = Command::new("squeue")
            .args(["-h", "-j", job, "-o", "%T"])
            .output()
            .unwrap();
        let active = String::from_utf8_lossy(&q.stdout)
            .lines()
            .any(|s| !s.trim().is_empty());
        if !active {
            break;
        }
        assert!(
            start.elapsed() < limit,
            "job {job} still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = sh(Command::new("scontrol").args(["show", "job", "-o", job]));
    out.lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("JobState="))
        })
        .map(str::to_string)
        .collect()
}

/// Submits `reproduce-paper ARGS` as an array of `n` shards plus the report job.
fn submit(n: usize, out: &Path, args: &[&str]) -> (String, String) {
    submit_with(n, out, "", args)
}

/// [`submit`] with extra sbatch options for both jobs (`submit.sh -s`).
fn submit_with(n: usize, out: &Path, sbatch: &str, args: &[&str]) -> (String, String) {
    let ids = sh(Command::new(repo().join("scripts/slurm/submit.sh"))
        .args(["-n", &n.to_string(), "-o", out.to_str().unwrap()])
        .args(if sbatch.is_empty() {
            vec![]
        } else {
            vec!["-s", sbatch]
        })
        .arg("--")
        .args(args)
        .env("REPRODUCE_PAPER", env!("CARGO_BIN_EXE_reproduce-paper")));
    let mut it = ids.split_whitespace().map(str::to_string);
    (it.next().unwrap(), it.next().unwrap())
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn slurm_job_array_of_three_shards_merges_to_the_unsharded_table() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (array, report) = submit(3, dir.path(), &SMALL_GRID);
    // meanwhile, the same grid unsharded
    let whole = tempfile::tempdir().unwrap();
    let (code, _, err) = crate::common::run_bin(
        env!("CARGO_BIN_EXE_reproduce-paper"),
        &[
            &SMALL_GRID[..],
            &["--quiet", "--out", whole.path().to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    let states = wait(&array, Duration::from_secs(600));
    if states != ["COMPLETED"; 3] {
        let _ = Command::new("scancel").arg(&report).status();
    }
    assert_eq!(states, ["COMPLETED"; 3], "array {array}");
    let states = wait(&report, Duration::from_secs(300));
    assert_eq!(states, ["COMPLETED"], "report job {report}");
    for k in 0..3 {
        let f = dir.path().join(format!("results.shard-{k}-of-3.jsonl"));
        assert_eq!(lines(&f).len(), 2, "{}", f.display());
    }
    assert_same_tables(whole.path(), dir.path());
}

#[test]
fn slurm_shard_cancelled_mid_run_and_resubmitted_skips_finished_runs() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // one shard holding the whole grid (6 runs of ≥ 2 s each), cancelled after its first run
    let grid = [
        "--profile",
        "smoke",
        "--models",
        "flstm,lmf",
        "--max-epochs",
        "4",
    ];
    let (array, report) = submit(1, dir.path(), &grid);
    let file = dir.path().join("results.shard-0-of-1.jsonl");
    let start = Instant::now();
    while lines(&file).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no run finished"
        );
        let q = sh(Command::new("squeue").args(["-h", "-j", &array, "-o", "%T"]));
        assert!(
            !q.trim().is_empty() || !lines(&file).is_empty(),
            "job {array} ended without a finished run: {:?}",
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("slurm-"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sh(Command::new("scancel").arg(&array));
    let states = wait(&array, Duration::from_secs(120));
    assert_eq!(states, ["CANCELLED"], "array {array}");
    // the report job's dependency can never be met now: it is cancelled (or pending forever)
    let _ = Command::new("scancel").arg(&report).status();
    let before = lines(&file);
    let finished: Vec<&String> = before
        .iter()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .collect();
    assert!(
        !finished.is_empty() && finished.len() < 6,
        "cancelled between runs 1 and 6: {} lines",
        before.len()
    );
    let (array2, report2) = submit(1, dir.path(), &grid);
    assert_eq!(wait(&array2, Duration::from_secs(600)), ["COMPLETED"]);
    assert_eq!(wait(&report2, Duration::from_secs(300)), ["COMPLETED"]);
    let after = lines(&file);
    assert_eq!(after.len(), 6, "every run once, no duplicates");
    let keys: std::collections::BTreeSet<String> = after
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].to_string())
        .collect();
    assert_eq!(keys.len(), 6, "no run recorded twice");
    for l in &finished {
        assert!(after.contains(l), "a finished run was redone or changed");
    }
    assert!(dir.path().join("table.csv").exists());
}

#[test]
fn slurm_task_with_a_time_limit_starts_only_the_runs_that_fit_in_what_is_left() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let grid = [
        "--profile",
        "smoke",
        "--models",
        "flstm",
        "--variants",
        "nll",
        "--max-epochs",
        "1",
    ];
    // one finished run whose epoch took 10^6 s: every FLSTM run is projected at 10^6 s
    crate::common::one_run_taking(dir.path(), &[&grid[..], &["--seeds", "0"]].concat(), 1e6);
    // a 10-minute job: the task passes what is left of it as --time-limit and starts nothing
    let (array, report) = submit_with(
        1,
        dir.path(),
        "--time=10",
        &[&grid[..], &["--seeds", "0,1"]].concat(),
    );
    assert_eq!(
        wait(&array, Duration::from_secs(300)),
        ["COMPLETED"],
        "array {array}"
    );
    let _ = wait(&report, Duration::from_secs(300));
    let log = std::fs::read_to_string(dir.path().join(format!("slurm-{array}_0.out"))).unwrap();
    assert!(
        log.contains("reproduce.sbatch: --time-limit ")
            && log.contains("2 runs not started, each projected to end after the limit"),
        "{log}"
    );
    assert!(
        lines(&dir.path().join("results.shard-0-of-1.jsonl")).is_empty(),
        "{log}"
    );
}
