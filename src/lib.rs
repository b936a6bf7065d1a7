//! # neural-synergy
//!
//! A reproducibility harness for *neural synergy* regularisation of multimodal fusion models.
//!
//! Layers, each using only those before it: [`estimators`] (pure `ndarray`, `f64`, the reference)
//! ← [`synergy`] (Candle losses, C-network, Algorithm D's step) ← [`models`] (one file per fusion
//! model behind one trait) ← [`train`] (generic over models; selection on validation only) ←
//! [`experiments`] (the paper's tables as data, tiers, plans, resumable runs) ← [`report`]
//! (markdown/JSON/CSV, plots). `kernels` (the fused CPU ops below `synergy` and `models`), [`data`],
//! [`metrics`], [`io`] and the crate-internal markdown-table helper every layer prints with sit beside; [`app`]
//! (argument parsing, the demo, the device check) sits on top and the binaries only call it.
//!
//! Public is what a user of the library needs (the estimators, the losses and C-network, the model
//! trait and registry, the plan and result types, the data readers, the statistics and report
//! types); `kernels`, the applications' command files and the rendering and storage internals are
//! crate-private, and `unreachable_pub` keeps it so (see the book's layout chapter).
#![deny(missing_debug_implementations)]
#![warn(unreachable_pub)]

pub mod app;
pub mod data;
pub mod error;
pub mod estimators;
pub mod experiments;
pub mod io;
pub(crate) mod kernels;
pub(crate) mod markdown;
pub mod metrics;
pub mod models;
pub mod params;
pub mod report;
pub mod synergy;
pub mod train;

#[cfg(test)]
pub(crate) mod test_util;

pub use error::{EstimatorError, ParamError, Result};
pub use params::{Checked, Validate};

/// Why the worker threads could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot start {threads} worker threads ({reason}); ask for fewer with --threads (or \
     RAYON_NUM_THREADS), or raise the process's memory or thread limits"
)]
pub struct ThreadsError {
    /// The thread count asked for.
    pub threads: usize,
    /// What the thread pool reported (e.g. the operating system refusing a thread's stack).
    pub reason: String,
}

/// Fixes the worker-thread count for rayon and Candle's CPU kernels once, at start-up, and
/// starts rayon's global pool; returns the count.
///
/// Candle re-reads the CPU topology from `/proc` on every CPU matmul unless `RAYON_NUM_THREADS`
/// is set (measured: ~400 file opens per training step of the demo model), so the binaries call
/// this before any work: `threads` wins, then an existing `RAYON_NUM_THREADS`, then the number of
/// available cores. A pool that cannot start (`--threads 3000` under a memory limit: each thread
/// needs its stack) is a [`ThreadsError`] for the caller to print — not a panic at the first
/// parallel operation, which is what ignoring the error led to. `RAYON_NUM_THREADS` is set only
/// once the pool runs.
pub fn try_init_threads(threads: Option<usize>) -> std::result::Result<usize, ThreadsError> {
    let n = threads
        .filter(|t| *t > 0)
        .or_else(|| {
            std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|t: &usize| *t > 0)
        })
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // refuse up front what the address space cannot hold: a pool started to the edge of the
    // limit can get its threads but not their signal stacks, and the runtime then aborts
    if let Some(limit) = address_space_limit() {
        let stacks = (n as u64).saturating_mul(THREAD_STACK_BYTES);
        if stacks > limit / 2 {
            return Err(ThreadsError {
                threads: n,
                reason: format!(
                    "their stacks alone, {n} × {} MiB, exceed half of the process's address-space \
                     limit of {} MiB",
                    THREAD_STACK_BYTES >> 20,
                    limit >> 20
                ),
            });
        }
    }
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
    {
        // only a failure to start threads is an error: a pool already running (a second call)
        // is kept, and a platform without threads runs rayon's work in the calling thread
        let io = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .filter(|io| io.kind() != std::io::ErrorKind::Unsupported);
        if let Some(io) = io {
            return Err(ThreadsError {
                threads: n,
                reason: io.to_string(),
            });
        }
    }
    // SAFETY (edition 2021: safe fn): called at the top of `main`, before other threads than
    // rayon's (which do not read the environment) exist.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    Ok(n)
}

/// The stack a worker thread reserves (Rust's default for spawned threads, which rayon keeps).
const THREAD_STACK_BYTES: u64 = 2 << 20;

/// The soft address-space limit of this process in bytes (`ulimit -v`), from `/proc/self/limits`;
/// `None` when unlimited or unknown (no procfs).
fn address_space_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max address space"))?;
    line.trim_start_matches("Max address space")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// [`try_init_threads`] for callers without an error path: on failure it prints the error on
/// stderr, prefixed with the program's name, and exits with status 1 (no panic). Prefer
/// `try_init_threads(..)?` where the error can be returned.
pub fn init_threads(threads: Option<usize>) {
    if let Err(e) = try_init_threads(threads) {
        let prog = std::env::args_os()
            .next()
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "neural-synergy".into());
        eprintln!("{prog}: error: {e}");
        std::process::exit(1);
    }
}

/// Makes OpenBLAS run every call in the calling thread. Training calls LAPACK only for small
/// factorisations (the Cholesky of the kurtosis buffers, ≤ a few hundred wide); with OpenBLAS's
/// default of one worker per core, each one woke workers that then spun in `sched_yield` —
/// measured, 31 % of an LMF NLL+SKL training epoch was context switching while another run used
/// the second core. One thread also keeps the factorisations' rounding independent of
/// `--threads` and `--jobs` (runs stay bit-identical). `reproduce-paper` calls this at start-up;
/// the `synergy` CLI keeps OpenBLAS's default for its large estimator matrices.
pub fn single_threaded_blas() {
    extern "C" {
        fn openblas_set_num_threads(num_threads: std::os::raw::c_int);
    }
    // SAFETY: OpenBLAS is linked (ndarray-linalg's `openblas-system`); the call only sets its
    // thread count, at start-up, before any BLAS work.
    unsafe { openblas_set_num_threads(1) };
}

/// Keeps freed memory in the process instead of returning it to the kernel after every large
/// tensor (glibc only; elsewhere a no-op). Training allocates and frees many tensors of a few
/// hundred KiB to tens of MiB per step; glibc serves those from fresh `mmap`s (or trims them off
/// the heap) and the kernel zero-fills every page again on first touch. Three settings keep them
/// in the heap for reuse:
/// - the mmap threshold at 256 MiB and the trim threshold at 512 MiB (the main heap keeps what it
///   frees);
/// - **one arena** (`M_ARENA_MAX` = 1). `run` trains on worker threads (`--jobs`), and glibc gives
///   each thread an arena of its own whose heaps are 64 MiB `mmap`s: a tensor larger than a heap
///   is `mmap`ped whatever the threshold, and a heap that empties is unmapped. TFN's fused tensor
///   (18 MiB per batch of 32) and its 36 MiB post-fusion gradient were paged in afresh every step.
///   With one arena every thread allocates from the main heap, under the thresholds above.
///
/// Measured (`/usr/bin/time`, see docs/src/performance.md): a one-epoch EF-LSTM NLL+SMMD run,
/// 482 k → 84 k minor page faults (the thresholds); a one-epoch TFN NLL run on synthetic MOSEI,
/// system time 74 s → 1.4 s and CPU time 281 s → 199 s (one arena). The binaries call this first;
/// `NEURAL_SYNERGY_MALLOC=default` leaves glibc's defaults (to measure the difference).
pub fn tune_allocator() {
    if std::env::var("NEURAL_SYNERGY_MALLOC").is_ok_and(|v| v == "default") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called at the start of `main`, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
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
