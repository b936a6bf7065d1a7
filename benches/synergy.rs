//! Candle CPU: forward + backward of the synergy losses (the workload of `synergy check-device
//! --bench` and `benches/torch_synergy.py`) at batch 64 and 256, d = 128; and the cost of one
//! Algorithm D step (C-network attached) against the plain task step on the demo model.
use candle_core::{DType, Device, Var};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::Array2;
use neural_synergy::app::{synergy_workload, DemoFusion, DemoStream};
use neural_synergy::estimators::{self as est, StreamingKurtosisParams};
use neural_synergy::synergy::{from_array2, CNetwork, SynergyConfig, SynergyStep, TaskStep};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::time::Duration;

fn randn(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| StandardNormal.sample(&mut r))
}

fn losses(c: &mut Criterion) {
    neural_synergy::init_threads(None);
    let mut g = c.benchmark_group("synergy_losses_fwd_bwd_cpu_f32_d128");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let dev = Device::Cpu;
    for batch in [64usize, 256] {
        let x = randn(batch, 128, 1);
        let y = randn(batch, 128, 2);
        let bw = est::median_bandwidths(&x.view(), &y.view()).unwrap();
        let prec = StreamingKurtosisParams::default()
            .init()
            .unwrap()
            .prepare(&x.view())
            .unwrap()
            .precision();
        let xv = Var::from_tensor(&from_array2(&x, DType::F32, &dev).unwrap()).unwrap();
        let yv = Var::from_tensor(&from_array2(&y, DType::F32, &dev).unwrap()).unwrap();
        let p = from_array2(&prec, DType::F32, &dev).unwrap();
        let w = from_array2(&randn(128, 1, 3), DType::F32, &dev).unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, _| {
            b.iter(|| {
                let l = synergy_workload(xv.as_tensor(), yv.as_tensor(), &bw, &p, &w).unwrap();
                l.backward().unwrap()
            })
        });
    }
    g.finish();
}

fn step_overhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_step_demo_model_batch64_cpu_f32");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    let dev = Device::Cpu;
    let batch = DemoStream::new(0, DType::F32, &dev).batch(64).unwrap();
    let model = DemoFusion::new(0, DType::F32, &dev).unwrap();
    let mut task = TaskStep::new(model.varmap().all_vars(), 1e-3, 0.01, 5.0).unwrap();
    g.bench_function("task_only_nll", |b| {
        b.iter(|| {
            let out = model.forward(&batch, true).unwrap();
            let loss = (&out.prediction - &batch.label)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap();
            task.step(&loss).unwrap()
        })
    });
    let model = DemoFusion::new(0, DType::F32, &dev).unwrap();
    let h = DemoFusion::HIDDEN;
    let cnet = CNetwork::new(SynergyConfig::default(), &[h, h, h], h, DType::F32, &dev).unwrap();
    let mut step = SynergyStep::new(cnet, model.varmap().all_vars(), 1e-3).unwrap();
    g.bench_function("with_cnetwork_smmd", |b| {
        b.iter(|| {
            let out = model.forward(&batch, true).unwrap();
            let loss = (&out.prediction - &batch.label)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap();
            step.step(&out, &loss).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, losses, step_overhead);
criterion_main!(benches);
