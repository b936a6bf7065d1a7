//! The contract every registered fusion model satisfies (run for each [`ModelKind`]): output
//! shapes, predictions independent of padding, bit-identical reruns from a seed, a gradient for
//! every parameter, overfitting 32 training clips, and training with the C-network (SMMD and SKL)
//! through the unchanged generic trainer. Model-specific facts live in `models_<name>.rs`.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use neural_synergy::data::{synthetic, Dataset, Split, Task};
use neural_synergy::models::{BuildCtx, FusionModel, ModelConfig, ModelKind, ModelVisitor};
use neural_synergy::synergy::nets::seed_varmap;
use neural_synergy::synergy::{CNetwork, SynergyConfig, SynergyStep, TaskStep};
use neural_synergy::train::{predict, train_run, trainable_vars, RunConfig, TaskLoss, Variant};
use std::sync::OnceLock;

/// The synthetic MOSI tier with made-up words tokenised by the tiny fixture BERT, so the
/// BERT-based models run through the same contract (their inputs are the tokens and the
/// word-aligned audio/vision; the other models ignore the tokens).
fn data() -> &'static Dataset {
    static D: OnceLock<Dataset> = OnceLock::new();
    D.get_or_init(|| {
        let mut ds = synthetic::generate(0);
        crate::models_bert::with_tiny_tokens(&mut ds);
        ds
    })
}

fn build<M: FusionModel>(cfg: &M::Config, seed: u64, dtype: DType) -> (M, VarMap) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
    let ctx = BuildCtx {
        text_encoder: Some(crate::models_bert::tiny_dir()),
        dims: data().dims,
        seed,
        task: Task::Regression,
    };
    let m = M::new(
        &neural_synergy::Checked::new(cfg.clone()).unwrap(),
        &ctx,
        vb,
    )
    .unwrap();
    seed_varmap(&vm, seed).unwrap();
    m.load_pretrained(&vm, &ctx).unwrap();
    (m, vm)
}

/// A generic test body: `Body::check::<M>(kind, cfg)`.
trait Body {
    fn check<M: FusionModel>(&self, kind: ModelKind, cfg: &M::Config);
}

struct Run<'a, B: Body>(&'a B, ModelKind);

impl<B: Body> ModelVisitor for Run<'_, B> {
    type Output = ();
    fn visit<M: FusionModel>(self, cfg: &M::Config) {
        self.0.check::<M>(self.1, cfg)
    }
}

fn every_model<B: Body>(b: &B) {
    for &k in ModelKind::ALL {
        k.default_config().visit(Run(b, k));
    }
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn row(t: &Tensor, i: usize) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()[i].clone()
}

#[test]
fn output_shapes_match_rep_dims() {
    struct B;
    impl Body for B {
        fn check<M: FusionModel>(&self, kind: ModelKind, cfg: &M::Config) {
            let ds = data();
            let (m, _) = build::<M>(cfg, 1, DType::F32);
            let b = ds
                .batch(&ds.train, &[0, 1, 2, 3, 4], &[], DType::F32, &Device::Cpu)
                .unwrap();
            for train in [false, true] {
                let out = m.forward(&b, train).unwrap();
                let (dims, fused) = m.rep_dims();
                assert_eq!(dims.len(), 3, "{kind:?}: three unimodal representations");
                let got: Vec<(usize, usize)> =
                    out.unimodal.iter().map(|z| z.dims2().unwrap()).collect();
                let want: Vec<(usize, usize)> = dims.iter().map(|d| (5, *d)).collect();
                assert_eq!(got, want, "{kind:?} Z_i shapes");
                assert_eq!(out.fused.dims2().unwrap(), (5, fused), "{kind:?} Z shape");
                assert_eq!(out.prediction.dims(), &[5], "{kind:?} prediction shape");
                if !train {
                    assert!(
                        out.aux_loss.is_none(),
                        "{kind:?}: no auxiliary loss at inference"
                    );
                }
            }
        }
    }
    every_model(&B);
}

