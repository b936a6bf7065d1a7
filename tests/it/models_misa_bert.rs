//! MISA's BERT text path (MMSA's MISA) and the frozen-encoder feature cache
//! (`models::bert::frozen`), with the tiny fixture encoder (no download).

use crate::models::one_epoch_run;
use crate::models_bert::{changed, ctx, small, tiny_dir, values};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use neural_synergy::data::bert::TextEncoderError;
use neural_synergy::data::Dataset;
use neural_synergy::models::bert::backbone::{load_pretrained, read_config, BertBackbone};
use neural_synergy::models::bert::frozen::{
    read_file, split_rows, weights_key, CacheOutcome, FrozenText, Pooling,
};
use neural_synergy::models::misa::{Misa, MisaConfig, TextEncoderKind};
use neural_synergy::models::mmim::{Mmim, MmimConfig};
use neural_synergy::models::{FusionModel, ModelConfig, ModelKind};
use neural_synergy::synergy::TaskStep;
use neural_synergy::train::{build_model, param_groups, train_run, TaskLoss, Variant};
use proptest::prelude::*;

/// The JSON of the default MISA, MIM and MAGBERT configurations as the code wrote them before
/// the BERT text path and the feature cache existed (copied from run files of that code): run
/// keys hash this JSON, so it must not change.
#[test]
fn default_configurations_serialise_exactly_as_before_the_bert_text_path() {
    let before = [
        (
            ModelKind::Misa,
            r#"{"model":"misa","hidden":128,"text_encoder":"lstm","text_hidden":128,"dropout":0.2,"transformer_dropout":0.1,"heads":2,"ffn":2048,"fusion_hidden":384,"diff_weight":0.1,"sim_weight":0.3,"recon_weight":1.0,"cmd_moments":5}"#,
        ),
        (
            ModelKind::Mim,
            r#"{"model":"mim","av_hidden":16,"av_out":16,"fusion":128,"entropy_dim":4,"dropout":0.1,"bert_dropout":0.1,"alpha":0.1,"beta":0.1,"bert_lr":0.00005,"finetune":true,"mmilb_lr":0.001,"mmilb_weight_decay":0.0001,"mmilb_grad_clip":1.0,"mmilb_batch_fraction":1.0,"contrast":true}"#,
        ),
        (
            ModelKind::Magbert,
            r#"{"model":"magbert","beta_shift":1.0,"mag_dropout":0.3,"dropout":0.1,"bert_lr":0.00002,"finetune":true}"#,
        ),
    ];
    for (k, want) in before {
        let got = serde_json::to_string(&k.default_config()).unwrap();
        assert_eq!(got, want, "{k:?}");
        let back: ModelConfig = serde_json::from_str(want).unwrap();
        assert_eq!(back, k.default_config());
    }
    // the new options appear only when set, and round-trip
    let mut c = MisaConfig {
        text_encoder: TextEncoderKind::Bert,
        ..Default::default()
    };
    let j = serde_json::to_string(&ModelConfig::Misa(c)).unwrap();
    assert!(
        j.contains(r#""text_encoder":"bert""#) && !j.contains("finetune"),
        "{j}"
    );
    c.bert.finetune = false;
    let j = serde_json::to_string(&ModelConfig::Misa(c)).unwrap();
    assert!(j.contains(r#""finetune":false"#), "{j}");
    assert_eq!(
        serde_json::from_str::<ModelConfig>(&j).unwrap(),
        ModelConfig::Misa(c)
    );
    let m = MmimConfig {
        feature_cache: false,
        ..Default::default()
    };
    let j = serde_json::to_string(&ModelConfig::Mim(m)).unwrap();
    assert!(j.contains(r#""feature_cache":false"#), "{j}");
    assert_eq!(
        serde_json::from_str::<ModelConfig>(&j).unwrap(),
        ModelConfig::Mim(m)
    );
}

fn bert_misa(finetune: bool) -> MisaConfig {
    let mut c = MisaConfig {
        text_encoder: TextEncoderKind::Bert,
        ..Default::default()
    };
    c.bert.finetune = finetune;
    c
}

/// Only the BERT text path needs tokens (what the plan's text options and preparation do with
/// that is a unit test beside `experiments/bert.rs`).
#[test]
fn only_the_bert_text_path_needs_tokens() {
    assert!(!ModelConfig::Misa(MisaConfig::default()).needs_tokens());
    assert!(ModelConfig::Misa(bert_misa(true)).needs_tokens());
    assert!(!ModelKind::Misa.needs_tokens());
    assert!(ModelKind::Mim.needs_tokens() && ModelKind::Magbert.needs_tokens());
}

/// One training step of `m`; returns the loss (task + auxiliary).
fn one_step<M: FusionModel>(m: &M, vm: &VarMap, ds: &Dataset) -> f32 {
    let mut step = TaskStep::grouped(param_groups(m, vm, 1e-3), 0.01, 5.0).unwrap();
    let idx: Vec<usize> = (0..24).collect();
    let b = ds
        .batch(&ds.train, &idx, &[], DType::F32, &Device::Cpu)
        .unwrap();
    let out = m.forward(&b, true).unwrap();
    let mut loss = TaskLoss::L1.loss(&out.prediction, &b.label).unwrap();
    if let Some(a) = &out.aux_loss {
        loss = (loss + a).unwrap();
    }
    let l = loss.to_scalar::<f32>().unwrap();
    step.step(&loss).unwrap();
    l
}

/// BERT-MISA builds with the checkpoint's width, loads the pretrained weights, trains BERT at
/// `bert.lr` and the rest at the protocol's rate, and one step has a finite loss and moves BERT.
#[test]
fn bert_misa_trains_a_step_with_a_finite_loss_and_moves_bert() {
    let ds = small();
    let (m, vm) =
        build_model::<Misa>(&bert_misa(true), &ctx(&ds, tiny_dir()), &Device::Cpu).unwrap();
    assert_eq!(m.text_utterance_dim(), 32, "the tiny encoder's hidden size");
    let groups = param_groups(&m, &vm, 1e-3);
    let mut rates: Vec<f64> = groups.iter().map(|(_, lr)| *lr).collect();
    rates.sort_by(f64::total_cmp);
    assert_eq!(rates, vec![1e-4, 1e-3]);
    let v0 = values(&vm);
    let w = "bert.encoder.layer.1.attention.self.query.weight";
    let ck =
        candle_core::safetensors::load(tiny_dir().join("model.safetensors"), &Device::Cpu).unwrap();
    let want = ck["encoder.layer.1.attention.self.query.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(
        v0.iter().find(|(n, _)| n == w).unwrap().1,
        want,
        "pretrained"
    );
    let loss = one_step(&m, &vm, &ds);
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    let c = changed(&v0, &values(&vm));
    for want in [w, "project_t.lin.weight", "audio_rnn.rnn1.fwd.weight_ih_l0"] {
        assert!(c.iter().any(|n| n == want), "{want} not updated: {c:?}");
    }
}

/// A frozen model's BERT variables do not move in a training step (MIM and BERT-MISA, cached or
/// not), while the rest does; with the cache, BERT encodes each distinct clip once.
#[test]
fn frozen_bert_variables_do_not_change_after_a_training_step() {
    let ds = small();
    for cache in [true, false] {
        let mut c = bert_misa(false);
        c.bert.feature_cache = cache;
        let (m, vm) = build_model::<Misa>(&c, &ctx(&ds, tiny_dir()), &Device::Cpu).unwrap();
        let v0 = values(&vm);
        assert!(one_step(&m, &vm, &ds).is_finite());
        let ch = changed(&v0, &values(&vm));
        assert!(ch.iter().all(|n| !n.starts_with("bert.")), "{ch:?}");
        assert!(ch.iter().any(|n| n == "project_t.lin.weight"), "{ch:?}");
        if cache {
            let f = m.frozen_text().expect("a cache");
            let n = f.computed_rows();
            assert!(n > 0 && n <= 24);
            one_step(&m, &vm, &ds);
            assert_eq!(f.computed_rows(), n, "the second pass re-encoded clips");
        } else {
            assert!(m.frozen_text().is_none());
        }

        let mc = MmimConfig {
            finetune: false,
            feature_cache: cache,
            ..Default::default()
        };
        let (m, vm) = build_model::<Mmim>(&mc, &ctx(&ds, tiny_dir()), &Device::Cpu).unwrap();
        let v0 = values(&vm);
        m.on_epoch_start();
        assert!(one_step(&m, &vm, &ds).is_finite());
        let ch = changed(&v0, &values(&vm));
        assert!(ch.iter().all(|n| !n.starts_with("bert.")), "{ch:?}");
        assert!(ch.iter().any(|n| n == "fusion1.weight"), "{ch:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]
    /// The text vector is the masked mean over real tokens: a clip batched with a longer one
    /// (so its row gets padding appended) has the same text vector as alone, to 1e-5.
    #[test]
    fn bert_misa_text_vector_ignores_padding(i in 0usize..40, j in 0usize..40, finetune in any::<bool>()) {
        let ds = small();
        let (m, _) = build_model::<Misa>(&bert_misa(finetune), &ctx(&ds, tiny_dir()), &Device::Cpu).unwrap();
        let tok = ds.train.tokens.as_ref().unwrap();
        let (short, long) = if tok.real_len(i) <= tok.real_len(j) { (i, j) } else { (j, i) };
        let alone = ds.batch(&ds.train, &[short], &[], DType::F32, &Device::Cpu).unwrap();
        let both = ds.batch(&ds.train, &[short, long], &[], DType::F32, &Device::Cpu).unwrap();
        // padding really is appended when the lengths differ
        prop_assert_eq!(both.tokens.as_ref().unwrap().ids.dim(1).unwrap(), tok.real_len(long));
        let a = m.text_utterance(&alone).unwrap().to_vec2::<f32>().unwrap();
        let b = m.text_utterance(&both).unwrap().to_vec2::<f32>().unwrap();
        let d = a[0].iter().zip(&b[0]).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        prop_assert!(d <= 1e-5, "max |diff| {} (lengths {} and {})", d, tok.real_len(short), tok.real_len(long));
    }
}

/// The tiny checkpoint's BERT (no pooler) with its pretrained weights.
fn tiny_bert() -> (BertBackbone, VarMap) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let bert = BertBackbone::new(
        &read_config(&tiny_dir()).unwrap(),
        false,
        0.1,
        0,
        vb.pp("bert"),
    )
    .unwrap();
    assert!(load_pretrained(&vm, "bert.", &tiny_dir()).unwrap() > 10);
    (bert, vm)
}

fn max_abs(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0f32, f32::max)
}

/// The cache round-trips (a second cache reads the file without running BERT and serves the same
/// vectors as a fresh computation to 1e-6; the model's uncached masked mean agrees to 1e-5), and
/// damaged files — a flipped byte, a truncation, another split's rows — are detected: reading
/// them is a typed error and preparing recomputes them.
#[test]
fn frozen_feature_cache_round_trips_and_detects_a_damaged_file() {
    let ds = small();
    let tok = ds.train.tokens.as_ref().unwrap();
    let rows = split_rows(tok);
    let (bert, _vm) = tiny_bert();
    let dir = tempfile::tempdir().unwrap();
    let key = weights_key(&tiny_dir()).unwrap();
    assert_eq!(key.len(), 16);

    let first = FrozenText::new(Pooling::Mean, 32, Some(dir.path().to_path_buf()));
    assert_eq!(
        first.prepare_split(&bert, &key, tok).unwrap(),
        CacheOutcome::Miss
    );
    assert_eq!(first.computed_rows(), rows.len());
    let path = first.path(&key, 50, &rows).unwrap();
    assert!(path.is_file());

    let second = FrozenText::new(Pooling::Mean, 32, Some(dir.path().to_path_buf()));
    assert_eq!(
        second.prepare_split(&bert, &key, tok).unwrap(),
        CacheOutcome::Hit
    );
    assert_eq!(second.computed_rows(), 0, "served from the file");
    let fresh = FrozenText::new(Pooling::Mean, 32, None);
    assert_eq!(
        fresh.prepare_split(&bert, &key, tok).unwrap(),
        CacheOutcome::MemoryOnly
    );
    let idx: Vec<usize> = (0..ds.train.len()).collect();
    let b = ds
        .batch(&ds.train, &idx, &[], DType::F32, &Device::Cpu)
        .unwrap();
    let tk = b.tokens.as_ref().unwrap();
    let cached = second.pooled(&bert, tk).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(second.computed_rows(), 0);
    let computed = fresh.pooled(&bert, tk).unwrap().to_vec2::<f32>().unwrap();
    assert!(max_abs(&cached, &computed) <= 1e-6);
    let on_disk = read_file(&path, Pooling::Mean, 32, &rows).unwrap();
    assert!(max_abs(&on_disk, &computed) <= 1e-6);
    // the model's own (uncached, inference-mode) masked mean over the same checkpoint
    let (m, _) =
        build_model::<Misa>(&bert_misa(true), &ctx(&ds, tiny_dir()), &Device::Cpu).unwrap();
    let direct = m.text_utterance(&b).unwrap().to_vec2::<f32>().unwrap();
    assert!(max_abs(&direct, &computed) <= 1e-5);
    // the CLS cache is another file with other vectors
    let cls = FrozenText::new(Pooling::Cls, 32, Some(dir.path().to_path_buf()));
    assert_eq!(
        cls.prepare_split(&bert, &key, tok).unwrap(),
        CacheOutcome::Miss
    );
    let c = cls.pooled(&bert, tk).unwrap().to_vec2::<f32>().unwrap();
    assert!(max_abs(&c, &computed) > 1e-3);

    let good = std::fs::read(&path).unwrap();
    let damaged: [(&str, Vec<u8>); 3] = [
        ("flipped byte", {
            let mut d = good.clone();
            let k = d.len() / 2;
            d[k] ^= 0x10;
            d
        }),
        ("truncated", good[..good.len() - 100].to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in damaged {
        std::fs::write(&path, &bytes).unwrap();
        let e = read_file(&path, Pooling::Mean, 32, &rows).unwrap_err();
        assert!(matches!(e, TextEncoderError::Cache { .. }), "{what}: {e}");
        let again = FrozenText::new(Pooling::Mean, 32, Some(dir.path().to_path_buf()));
        let out = again.prepare_split(&bert, &key, tok).unwrap();
        assert!(matches!(out, CacheOutcome::Rebuilt(_)), "{what}: {out:?}");
        assert_eq!(again.computed_rows(), rows.len());
        let v = again.pooled(&bert, tk).unwrap().to_vec2::<f32>().unwrap();
        assert!(max_abs(&v, &computed) <= 1e-6, "{what}");
        assert_eq!(std::fs::read(&path).unwrap(), good, "{what}: rewritten");
    }
    // an intact file read as another split's (other rows) or another width is refused
    let mut other = rows.clone();
    other[0][1] += 1;
    let e = read_file(&path, Pooling::Mean, 32, &other).unwrap_err();
    assert!(e.to_string().contains("token ids differ"), "{e}");
    assert!(read_file(&path, Pooling::Mean, 16, &rows).is_err());
    assert!(read_file(&path, Pooling::Cls, 32, &rows).is_err());
}

/// Frozen, cached BERT-MISA and MIM train end to end through the generic trainer (the trainer's
/// `prepare` fills the cache before the first step).
#[test]
fn frozen_cached_bert_models_train_through_the_generic_trainer() {
    let ds = small();
    let mim = MmimConfig {
        finetune: false,
        ..Default::default()
    };
    for model in [ModelConfig::Misa(bert_misa(false)), ModelConfig::Mim(mim)] {
        let r = train_run(&ds, &one_epoch_run(model, Variant::Nll), |_, _| {}).unwrap();
        assert!(r.failure.is_none(), "{:?}", r.failure);
        let p = r.test_predictions.unwrap();
        assert_eq!(p.len(), ds.test.len());
        assert!(p.iter().all(|v| v.is_finite()));
    }
}
