//! The one error type of [`crate::experiments`]: planning, loading a plan's data, training its runs
//! into a results folder, reading and compacting folders. Each variant says what failed and wraps
//! the lower layer's typed error (`#[from]`), so a caller can match on the cause; `anyhow` stays in
//! [`crate::app`].

use super::store::StoreError;
use crate::data::bert::TextEncoderError;
use crate::data::DataError;
use crate::error::ParamError;
use crate::synergy::SynergyError;
use thiserror::Error;

/// Why a plan, a run or a results folder failed.
#[derive(Debug, Error)]
pub enum ExperimentError {
    /// A run of the plan has a configuration outside its domain (checked before anything trains).
    #[error("invalid run: {0}")]
    InvalidRun(#[from] ParamError),
    /// The tier needs `--data-dir` and none was given (`need`: what the folder must hold).
    #[error("--tier {tier} needs --data-dir ({need})")]
    MissingDataDir { tier: &'static str, need: String },
    /// The plan's data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The text encoder of the BERT-based models could not be found, loaded or applied.
    #[error(transparent)]
    TextEncoder(#[from] TextEncoderError),
    /// Training stopped on an error that is not a run's own failure (those are recorded as data).
    #[error(transparent)]
    Training(#[from] SynergyError),
    /// A results file could not be locked, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A results folder could not be listed, or one of its files could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// `compact` found a results file of the folder it could not read, so it left the folder as
    /// it was (rewriting the others could drop the only copy of a selection's predictions).
    #[error("{0}; nothing was compacted")]
    CompactRefused(String),
}
