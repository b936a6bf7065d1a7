//! [`FastLstm`] against candle-nn's `LSTM` (same weights: same outputs, same gradients), against
//! finite differences (its hand-written backward), its plain-op fallback against the fused CPU
//! kernel, and padding invariance; packed sequences ([`Packing`]) against the padded layout.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::rnn::{lstm, LSTMConfig, RNN};
use candle_nn::{VarBuilder, VarMap};
use neural_synergy::models::layers::lstm::{FastLstm, Packing};
use neural_synergy::synergy::nets::seed_varmap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const PARAMS: [&str; 4] = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"];

fn randn(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut r)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Both layers on the same variables (prefix `l`), seeded (biases non-zero).
fn pair(i: usize, h: usize, dtype: DType, seed: u64) -> (VarMap, candle_nn::rnn::LSTM, FastLstm) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
    let reference = lstm(i, h, LSTMConfig::default(), vb.pp("l")).unwrap();
    let fast = FastLstm::new(i, h, LSTMConfig::default(), vb.pp("l")).unwrap();
    assert_eq!(
        vm.all_vars().len(),
        4,
        "FastLstm must reuse candle-nn's variables"
    );
    seed_varmap(&vm, seed).unwrap();
    (vm, reference, fast)
}

fn var(vm: &VarMap, name: &str) -> Var {
    vm.data().lock().unwrap()[&format!("l.{name}")].clone()
}

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let diff = (&a - &b).unwrap().abs().unwrap().max(0).unwrap();
    let scale = b.abs().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap();
    diff.to_scalar::<f64>().unwrap() / scale.max(1.0)
}

#[test]
fn fast_lstm_outputs_equal_candle_nn_lstm_f32_and_f64() {
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::F64, 1e-10)] {
        let (b, t, i, h) = (5, 9, 7, 6);
        let (_vm, reference, fast) = pair(i, h, dtype, 3);
        let x = randn(&[b, t, i], 4, dtype);
        let states = reference.seq(&x).unwrap();
        let want = reference.states_to_tensor(&states).unwrap();
        let got = fast.seq(&x).unwrap();
        assert!(max_rel(&got, &want) < tol, "{dtype:?}: all h");
        let (all, hl, cl) = fast.seq_masked(&x, &[t; 5]).unwrap();
        assert!(max_rel(&all, &want) < tol);
        assert!(max_rel(&hl, &states[t - 1].h) < tol, "{dtype:?}: final h");
        assert!(max_rel(&cl, &states[t - 1].c) < tol, "{dtype:?}: final c");
    }
}

/// A loss reading every output: all h, final h and final c, with fixed random weights.
fn loss(out: &(Tensor, Tensor, Tensor), seed: u64) -> Tensor {
    let w = |t: &Tensor, s| {
        (t * randn(t.dims(), s, t.dtype()))
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let (a, h, c) = out;
    (w(a, seed) + w(h, seed + 1) + w(c, seed + 2)).unwrap()
}

/// Gradients of the four parameters and of `x` for a loss of `run`'s outputs.
fn grads(vm: &VarMap, x: &Var, run: impl Fn(&Tensor) -> (Tensor, Tensor, Tensor)) -> Vec<Tensor> {
    let l = loss(&run(x.as_tensor()), 11);
    let g = l.backward().unwrap();
    let mut out: Vec<Tensor> = PARAMS
        .iter()
        .map(|p| g.get(var(vm, p).as_tensor()).unwrap().clone())
        .collect();
    out.push(g.get(x.as_tensor()).unwrap().clone());
    out
}

#[test]
fn fast_lstm_gradients_equal_candle_nn_lstm_f64() {
    let (b, t, i, h) = (4, 8, 5, 6);
    let (vm, reference, fast) = pair(i, h, DType::F64, 5);
    let x = Var::from_tensor(&randn(&[b, t, i], 6, DType::F64)).unwrap();
    let want = grads(&vm, &x, |x| {
        let st = reference.seq(x).unwrap();
        let last = st[t - 1].clone();
        (reference.states_to_tensor(&st).unwrap(), last.h, last.c)
    });
    for fused in [true, false] {
        let mut f = fast.clone();
        f.set_fused(fused);
        let got = grads(&vm, &x, |x| f.seq_masked(x, &[t; 4]).unwrap());
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            let name = PARAMS.get(k).unwrap_or(&"x");
            assert!(max_rel(g, w) < 1e-8, "fused {fused}: ∂{name}");
        }
    }
}

