//! What the board is made from: every claim of the paper (from the expected tables) and the
//! results folders under the board's root, each read as every report reads a folder.

use super::{PaperClaim, Source};
use crate::experiments::expected::Expected;
use crate::report::error::ReportError;
use crate::train::Variant;
use std::path::Path;

/// The conditions of Table 4 whose deltas are robustness claims ("none" is Table 2's clean claim).
const TABLE4_CONDITIONS: [&str; 3] = ["T", "T+V", "T+A"];

/// Every claim of the paper, in table order: Tables 2, 3, 5, 6 (clean; one claim per metric the
/// row pair reports), then Table 4's corrupted conditions.
pub fn paper_claims(expected: &[Expected]) -> Vec<PaperClaim> {
    let mut out = Vec::new();
    for table in [2u8, 3, 4, 5, 6] {
        let base_name = Variant::Nll.name_in_table(table);
        for e in expected.iter().filter(|e| e.table == table) {
            if e.variant == base_name {
                continue;
            }
            let robustness = table == 4;
            if robustness != TABLE4_CONDITIONS.contains(&e.condition.as_str()) {
                continue; // Table 4's clean column is Table 2's claim; others are clean only
            }
            let Some(base) = expected.iter().find(|b| {
                b.table == table
                    && b.model == e.model
                    && b.variant == base_name
                    && b.condition == e.condition
                    && b.metric == e.metric
            }) else {
                continue;
            };
            out.push(PaperClaim {
                table,
                dataset: e.dataset.clone(),
                model: e.model.clone(),
                variant: e.variant.clone(),
                condition: e.condition.clone(),
                metric: e.metric.clone(),
                paper_delta: e.value - base.value,
            });
        }
    }
    out
}

/// Reads the results folders directly under `root` (each with a `run.json`, read as every report
/// reads a folder: [`crate::report::load::read_folder`]); folders without one (combined tables,
/// notes) or without a finished run on their data are listed as skipped with the reason. A
/// results file that cannot be read fails the whole board ([`ReportError::Unreadable`]).
pub(crate) fn read_sources(root: &Path) -> Result<(Vec<Source>, Vec<String>), ReportError> {
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .map_err(ReportError::io("reading", root))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    dirs.sort_by_key(|e| e.file_name());
    let mut sources = Vec::new();
    let mut skipped = Vec::new();
    for d in dirs {
        let name = d.file_name().to_string_lossy().to_string();
        if !d.path().join("run.json").exists() {
            skipped.push(format!(
                "{name}: no run.json (a combined table or not a results folder)"
            ));
            continue;
        }
        let folder = crate::report::load::read_folder(&d.path())?;
        if let Some(u) = folder.unreadable.into_iter().next() {
            return Err(ReportError::Unreadable(u));
        }
        if folder.records.is_empty() {
            skipped.push(format!(
                "{name}: no finished runs on the data of its run.json"
            ));
            continue;
        }
        let ctx = folder.ctx;
        sources.push(Source {
            name,
            tier: ctx.tier,
            dataset: ctx.dataset_or_mosi(),
            profile: ctx.profile,
            selected: crate::experiments::select(&folder.records),
            task: ctx.task,
            test_labels: ctx.test_labels,
            pid_codes: ctx.pid_codes,
        });
    }
    Ok((sources, skipped))
}
