//! # neural-synergy
//!
//! A reproducibility harness for *neural synergy* regularisation of multimodal fusion models.
//!
//! Layers, each using only those before it: [`estimators`] (pure `ndarray`, `f64`, the reference)
//! ← [`synergy`] (Candle losses, C-network, Algorithm D's step) ← [`models`] (one file per fusion
//! model behind one trait) ← [`train`] (generic over models; selection on validation only) ←
//! [`experiments`] (the paper's tables as data, tiers, plans, resumable runs) ← [`report`]
//! (markdown/JSON/CSV, plots). [`data`], [`text`] (the pretrained BERT encoder), [`metrics`] and
//! [`io`] sit beside; [`app`] (argument parsing, the demo, the device check) sits on top and the
//! binaries only call it.
#![deny(missing_debug_implementations)]

pub mod app;
pub mod data;
pub mod error;
pub mod estimators;
pub mod experiments;
pub mod io;
pub mod metrics;
pub mod models;
pub mod report;
pub mod synergy;
pub mod text;
pub mod train;

pub use error::{EstimatorError, Result};

/// Fixes the worker-thread count for rayon and Candle's CPU kernels once, at start-up.
///
/// Candle re-reads the CPU topology from `/proc` on every CPU matmul unless `RAYON_NUM_THREADS`
/// is set (measured: ~400 file opens per training step of the demo model), so the binaries call
/// this before any work: `threads` wins, then an existing `RAYON_NUM_THREADS`, then the number of
/// available cores.
pub fn init_threads(threads: Option<usize>) {
    let n = threads
        .filter(|t| *t > 0)
        .or_else(|| {
            std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|t: &usize| *t > 0)
        })
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // SAFETY (edition 2021: safe fn): called at the top of `main`, before any thread exists.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// Restores the default action of `SIGPIPE` (Rust ignores it, so a write to a closed pipe — e.g.
/// `synergy … | head` — makes `println!` panic). The binaries call this first: a closed pipe then
/// ends the process quietly, as it does for other Unix tools. Results files are written (and
/// fsynced) before anything is printed, so nothing is lost. No-op off Unix.
pub fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called at the start of `main`, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
