//! Training protocol (Appendix C), generic over every `FusionModel`: AdamW, gradient clip 5,
//! model selection on the **validation** split only (MAE for regression, accuracy for binary
//! tasks) with early stopping (patience 8 epochs), grid over batch size × learning rate; test
//! metrics are computed once, for the selected checkpoint only.
//!
//! Task loss ([`TaskLoss`]): L1 (MMSA's regression loss for MOSI/MOSEI; the paper's "NLL" rows are
//! this likelihood-only training), MSE, or binary cross-entropy on the model's logit (UR-FUNNY).
//! A model's own auxiliary loss (`ModelOutput::aux_loss`, e.g. MISA's) is added to it. Variants:
//! `NLL` (task loss only), `NLL+SKL` and `NLL+SMMD` (Algorithm D with the C-network, `L_d` =
//! DV-estimated KL or MMD).
//!
//! Anything that goes wrong **inside** a run — a non-finite loss, a collapsed batch whose median
//! bandwidth is 0, a failed Cholesky in `L_κ` — ends that run, is recorded as its
//! [`RunResult::failure`] (epoch, step and cause) and the run is never selected; the caller's grid
//! goes on. Only an invalid configuration is an `Err`.
//!
//! # Files
//!
//! * `protocol.rs` — the configuration: [`Variant`], [`TaskLoss`], [`RunConfig`], [`Selection`];
//! * `fit.rs` — the generic loop [`train_model`] (record → model → epochs → test of the selected
//!   checkpoint) and [`train_run`] / [`train_run_on`], which dispatch on the model kind;
//! * `result.rs` — what a run records: [`RunResult`], [`TestMetrics`], Table 4's
//!   [`DROP_CONDITIONS`], `select_best`;
//! * `robustness.rs` — the graded robustness curves of the selected checkpoint;
//! * `vars.rs` — building a model from a seed, variables, learning-rate groups, snapshots;
//! * `batch.rs` — batches on the host or the device, [`predict`];
//! * `timing.rs` — [`time_epoch`] for benchmarks and `--plan`.

mod batch;
mod fit;
mod protocol;
mod result;
pub mod robustness;
mod timing;
mod vars;

pub use batch::predict;
pub(crate) use batch::{labels_f64, predict_with, Batcher};
pub(crate) use fit::metrics_of;
pub use fit::{train_checked_on, train_model, train_run, train_run_on};
pub use protocol::*;
pub use result::*;
pub use timing::*;
pub use vars::*;
