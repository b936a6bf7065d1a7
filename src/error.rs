//! Typed errors of the library. Every public estimator returns `Result<_, EstimatorError>`;
//! nothing in the public API panics on bad input or returns a silent NaN.

use thiserror::Error;

/// Why an estimator refused its input.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EstimatorError {
    /// An input array has no rows or no columns.
    #[error("{what} is empty ({rows} rows x {cols} columns)")]
    Empty {
        what: &'static str,
        rows: usize,
        cols: usize,
    },
    /// An input holds NaN or ±Inf.
    #[error("{what} contains a non-finite value (NaN or Inf) at row {row}, column {col}")]
    NonFinite {
        what: &'static str,
        row: usize,
        col: usize,
    },
    /// Two samples do not live in the same space.
    #[error("dimension mismatch: {x} has {dx} columns but {y} has {dy}")]
    DimensionMismatch {
        x: &'static str,
        dx: usize,
        y: &'static str,
        dy: usize,
    },
    /// Two inputs must have the same number of rows.
    #[error("length mismatch: {x} has {nx} rows but {y} has {ny}")]
    LengthMismatch {
        x: &'static str,
        nx: usize,
        y: &'static str,
        ny: usize,
    },
    /// Not enough samples for the estimator (e.g. a covariance needs n > p).
    #[error("{what} needs {need}, got {got}")]
    TooFewSamples {
        what: &'static str,
        need: String,
        got: usize,
    },
    /// A covariance matrix (or a regularised one) is not positive definite.
    #[error(
        "covariance of {what} is singular or not positive definite ({n} samples, {p} dimensions)"
    )]
    SingularCovariance {
        what: &'static str,
        n: usize,
        p: usize,
    },
    /// A kernel bandwidth is zero, negative or non-finite.
    #[error("bandwidth must be positive and finite, got {0}")]
    NonPositiveBandwidth(f64),
    /// Zero nearest-neighbour distances make the kNN estimator undefined.
    #[error("{what}: {count} of {n} points have a zero k-NN distance (duplicate points); the kNN estimator needs distinct points")]
    DuplicatePoints {
        what: &'static str,
        count: usize,
        n: usize,
    },
    /// A parameter is outside its domain.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// A computation produced a non-finite number (overflow), reported instead of returned.
    #[error("{what} produced a non-finite result ({value})")]
    NonFiniteResult { what: &'static str, value: f64 },
}

/// Result alias of the estimators.
pub type Result<T> = std::result::Result<T, EstimatorError>;
