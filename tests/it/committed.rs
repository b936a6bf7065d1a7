//! Every committed results folder re-renders byte for byte: `reproduce-paper report --from` on a
//! copy of its `run.json` and results files writes the committed `table.md` and `table.csv`
//! (combined folders: from the source folders their `table.md` names). A change to the report
//! code that changes a committed table fails here until the folders are re-rendered (the command
//! is in the message) — so the committed tables never drift from the code that reads them.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed folders: those under `results/` that git tracks (a folder still training in
/// this checkout is not committed and is left out).
fn committed_folders() -> Vec<String> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "results"])
        .current_dir(repo())
        .output();
    let listed = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            eprintln!("committed: skipped (not a git checkout: the committed folders are unknown)");
            return Vec::new();
        }
    };
    let mut dirs: Vec<String> = listed
        .lines()
        .filter_map(|l| l.strip_prefix("results/"))
        .filter_map(|l| l.split_once('/').map(|(d, _)| d.to_string()))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The source folders a combined `table.md` names (`Combined from N results folders: `a`, `b`.`).
fn sources(md: &str) -> Option<Vec<String>> {
    let line = md.lines().find(|l| l.contains("Combined from"))?;
    let list = line.split_once("results folders")?.1;
    let list = list.split_once(':')?.1;
    let list = list.split(". The claims").next()?;
    Some(
        list.split(',')
            .map(|s| s.trim().trim_matches('`').to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

fn copy_folder(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "run.json" || (name.starts_with("results") && name.ends_with(".jsonl")) {
            std::fs::copy(e.path(), dst.join(&name)).unwrap();
        }
    }
}

#[test]
fn every_committed_results_folder_rerenders_byte_for_byte() {
    let folders = committed_folders();
    if folders.is_empty() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut stale = Vec::new();
    let mut checked = 0;
    for f in &folders {
        let src = repo().join("results").join(f);
        let Ok(want_md) = std::fs::read_to_string(src.join("table.md")) else {
            continue;
        };
        let want_csv = std::fs::read_to_string(src.join("table.csv")).unwrap_or_default();
        let mut args: Vec<String> = vec!["report".into()];
        let out = root.join("results").join(f);
        if src.join("run.json").exists() {
            copy_folder(&src, &out);
            args.extend(["--from".into(), format!("results/{f}")]);
        } else {
            let Some(list) = sources(&want_md) else {
                panic!("results/{f} has neither run.json nor the source folders in its table.md");
            };
            for s in &list {
                let name = s.trim_start_matches("results/");
                let dst = root.join("results").join(name);
                if !dst.exists() {
                    copy_folder(&repo().join("results").join(name), &dst);
                }
                args.extend(["--from".into(), s.clone()]);
            }
            args.extend(["--out".into(), format!("results/{f}")]);
        }
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_reproduce-paper"))
            .args(&args)
            .current_dir(root)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "report on results/{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got_md = std::fs::read_to_string(out.join("table.md")).unwrap();
        let got_csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
        if got_md != want_md || got_csv != want_csv {
            let first = got_md
                .lines()
                .zip(want_md.lines())
                .position(|(a, b)| a != b)
                .map_or("the length".to_string(), |i| format!("line {}", i + 1));
            stale.push(format!("results/{f} (table.md differs at {first})"));
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} committed folders with tables"
    );
    assert!(
        stale.is_empty(),
        "committed tables no longer re-render identically: {}. If the report change is meant, \
         re-render them from a checkout of the committed folders: `reproduce-paper report --from \
         results/F` (combined folders: the command in results/README.md)",
        stale.join("; ")
    );
}