#[test]
fn predictions_do_not_depend_on_padding() {
    struct B;
    impl Body for B {
        fn check<M: FusionModel>(&self, kind: ModelKind, cfg: &M::Config) {
            let ds = data();
            let dev = Device::Cpu;
            let (m, _) = build::<M>(cfg, 1, DType::F64);
            let s = &ds.test;
            let short = (0..s.len()).min_by_key(|&i| s.lengths[i]).unwrap();
            let long = (0..s.len()).max_by_key(|&i| s.lengths[i]).unwrap();
            assert!(s.lengths[short] < s.lengths[long]);
            let alone = m
                .forward(
                    &ds.batch(s, &[short], &[], DType::F64, &dev).unwrap(),
                    false,
                )
                .unwrap();
            let mixed = m
                .forward(
                    &ds.batch(s, &[short, long], &[], DType::F64, &dev).unwrap(),
                    false,
                )
                .unwrap();
            let a = alone.prediction.to_vec1::<f64>().unwrap()[0];
            let b = mixed.prediction.to_vec1::<f64>().unwrap()[0];
            assert!((a - b).abs() < 1e-9, "{kind:?}: {a} alone vs {b} padded");
            for (za, zb) in alone.unimodal.iter().zip(&mixed.unimodal) {
                let d = max_abs_diff(&row(za, 0), &row(zb, 0));
                assert!(d < 1e-9, "{kind:?}: Z_i changed by padding ({d})");
            }
            let d = max_abs_diff(&row(&alone.fused, 0), &row(&mixed.fused, 0));
            assert!(d < 1e-9, "{kind:?}: Z changed by padding ({d})");
        }
    }
    every_model(&B);
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn reruns_from_a_seed_are_bit_identical_and_seeds_differ() {
    struct B;
    impl Body for B {
        fn check<M: FusionModel>(&self, kind: ModelKind, cfg: &M::Config) {
            let ds = data();
            let b = ds
                .batch(
                    &ds.train,
                    &(0..8).collect::<Vec<_>>(),
                    &[],
                    DType::F32,
                    &Device::Cpu,
                )
                .unwrap();
            let run = |seed| {
                let (m, _) = build::<M>(cfg, seed, DType::F32);
                // two training-mode passes: dropout streams advance identically
                let o1 = m.forward(&b, true).unwrap();
                let o2 = m.forward(&b, true).unwrap();
                (bits(&o1.prediction), bits(&o2.prediction), bits(&o2.fused))
            };
            assert_eq!(run(5), run(5), "{kind:?}: same seed, same bits");
            assert_ne!(run(5).0, run(6).0, "{kind:?}: another seed, other weights");
        }
    }
    every_model(&B);
}

#[test]
fn every_parameter_receives_a_non_zero_gradient() {
    struct B;
    impl Body for B {
        fn check<M: FusionModel>(&self, kind: ModelKind, cfg: &M::Config) {
            let ds = data();
            let (m, vm) = build::<M>(cfg, 2, DType::F32);
            let b = ds
                .batch(
                    &ds.train,
                    &(0..15).collect::<Vec<_>>(),
                    &[],
                    DType::F32,
                    &Device::Cpu,
                )
                .unwrap();
            // two earlier training batches: a model with a memory of past batches (MMIM's
            // entropy term) has all its loss terms from the third batch of an epoch on
            for _ in 0..2 {
                m.forward(&b, true).unwrap();
            }
            let out = m.forward(&b, true).unwrap();
            // MSE, not L1: L1's bias gradient mean(sign(p − y)) is exactly 0 when half the
            // predictions lie above their labels
            let mut loss = TaskLoss::Mse.loss(&out.prediction, &b.label).unwrap();
            if let Some(a) = &out.aux_loss {
                loss = (loss + a).unwrap();
            }
            let grads = loss.backward().unwrap();
            let data = vm.data().lock().unwrap();
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            let mut checked = 0;
            for name in names {
                if neural_synergy::models::is_buffer(name) {
                    continue;
                }
                let v = &data[name];
                let g = grads
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("{kind:?}: no gradient for {name}"));
                let n = g
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                assert!(
                    n > 0.0 && n.is_finite(),
                    "{kind:?}: gradient of {name} is {n}"
                );
                checked += 1;
            }
            assert!(checked >= 4, "{kind:?}: only {checked} variables");
        }
    }
    every_model(&B);
}

