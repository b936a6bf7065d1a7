//! TFN-specific facts: the tensor fusion is the documented outer product (against nested loops),
//! the forward pass is wired as documented (`Z` = first post-fusion activation, regression output
//! `6σ(s) − 3`, binary output the raw logit `s`), and bad configurations are typed errors.

use crate::common::{flat_f64, rng};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};
use neural_synergy::data::{synthetic, Dataset, SeqBatch, Task};
use neural_synergy::models::tfn::{tensor_fusion, Tfn, TfnConfig};
use neural_synergy::models::{BuildCtx, FusionModel};
use neural_synergy::synergy::nets::seed_varmap;
use neural_synergy::train::build_model;
use neural_synergy::{Checked, Validate};
use rand_distr::{Distribution, StandardNormal};

fn randn(b: usize, d: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut r = rng(seed);
    (0..b)
        .map(|_| (0..d).map(|_| StandardNormal.sample(&mut r)).collect())
        .collect()
}

fn tensor(rows: &[Vec<f64>]) -> Tensor {
    let d = rows[0].len();
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), d), &Device::Cpu).unwrap()
}

fn ext(z: &[f64]) -> Vec<f64> {
    std::iter::once(1.0).chain(z.iter().copied()).collect()
}

#[test]
fn tensor_fusion_equals_nested_loops() {
    // (1,1,1): the 2×2×2 tensor of the paper's figure; (2,3,4): unequal widths catch layout slips
    for (case, &(da, dv, dt)) in [(1, 1, 1), (2, 3, 4)].iter().enumerate() {
        let b = 3;
        let s = 10 * case as u64;
        let (a, v, t) = (randn(b, da, s), randn(b, dv, s + 1), randn(b, dt, s + 2));
        let got = tensor_fusion(&tensor(&a), &tensor(&v), &tensor(&t))
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        assert_eq!(got.len(), b);
        for n in 0..b {
            let (ea, ev, et) = (ext(&a[n]), ext(&v[n]), ext(&t[n]));
            let mut want = Vec::new();
            for x in &ea {
                for y in &ev {
                    for z in &et {
                        want.push(x * y * z);
                    }
                }
            }
            assert_eq!(got[n].len(), (da + 1) * (dv + 1) * (dt + 1));
            for (g, w) in got[n].iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "case {case} row {n}: {g} vs {w}");
            }
            // the constant and the unimodal vectors sit where the rustdoc says
            assert_eq!(got[n][0], 1.0);
            for k in 0..dt {
                assert!((got[n][1 + k] - t[n][k]).abs() < 1e-15);
            }
        }
    }
}

#[test]
fn tensor_fusion_rejects_mismatched_batches() {
    let a = tensor(&randn(3, 2, 1));
    let v = tensor(&randn(2, 2, 2));
    let t = tensor(&randn(3, 2, 3));
    assert!(tensor_fusion(&a, &v, &t).is_err());
    let flat = Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap();
    assert!(tensor_fusion(&flat, &t, &t).is_err());
}

fn data() -> Dataset {
    synthetic::generate(0)
}

fn build(ds: &Dataset, task: Task, seed: u64) -> (Tfn, VarMap) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let ctx = BuildCtx {
        text_encoder: None,
        dims: ds.dims,
        seed,
        task,
    };
    let m = Tfn::new(&Checked::new(TfnConfig::default()).unwrap(), &ctx, vb).unwrap();
    seed_varmap(&vm, seed).unwrap();
    (m, vm)
}

