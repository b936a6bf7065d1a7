//! MFN-specific facts: the gated memory obeys the bound derived from its update
//! `u_t = γ1 ⊙ u_{t−1} + γ2 ⊙ tanh(·)` (`|u_t| < |u_{t−1}| + 1`, so `|u_t| < t`), and the bound is
//! attained when the gates saturate (the memory accumulates; it is not a convex mix); arbitrary
//! values after a sample's last valid step change nothing; MMSA's time-mean quirk makes the model
//! blind to the order of audio/vision steps; configuration errors are typed, not panics; the
//! fused forward pass (whole-sequence cells, batched attention, one-op memory recurrence) equals
//! the step-by-step reference in outputs and gradients.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use neural_synergy::data::{SeqBatch, Task};
use neural_synergy::models::mfn::{MfnConfig, MlpSpec};
use neural_synergy::models::{mfn::Mfn, BuildCtx, FusionModel};
use neural_synergy::synergy::nets::seed_varmap;
use neural_synergy::train::build_model;
use neural_synergy::{Checked, Validate};
use rand_distr::{Distribution, StandardNormal};

const DIMS: [usize; 3] = [12, 5, 7];

fn build(cfg: &MfnConfig, seed: u64) -> (Mfn, VarMap) {
    build_as(cfg, seed, DType::F64)
}

fn build_as(cfg: &MfnConfig, seed: u64, dtype: DType) -> (Mfn, VarMap) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
    let ctx = BuildCtx {
        text_encoder: None,
        dims: DIMS,
        seed,
        task: Task::Regression,
    };
    let m = Mfn::new(&Checked::new(*cfg).unwrap(), &ctx, vb).unwrap();
    seed_varmap(&vm, seed).unwrap();
    (m, vm)
}

/// One sample: per modality `len × d_m` values (row-major).
struct Sample {
    x: [Vec<f64>; 3],
    len: usize,
}

fn sample(len: usize, scale: f64, seed: u64) -> Sample {
    let mut r = common_rng(seed);
    let mut draw = |d: usize| -> Vec<f64> {
        (0..len * d)
            .map(|_| {
                scale * {
                    let z: f64 = StandardNormal.sample(&mut r);
                    z
                }
            })
            .collect()
    };
    Sample {
        x: [draw(DIMS[0]), draw(DIMS[1]), draw(DIMS[2])],
        len,
    }
}

fn common_rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    crate::common::rng(seed)
}

/// A batch padded to `t` steps; padding steps are filled with `N(0, pad_scale²)` noise (not
/// zeros), so only the mask/last-step bookkeeping can keep them out of the outputs.
fn batch(samples: &[&Sample], t: usize, pad_scale: f64, seed: u64) -> SeqBatch {
    let dev = Device::Cpu;
    let mut r = common_rng(seed);
    let b = samples.len();
    let inputs: Vec<Tensor> = (0..3)
        .map(|m| {
            let d = DIMS[m];
            let mut v = Vec::with_capacity(b * t * d);
            for s in samples {
                v.extend_from_slice(&s.x[m]);
                for _ in s.len * d..t * d {
                    v.push(
                        pad_scale * {
                            let z: f64 = StandardNormal.sample(&mut r);
                            z
                        },
                    );
                }
            }
            Tensor::from_vec(v, (b, t, d), &dev).unwrap()
        })
        .collect();
    let mut mask = vec![0f64; b * t];
    let mut last = vec![0f64; b * t];
    for (i, s) in samples.iter().enumerate() {
        for k in 0..s.len {
            mask[i * t + k] = 1.0;
        }
        last[i * t + s.len - 1] = 1.0;
    }
    SeqBatch {
        inputs: [inputs[0].clone(), inputs[1].clone(), inputs[2].clone()],
        lengths: samples.iter().map(|s| s.len).collect(),
        last: Tensor::from_vec(last, (b, t), &dev).unwrap(),
        mask: Tensor::from_vec(mask, (b, t), &dev).unwrap(),
        label: Tensor::zeros(b, DType::F64, &dev).unwrap(),
        tokens: None,
    }
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_vec2::<f64>().unwrap()
}

fn set(vm: &VarMap, name: &str, value: &Tensor) {
    let data = vm.data().lock().unwrap();
    data.get(name)
        .unwrap_or_else(|| panic!("no variable {name}"))
        .set(value)
        .unwrap();
}

fn fill(vm: &VarMap, name: &str, v: f64) {
    let shape = vm.data().lock().unwrap()[name].shape().clone();
    set(vm, name, &Tensor::full(v, shape, &Device::Cpu).unwrap());
}