/// The first `n` clips of a split.
fn head(s: &Split, n: usize, ds: &Dataset) -> Split {
    s.head(n, ds.t_max, ds.dims)
}

/// Overfitting 32 clips: with 32 training clips and ≥ 10⁴ parameters a working model and
/// optimiser drive the training MAE far below the train-mean predictor's (≈ 1.2 on these clips).
/// Threshold: a third of the train-mean MAE after 150 full-batch AdamW steps at lr 3e-3 with
/// dropout off (a model that cannot fit its inputs, or whose gradients do not reach its weights,
/// stays near 1.0).
#[test]
fn every_model_overfits_32_training_clips() {
    struct B;
    impl Body for B {
        fn check<M: FusionModel>(&self, kind: ModelKind, cfg: &M::Config) {
            let ds = data();
            let dev = Device::Cpu;
            let small = head(&ds.train, 32, ds);
            let (m, vm) = build::<M>(cfg, 3, DType::F32);
            let mut opt = TaskStep::new(trainable_vars(&vm), 3e-3, 0.0, 5.0).unwrap();
            let idx: Vec<usize> = (0..32).collect();
            let b = ds.batch(&small, &idx, &[], DType::F32, &dev).unwrap();
            let labels: Vec<f64> = small.labels.iter().map(|v| *v as f64).collect();
            let mean = labels.iter().sum::<f64>() / 32.0;
            let base = neural_synergy::metrics::mae(&[mean; 32], &labels);
            for _ in 0..150 {
                // forward(train = false): no dropout, but every weight still learns
                let out = m.forward(&b, false).unwrap();
                let loss = TaskLoss::L1.loss(&out.prediction, &b.label).unwrap();
                opt.step(&loss).unwrap();
            }
            let p = predict(&m, ds, &small, &[], &dev).unwrap();
            let fit = neural_synergy::metrics::mae(&p, &labels);
            assert!(
                fit < base / 3.0,
                "{kind:?}: train MAE {fit:.3} after 150 steps, train-mean MAE {base:.3}"
            );
        }
    }
    every_model(&B);
}

pub(crate) fn tiny() -> Dataset {
    let ds = data();
    let mut t = ds.clone();
    t.train = head(&ds.train, 64, ds);
    t.valid = head(&ds.valid, 32, ds);
    t.test = head(&ds.test, 48, ds);
    t
}

/// One epoch of `model` and `variant` at batch 16, learning rate 1e-3, seed 0, L1.
pub(crate) fn one_epoch_run(model: ModelConfig, variant: Variant) -> RunConfig {
    RunConfig {
        model,
        variant,
        batch_size: 16,
        lr: 1e-3,
        seed: 0,
        max_epochs: 1,
        patience: 8,
        loss: TaskLoss::L1,
        synergy: SynergyConfig::default(),
    }
}

#[test]
fn every_model_trains_with_the_c_network_through_the_generic_trainer() {
    let ds = tiny();
    for &k in ModelKind::ALL {
        for variant in Variant::EVERY {
            let cfg = one_epoch_run(k.default_config(), variant);
            let r = train_run(&ds, &cfg, |_, _| {}).unwrap();
            assert!(r.failure.is_none(), "{k:?} {variant:?}: {:?}", r.failure);
            let t = r.test.expect("a checkpoint");
            let m = t.regression().unwrap();
            assert!(m.mae.is_finite() && m.mae < 3.0, "{k:?} {variant:?}: {m:?}");
            assert_eq!(r.test_predictions.as_ref().unwrap().len(), 48);
        }
    }
}

