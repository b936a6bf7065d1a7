//! Reference estimators (pure `ndarray`, `f64`). They are the oracle the Candle training path is
//! checked against. One file per family; each function's rustdoc states its formula and convention.
//!
//! Conventions shared by all estimators:
//! * samples are the **rows** of an `n × d` matrix;
//! * every input is validated first: empty arrays, NaN/Inf, mismatched dimensions and parameters
//!   outside their domain give a typed `EstimatorError`.

pub(crate) mod bounds;
pub mod closed_form;
pub(crate) mod kdtree;
pub(crate) mod kernel;
pub(crate) mod kl;
pub(crate) mod kmeans;
pub(crate) mod kurtosis;
pub(crate) mod linalg;
pub(crate) mod mine;
pub(crate) mod mmd;
pub mod pid;

pub use bounds::{dv_bound, dv_nwj, log_mean_exp, nwj_bound, DvNwj};
pub use kernel::{
    median_bandwidth, median_bandwidth_or_positive, median_bandwidths,
    median_bandwidths_or_positive, pairwise_sq_dists, Bandwidths, MEDIAN_SCALES,
};
pub use kl::{gaussian_kl, knn_kl};
pub use kmeans::{KMeans, KMeansParams};
pub use kurtosis::{
    mardia, mardia_kurtosis, mardia_z, regularised_kurtosis, KurtosisStep, Mardia,
    StreamingKurtosis, StreamingKurtosisParams,
};
pub use mine::{mine_kl, MineParams, MineResult};
pub use mmd::{mmd2, MmdVariant};
pub use pid::{
    pid_discrete, pid_discrete_with, synergy_null, NullSummary, Pid, PidError, PidOptions,
    PidSolution,
};

use crate::error::{EstimatorError, Result};
use ndarray::{ArrayView1, ArrayView2};

/// Rejects an empty matrix or one holding NaN/Inf.
pub(crate) fn check_matrix(what: &'static str, x: &ArrayView2<f64>) -> Result<()> {
    let (rows, cols) = x.dim();
    if rows == 0 || cols == 0 {
        return Err(EstimatorError::Empty { what, rows, cols });
    }
    for ((row, col), v) in x.indexed_iter() {
        if !v.is_finite() {
            return Err(EstimatorError::NonFinite { what, row, col });
        }
    }
    Ok(())
}

/// Rejects an empty vector or one holding NaN/Inf.
pub(crate) fn check_vector(what: &'static str, x: &ArrayView1<f64>) -> Result<()> {
    if x.is_empty() {
        return Err(EstimatorError::Empty {
            what,
            rows: 0,
            cols: 1,
        });
    }
    for (row, v) in x.iter().enumerate() {
        if !v.is_finite() {
            return Err(EstimatorError::NonFinite { what, row, col: 0 });
        }
    }
    Ok(())
}

/// Checks both samples and that they share their dimension.
pub(crate) fn check_pair(x: &ArrayView2<f64>, y: &ArrayView2<f64>) -> Result<()> {
    check_matrix("x", x)?;
    check_matrix("y", y)?;
    if x.ncols() != y.ncols() {
        return Err(EstimatorError::DimensionMismatch {
            x: "x",
            dx: x.ncols(),
            y: "y",
            dy: y.ncols(),
        });
    }
    Ok(())
}

/// Turns a non-finite result into an error.
pub(crate) fn finite(what: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(EstimatorError::NonFiniteResult { what, value })
    }
}