/// Central differences of the loss in every coordinate of the parameters and the input, against
/// the fused backward (variable lengths, f64, relative 1e-6).
#[test]
fn fast_lstm_backward_equals_finite_differences() {
    let (b, t, i, h) = (3, 5, 4, 3);
    let lengths = [2, 5, 3];
    let (vm, _, fast) = pair(i, h, DType::F64, 7);
    let x = Var::from_tensor(&randn(&[b, t, i], 8, DType::F64)).unwrap();
    let run = |x: &Tensor| fast.seq_masked(x, &lengths).unwrap();
    let analytic = grads(&vm, &x, run);
    let value = || loss(&run(x.as_tensor()), 11).to_scalar::<f64>().unwrap();
    let mut vars: Vec<Var> = PARAMS.iter().map(|p| var(&vm, p)).collect();
    vars.push(x.clone());
    let eps = 1e-6;
    for (v, g) in vars.iter().zip(&analytic) {
        let base = v.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for k in 0..base.len() {
            let at = |d: f64| {
                let mut p = base.clone();
                p[k] += d;
                v.set(&Tensor::from_vec(p, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                value()
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (fd - g[k]).abs() <= 1e-6 * fd.abs().max(1.0),
                "coordinate {k}: analytic {} vs finite difference {fd}",
                g[k]
            );
        }
        v.set(&Tensor::from_vec(base, v.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

#[test]
fn fused_kernel_equals_plain_ops_with_variable_lengths() {
    let (b, t, i, h) = (6, 7, 5, 4);
    let lengths = [3, 7, 1, 7, 5, 2];
    let (vm, _, fast) = pair(i, h, DType::F64, 9);
    let x = Var::from_tensor(&randn(&[b, t, i], 10, DType::F64)).unwrap();
    let mut plain = fast.clone();
    plain.set_fused(false);
    let (a, p) = (
        fast.seq_masked(&x, &lengths).unwrap(),
        plain.seq_masked(&x, &lengths).unwrap(),
    );
    for (u, v) in [(&a.0, &p.0), (&a.1, &p.1), (&a.2, &p.2)] {
        assert!(max_rel(u, v) < 1e-12);
    }
    let ga = grads(&vm, &x, |x| fast.seq_masked(x, &lengths).unwrap());
    let gp = grads(&vm, &x, |x| plain.seq_masked(x, &lengths).unwrap());
    for (u, v) in ga.iter().zip(&gp) {
        assert!(max_rel(u, v) < 1e-10);
    }
}

/// A sequence alone and padded (with garbage) in a batch with longer ones: same states on its
/// valid steps, same final h and c, frozen state on its padded steps, no gradient into padding.
#[test]
fn padding_never_changes_a_sequence() {
    let (t, i, h, len) = (9, 5, 4, 4);
    for dtype in [DType::F32, DType::F64] {
        for fused in [true, false] {
            let (_vm, _, mut fast) = pair(i, h, dtype, 12);
            fast.set_fused(fused);
            let alone = randn(&[1, len, i], 13, dtype);
            let garbage = (randn(&[1, t - len, i], 14, dtype) * 100.0).unwrap();
            let padded = Tensor::cat(&[&alone, &garbage], 1).unwrap();
            let others = randn(&[2, t, i], 15, dtype);
            let batch = Var::from_tensor(&Tensor::cat(&[&others, &padded], 0).unwrap()).unwrap();
            let (a1, h1, c1) = fast.seq_masked(&alone, &[len]).unwrap();
            let (ab, hb, cb) = fast.seq_masked(&batch, &[t, 6, len]).unwrap();
            let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
            assert!(max_rel(&hb.narrow(0, 2, 1).unwrap(), &h1) < tol);
            assert!(max_rel(&cb.narrow(0, 2, 1).unwrap(), &c1) < tol);
            let mine = ab.narrow(0, 2, 1).unwrap();
            assert!(max_rel(&mine.narrow(1, 0, len).unwrap(), &a1) < tol);
            for s in len..t {
                assert!(max_rel(&mine.narrow(1, s, 1).unwrap().squeeze(1).unwrap(), &h1) < tol);
            }
            let g = hb.sum_all().unwrap().backward().unwrap();
            let gx = g.get(batch.as_tensor()).unwrap();
            let pad = gx.narrow(0, 2, 1).unwrap().narrow(1, len, t - len).unwrap();
            let pad_max = pad.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            assert_eq!(
                pad_max
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap(),
                0.0
            );
        }
    }
}

#[test]
fn fast_lstm_rejects_bad_lengths() {
    let (_vm, _, fast) = pair(3, 2, DType::F32, 1);
    let x = randn(&[2, 4, 3], 2, DType::F32);
    assert!(fast.seq_masked(&x, &[4]).is_err());
    assert!(fast.seq_masked(&x, &[4, 5]).is_err());
    assert!(fast
        .seq_masked(&randn(&[2, 4, 2], 2, DType::F32), &[4, 4])
        .is_err());
}

/// Rows sorted by decreasing length (stable), step after step; a length of 0 has no row.
#[test]
fn packing_orders_samples_by_length_then_steps() {
    let p = Packing::new(&[3, 5, 0, 5, 1]);
    assert_eq!(p.order(), [1, 3, 0, 4, 2]);
    assert_eq!((p.rows(), p.steps()), (14, 5));
    let active: Vec<usize> = (0..6).map(|s| p.active(s)).collect();
    assert_eq!(active, [4, 3, 3, 2, 2, 0]);
    let offsets: Vec<usize> = (0..=5).map(|s| p.offset(s)).collect();
    assert_eq!(offsets, [0, 4, 7, 10, 12, 14]);
    assert_eq!(p.row(0, 2), Some(9));
    assert_eq!(p.row(3, 4), Some(13));
    assert_eq!((p.row(0, 3), p.row(2, 0), p.row(9, 0)), (None, None, None));
    let idx = p.gather_index(6);
    assert_eq!(idx.len(), 14);
    assert_eq!(idx[..7], [6, 18, 0, 24, 7, 19, 1]);
    assert!(Packing::new(&[]).rows() == 0 && Packing::new(&[]).steps() == 0);
}

/// `packed_states` gives `seq_masked`'s hidden states at every valid step and its final cell
/// states, and the same gradients for the parameters and the input (zero on padding), fused and
/// as plain ops (f64).
#[test]
fn packed_states_equal_the_padded_layout_in_values_and_gradients() {
    let (b, t, i, h) = (5, 7, 4, 3);
    let lengths = [3, 7, 1, 7, 5];
    let dev = Device::Cpu;
    let packing = Packing::new(&lengths);
    let n = packing.rows();
    let gather = Tensor::from_vec(packing.gather_index(t), n, &dev).unwrap();
    let last: Vec<u32> = (0..b)
        .map(|r| packing.row(r, lengths[r] - 1).unwrap() as u32)
        .collect();
    let last = Tensor::from_vec(last, b, &dev).unwrap();
    let mask: Vec<f64> = (0..b * t)
        .map(|k| f64::from(u8::from(k % t < lengths[k / t])))
        .collect();
    let mask = Tensor::from_vec(mask, (b, t, 1), &dev).unwrap();
    let (vm, _, fast) = pair(i, h, DType::F64, 17);
    let x = Var::from_tensor(&randn(&[b, t, i], 18, DType::F64)).unwrap();
    let (rh, rc) = (
        randn(&[b, t, h], 19, DType::F64),
        randn(&[b, h], 20, DType::F64),
    );
    let rh_packed = rh
        .reshape((b * t, h))
        .unwrap()
        .index_select(&gather, 0)
        .unwrap();
    let grads_of = |l: Tensor| -> Vec<Tensor> {
        let g = l.backward().unwrap();
        let mut out: Vec<Tensor> = PARAMS
            .iter()
            .map(|p| g.get(var(&vm, p).as_tensor()).unwrap().clone())
            .collect();
        out.push(g.get(x.as_tensor()).unwrap().clone());
        out
    };
    let (all, _, c_last) = fast.seq_masked(&x, &lengths).unwrap();
    let ref_loss = ((&all * &rh)
        .unwrap()
        .broadcast_mul(&mask)
        .unwrap()
        .sum_all()
        .unwrap()
        + (&c_last * &rc).unwrap().sum_all().unwrap())
    .unwrap();
    let want = grads_of(ref_loss);
    let all_packed = all
        .reshape((b * t, h))
        .unwrap()
        .index_select(&gather, 0)
        .unwrap();
    for fused in [true, false] {
        let mut f = fast.clone();
        f.set_fused(fused);
        let rows = x
            .reshape((b * t, i))
            .unwrap()
            .index_select(&gather, 0)
            .unwrap();
        let states = f.packed_states(&rows, &packing).unwrap();
        assert_eq!(states.dims(), [n, 2 * h]);
        let hs = states.narrow(1, 0, h).unwrap();
        let cl = states
            .index_select(&last, 0)
            .unwrap()
            .narrow(1, h, h)
            .unwrap();
        assert!(max_rel(&hs, &all_packed) < 1e-12, "fused {fused}: h");
        assert!(max_rel(&cl, &c_last) < 1e-12, "fused {fused}: final c");
        let l = ((&hs * &rh_packed).unwrap().sum_all().unwrap()
            + (&cl * &rc).unwrap().sum_all().unwrap())
        .unwrap();
        for (k, (g, w)) in grads_of(l).iter().zip(&want).enumerate() {
            let name = PARAMS.get(k).unwrap_or(&"x");
            assert!(max_rel(g, w) < 1e-10, "fused {fused}: ∂{name}");
        }
    }
}

#[test]
fn packed_states_reject_inputs_of_the_wrong_shape() {
    let (_vm, _, fast) = pair(3, 2, DType::F32, 1);
    let packing = Packing::new(&[2, 1]);
    assert!(fast
        .packed_states(&randn(&[3, 3], 2, DType::F32), &packing)
        .is_ok());
    assert!(fast
        .packed_states(&randn(&[4, 3], 2, DType::F32), &packing)
        .is_err());
    assert!(fast
        .packed_states(&randn(&[3, 2], 2, DType::F32), &packing)
        .is_err());
    assert!(fast
        .packed_states(&randn(&[3], 2, DType::F32), &packing)
        .is_err());
}
