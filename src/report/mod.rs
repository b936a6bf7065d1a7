//! Reports: what a results folder's runs show, as markdown, JSON, CSV, PNG figures and one
//! self-contained HTML page.
//!
//! The entry point is [`Report`]: [`load_folders`] reads the results folders of one table
//! (`run.json` and the results files, checked and merged), [`Report::build`] makes the
//! report once from the runs, and [`Report::write`] writes `table.md`, `table.json`, `table.csv`,
//! the [`Figure`]s and `report.html` into a folder. Errors are [`ReportError`] (and [`PlotError`]
//! for one figure).
//!
//! The pieces, one per section of the report: `tables` (the measured-vs-paper tables, the CSV),
//! [`claims`] (paired deltas, verdicts, Holm), `corruption` (Table 4), [`robustness`] (graded
//! robustness curves), `subsets` (per test subset), [`tuning`] (the tuning budget),
//! [`prediction_pid`] (the synergy the predictions use), `paper_tables` (the paper's layout),
//! `summary` (the newcomer's lines), `html` (`report.html`); [`stats`], [`improvement`] and
//! `forest` are the statistics and the forest plot they share; [`scoreboard`] is the one page of
//! every claim over many folders. The rendering pieces without a bracket link are
//! crate-private.

mod build;
pub mod claims;
pub(crate) mod corruption;
mod error;
mod figure;
pub(crate) mod forest;
pub(crate) mod html;
pub mod improvement;
mod load;
mod panels;
pub(crate) mod paper_tables;
pub mod prediction_pid;
pub mod robustness;
pub mod scoreboard;
pub mod stats;
pub(crate) mod subsets;
pub(crate) mod summary;
pub(crate) mod tables;
pub mod tuning;

pub use build::Report;
pub use corruption::CorruptionClaim;
pub use error::{PlotError, ReportError};
pub use figure::Figure;
pub use html::HtmlError;
pub use load::{load_folders, Loaded};
pub use panels::{plot_panels, smooth};
pub use subsets::SubsetCell;

/// A markdown table from a header and rows (the crate's one table writer, beside the layers so
/// that those below this one print tables without importing it).
pub(crate) use crate::markdown::table as markdown_table;

#[cfg(test)]
mod tests;
