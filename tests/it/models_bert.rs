//! The BERT-based models (MAG-BERT, MMIM) beyond the shared contract of `models.rs`: the token
//! path (word-aligned audio/vision), pretrained weights loaded after seeding, parameter groups,
//! MAG's `α ≤ 1`, MMIM's log-determinant and two stages, and the real encoder (run when
//! `NEURAL_SYNERGY_TEXT_ENCODER` is set; CI sets it).

use candle_core::{DType, Device, IndexOp, Tensor};
use neural_synergy::data::bert::BertTokenizer;
use neural_synergy::data::{bert::tokens, synthetic, Dataset};
use neural_synergy::models::mag_bert::{MagBert, MagBertConfig};
use neural_synergy::models::{BuildCtx, FusionModel};
use neural_synergy::train::{build_model, param_groups};
use std::path::{Path, PathBuf};

/// The tiny random BERT fixture (2 layers, hidden 32).
pub(crate) fn tiny_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bert-tiny")
}

/// Whole words of the tiny fixture's vocabulary (some split into several word-pieces, e.g.
/// "unbelievable" → un ##believ ##able).
const WORDS: [&str; 16] = [
    "the",
    "movie",
    "good",
    "bad",
    "unbelievable",
    "acting",
    "boring",
    "funny",
    "loved",
    "plot",
    "not",
    "really",
    "great",
    "awful",
    "music",
    "coolly",
];

/// Gives every clip of `ds` made-up words (one per word step, deterministic) and tokenises them
/// with the tiny fixture (what the real-text tier does with real transcripts).
pub(crate) fn with_tiny_tokens(ds: &mut Dataset) {
    for s in [&mut ds.train, &mut ds.valid, &mut ds.test] {
        s.words = (0..s.len())
            .map(|i| {
                (0..s.lengths[i])
                    .map(|t| WORDS[(i * 7 + t * 3) % WORDS.len()].to_string())
                    .collect()
            })
            .collect();
    }
    let tok = BertTokenizer::from_file(&tiny_dir().join("tokenizer.json"), 50).unwrap();
    tokens::attach(ds, &tok, tiny_dir(), "tiny").unwrap();
}

pub(crate) fn small() -> Dataset {
    let mut ds = synthetic::generate(0);
    for s in [&mut ds.train, &mut ds.valid, &mut ds.test] {
        *s = s.head(40, ds.t_max, ds.dims);
    }
    with_tiny_tokens(&mut ds);
    ds
}

pub(crate) fn ctx(ds: &Dataset, dir: PathBuf) -> BuildCtx {
    BuildCtx {
        dims: ds.dims,
        seed: 5,
        task: ds.task,
        text_encoder: Some(dir),
    }
}

#[test]
fn word_pieces_carry_their_word_steps_audio_and_vision_and_specials_carry_zeros() {
    let ds = small();
    let s = &ds.train;
    let tk = s.tokens.as_ref().unwrap();
    let b = ds
        .batch(s, &[0, 1, 2], &[], DType::F32, &Device::Cpu)
        .unwrap();
    let t = b.tokens.as_ref().unwrap();
    let (n, l) = t.ids.dims2().unwrap();
    assert_eq!(n, 3);
    let a = t.aligned[0].to_vec3::<f32>().unwrap();
    let [_, da, _] = ds.dims;
    let mut pieces = 0;
    for (r, clip) in [0usize, 1, 2].into_iter().enumerate() {
        for (j, frame) in a[r].iter().enumerate().take(l) {
            let w = tk.word[clip * 50 + j];
            if w < 0 {
                assert!(frame.iter().all(|v| *v == 0.0), "clip {clip} token {j}");
            } else {
                pieces += 1;
                let w = w as usize;
                let want = &s.audio[(clip * ds.t_max + w) * da..(clip * ds.t_max + w + 1) * da];
                assert_eq!(&frame[..], want, "clip {clip} token {j} = word {w}");
            }
        }
        assert_eq!(tk.word[clip * 50], -1, "[CLS] has no word");
    }
    assert!(pieces > 3);
    // "unbelievable" is three word-pieces of one word: all three carry that word's frame
    let multi = (0..50).filter(|&j| tk.word[j] >= 0).count();
    assert!(multi >= s.lengths[0].min(48), "every word has a piece");
}