/// Random inputs (scale 5) through a model whose weights are scaled ×4 so that gates and
/// attention saturate: for every step, every sample and every memory entry,
/// `|u_t| < |u_{t−1}| + 1` (from `γ1, γ2 ∈ (0,1)`, `|tanh| < 1`) and hence `|u_t| ≤ t`.
#[test]
fn memory_grows_by_less_than_one_per_step_on_random_inputs() {
    let (m, vm) = build(&MfnConfig::default(), 11);
    {
        let data = vm.data().lock().unwrap();
        for v in data.values() {
            v.set(&(v.as_tensor() * 4.0).unwrap()).unwrap();
        }
    }
    let samples: Vec<Sample> = (0..6).map(|i| sample(50, 5.0, 100 + i)).collect();
    let refs: Vec<&Sample> = samples.iter().collect();
    let b = batch(&refs, 50, 0.0, 1);
    for train in [false, true] {
        let trace = m.memory_trace(&b, train).unwrap();
        assert_eq!(trace.len(), 50);
        let mut prev = vec![vec![0f64; 400]; 6];
        let mut max_abs = 0f64;
        for (t, u) in trace.iter().enumerate() {
            let u = rows(u);
            for (i, row) in u.iter().enumerate() {
                for (k, &x) in row.iter().enumerate() {
                    assert!(x.is_finite());
                    assert!(
                        x.abs() < prev[i][k].abs() + 1.0,
                        "step {t}, sample {i}, entry {k}: |u_t| = {} vs |u_(t-1)| = {}",
                        x.abs(),
                        prev[i][k].abs()
                    );
                    assert!(x.abs() <= (t + 1) as f64);
                    max_abs = max_abs.max(x.abs());
                }
            }
            prev = u;
        }
        // the memory is not confined to [−1, 1]: the step bound is the relevant one
        // the memory is not confined to [−1, 1] (the gates are not a convex pair): the step
        // bound is the relevant one (seeded weights and inputs: deterministic)
        assert!(max_abs > 1.0, "max |u_t| = {max_abs}");
    }
}

/// With the candidate saturated at 1 (`NN2`'s last layer: weight 0, bias 40) the update formula
/// gives, exactly in f64: both gates open → `u_t = t` (the bound is attained: the memory
/// accumulates), retain gate shut → `u_t = 1`, update gate shut → `u_t = 0`.
#[test]
fn saturated_gates_make_the_memory_count_steps() {
    let cases = [
        (
            40.0,
            40.0,
            "both open",
            Box::new(|t: usize| t as f64) as Box<dyn Fn(usize) -> f64>,
        ),
        (-40.0, 40.0, "retain shut", Box::new(|_| 1.0)),
        (40.0, -40.0, "update shut", Box::new(|_| 0.0)),
    ];
    for (b1, b2, what, want) in cases {
        let (m, vm) = build(&MfnConfig::default(), 3);
        for (net, bias) in [("nn2", 40.0), ("gamma1", b1), ("gamma2", b2)] {
            fill(&vm, &format!("{net}.fc2.weight"), 0.0);
            fill(&vm, &format!("{net}.fc2.bias"), bias);
        }
        let s = sample(20, 1.0, 7);
        let b = batch(&[&s], 20, 0.0, 1);
        let trace = m.memory_trace(&b, false).unwrap();
        for (t, u) in trace.iter().enumerate() {
            let w = want(t + 1);
            for x in &rows(u)[0] {
                assert!((x - w).abs() < 1e-12, "{what}: step {}: {x} vs {w}", t + 1);
            }
        }
        // and the fused representation Z is u at the last valid step
        let out = m.forward(&b, false).unwrap();
        assert!((rows(&out.fused)[0][0] - want(20)).abs() < 1e-12, "{what}");
    }
}

