//! Compaction of a results folder: the saved predictions of the runs no table can use.
//!
//! Every run saves its test predictions and the predictions under each test-time corruption
//! (≈ 34 KB per TFN run on MOSI), so a grid of 10 points × 5 seeds grows a results file past what
//! belongs in a repository. Only the selected run of each (model, variant, seed) feeds a table.
//! [`prunable`] names the runs whose predictions can go: the unselected runs of a seed whose grid
//! search is complete (a seed still running keeps everything: its selection is not known yet).
//! Their configuration, metrics, validation scores and wall times stay, so the run-count and
//! run-hours columns do not change.
//!
//! Why the tables re-render identically afterwards: a complete seed's selection is the best
//! validation score among its runs (ties to the smallest key); runs added later only add
//! candidates, so a pruned run never becomes selected again — the selection either stays or moves
//! to a new run, which carries its predictions.

use super::{run_key, select, RunRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The keys of the runs in `records` whose saved predictions no table uses: runs of a complete
/// (model, variant, seed) other than its selected one, that still carry predictions. Records are
/// grouped by their tier, profile and data first (a folder may hold runs on other data; each group
/// selects on its own).
pub fn prunable(records: &[RunRecord]) -> BTreeSet<String> {
    let mut groups: BTreeMap<String, Vec<RunRecord>> = BTreeMap::new();
    for r in records {
        let g = format!("{}|{}|{}", r.tier.name(), r.profile.name(), r.data);
        groups.entry(g).or_default().push(r.clone());
    }
    let mut out = BTreeSet::new();
    for group in groups.values() {
        let (tier, profile, data) = (group[0].tier, group[0].profile, group[0].data.clone());
        let selected = select(group);
        let chosen: BTreeSet<String> = selected
            .iter()
            .map(|s| run_key(tier, profile, &data, &s.result.config))
            .collect();
        let decided: BTreeSet<_> = selected
            .iter()
            .map(|s| (s.model, s.variant, s.seed))
            .collect();
        for r in group {
            let c = &r.result.config;
            if decided.contains(&(c.model.kind(), c.variant, c.seed))
                && !chosen.contains(&r.key)
                && has_predictions(r)
            {
                out.insert(r.key.clone());
            }
        }
    }
    out
}

fn has_predictions(r: &RunRecord) -> bool {
    r.result.test_predictions.is_some() || r.result.dropped.iter().any(|d| d.predictions.is_some())
}

/// Drops the saved predictions (clean and under corruption) of `r`.
pub fn strip_predictions(r: &mut RunRecord) {
    r.result.test_predictions = None;
    for d in &mut r.result.dropped {
        d.predictions = None;
    }
}

/// What [`compact_dir`] did.
#[derive(Debug, Default)]
pub struct Compacted {
    /// Runs whose predictions were dropped.
    pub runs: usize,
    /// The results files rewritten, with their size in bytes afterwards.
    pub files: Vec<(PathBuf, u64)>,
}

/// Rewrites the results files of `dir` (`results.jsonl` and the shards') without the predictions
/// of the [`prunable`] runs, each file atomically. Fails, changing nothing, when a results file
/// cannot be read. Must not run while a training writes into `dir` (its appends could be lost).
pub fn compact_dir(dir: &Path) -> anyhow::Result<Compacted> {
    let merged = super::shard::read_dir(dir)?;
    if let Some(u) = merged.unreadable.first() {
        anyhow::bail!("{u}; nothing was compacted");
    }
    let drop = prunable(&merged.records);
    let mut done = Compacted::default();
    for f in &merged.files {
        let mut recs = super::read_results(f)?;
        let mut changed = 0;
        for r in &mut recs {
            if drop.contains(&r.key) && has_predictions(r) {
                strip_predictions(r);
                changed += 1;
            }
        }
        if changed > 0 {
            super::rewrite(f, &recs)?;
            done.runs += changed;
            done.files.push((f.clone(), std::fs::metadata(f)?.len()));
        }
    }
    Ok(done)
}