#[test]
fn synthetic_tiers_without_words_cannot_be_tokenised_and_bert_models_say_why() {
    let mut ds = synthetic::generate(0);
    let tok = BertTokenizer::from_file(&tiny_dir().join("tokenizer.json"), 50).unwrap();
    let e = tokens::attach(&mut ds, &tok, tiny_dir(), "tiny").unwrap_err();
    assert!(e.to_string().contains("synthetic tiers have none"), "{e}");
    let (m, _) = build_model::<MagBert>(
        &MagBertConfig::default(),
        &ctx(&ds, tiny_dir()),
        &Device::Cpu,
    )
    .unwrap();
    let b = ds
        .batch(&ds.train, &[0, 1], &[], DType::F32, &Device::Cpu)
        .unwrap();
    let e = m.forward(&b, false).unwrap_err().to_string();
    assert!(e.contains("needs BERT tokens"), "{e}");
}

#[test]
fn mag_bert_without_an_encoder_is_an_error_that_says_how_to_fetch_one() {
    let ds = small();
    let mut c = ctx(&ds, tiny_dir());
    c.text_encoder = None;
    let Err(e) = build_model::<MagBert>(&MagBertConfig::default(), &c, &Device::Cpu) else {
        panic!("built without an encoder")
    };
    assert!(e.to_string().contains("fetch-encoder.sh"), "{e}");
    c.text_encoder = Some(PathBuf::from("/nonexistent/encoder"));
    let Err(e) = build_model::<MagBert>(&MagBertConfig::default(), &c, &Device::Cpu) else {
        panic!("built without an encoder")
    };
    assert!(e.to_string().contains("fetch-encoder.sh"), "{e}");
}

/// The safetensors tensor `name` of a checkpoint folder.
fn checkpoint_tensor(dir: &Path, name: &str) -> Tensor {
    let t = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    t[name].clone()
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
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn pretrained_weights_are_in_the_varmap_after_build_and_seeding_did_not_overwrite_them() {
    let ds = small();
    let (_, vm) = build_model::<MagBert>(
        &MagBertConfig::default(),
        &ctx(&ds, tiny_dir()),
        &Device::Cpu,
    )
    .unwrap();
    let data = vm.data().lock().unwrap();
    for name in [
        "embeddings.word_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "encoder.layer.1.attention.self.query.weight",
        "encoder.layer.1.output.LayerNorm.bias",
        "pooler.dense.weight",
    ] {
        let var = data[&format!("bert.{name}")].as_tensor();
        let want = checkpoint_tensor(&tiny_dir(), name);
        assert_eq!(max_diff(var, &want), 0.0, "{name}");
    }
}

#[test]
fn bert_variables_get_the_bert_rate_and_the_rest_the_protocol_rate() {
    let ds = small();
    let (m, vm) = build_model::<MagBert>(
        &MagBertConfig::default(),
        &ctx(&ds, tiny_dir()),
        &Device::Cpu,
    )
    .unwrap();
    let groups = param_groups(&m, &vm, 1e-3);
    let mut rates: Vec<(f64, usize)> = groups.iter().map(|(v, lr)| (*lr, v.len())).collect();
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_bert = vm
        .data()
        .lock()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("bert."))
        .count();
    assert_eq!(rates.len(), 2, "{rates:?}");
    assert_eq!(rates[0], (2e-5, n_bert));
    assert_eq!(rates[1].0, 1e-3);
    let frozen = MagBertConfig {
        finetune: false,
        ..Default::default()
    };
    let (m, vm) = build_model::<MagBert>(&frozen, &ctx(&ds, tiny_dir()), &Device::Cpu).unwrap();
    let groups = param_groups(&m, &vm, 1e-3);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].0.len(), vm.all_vars().len() - n_bert);
}

