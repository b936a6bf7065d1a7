//! Reading results folders for a report: one folder's `run.json` and the merge of its results
//! files ([`read_folder`], which the scoreboard reads each folder with too), and the folders of
//! one table checked and merged into one ([`load_folders`], `reproduce-paper report --from`).

use super::error::ReportError;
use super::tables::RunContext;
use crate::experiments::RunRecord;
use std::path::{Path, PathBuf};

/// One results folder: its run context and the runs on the data `run.json` describes.
#[derive(Debug)]
pub(crate) struct Folder {
    pub(crate) ctx: RunContext,
    /// The runs of the folder's results files on `ctx`'s tier, profile and data (a folder reused
    /// for another dataset or tier keeps the other runs' lines; they must not mix into its table).
    pub(crate) records: Vec<RunRecord>,
    /// The results files that could not be read, each named with why.
    pub(crate) unreadable: Vec<String>,
    /// Runs found in more than one of the folder's results files (kept once).
    pub(crate) duplicates: usize,
}

/// Reads `dir/run.json` and merges `dir`'s results files (`results.jsonl` and every shard's
/// `results.shard-K-of-N.jsonl`, [`crate::experiments::shard::read_dir`]), keeping the runs on
/// the data of `run.json`.
pub(crate) fn read_folder(dir: &Path) -> Result<Folder, ReportError> {
    let path = dir.join("run.json");
    let text = std::fs::read_to_string(&path).map_err(ReportError::io("reading", &path))?;
    let ctx: RunContext =
        serde_json::from_str(&text).map_err(|source| ReportError::RunContext { path, source })?;
    let merged = crate::experiments::shard::read_dir(dir).map_err(|e| ReportError::Folder {
        dir: dir.to_path_buf(),
        reason: format!("{e:#}"),
    })?;
    let mut records = merged.records;
    records.retain(|r| {
        r.tier == ctx.tier && r.profile == ctx.profile && crate::data::same_data(&r.data, &ctx.data)
    });
    Ok(Folder {
        ctx,
        records,
        unreadable: merged.unreadable,
        duplicates: merged.duplicates,
    })
}

/// The results folders of one table, loaded ([`load_folders`]): `ctx`, the folders' run
/// contexts merged ([`RunContext::merge`]); `records`, every run once (a run found in several
/// files or folders: one copy), ordered by key; `warnings`, what heads the table (each results
/// file skipped as unreadable, named with why, then an incomplete plan); `duplicates`, how many
/// runs appeared in more than one results file; `sources`, the folders' names when there are
/// several (a combined table), else empty.
#[derive(Debug)]
pub struct Loaded {
    pub ctx: RunContext,
    pub records: Vec<RunRecord>,
    pub warnings: Vec<String>,
    pub duplicates: usize,
    pub sources: Vec<String>,
}

/// Loads the results folders `dirs` of one table (several: folders on the same data, e.g. one
/// model per folder; their contexts must agree, [`RunContext::merge`]). An unreadable results
/// file is skipped and named in `Loaded::unreadable`; a folder without a finished run on its
/// data ([`ReportError::NoRuns`]) or with a record whose saved predictions do not match its test
/// split ([`ReportError::Corrupt`]) is refused.
pub fn load_folders(dirs: &[PathBuf]) -> Result<Loaded, ReportError> {
    let mut contexts = Vec::new();
    let mut records = Vec::new();
    let mut unreadable = Vec::new();
    let mut duplicates = 0;
    for dir in dirs {
        let folder = read_folder(dir)?;
        if folder.records.is_empty() {
            return Err(ReportError::NoRuns {
                dir: dir.clone(),
                unreadable: folder.unreadable,
            });
        }
        unreadable.extend(folder.unreadable);
        duplicates += folder.duplicates;
        check_predictions(dir, &folder.ctx, &folder.records)?;
        records.extend(folder.records);
        contexts.push(folder.ctx);
    }
    let ctx = RunContext::merge(&contexts).map_err(|reason| ReportError::Merge {
        reason,
        dirs: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    // one copy of a run found in several folders (the same key)
    records.sort_by(|a, b| a.key.cmp(&b.key));
    let before = records.len();
    records.dedup_by(|a, b| a.key == b.key);
    duplicates += before - records.len();
    let mut warnings: Vec<String> = unreadable
        .iter()
        .map(|u| format!("skipped unreadable results file {u}"))
        .collect();
    if let Some(planned) = ctx.planned_runs.filter(|p| records.len() < *p) {
        warnings.push(format!(
            "incomplete: {} of the {planned} planned runs are present (a training or shards still \
             running, failed or unreadable); the table covers those",
            records.len()
        ));
    }
    let sources = if dirs.len() > 1 {
        dirs.iter().map(|d| d.display().to_string()).collect()
    } else {
        Vec::new()
    };
    Ok(Loaded {
        ctx,
        records,
        warnings,
        duplicates,
        sources,
    })
}

/// Refuses a record whose saved predictions (test, and each corruption condition's) do not
/// number the test labels of `ctx`: it is corrupt (truncated or edited), and is named rather
/// than silently left out of the analyses that use them.
fn check_predictions(
    dir: &Path,
    ctx: &RunContext,
    records: &[RunRecord],
) -> Result<(), ReportError> {
    let n = ctx.test_labels.len();
    for r in records {
        let lens = r
            .result
            .test_predictions
            .iter()
            .map(|p| ("test", p.len()))
            .chain(r.result.dropped.iter().filter_map(|d| {
                d.predictions
                    .as_ref()
                    .map(|p| (d.condition.as_str(), p.len()))
            }));
        for (what, len) in lens {
            if len != n {
                return Err(ReportError::Corrupt {
                    dir: dir.to_path_buf(),
                    key: r.key.clone(),
                    what: what.to_string(),
                    len,
                    labels: n,
                });
            }
        }
    }
    Ok(())
}
