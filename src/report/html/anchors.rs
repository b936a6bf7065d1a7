//! The page's ids and the links between its tables: GitHub-style heading slugs, the ids of the
//! "runs per cell" rows, and which table is which (runs, claims, other) by its header cells.

use super::blocks::{Block, Table};
use super::render::Ctx;

/// GitHub's heading anchor of a heading's text: lower case, every character but letters, digits,
/// `-`, `_` and spaces dropped, spaces turned into `-` (duplicates get `-1`, `-2`, … in the page).
pub(crate) fn slug(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The id of the "runs per cell" row of (`model`, `variant`) before de-duplication:
/// `runs-<model>-<variant>`, each part lower case with runs of other characters than letters and
/// digits turned into one `-` (`FLSTM`, `NLL+SKL` → `runs-flstm-nll-skl`).
pub(crate) fn runs_id(model: &str, variant: &str) -> String {
    let part = |s: &str| {
        let mut out = String::new();
        for c in s.chars().flat_map(char::to_lowercase) {
            if c.is_alphanumeric() {
                out.push(c);
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        while out.ends_with('-') {
            out.pop();
        }
        out
    };
    format!("runs-{}-{}", part(model), part(variant))
}

/// What a table is, from its header cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TableKind {
    /// "Runs behind each cell": rows get ids.
    Runs,
    /// A table of claims (a `verdict`/`verdicts` column): model/variant cells link to the runs.
    Claims,
    Other,
}

pub(super) fn table_kind(t: &Table) -> TableKind {
    let h = |k: usize| t.header.get(k).map(|s| s.trim());
    if h(0) == Some("Model") && h(1) == Some("Variant") {
        if h(2) == Some("runs") {
            return TableKind::Runs;
        }
        if t.header
            .iter()
            .any(|c| matches!(c.trim(), "verdict" | "verdicts"))
        {
            return TableKind::Claims;
        }
    }
    TableKind::Other
}

pub(super) fn cell_key(model: &str, variant: &str) -> (String, String) {
    (model.trim().to_string(), variant.trim().to_string())
}

/// Gives each row of every "runs per cell" table its id (before any heading takes one).
pub(super) fn assign_runs_ids(blocks: &[Block], ctx: &mut Ctx) {
    for b in blocks {
        match b {
            Block::Table(t) if table_kind(t) == TableKind::Runs => {
                for r in &t.rows {
                    let key = cell_key(&r[0], &r[1]);
                    if !ctx.runs.contains_key(&key) {
                        let id = ctx.unique_id(&runs_id(&key.0, &key.1));
                        ctx.runs.insert(key, id);
                    }
                }
            }
            Block::Quote(inner) => assign_runs_ids(inner, ctx),
            _ => {}
        }
    }
}