/// Three samples of lengths 7, 20, 13 padded to 30 steps with large noise (not zeros) give the
/// same prediction, `Z_i` and `Z` as each sample alone without padding (f64, 1e-9), in inference
/// for both input modes.
#[test]
fn garbage_after_the_last_valid_step_changes_nothing() {
    for mmsa_av_mean in [false, true] {
        let cfg = MfnConfig {
            mmsa_av_mean,
            ..MfnConfig::default()
        };
        let (m, _) = build(&cfg, 5);
        let samples: Vec<Sample> = [7, 20, 13]
            .iter()
            .enumerate()
            .map(|(i, &l)| sample(l, 1.0, 20 + i as u64))
            .collect();
        let refs: Vec<&Sample> = samples.iter().collect();
        let padded = m.forward(&batch(&refs, 30, 10.0, 9), false).unwrap();
        for (i, s) in samples.iter().enumerate() {
            let alone = m.forward(&batch(&[s], s.len, 0.0, 0), false).unwrap();
            let p = padded.prediction.to_vec1::<f64>().unwrap()[i];
            let a = alone.prediction.to_vec1::<f64>().unwrap()[0];
            assert!((p - a).abs() < 1e-9, "sample {i}: {p} padded vs {a} alone");
            let pairs = alone
                .unimodal
                .iter()
                .zip(&padded.unimodal)
                .chain([(&alone.fused, &padded.fused)]);
            for (za, zp) in pairs {
                let (ra, rp) = (rows(za)[0].clone(), rows(zp)[i].clone());
                let d = ra
                    .iter()
                    .zip(&rp)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f64::max);
                assert!(d < 1e-9, "sample {i}: representation changed by {d}");
            }
        }
    }
}

fn reversed(s: &Sample, modalities: &[usize]) -> Sample {
    let mut x = s.x.clone();
    for &m in modalities {
        let d = DIMS[m];
        x[m] = s.x[m]
            .chunks(d)
            .rev()
            .flat_map(|c| c.iter().copied())
            .collect();
    }
    Sample { x, len: s.len }
}

fn predict_one(m: &Mfn, s: &Sample) -> f64 {
    m.forward(&batch(&[s], s.len, 0.0, 0), false)
        .unwrap()
        .prediction
        .to_vec1::<f64>()
        .unwrap()[0]
}

/// MMSA's quirk (`mmsa_av_mean`) feeds the time-mean of audio and vision at every step, so
/// reversing their steps leaves the prediction unchanged, while reversing text changes it; with
/// the paper's per-step inputs (default) reversing audio/vision changes it.
#[test]
fn the_mmsa_quirk_sees_only_time_means_of_audio_and_vision() {
    let s = sample(15, 1.0, 42);
    let quirk = MfnConfig {
        mmsa_av_mean: true,
        ..MfnConfig::default()
    };
    let (mq, _) = build(&quirk, 8);
    let base = predict_one(&mq, &s);
    let av = predict_one(&mq, &reversed(&s, &[1, 2]));
    assert!((base - av).abs() < 1e-9, "quirk: {base} vs {av}");
    let txt = predict_one(&mq, &reversed(&s, &[0]));
    assert!(
        (base - txt).abs() > 1e-6,
        "quirk, text reversed: {base} vs {txt}"
    );

    let (mp, _) = build(&MfnConfig::default(), 8);
    let base = predict_one(&mp, &s);
    let av = predict_one(&mp, &reversed(&s, &[1, 2]));
    assert!(
        (base - av).abs() > 1e-6,
        "per-step: {base} vs {av} (order of audio/vision ignored)"
    );
}