/// A frozen MAG-BERT (`finetune: false`) runs its encoder through detached weights and
/// input-gradient-only linears: its outputs and the gradients of every variable that trains (the
/// gate and the head) are those of the same model unfrozen (to f32 rounding: the frozen linears
/// multiply all rows in one gemm), and no gradient reaches a BERT variable, while unfrozen every
/// one gets one.
#[test]
fn frozen_mag_bert_gives_the_trained_variables_the_unfrozen_gradients_and_bert_none() {
    let ds = small();
    let idx: Vec<usize> = (0..12).collect();
    let b = ds
        .batch(&ds.train, &idx, &[], DType::F32, &Device::Cpu)
        .unwrap();
    let run = |finetune: bool| {
        let cfg = MagBertConfig {
            finetune,
            ..Default::default()
        };
        let (m, vm) = build_model::<MagBert>(&cfg, &ctx(&ds, tiny_dir()), &Device::Cpu).unwrap();
        let out = m.forward(&b, false).unwrap();
        let mut loss = out.prediction.sqr().unwrap().sum_all().unwrap();
        for z in out.unimodal.iter().chain([&out.fused]) {
            loss = (loss + z.sqr().unwrap().mean_all().unwrap()).unwrap();
        }
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        let mut by_name: Vec<(String, Option<Vec<f32>>)> = data
            .iter()
            .map(|(k, v)| {
                let g = grads
                    .get(v.as_tensor())
                    .map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap());
                (k.clone(), g)
            })
            .collect();
        by_name.sort_by(|a, b| a.0.cmp(&b.0));
        let pred = out
            .prediction
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        (pred, by_name)
    };
    let (p_free, g_free) = run(true);
    let (p_frozen, g_frozen) = run(false);
    let close = |a: &[f32], b: &[f32]| {
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * scale)
    };
    assert!(close(&p_frozen, &p_free), "{p_frozen:?} vs {p_free:?}");
    let mut trained = 0;
    for ((name, gz), (_, gf)) in g_frozen.iter().zip(&g_free) {
        if name.starts_with("bert.") {
            assert!(gz.is_none(), "{name} got a gradient though frozen");
            assert!(gf.is_some(), "{name} got no gradient unfrozen");
        } else {
            let (Some(gz), Some(gf)) = (gz, gf) else {
                panic!("{name}: a trained variable without a gradient");
            };
            assert!(close(gz, gf), "{name}: {gz:?} vs {gf:?}");
            trained += 1;
        }
    }
    assert!(trained >= 4, "only {trained} trained variables compared");
}

/// MAG's `α = min(‖E‖/(‖H‖+ε)·β_shift, 1)` never exceeds 1, however large the audio/vision
/// inputs (here scaled up to 10⁶) or `β_shift` are, and the shift it admits is at most
/// `β_shift‖E‖`.
#[test]
fn mag_alpha_never_exceeds_one() {
    let mut ds = small();
    for (k, scale) in [1e-6f32, 1.0, 1e3, 1e6].into_iter().enumerate() {
        for v in ds.train.audio.iter_mut().chain(ds.train.vision.iter_mut()) {
            *v *= scale;
        }
        for beta_shift in [0.5, 1.0, 100.0] {
            let cfg = MagBertConfig {
                beta_shift,
                ..Default::default()
            };
            let mut c = ctx(&ds, tiny_dir());
            c.seed = k as u64;
            let (m, _) = build_model::<MagBert>(&cfg, &c, &Device::Cpu).unwrap();
            let idx: Vec<usize> = (0..16).collect();
            let b = ds
                .batch(&ds.train, &idx, &[], DType::F32, &Device::Cpu)
                .unwrap();
            let a = m.alpha(&b).unwrap().flatten_all().unwrap();
            let a = a.to_vec1::<f32>().unwrap();
            assert!(a.iter().all(|v| v.is_finite() && *v <= 1.0 && *v >= 0.0));
            if scale >= 1e3 && beta_shift <= 1.0 {
                assert!(a.iter().any(|v| *v < 1.0), "a large shift is scaled down");
            }
        }
        for v in ds.train.audio.iter_mut().chain(ds.train.vision.iter_mut()) {
            *v /= scale;
        }
    }
}

#[test]
fn dropping_text_blanks_the_word_pieces_but_keeps_cls_sep_and_the_mask() {
    let ds = small();
    let b = ds
        .batch(&ds.train, &[0, 1], &[0, 1], DType::F32, &Device::Cpu)
        .unwrap();
    let t = b.tokens.unwrap();
    let ids = t.ids.to_vec2::<u32>().unwrap();
    let full = ds
        .batch(&ds.train, &[0, 1], &[], DType::F32, &Device::Cpu)
        .unwrap()
        .tokens
        .unwrap();
    let fids = full.ids.to_vec2::<u32>().unwrap();
    let len = t.lengths[0];
    assert_eq!(ids[0][0], fids[0][0], "[CLS] kept");
    assert_eq!(ids[0][len - 1], fids[0][len - 1], "[SEP] kept");
    assert!(ids[0][1..len - 1].iter().all(|&i| i == 0), "pieces → [PAD]");
    let a = t.aligned[0].i(0).unwrap().abs().unwrap().sum_all().unwrap();
    assert_eq!(a.to_scalar::<f32>().unwrap(), 0.0, "audio dropped");
}

