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

/// A configuration value outside its domain: which setting (`field`, with the model or section that
/// owns it when there is one) and why (`reason`). Every validated configuration of the library —
/// the models' hyper-parameters ([`crate::models::ModelParams`]), a run's protocol
/// ([`crate::train::RunConfig`]) and the C-network's settings ([`crate::synergy::SynergyConfig`]),
/// each [`crate::Validate`] — refuses a bad value with one of these, checked
/// once before anything is built.
///
/// It prints as `owner: field reason`, e.g. `tfn: post_fusion_dropout must be in [0, 1), got 1.5`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{field} {reason}", .owner.as_deref().map(|o| format!("{o}: ")).unwrap_or_default())]
pub struct ParamError {
    /// The model or section the setting belongs to (e.g. `tfn`), when the error left its owner.
    pub owner: Option<String>,
    /// The setting, as it is spelled in the serialised configuration (`nn1.width`, `batch_size`).
    pub field: String,
    /// Why the value is refused, with the value (`must be >= 1, got 0`).
    pub reason: String,
}

impl ParamError {
    /// An error of `field` for `reason` (no owner yet).
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            owner: None,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, said of `owner`'s setting (kept when an owner is already set: the innermost
    /// owner names the setting best).
    pub fn of(mut self, owner: impl Into<String>) -> Self {
        self.owner.get_or_insert_with(|| owner.into());
        self
    }

    /// The same error with `prefix.` before the field (a nested setting: `nn1` + `width`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

/// `Ok` when `p ∈ [0, 1)` (a dropout probability), else a [`ParamError`] of `field`.
pub fn check_dropout(field: &str, p: f64) -> std::result::Result<(), ParamError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(ParamError::new(
            field,
            format!("must be in [0, 1), got {p}"),
        ))
    }
}

/// `Ok` when `v ≥ 1` (a width, count or rank), else a [`ParamError`] of `field`.
pub fn check_width(field: &str, v: usize) -> std::result::Result<(), ParamError> {
    if v >= 1 {
        Ok(())
    } else {
        Err(ParamError::new(field, format!("must be >= 1, got {v}")))
    }
}

/// `Ok` when `v` is finite and > 0 (a rate or a scale), else a [`ParamError`] of `field`.
pub fn check_positive(field: &str, v: f64) -> std::result::Result<(), ParamError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(ParamError::new(
            field,
            format!("must be finite and > 0, got {v}"),
        ))
    }
}

/// `Ok` when `v` is finite and ≥ 0 (a weight), else a [`ParamError`] of `field`.
pub fn check_non_negative(field: &str, v: f64) -> std::result::Result<(), ParamError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ParamError::new(
            field,
            format!("must be finite and >= 0, got {v}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_error_prints_owner_field_and_reason() {
        let e = check_dropout("dropout", 1.5).unwrap_err();
        assert_eq!(e.to_string(), "dropout must be in [0, 1), got 1.5");
        let e = e.within("nn1").of("mfn");
        assert_eq!(e.field, "nn1.dropout");
        assert_eq!(e.to_string(), "mfn: nn1.dropout must be in [0, 1), got 1.5");
    }

    #[test]
    fn the_innermost_owner_is_kept() {
        let e = ParamError::new("lr_mi", "must be finite and > 0, got 0").of("synergy");
        assert_eq!(e.of("run").owner.as_deref(), Some("synergy"));
    }

    #[test]
    fn checks_accept_their_domain_and_refuse_its_edges() {
        assert!(check_dropout("p", 0.0).is_ok() && check_dropout("p", 1.0).is_err());
        assert!(check_width("w", 1).is_ok() && check_width("w", 0).is_err());
        assert!(check_positive("x", 1e-9).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(check_positive("x", bad).is_err(), "{bad}");
        }
        assert!(check_non_negative("x", 0.0).is_ok());
        for bad in [-1e-9, f64::NAN, f64::INFINITY] {
            assert!(check_non_negative("x", bad).is_err(), "{bad}");
        }
    }
}
