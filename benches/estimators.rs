//! Throughput of the reference estimators at the sizes of the issue, plus size sweeps.
//! `cargo bench --bench estimators` (or `make bench`). Ratios against numpy/scipy: `make compare`.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::Array2;
use neural_synergy::estimators::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::hint::black_box;
use std::time::Duration;

fn randn(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| StandardNormal.sample(&mut r))
}

fn mmd(c: &mut Criterion) {
    let x = randn(2048, 128, 1);
    let y = randn(2048, 128, 2) * 1.1;
    let bw = median_bandwidths(&x.view(), &y.view()).unwrap();
    let mut g = c.benchmark_group("mmd2_n2048_d128_5bw");
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    g.bench_function("unbiased", |b| {
        b.iter(|| mmd2(&x.view(), &y.view(), MmdVariant::Unbiased, &bw).unwrap())
    });
    g.bench_function("three_gemms_reference", |b| {
        b.iter(|| {
            black_box(x.dot(&x.t()));
            black_box(y.dot(&y.t()));
            black_box(x.dot(&y.t()));
        })
    });
    g.bench_function("median_heuristic", |b| {
        b.iter(|| median_bandwidths(&x.view(), &y.view()).unwrap())
    });
    g.bench_function("linear", |b| {
        b.iter(|| mmd2(&x.view(), &y.view(), MmdVariant::Linear, &bw).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("mmd2_unbiased_sweep_d128_5bw");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for n in [256, 512, 1024, 2048, 4096] {
        let x = randn(n, 128, 3);
        let y = randn(n, 128, 4);
        let bw = median_bandwidths(&x.view(), &y.view()).unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| mmd2(&x.view(), &y.view(), MmdVariant::Unbiased, &bw).unwrap())
        });
    }
    g.finish();
}

fn kurtosis(c: &mut Criterion) {
    let x = randn(4096, 128, 5);
    let mut g = c.benchmark_group("kurtosis_n4096_d128");
    g.sample_size(10);
    g.bench_function("mardia", |b| b.iter(|| mardia(&x.view()).unwrap()));
    g.bench_function("streaming_update", |b| {
        let mut s = StreamingKurtosisParams::default().init().unwrap();
        b.iter(|| s.update(&x.view()).unwrap())
    });
    g.finish();
}

fn knn(c: &mut Criterion) {
    let mut g = c.benchmark_group("knn_kl_d8_k1");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for n in [1024, 4096, 16384] {
        let x = randn(n, 8, 6);
        let y = randn(n, 8, 7) + 0.2;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| knn_kl(&x.view(), &y.view(), 1).unwrap())
        });
    }
    g.finish();
    let x = randn(4096, 8, 8);
    let y = randn(4096, 8, 9);
    c.bench_function("gaussian_kl_n4096_d8", |b| {
        b.iter(|| gaussian_kl(&x.view(), &y.view()).unwrap())
    });
}

fn bounds(c: &mut Criterion) {
    let x = randn(1, 100_000, 10)
        .into_shape_with_order(100_000)
        .unwrap();
    let y = randn(1, 100_000, 11)
        .into_shape_with_order(100_000)
        .unwrap();
    c.bench_function("dv_nwj_n100000", |b| {
        b.iter(|| dv_nwj(&x.view(), &y.view()).unwrap())
    });
}

criterion_group!(benches, mmd, kurtosis, knn, bounds);
criterion_main!(benches);