/// The real all-MiniLM-L6-v2 (skipped with a message when `NEURAL_SYNERGY_TEXT_ENCODER` is
/// unset): MAG-BERT builds with hidden 384, its BERT variables equal the checkpoint's, and a
/// forward pass on real-tokenised words is finite.
#[test]
fn mag_bert_loads_the_real_encoder_when_present() {
    let Some(dir) = std::env::var_os("NEURAL_SYNERGY_TEXT_ENCODER").map(PathBuf::from) else {
        eprintln!("skipped: NEURAL_SYNERGY_TEXT_ENCODER is unset (scripts/fetch-encoder.sh)");
        return;
    };
    let mut ds = synthetic::generate(0);
    for s in [&mut ds.train, &mut ds.valid, &mut ds.test] {
        *s = s.head(8, ds.t_max, ds.dims);
        s.words = (0..s.len())
            .map(|i| {
                (0..s.lengths[i])
                    .map(|t| ["this", "movie", "was", "really", "good"][(i + t) % 5].to_string())
                    .collect()
            })
            .collect();
    }
    let tok = BertTokenizer::from_file(&dir.join("tokenizer.json"), 50).unwrap();
    tokens::attach(&mut ds, &tok, dir.clone(), "minilm").unwrap();
    let (m, vm) = build_model::<MagBert>(
        &MagBertConfig::default(),
        &ctx(&ds, dir.clone()),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(m.rep_dims(), (vec![384, 384, 384], 384));
    let data = vm.data().lock().unwrap();
    let name = "encoder.layer.5.output.dense.weight";
    let var = data[&format!("bert.{name}")].as_tensor().clone();
    drop(data);
    assert_eq!(max_diff(&var, &checkpoint_tensor(&dir, name)), 0.0);
    let b = ds
        .batch(&ds.train, &[0, 1, 2, 3], &[], DType::F32, &Device::Cpu)
        .unwrap();
    let p = m
        .forward(&b, false)
        .unwrap()
        .prediction
        .to_vec1::<f32>()
        .unwrap();
    assert!(p.iter().all(|v| v.is_finite()));
}

/// Every variable of `vm` as (name, flattened values), in name order.
pub(crate) fn values(vm: &candle_nn::VarMap) -> Vec<(String, Vec<f32>)> {
    let data = vm.data().lock().unwrap();
    let mut v: Vec<(String, Vec<f32>)> = data
        .iter()
        .map(|(n, var)| {
            let t = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            (n.clone(), t)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Names of the variables whose values differ between two [`values`] snapshots.
pub(crate) fn changed(before: &[(String, Vec<f32>)], after: &[(String, Vec<f32>)]) -> Vec<String> {
    before
        .iter()
        .zip(after)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| a.0.clone())
        .collect()
}

mod mmim {
    use super::{changed, ctx, small, values};
    use candle_core::{DType, Device, Tensor, Var};
    use ndarray::Array2;
    use ndarray_linalg::{Cholesky, Inverse, UPLO};
    use neural_synergy::models::mmim::{logdet_spd, Mmim, MmimConfig};
    use neural_synergy::models::FusionModel;
    use neural_synergy::synergy::TaskStep;
    use neural_synergy::train::{build_model, extra_stage_vars, param_groups, TaskLoss};
    use proptest::prelude::*;

    fn spd(p: usize, entries: &[f64], ridge: f64) -> Array2<f64> {
        let b = Array2::from_shape_vec((p, p), entries[..p * p].to_vec()).unwrap();
        b.dot(&b.t()) + Array2::<f64>::eye(p) * ridge
    }

    fn tensor(a: &Array2<f64>) -> Tensor {
        Tensor::from_iter(a.iter().copied(), &Device::Cpu)
            .unwrap()
            .reshape(a.dim())
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The differentiable Cholesky log-determinant equals LAPACK's (ndarray-linalg's Cholesky) on
        /// random SPD matrices `B Bᵀ + rI` of sizes 1–6, to 1e-9 relative in f64.
        #[test]
        fn logdet_spd_equals_the_lapack_cholesky_reference(
            p in 1usize..=6,
            entries in proptest::collection::vec(-2.0f64..2.0, 36),
            ridge in 1e-3f64..2.0,
        ) {
            let a = spd(p, &entries, ridge);
            let want = 2.0 * a.cholesky(UPLO::Lower).unwrap().diag().iter().map(|v| v.ln()).sum::<f64>();
            let got = logdet_spd(&tensor(&a)).unwrap().to_scalar::<f64>().unwrap();
            prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{got} vs {want}");
        }

        /// Its gradient is the closed form: `d/dt ln det(A + tI) = tr(A⁻¹)`.
        #[test]
        fn logdet_gradient_is_the_trace_of_the_inverse(
            p in 1usize..=5,
            entries in proptest::collection::vec(-2.0f64..2.0, 36),
            ridge in 1e-2f64..2.0,
        ) {
            let a = spd(p, &entries, ridge);
            let t = Var::new(0.0f64, &Device::Cpu).unwrap();
            let eye = Tensor::eye(p, DType::F64, &Device::Cpu).unwrap();
            let at = (tensor(&a) + eye.broadcast_mul(t.as_tensor()).unwrap()).unwrap();
            let g = logdet_spd(&at).unwrap().backward().unwrap();
            let got = g.get(t.as_tensor()).unwrap().to_scalar::<f64>().unwrap();
            let want = a.inv().unwrap().diag().sum();
            prop_assert!((got - want).abs() <= 1e-7 * want.abs().max(1.0), "{got} vs {want}");
        }
    }

    #[test]
    fn logdet_of_a_matrix_that_is_not_positive_definite_is_an_error_not_a_nan() {
        for a in [
            Tensor::new(&[[1.0f64, 2.0], [2.0, 1.0]], &Device::Cpu).unwrap(),
            Tensor::new(&[[0.0f64, 0.0], [0.0, 1.0]], &Device::Cpu).unwrap(),
            Tensor::new(&[[f64::NAN, 0.0], [0.0, 1.0]], &Device::Cpu).unwrap(),
        ] {
            let e = logdet_spd(&a).unwrap_err().to_string();
            assert!(e.contains("not positive definite"), "{e}");
        }
        assert!(logdet_spd(&Tensor::zeros((2, 3), DType::F64, &Device::Cpu).unwrap()).is_err());
    }

    /// Stage 1 (MMILB, `−lld`) moves only `mi.*` (and, as in MMSA, not the entropy projection,
    /// which `lld` does not depend on); stage 2 (task + α·nce − β·lld − β·H) moves everything
    /// but `mi.*`, BERT included.
    #[test]
    fn mmim_two_stages_change_only_their_own_parameter_sets() {
        let ds = small();
        let (m, vm) = build_model::<Mmim>(
            &MmimConfig::default(),
            &ctx(&ds, super::tiny_dir()),
            &Device::Cpu,
        )
        .unwrap();
        let st = m.extra_stage().unwrap();
        let mut stage1 = TaskStep::new(
            extra_stage_vars(&m, &vm),
            st.lr,
            st.weight_decay,
            st.grad_clip,
        )
        .unwrap();
        let mut stage2 = TaskStep::grouped(param_groups(&m, &vm, 1e-3), 0.01, 5.0).unwrap();
        let idx: Vec<usize> = (0..24).collect();
        let b = ds
            .batch(&ds.train, &idx, &[], DType::F32, &Device::Cpu)
            .unwrap();
        let v0 = values(&vm);
        stage1.step(&m.extra_stage_loss(&b).unwrap()).unwrap();
        let v1 = values(&vm);
        let c1 = changed(&v0, &v1);
        assert!(!c1.is_empty());
        assert!(c1.iter().all(|n| n.starts_with("mi.")), "{c1:?}");
        assert!(c1.iter().all(|n| !n.contains("entropy")), "{c1:?}");
        assert!(c1.iter().any(|n| n.contains("mu1")) && c1.iter().any(|n| n.contains("logvar2")));
        m.on_epoch_start();
        for _ in 0..2 {
            m.forward(&b, true).unwrap();
        }
        let out = m.forward(&b, true).unwrap();
        let loss = (TaskLoss::L1.loss(&out.prediction, &b.label).unwrap() + out.aux_loss.unwrap())
            .unwrap();
        stage2.step(&loss).unwrap();
        let v2 = values(&vm);
        let c2 = changed(&v1, &v2);
        assert!(c2.iter().all(|n| !n.starts_with("mi.")), "{c2:?}");
        for want in [
            "bert.encoder.layer.0.attention.self.query.weight",
            "fusion1.weight",
            "cpc_t.weight",
        ] {
            assert!(c2.iter().any(|n| n == want), "{want} not updated: {c2:?}");
        }
        assert!(c2.iter().any(|n| n.starts_with("audio.")));
    }
}