/// Defaults are MMSA's MOSI values and validate; each bad field is named; unknown JSON fields
/// are rejected; building from an invalid configuration is an error, not a panic.
#[test]
fn config_defaults_validation_and_serde() {
    let d = MfnConfig::default();
    assert_eq!(d.hidden, [256, 32, 256]);
    assert_eq!((d.mem, d.window), (400, 2));
    assert_eq!(
        [d.nn1, d.nn2, d.gamma1, d.gamma2, d.out],
        [
            MlpSpec {
                width: 32,
                dropout: 0.2
            },
            MlpSpec {
                width: 64,
                dropout: 0.0
            },
            MlpSpec {
                width: 256,
                dropout: 0.7
            },
            MlpSpec {
                width: 32,
                dropout: 0.5
            },
            MlpSpec {
                width: 128,
                dropout: 0.0
            },
        ]
    );
    assert!(d.validate().is_ok());
    let bad = MfnConfig { window: 0, ..d };
    assert_eq!(bad.validate().unwrap_err().field, "window");
    let bad = MfnConfig {
        gamma1: MlpSpec {
            width: 8,
            dropout: 1.0,
        },
        ..d
    };
    assert_eq!(bad.validate().unwrap_err().field, "gamma1.dropout");
    let bad = MfnConfig {
        hidden: [256, 0, 256],
        ..d
    };
    assert_eq!(bad.validate().unwrap_err().field, "hidden.audio");
    let ctx = BuildCtx {
        text_encoder: None,
        dims: DIMS,
        seed: 0,
        task: Task::Regression,
    };
    assert!(Checked::new(bad).is_err());
    assert!(build_model::<Mfn>(&bad, &ctx, &Device::Cpu).is_err());

    let partial: MfnConfig = serde_json::from_str(r#"{"mem": 64, "mmsa_av_mean": true}"#).unwrap();
    assert_eq!(
        (partial.mem, partial.mmsa_av_mean, partial.hidden),
        (64, true, d.hidden)
    );
    assert!(serde_json::from_str::<MfnConfig>(r#"{"memsize": 64}"#).is_err());
    assert!(serde_json::from_str::<MfnConfig>(r#"{"nn1": {"width": 3}}"#).is_err());
    // rep_dims: Z_i = the three hidden widths, Z = the memory
    let (m, _) = build(&MfnConfig { mem: 17, ..d }, 1);
    assert_eq!(m.rep_dims(), (vec![256, 32, 256], 17));
}

/// The configurations the fused pass is checked on: MMSA's defaults, windows of 1 and 3, and
/// MMSA's time-mean quirk.
fn fused_configs() -> Vec<(&'static str, MfnConfig)> {
    let d = MfnConfig::default();
    vec![
        ("default", d),
        ("window 1", MfnConfig { window: 1, ..d }),
        ("window 3", MfnConfig { window: 3, ..d }),
        (
            "mmsa_av_mean",
            MfnConfig {
                mmsa_av_mean: true,
                ..d
            },
        ),
    ]
}

/// Five samples of lengths 9, 3, 14, 1, 9 padded to 16 steps with noise.
fn ragged_batch(dtype: DType) -> SeqBatch {
    let samples: Vec<Sample> = [9, 3, 14, 1, 9]
        .iter()
        .enumerate()
        .map(|(i, &l)| sample(l, 1.0, 60 + i as u64))
        .collect();
    let refs: Vec<&Sample> = samples.iter().collect();
    let b = batch(&refs, 16, 3.0, 61);
    let cast = |t: &Tensor| t.to_dtype(dtype).unwrap();
    SeqBatch {
        inputs: [cast(&b.inputs[0]), cast(&b.inputs[1]), cast(&b.inputs[2])],
        last: cast(&b.last),
        mask: cast(&b.mask),
        label: cast(&b.label),
        ..b
    }
}

/// `max |a − b| / max(1, max |b|)`.
fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    assert_eq!(a.dims(), b.dims());
    let diff = (&a - &b).unwrap().abs().unwrap().max(0).unwrap();
    let scale = b.abs().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap();
    diff.to_scalar::<f64>().unwrap() / scale.max(1.0)
}

fn outputs(o: &neural_synergy::models::ModelOutput) -> Vec<Tensor> {
    let mut v = vec![o.prediction.clone(), o.fused.clone()];
    v.extend(o.unimodal.iter().cloned());
    v
}

/// In inference the fused forward pass (fused CPU kernels, and their plain-op fallback) gives the
/// step-by-step reference's prediction, `Z` and `Z_i`: f64 to 1e-10, f32 to 1e-5, on a batch of
/// variable lengths with noise after each sample's end, for each of [`fused_configs`].
#[test]
fn fused_forward_equals_the_stepwise_reference_in_inference() {
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-5)] {
        let b = ragged_batch(dtype);
        for (what, cfg) in fused_configs() {
            let (mut m, _) = build_as(&cfg, 21, dtype);
            let want = outputs(&m.forward_stepwise(&b, false).unwrap());
            for fused in [true, false] {
                m.set_fused(fused);
                let got = outputs(&m.forward(&b, false).unwrap());
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    let d = max_rel(g, w);
                    assert!(
                        d < tol,
                        "{what}, {dtype:?}, fused {fused}: output {k} off by {d}"
                    );
                }
            }
        }
    }
}

/// The memory trace equals the reference's at every sample's valid steps and repeats the last
/// valid `u` after them (f64).
#[test]
fn fused_memory_trace_equals_the_stepwise_reference_at_valid_steps() {
    let b = ragged_batch(DType::F64);
    let (m, _) = build(&MfnConfig::default(), 4);
    let got = m.memory_trace(&b, false).unwrap();
    let want = m.memory_trace_stepwise(&b, false).unwrap();
    assert_eq!(got.len(), 16);
    for (i, &len) in b.lengths.iter().enumerate() {
        for t in 0..16 {
            let g = got[t].get(i).unwrap();
            let w = want[t.min(len - 1)].get(i).unwrap();
            let d = max_rel(&g, &w);
            assert!(d < 1e-10, "sample {i} (length {len}), step {t}: off by {d}");
        }
    }
}

/// `Σ_k ⟨R_k, o_k⟩` over the prediction, `Z` and the `Z_i` with fixed random weights `R_k`.
fn probe_loss(o: &neural_synergy::models::ModelOutput) -> Tensor {
    let mut total: Option<Tensor> = None;
    for (k, t) in outputs(o).iter().enumerate() {
        let n = t.elem_count();
        let mut r = common_rng(500 + k as u64);
        let w: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut r)).collect();
        let w = Tensor::from_vec(w, t.shape(), &Device::Cpu)
            .unwrap()
            .to_dtype(t.dtype())
            .unwrap();
        let term = (t * w).unwrap().sum_all().unwrap();
        total = Some(match total {
            Some(s) => (s + term).unwrap(),
            None => term,
        });
    }
    total.unwrap()
}

