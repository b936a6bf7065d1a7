//! Times the estimators on `.npy` inputs written by `benches/compare.py` (the same arrays numpy and
//! scipy get) and prints one JSON object of best-of-REPS wall times in ms and the values computed.
//! Usage: cargo run --release --example timings -- DIR REPS
use ndarray::Array2;
use neural_synergy::estimators::*;
use neural_synergy::io::read_matrix;
use serde_json::json;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

fn best_ms<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = f(); // warm-up
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        out = black_box(f());
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    (t[0], out) // best of reps, as compare.py does
}

fn load(dir: &Path, name: &str) -> Array2<f64> {
    read_matrix(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(&args[1]);
    let reps: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(7);
    let (x, y) = (load(dir, "mmd_x.npy"), load(dir, "mmd_y.npy"));
    let sig = load(dir, "mmd_sigmas.npy");
    let bw = Bandwidths::new(sig.iter().cloned().collect()).unwrap();
    let (mmd_ms, mmd_v) = best_ms(reps, || {
        mmd2(&x.view(), &y.view(), MmdVariant::Unbiased, &bw).unwrap()
    });
    let (gemm_ms, _) = best_ms(reps, || (x.dot(&x.t()), y.dot(&y.t()), x.dot(&y.t())));
    let (med_ms, med) = best_ms(reps, || median_bandwidth(&x.view(), &y.view()).unwrap());
    let m = load(dir, "mardia_x.npy");
    let (mardia_ms, b2) = best_ms(reps, || mardia(&m.view()).unwrap().b2);
    let (kx, ky) = (load(dir, "knn_x.npy"), load(dir, "knn_y.npy"));
    let (knn_ms, knn_v) = best_ms(reps, || knn_kl(&kx.view(), &ky.view(), 1).unwrap());
    println!(
        "{}",
        json!({
            "threads": rayon::current_num_threads(),
            "mmd_unbiased": {"ms": mmd_ms, "value": mmd_v},
            "three_gemms": {"ms": gemm_ms},
            "median_heuristic": {"ms": med_ms, "value": med},
            "mardia": {"ms": mardia_ms, "value": b2},
            "knn_kl": {"ms": knn_ms, "value": knn_v},
        })
    );
}