/// Attaching a C-network to a model (Algorithm D steps taken) never involves it in inference:
/// the trainer's prediction path does not call it, and predictions are the same with it alive or
/// dropped.
#[test]
fn inference_never_uses_the_c_network() {
    let ds = tiny();
    let dev = Device::Cpu;
    for &k in ModelKind::ALL {
        struct V<'a>(&'a Dataset, &'a Device);
        impl ModelVisitor for V<'_> {
            type Output = ();
            fn visit<M: FusionModel>(self, cfg: &M::Config) {
                let (ds, dev) = (self.0, self.1);
                let (m, vm) = build::<M>(cfg, 4, DType::F32);
                let (dims, fused) = m.rep_dims();
                let cnet =
                    CNetwork::new(SynergyConfig::default(), &dims, fused, DType::F32, dev).unwrap();
                let mut step = SynergyStep::new(cnet, trainable_vars(&vm), 1e-3).unwrap();
                let b = ds
                    .batch(
                        &ds.train,
                        &(0..16).collect::<Vec<_>>(),
                        &[],
                        DType::F32,
                        dev,
                    )
                    .unwrap();
                let out = m.forward(&b, true).unwrap();
                let loss = TaskLoss::L1.loss(&out.prediction, &b.label).unwrap();
                step.step(&out, &loss).unwrap();
                let calls = step.cnet.calls();
                assert!(calls >= 1, "the training step evaluated the C-network");
                let with = predict(&m, ds, &ds.valid, &[], dev).unwrap();
                assert_eq!(
                    step.cnet.calls(),
                    calls,
                    "prediction did not call the C-network"
                );
                drop(step);
                let without = predict(&m, ds, &ds.valid, &[], dev).unwrap();
                assert_eq!(with, without);
            }
        }
        k.default_config().visit(V(&ds, &dev));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// `SeededDropout`'s masks are the stream `u < p ? 0 : 1/(1−p)` with `u = rng.random::<f64>()`
    /// of `ChaCha8(seed ⊕ call·φ)`, one draw per element in order — the definition its fast
    /// integer-threshold form must keep (checked over two calls, odd sizes and p near the
    /// thresholds' edges).
    #[test]
    fn seeded_dropout_mask_is_the_f64_uniform_stream(n in 1usize..300, p in 0.0f64..0.99, seed in proptest::prelude::any::<u64>()) {
        use rand::{Rng, SeedableRng};
        let d = neural_synergy::models::SeededDropout::new(p, seed);
        let x = Tensor::ones(n, DType::F32, &Device::Cpu).unwrap();
        for call in 0u64..2 {
            let y = d.forward(&x, true).unwrap().to_vec1::<f32>().unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let keep = (1.0 / (1.0 - p)) as f32;
            let want: Vec<f32> = (0..n).map(|_| if rng.random::<f64>() < p { 0.0 } else { keep }).collect();
            proptest::prop_assert_eq!(y, want);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    /// A batch gathered from a split uploaded once (`DeviceSplit`, what a GPU run uses) is the
    /// host-assembled batch, tensor for tensor — inputs, valid-step mask, last-step one-hot,
    /// labels, lengths and tokens — for any rows, order and dropped modalities.
    #[test]
    fn device_split_batches_equal_host_batches(rows in proptest::collection::vec(0usize..1000, 1..40), drop_mask in 0usize..8, which in 0usize..3) {
        let ds = data();
        let split = [&ds.train, &ds.valid, &ds.test][which];
        let idx: Vec<usize> = rows.iter().map(|r| r % split.len()).collect();
        let drop: Vec<usize> = (0..3).filter(|m| drop_mask >> m & 1 == 1).collect();
        let up = neural_synergy::data::DeviceSplit::upload(ds, split, DType::F32, &Device::Cpu).unwrap();
        let a = up.batch(ds, split, &idx, &drop).unwrap();
        let b = ds.batch(split, &idx, &drop, DType::F32, &Device::Cpu).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
        for m in 0..3 {
            proptest::prop_assert_eq!(a.inputs[m].dims(), b.inputs[m].dims());
            proptest::prop_assert_eq!(flat(&a.inputs[m]), flat(&b.inputs[m]));
        }
        proptest::prop_assert_eq!(&a.lengths, &b.lengths);
        proptest::prop_assert_eq!(a.mask.dims(), b.mask.dims());
        proptest::prop_assert_eq!(flat(&a.mask), flat(&b.mask));
        proptest::prop_assert_eq!(flat(&a.last), flat(&b.last));
        proptest::prop_assert_eq!(flat(&a.label), flat(&b.label));
        proptest::prop_assert_eq!(a.tokens.is_some(), b.tokens.is_some());
        if let (Some(x), Some(y)) = (&a.tokens, &b.tokens) {
            proptest::prop_assert_eq!(flat(&x.ids), flat(&y.ids));
            proptest::prop_assert_eq!(flat(&x.mask), flat(&y.mask));
        }
    }
}
