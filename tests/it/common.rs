//! Shared helpers of the integration tests: seeded Gaussian samples, rotations, naive references.
#![allow(dead_code)]

use ndarray::{Array1, Array2, ArrayView2};
use ndarray_linalg::QR;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

// the seeded sample and the value-and-gradient helpers are the unit tests' own, so both kinds
// of test draw the same streams
#[path = "../../src/test_util.rs"]
mod test_util;
pub(crate) use test_util::{flat_f64, randn, value_and_grad};

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` rows of `N(mu, L Lᵀ)`.
pub fn gauss(n: usize, mu: &Array1<f64>, l: &Array2<f64>, seed: u64) -> Array2<f64> {
    let z = randn(n, mu.len(), seed);
    z.dot(&l.t()) + mu
}

/// A random `d × d` orthogonal matrix (QR of a Gaussian matrix).
pub fn rotation(d: usize, seed: u64) -> Array2<f64> {
    let a = randn(d, d, seed);
    let (q, _) = a.qr().unwrap();
    q
}

/// Naive mean-Gaussian-kernel sum over all pairs, for cross-checking the tiled implementation.
pub fn naive_kernel_sum(
    a: &ArrayView2<f64>,
    b: &ArrayView2<f64>,
    sigmas: &[f64],
    skip_diag: bool,
) -> f64 {
    let mut s = 0.0;
    for (i, x) in a.rows().into_iter().enumerate() {
        for (j, y) in b.rows().into_iter().enumerate() {
            if skip_diag && i == j {
                continue;
            }
            let d2: f64 = x.iter().zip(y.iter()).map(|(u, v)| (u - v) * (u - v)).sum();
            s += sigmas
                .iter()
                .map(|sg| (-d2 / (2.0 * sg * sg)).exp())
                .sum::<f64>()
                / sigmas.len() as f64;
        }
    }
    s
}

/// Mean and standard error of replicate values.
pub fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// The shared data folder from `SYNERGY_SHARED`; `None` (and a line saying why) when unset.
pub fn shared() -> Option<std::path::PathBuf> {
    match std::env::var("SYNERGY_SHARED") {
        Ok(p) => Some(std::path::PathBuf::from(p)),
        Err(_) => {
            eprintln!(
                "skipping: SYNERGY_SHARED is not set (point it at the shared/ folder with data/)"
            );
            None
        }
    }
}

/// Runs a binary; returns its exit code, stdout and stderr.
pub fn run_bin(exe: &str, args: &[&str]) -> (i32, String, String) {
    run_bin_with(exe, args, "", &[])
}

/// Runs a binary with `stdin` as its standard input and `env` added to its environment; returns its
/// exit code, stdout and stderr.
pub fn run_bin_with(
    exe: &str,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.as_bytes().to_vec();
    // write from a thread: a child that fills its stdout before reading stdin must not deadlock
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join().unwrap(); // a child that exits without reading gives a broken pipe
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Trains the one-epoch run of `reproduce-paper ARGS --quiet --out OUT` (args that plan exactly one
/// run) and doctors its record to have taken `wall_s` seconds: what `--time-limit` then projects
/// every run of its model at (× the epoch cap), exactly.
pub fn one_run_taking(out: &std::path::Path, args: &[&str], wall_s: f64) {
    let dir = out.to_str().unwrap();
    let (code, _, err) = run_bin(
        env!("CARGO_BIN_EXE_reproduce-paper"),
        &[args, &["--quiet", "--out", dir]].concat(),
    );
    assert_eq!(code, 0, "{err}");
    let path = out.join("results.jsonl");
    let mut rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(rec["result"]["epochs"], 1, "{rec}");
    rec["result"]["wall_s"] = serde_json::json!(wall_s);
    std::fs::write(&path, format!("{rec}\n")).unwrap();
}

/// Runs the `synergy` binary.
pub fn synergy(args: &[&str]) -> (i32, String, String) {
    run_bin(env!("CARGO_BIN_EXE_synergy"), args)
}