/// Gradients of every variable, by name.
fn var_grads(vm: &VarMap, loss: &Tensor) -> Vec<(String, Tensor)> {
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let v = data[name].as_tensor();
            let g = grads
                .get(v)
                .cloned()
                .unwrap_or_else(|| v.zeros_like().unwrap());
            (name.clone(), g)
        })
        .collect()
}

/// With dropout off (inference), the gradients of a scalar function of all outputs with respect
/// to every variable are the reference's (f64, relative 1e-9), through the fused kernels' hand-
/// written backward passes and through their plain-op fallback, for each of [`fused_configs`].
#[test]
fn fused_gradients_equal_the_stepwise_reference() {
    let b = ragged_batch(DType::F64);
    for (what, cfg) in fused_configs() {
        let (mut m, vm) = build(&cfg, 23);
        let want = var_grads(&vm, &probe_loss(&m.forward_stepwise(&b, false).unwrap()));
        assert_eq!(want.len(), 32, "{what}: variables");
        for fused in [true, false] {
            m.set_fused(fused);
            let got = var_grads(&vm, &probe_loss(&m.forward(&b, false).unwrap()));
            let max_abs = |t: &Tensor| {
                t.abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            for ((name, g), (_, w)) in got.iter().zip(&want) {
                let scale = max_abs(w);
                assert!(scale > 0.0, "{what}: no gradient for {name}");
                let d = max_abs(&(g - w).unwrap());
                assert!(
                    d <= 1e-9 * scale,
                    "{what}, fused {fused}: {name} off by {d} (scale {scale})"
                );
            }
        }
    }
}

/// In training (dropout on, masks drawn for all rows at once) the fused kernels and their plain
/// fallback draw the same masks and agree in outputs and gradients (f64); two equally seeded
/// models train identically; dropout changes the outputs.
#[test]
fn fused_training_pass_matches_its_fallback_and_is_reproducible() {
    let b = ragged_batch(DType::F64);
    let cfg = MfnConfig::default();
    let (m1, vm1) = build(&cfg, 31);
    let (mut m2, vm2) = build(&cfg, 31);
    m2.set_fused(false);
    let o1 = m1.forward(&b, true).unwrap();
    let o2 = m2.forward(&b, true).unwrap();
    for (k, (x, y)) in outputs(&o1).iter().zip(&outputs(&o2)).enumerate() {
        assert!(max_rel(x, y) < 1e-10, "output {k}");
    }
    let g1 = var_grads(&vm1, &probe_loss(&o1));
    let g2 = var_grads(&vm2, &probe_loss(&o2));
    for ((name, x), (_, y)) in g1.iter().zip(&g2) {
        assert!(max_rel(x, y) < 1e-9, "{name}");
    }
    let (m3, _) = build(&cfg, 31);
    let o3 = m3.forward(&b, true).unwrap();
    assert_eq!(
        o1.prediction.to_vec1::<f64>().unwrap(),
        o3.prediction.to_vec1::<f64>().unwrap()
    );
    let eval = m3.forward(&b, false).unwrap();
    assert!(max_rel(&o1.fused, &eval.fused) > 1e-6);
}

/// Lengths of 0, longer than the batch, or of the wrong count are errors, not panics.
#[test]
fn fused_forward_rejects_bad_lengths() {
    let (m, _) = build(&MfnConfig::default(), 2);
    let good = ragged_batch(DType::F64);
    for lengths in [
        vec![9, 3, 14, 0, 9],
        vec![9, 3, 17, 1, 9],
        vec![9, 3, 14, 1],
    ] {
        let b = SeqBatch {
            lengths: lengths.clone(),
            ..good.clone()
        };
        assert!(m.forward(&b, false).is_err(), "{lengths:?}");
        assert!(m.memory_trace(&b, false).is_err(), "{lengths:?}");
    }
}