fn layer(vm: &VarMap, name: &str) -> Linear {
    let d = vm.data().lock().unwrap();
    Linear::new(
        d[&format!("{name}.weight")].as_tensor().clone(),
        Some(d[&format!("{name}.bias")].as_tensor().clone()),
    )
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn batch(ds: &Dataset, n: usize) -> SeqBatch {
    let idx: Vec<usize> = (0..n).collect();
    ds.batch(&ds.train, &idx, &[], DType::F64, &Device::Cpu)
        .unwrap()
}

#[test]
fn forward_is_wired_as_documented() {
    let ds = data();
    let b = batch(&ds, 6);
    let (m, vm) = build(&ds, Task::Regression, 7);
    let out = m.forward(&b, false).unwrap();
    let (zt, za, zv) = (&out.unimodal[0], &out.unimodal[1], &out.unimodal[2]);
    assert_eq!(m.rep_dims(), (vec![32, 32, 128], 64));
    // Z = ReLU(P1 vec(ẑ_a ⊗ ẑ_v ⊗ ẑ_t))
    let f = tensor_fusion(za, zv, zt).unwrap();
    assert_eq!(f.dims2().unwrap(), (6, 33 * 129 * 33));
    let y1 = layer(&vm, "post1").forward(&f).unwrap().relu().unwrap();
    assert!(max_diff(&y1, &out.fused) < 1e-12);
    // prediction = 6σ(P3 ReLU(P2 Z)) − 3
    let y2 = layer(&vm, "post2").forward(&y1).unwrap().relu().unwrap();
    let s = layer(&vm, "post3")
        .forward(&y2)
        .unwrap()
        .squeeze(1)
        .unwrap();
    let want = ((candle_nn::ops::sigmoid(&s).unwrap() * 6.0).unwrap() - 3.0).unwrap();
    assert!(max_diff(&want, &out.prediction) < 1e-12);

    // the binary model (same seed, same weights) returns the logit s itself
    let (mb, _) = build(&ds, Task::Binary, 7);
    let logit = mb.forward(&b, false).unwrap().prediction;
    assert!(max_diff(&logit, &s) < 1e-12);
}

#[test]
fn regression_predictions_stay_inside_the_label_range_for_wild_inputs() {
    let ds = data();
    let mut b = batch(&ds, 8);
    for x in b.inputs.iter_mut() {
        *x = (&*x * 1e4).unwrap();
    }
    for seed in 0..4 {
        let (m, _) = build(&ds, Task::Regression, seed);
        for train in [false, true] {
            let p = m.forward(&b, train).unwrap().prediction;
            for v in p.to_vec1::<f64>().unwrap() {
                assert!(v.is_finite() && (-3.0..=3.0).contains(&v), "{v}");
            }
        }
    }
}

#[test]
fn configs_are_validated_and_bad_ones_are_errors() {
    assert!(TfnConfig::default().validate().is_ok());
    let bad = [
        TfnConfig {
            text_out: 0,
            ..Default::default()
        },
        TfnConfig {
            post_fusion_dropout: 1.0,
            ..Default::default()
        },
        // (2^21+1)^3 overflows usize: an error, not a panic
        TfnConfig {
            audio_hidden: 1 << 21,
            vision_hidden: 1 << 21,
            text_out: 1 << 21,
            ..Default::default()
        },
    ];
    let ds = data();
    for c in bad {
        assert!(c.validate().is_err(), "{c:?}");
        assert!(Checked::new(c).is_err(), "{c:?}");
        let ctx = BuildCtx {
            text_encoder: None,
            dims: ds.dims,
            seed: 0,
            task: Task::Regression,
        };
        assert!(build_model::<Tfn>(&c, &ctx, &Device::Cpu).is_err(), "{c:?}");
    }
    let json = serde_json::to_string(&TfnConfig::default()).unwrap();
    let back: TfnConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, TfnConfig::default());
    assert!(serde_json::from_str::<TfnConfig>(r#"{"rank": 3}"#).is_err());
}

/// `∂(Σ w ⊙ f(a, v, t)) / ∂(a, v, t)` and the value, flattened to f64.
fn fusion_value_and_grads(
    a: &Tensor,
    v: &Tensor,
    t: &Tensor,
    w: &Tensor,
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor>,
) -> Vec<Vec<f64>> {
    let vars: Vec<candle_core::Var> = [a, v, t]
        .iter()
        .map(|x| candle_core::Var::from_tensor(x).unwrap())
        .collect();
    let y = f(
        vars[0].as_tensor(),
        vars[1].as_tensor(),
        vars[2].as_tensor(),
    )
    .unwrap();
    let grads = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
    std::iter::once(flat_f64(&y))
        .chain(
            vars.iter()
                .map(|x| flat_f64(grads.get(x.as_tensor()).unwrap())),
        )
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// The fused tensor fusion + dropout (`tensor_fusion_dropout`, one op on the CPU) is the
    /// composed `tensor_fusion` then `SeededDropout::forward` with the same seed: the same values
    /// bit for bit (same products in the same order, same masks) and the same gradients for all
    /// three inputs — 1e-12 (f64) / 1e-5 (f32) relative to the gradients' scale (the sums run in
    /// another order) — with and without dropout, in training and evaluation.
    #[test]
    fn fused_tensor_fusion_dropout_equals_the_composed_ops(
        b in 1usize..5, da in 1usize..5, dv in 1usize..4, dt in 1usize..7,
        p in proptest::prop_oneof![proptest::strategy::Just(0.0), 0.0f64..0.9],
        train in proptest::bool::ANY, f32_ in proptest::bool::ANY, seed in 0u64..1000,
    ) {
        use neural_synergy::models::tfn::tensor_fusion_dropout;
        use neural_synergy::models::SeededDropout;
        let dtype = if f32_ { DType::F32 } else { DType::F64 };
        let tol = if f32_ { 1e-5 } else { 1e-12 };
        let conv = |x: Tensor| x.to_dtype(dtype).unwrap();
        let (a, v, t) = (
            conv(tensor(&randn(b, da, seed))),
            conv(tensor(&randn(b, dv, seed + 1))),
            conv(tensor(&randn(b, dt, seed + 2))),
        );
        let w = conv(tensor(&randn(b, (da + 1) * (dv + 1) * (dt + 1), seed + 3)));
        let fused = fusion_value_and_grads(&a, &v, &t, &w, |a, v, t| {
            // a fresh dropout per evaluation: call 0 of the same stream on both paths
            tensor_fusion_dropout(a, v, t, &SeededDropout::new(p, seed), train)
        });
        let composed = fusion_value_and_grads(&a, &v, &t, &w, |a, v, t| {
            SeededDropout::new(p, seed).forward(&tensor_fusion(a, v, t)?, train)
        });
        proptest::prop_assert_eq!(&fused[0], &composed[0]);
        for (gf, gc) in fused[1..].iter().zip(&composed[1..]) {
            let scale = gc.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            for (x, y) in gf.iter().zip(gc) {
                proptest::prop_assert!((x - y).abs() <= tol * scale, "{x} vs {y}");
            }
        }
    }
}

/// The fused path rejects mismatched batch sizes with the composed path's message.
#[test]
fn fused_tensor_fusion_rejects_mismatched_batches() {
    use neural_synergy::models::tfn::tensor_fusion_dropout;
    use neural_synergy::models::SeededDropout;
    let a = tensor(&randn(3, 2, 1));
    let v = tensor(&randn(2, 2, 2));
    let t = tensor(&randn(3, 2, 3));
    let e = tensor_fusion_dropout(&a, &v, &t, &SeededDropout::new(0.5, 1), true).unwrap_err();
    assert!(e.to_string().contains("batch sizes differ"), "{e}");
}
