//! Candle CPU, f32: forward + backward of a 2-layer stacked LSTM at EF-LSTM's MOSI shapes (batch
//! 32, T = 50, input 96, hidden 128, random lengths with median ≈ 10 and maximum 50), candle-nn's
//! `LSTM` (every step, last valid state picked by a one-hot mask, as EF-LSTM did) against
//! [`FastLstm`] (masked, length-sorted, fused recurrence). Run with `RAYON_NUM_THREADS=1` for the
//! single-thread numbers.
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::rnn::{lstm, LSTMConfig, RNN};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, Criterion};
use neural_synergy::models::last_valid;
use neural_synergy::models::layers::lstm::FastLstm;
use neural_synergy::synergy::nets::seed_varmap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, StandardNormal};
use std::time::Duration;

const B: usize = 32;
const T: usize = 50;
const I: usize = 96;
const H: usize = 128;

fn lstm_fwd_bwd(c: &mut Criterion) {
    neural_synergy::init_threads(None);
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let len_dist = LogNormal::new(10f64.ln(), 0.7).unwrap();
    let mut lengths: Vec<usize> = (0..B)
        .map(|_| (len_dist.sample(&mut rng).round() as usize).clamp(1, T))
        .collect();
    lengths[0] = T;
    let x: Vec<f32> = (0..B * T * I)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let x = Var::from_tensor(&Tensor::from_vec(x, (B, T, I), &dev).unwrap()).unwrap();
    let mut last = vec![0f32; B * T];
    for (b, &l) in lengths.iter().enumerate() {
        last[b * T + l - 1] = 1.0;
    }
    let last = Tensor::from_vec(last, (B, T), &dev).unwrap();

    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let (mut reference, mut fast) = (Vec::new(), Vec::new());
    for l in 0..2 {
        let inp = if l == 0 { I } else { H };
        let p = vb.pp(format!("lstm{l}"));
        reference.push(lstm(inp, H, LSTMConfig::default(), p.clone()).unwrap());
        fast.push(FastLstm::new(inp, H, LSTMConfig::default(), p).unwrap());
    }
    seed_varmap(&vm, 1).unwrap();

    let mut g = c.benchmark_group(format!(
        "lstm2_fwd_bwd_b{B}_t{T}_i{I}_h{H}_{}threads",
        rayon::current_num_threads()
    ));
    g.sample_size(20).measurement_time(Duration::from_secs(6));
    g.bench_function("candle_nn_lstm", |bench| {
        bench.iter(|| {
            let mut h = x.as_tensor().clone();
            for l in &reference {
                h = l.states_to_tensor(&l.seq(&h).unwrap()).unwrap();
            }
            let z = last_valid(&h, &last).unwrap();
            z.sum_all().unwrap().backward().unwrap()
        })
    });
    g.bench_function("fast_lstm", |bench| {
        bench.iter(|| {
            let mut h = x.as_tensor().clone();
            let mut z = None;
            for l in &fast {
                let (all, hl, _) = l.seq_masked(&h, &lengths).unwrap();
                (h, z) = (all, Some(hl));
            }
            z.unwrap().sum_all().unwrap().backward().unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, lstm_fwd_bwd);
criterion_main!(benches);
