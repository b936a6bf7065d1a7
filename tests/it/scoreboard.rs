//! `reproduce-paper scoreboard`: every claim of the paper against the committed results folders.
use neural_synergy::experiments::expected::expected;
use neural_synergy::report::scoreboard::{community, paper_claims, TIERS};
use serde_json::Value;

/// The committed `results/SCOREBOARD.md` re-derives from the committed folders: the page is
/// regenerated from exactly the folders it names (linked into a scratch `results/`, so folders a
/// developer is still training locally do not enter) and compared byte for byte.
#[test]
fn committed_scoreboard_regenerates_from_the_committed_folders() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(repo.join("results/SCOREBOARD.md")).unwrap();
    let names_after = |heading: &str| -> Vec<String> {
        page.lines()
            .skip_while(|l| !l.starts_with(heading))
            .skip(1)
            .find(|l| !l.trim().is_empty())
            .map(|l| {
                l.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(|s| s.split(':').next().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut folders = names_after("## Folders read");
    assert!(folders.len() >= 10, "{folders:?}");
    let skipped_line = page.lines().find(|l| l.starts_with("Skipped: "));
    if let Some(l) = skipped_line {
        folders.extend(
            l.split('`')
                .skip(1)
                .step_by(2)
                .map(|s| s.split(':').next().unwrap().to_string()),
        );
    }
    folders.sort();
    folders.dedup();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("results");
    std::fs::create_dir(&root).unwrap();
    for f in &folders {
        let src = repo.join("results").join(f);
        assert!(src.is_dir(), "the page names {f}, which is not committed");
        std::os::unix::fs::symlink(&src, root.join(f)).unwrap();
    }
    let out = tmp.path().join("SCOREBOARD.md");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_reproduce-paper"))
        .current_dir(tmp.path())
        .args(["scoreboard", "--from", "results", "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = std::fs::read_to_string(&out).unwrap();
    assert!(
        again == page,
        "results/SCOREBOARD.md is stale: regenerate it with the command at its top (from a \
         checkout of the committed folders)"
    );
    // its facts
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), paper_claims(&expected()).len());
    for (ti, c) in v["counts"].as_array().unwrap().iter().enumerate() {
        assert_eq!(c["tier"], TIERS[ti].name());
        let n = |k: &str| c[k].as_u64().unwrap();
        assert_eq!(n("claims"), rows.len() as u64);
        assert_eq!(
            n("with_verdict"),
            n("supported") + n("contradicted") + n("inconclusive")
        );
        let cells: Vec<&Value> = rows.iter().map(|r| &r["tiers"][ti]).collect();
        assert_eq!(
            n("with_verdict"),
            cells.iter().filter(|c| !c["verdict"].is_null()).count() as u64
        );
        for cell in cells {
            // a cell is measured (folder, seeds, interval) or says why not
            if cell["measured"].is_null() {
                assert!(cell["not_measured"].is_string(), "{cell}");
                assert!(cell["folder"].is_null());
                // a projected cost comes from a folder read, and is its rate × scale × cap
                let cost = &cell["cost"];
                if !cost.is_null() {
                    assert!(cell["command"].is_string(), "{cell}");
                    assert!(folders.contains(&cost["folder"].as_str().unwrap().to_string()));
                    let f = |k: &str| cost[k].as_f64().unwrap();
                    let h = f("epoch_s") * f("scale") * f("epoch_cap") / 3600.0;
                    assert!(
                        (f("hours_per_run") - h).abs() <= 1e-9 * h.max(1.0),
                        "{cost}"
                    );
                }
            } else {
                assert!(folders.contains(&cell["folder"].as_str().unwrap().to_string()));
                assert!(cell["seeds"].as_u64().unwrap() >= 1);
                let m = &cell["measured"];
                assert!(m["lo"].as_f64() <= m["mean"].as_f64());
                assert!(m["mean"].as_f64() <= m["hi"].as_f64());
            }
        }
    }
}

/// Each claim is a paper row pair: variant − baseline of one metric, in the paper's own numbers;
/// Table 4's claims are its corrupted conditions only (its clean column is Table 2's claim);
/// Table 5's baseline is MLE.
#[test]
fn paper_claims_are_the_papers_row_deltas() {
    let e = expected();
    let claims = paper_claims(&e);
    let value = |t: u8, m: &str, v: &str, c: &str, metric: &str| {
        e.iter()
            .find(|x| {
                x.table == t
                    && x.model == m
                    && x.variant == v
                    && x.condition == c
                    && x.metric == metric
            })
            .map(|x| x.value)
    };
    for c in &claims {
        let base = if c.table == 5 { "MLE" } else { "NLL" };
        assert_ne!(c.variant, base);
        let d = value(c.table, &c.model, &c.variant, &c.condition, &c.metric).unwrap()
            - value(c.table, &c.model, base, &c.condition, &c.metric).unwrap();
        assert!((d - c.paper_delta).abs() < 1e-12, "{c:?}");
        assert_eq!(c.table == 4, c.condition != "none", "{c:?}");
    }
    // MAGBERT's Table 4: 2 variants × 3 corrupted conditions; Table 5: 4 rows × 4 metrics
    assert_eq!(claims.iter().filter(|c| c.table == 4).count(), 6);
    assert_eq!(claims.iter().filter(|c| c.table == 5).count(), 16);
    assert_eq!(
        claims.iter().filter(|c| c.table == 6).count(),
        6,
        "3 models × 2 variants, accuracy"
    );
    // the community baselines parse and name models the paper's NLL rows have
    let comm = community();
    assert!(comm.len() >= 8);
    for r in &comm {
        assert!(
            value(
                if r.dataset == "mosi" { 2 } else { 3 },
                &r.model,
                "NLL",
                "none",
                "acc2"
            )
            .is_some()
                || r.model == "LMF"
                || r.model == "MISA",
            "{}",
            r.model
        );
        assert!(r.mae > 0.3 && r.mae < 1.2 && r.corr > 0.5 && r.corr < 1.0);
    }
}
