//! The report layer's errors: [`ReportError`] for loading, building and writing a report,
//! [`PlotError`] for drawing one figure. Their messages name the file or folder at fault; the
//! cause (an I/O or parse error) is their [`std::error::Error::source`], so `{:#}` (as the
//! binaries print errors) reads `writing OUT/forest.png: backend error: …`.

use super::html::HtmlError;
use plotters::drawing::DrawingAreaErrorKind;
use std::path::PathBuf;

/// Why a figure could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Nothing to draw (a forest plot without a line, a curve plot without a curve).
    #[error("{0}")]
    Empty(&'static str),
    /// The drawing backend failed (the PNG could not be written, a font is missing, a layout
    /// does not fit).
    #[error("{0}")]
    Drawing(Box<dyn std::error::Error + Send + Sync>),
}

impl<E: std::error::Error + Send + Sync + 'static> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError::Drawing(Box::new(e))
    }
}

/// Why a report could not be loaded, built or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or folder could not be read, written or created (`action`: `reading`, `writing`,
    /// `creating`).
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `run.json` that does not parse as a run context.
    #[error("{} is not a run context", path.display())]
    RunContext {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A results folder whose results files could not be listed (`reason` names the folder).
    #[error("{reason}")]
    Folder { dir: PathBuf, reason: String },
    /// A results file that could not be read where every file must be (the scoreboard).
    #[error("{0}")]
    Unreadable(String),
    /// A results folder without a finished run on the data its `run.json` describes
    /// (`unreadable`: its results files that could not be read, each named with why).
    #[error(
        "{}: no finished runs on the data of run.json (in results.jsonl or \
         results.shard-K-of-N.jsonl){}",
        dir.display(),
        unreadable.iter().map(|u| format!("; skipped unreadable results file {u}")).collect::<String>()
    )]
    NoRuns {
        dir: PathBuf,
        unreadable: Vec<String>,
    },
    /// A record whose saved predictions do not match the test split of `run.json` (truncated or
    /// edited): refused by name, never silently left out of the analyses that use them.
    #[error(
        "{}: run {key} has {len} saved {what} predictions for the {labels} test labels of \
         run.json; the record is corrupt (delete its line and resume the training to redo that \
         run)",
        dir.display()
    )]
    Corrupt {
        dir: PathBuf,
        /// The run's key.
        key: String,
        /// `test`, or the corruption condition whose predictions are off.
        what: String,
        len: usize,
        labels: usize,
    },
    /// Folders whose run contexts do not belong in one table (`reason` from
    /// [`crate::experiments::RunContext::merge`]; `dirs` the folders, comma-separated).
    #[error("report: {reason} ({dirs})")]
    Merge { reason: String, dirs: String },
    /// A value that could not be serialised as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A figure that could not be drawn into `path`.
    #[error("writing {}", path.display())]
    Plot {
        path: PathBuf,
        #[source]
        source: PlotError,
    },
    /// `report.html` could not be made (an image it inlines).
    #[error(transparent)]
    Html(#[from] HtmlError),
}

impl ReportError {
    /// An [`ReportError::Io`] for `action` on `path`, for `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ReportError {
        let path = path.into();
        move |source| ReportError::Io {
            action,
            path,
            source,
        }
    }
}
