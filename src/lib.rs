//! # neural-synergy
//!
//! A reproducibility harness for *neural synergy* regularisation of multimodal fusion models.
//!
//! Layers (one way): [`estimators`] (pure `ndarray`, `f64`, the reference) → later the Candle
//! training path, models, training and experiments. [`metrics`] and [`io`] sit beside.
#![deny(missing_debug_implementations)]

pub mod cli;
pub mod synergy;
pub mod error;
pub mod estimators;
pub mod io;
pub mod metrics;

pub use error::{EstimatorError, Result};
