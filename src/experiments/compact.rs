//! Compaction of a results folder: the saved predictions of the runs no table can use, then
//! files over a size budget split into archive parts of whole records.
//!
//! Every run saves its test predictions and the predictions under each test-time corruption
//! (≈ 34 KB per TFN run on MOSI), so a grid of 10 points × 5 seeds grows a results file past what
//! belongs in a repository. Only the selected run of each (model, variant, seed) feeds a table.
//! [`prunable`] names the runs whose predictions can go: the unselected runs of a seed that
//! [`select_records`] selects (a seed that has not yet tried every grid point another seed of the
//! cell tried is left out of the selection and keeps everything). Their configuration, metrics,
//! validation scores and wall times stay, so the run-count and run-hours columns do not change.
//!
//! Why the tables re-render identically afterwards: a selection is the maximum of a strict total
//! order (validation score, then the smallest stored key) over the seed's runs, and runs added
//! later only add candidates, so a pruned run never becomes selected again — the selection stays or
//! moves to a new run, which carries its predictions. The invariant is that records are never
//! removed: deleting lines or a shard file, or rendering a narrower plan than the one compacted
//! (e.g. a training call without the `--tune` values the folder holds), can select a pruned run;
//! the report then warns that a selected run has no saved predictions.

use super::{select_records, RunRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The keys of the runs in `records` whose saved predictions no table uses: runs of a selected
/// (model, variant, seed) other than its selected one (whether or not they still carry
/// predictions: a duplicate in another file may). Records are
/// grouped by their tier, profile and data first (a folder may hold runs on other data; each group
/// selects on its own).
pub(crate) fn prunable(records: &[RunRecord]) -> BTreeSet<String> {
    let mut groups: BTreeMap<String, Vec<RunRecord>> = BTreeMap::new();
    for r in records {
        let g = format!("{}|{}|{}", r.tier.name(), r.profile.name(), r.data);
        groups.entry(g).or_default().push(r.clone());
    }
    let mut out = BTreeSet::new();
    for group in groups.values() {
        let selected = select_records(group);
        // the stored keys (a GPU run's key has its device in it; never recompute one)
        let chosen: BTreeSet<&str> = selected.iter().map(|r| r.key.as_str()).collect();
        let decided: BTreeSet<_> = selected
            .iter()
            .map(|r| {
                let c = &r.result.config;
                (c.model.kind(), c.variant, c.seed)
            })
            .collect();
        for r in group {
            let c = &r.result.config;
            if decided.contains(&(c.model.kind(), c.variant, c.seed))
                && !chosen.contains(r.key.as_str())
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

/// What [`compact_dir`] did.
#[derive(Debug, Default)]
pub(crate) struct Compacted {
    /// Runs whose predictions were dropped.
    pub runs: usize,
    /// The results files rewritten, with their size in bytes afterwards.
    pub files: Vec<(PathBuf, u64)>,
    /// The files written by splitting oversized results files (archive parts, then the cut file),
    /// with their sizes in bytes.
    pub split: Vec<(PathBuf, u64)>,
    /// How many of [`Compacted::split`] are new archive parts (the rest: the files cut).
    pub new_parts: usize,
    /// Files still over the size budget: one record alone is larger than it.
    pub oversized: Vec<(PathBuf, u64)>,
}

/// The default size budget of one results file for `compact` (2 MiB: what a repository's
/// checks commonly flag as a large file).
pub(crate) const DEFAULT_MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// The size of file `f` in bytes.
fn size_of(f: &Path) -> Result<u64, super::ExperimentError> {
    std::fs::metadata(f)
        .map(|m| m.len())
        .map_err(|source| super::ExperimentError::Io {
            path: f.display().to_string(),
            source,
        })
}

/// Rewrites the results files of `dir` (`results.jsonl`, the shards' and the archive parts)
/// without the predictions of the [`prunable`] runs, each file atomically and under its writer
/// lock (a training writing into the folder makes it fail, naming the training; see
/// [`super::store`]). Every file is read before any is written (a file that cannot be read stops
/// it with nothing changed). Only the lines that lose predictions change, and they keep every
/// other field, known to this build or not; the others are copied byte for byte. Then every
/// results file still larger than `max_bytes` is split into archive parts of at most that size
/// ([`super::store::split_file`]: whole records, moved byte for byte), so the folder's records —
/// and its tables — stay the same.
pub(crate) fn compact_dir(dir: &Path, max_bytes: u64) -> Result<Compacted, super::ExperimentError> {
    let merged = super::shard::read_dir(dir)?;
    if let Some(u) = merged.unreadable.first() {
        return Err(super::ExperimentError::CompactRefused(u.clone()));
    }
    let drop = prunable(&merged.records);
    let mut done = Compacted::default();
    for f in &merged.files {
        let changed = super::store::edit_lines(f, |r, v| {
            if !(drop.contains(&r.key) && has_predictions(r)) {
                return false;
            }
            strip_prediction_fields(v);
            true
        })?;
        if changed > 0 {
            done.runs += changed;
            done.files.push((f.to_path_buf(), size_of(f)?));
        }
    }
    for f in &merged.files {
        if size_of(f)? <= max_bytes {
            continue;
        }
        let written = super::store::split_file(f, max_bytes)?;
        if written.is_empty() {
            done.oversized.push((f.to_path_buf(), size_of(f)?));
        }
        done.new_parts += written.len().saturating_sub(1);
        for (p, bytes) in written {
            if bytes > max_bytes {
                done.oversized.push((p.clone(), bytes));
            }
            done.split.push((p, bytes));
        }
    }
    Ok(done)
}

/// Drops a record's saved predictions, on its JSON: `result.test_predictions` becomes null and each
/// `result.dropped[].predictions` goes (as this build writes a record without them); every other
/// field stays.
fn strip_prediction_fields(v: &mut serde_json::Value) {
    if let Some(result) = v.get_mut("result").and_then(|r| r.as_object_mut()) {
        if result.contains_key("test_predictions") {
            result.insert("test_predictions".into(), serde_json::Value::Null);
        }
        if let Some(dropped) = result.get_mut("dropped").and_then(|d| d.as_array_mut()) {
            for d in dropped {
                if let Some(o) = d.as_object_mut() {
                    o.remove("predictions");
                }
            }
        }
    }
}
