//! The BERT text encoder (`neural_synergy::text`) against an independent reference:
//! `fixtures/make_bert_fixtures.py` tokenises with its own BERT basic tokeniser + WordPiece and runs
//! a numpy float64 forward pass, for a tiny random BERT (`fixtures/bert-tiny/`, always) and for the
//! real all-MiniLM-L6-v2 (`fixtures/minilm-expected.json`; run when the encoder is fetched, required
//! when `SYNERGY_SHARED` is set, i.e. in CI).

use crate::common::{run_bin_with, shared};
use candle_core::{DType, Device, Tensor};
use ndarray::{s, Array2, Axis};
use neural_synergy::data::bert::cache::{CacheStatus, FeatureCache};
use neural_synergy::data::bert::{
    resolve_encoder_dir, BertTokenizer, TextEncoder, TextEncoderError, Tokenized, MINILM_SHA256,
};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bert-tiny")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A JSON list of equal-length lists as an array.
fn matrix<T: serde::de::DeserializeOwned>(v: &Value) -> Array2<T> {
    let rows: Vec<Vec<T>> = serde_json::from_value(v.clone()).unwrap();
    let shape = (rows.len(), rows[0].len());
    Array2::from_shape_vec(shape, rows.into_iter().flatten().collect()).unwrap()
}

fn u32_rows(v: &Value) -> Array2<u32> {
    matrix(v)
}

fn f32_rows(v: &Value) -> Array2<f32> {
    matrix(v)
}

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Checks every case of an expected.json against the encoder in `dir`; returns the largest
/// deviation of the pooled vectors.
fn check_against_reference(dir: &Path, expected: &Value, tol: f32) -> f32 {
    let mut worst = 0.0f32;
    for case in expected["cases"].as_array().unwrap() {
        let max_len = case["max_len"].as_u64().unwrap() as usize;
        let sentences = strings(&case["sentences"]);
        let enc = TextEncoder::load_with(dir, &Device::Cpu, max_len).unwrap();
        let e = enc.encode(&sentences).unwrap();
        assert_eq!(
            e.tokens.input_ids,
            u32_rows(&case["input_ids"]),
            "token ids, max_len {max_len}"
        );
        assert_eq!(
            e.tokens.attention_mask,
            u32_rows(&case["attention_mask"]),
            "attention mask, max_len {max_len}"
        );
        assert!(e.tokens.token_type_ids.iter().all(|&t| t == 0));
        for (what, got, want) in [
            ("cls", &e.cls, f32_rows(&case["cls"])),
            ("mean", &e.mean, f32_rows(&case["mean"])),
        ] {
            let d = max_abs_diff(got, &want);
            assert!(
                d < tol,
                "{what} at max_len {max_len}: max |diff| {d} ≥ {tol}"
            );
            worst = worst.max(d);
        }
        if let Some(j) = case["last_hidden_of"].as_u64() {
            let j = j as usize;
            let h = enc.encode_hidden(&e.tokens.rows(j..j + 1)).unwrap();
            let want = f32_rows(&case["last_hidden"]);
            let d = max_abs_diff(&h.slice(s![0, .., ..]).to_owned(), &want);
            assert!(d < tol, "last hidden state (padding included): {d}");
        }
    }
    worst
}

#[test]
fn tiny_bert_matches_the_numpy_reference() {
    let expected = json(&tiny().join("expected.json"));
    let worst = check_against_reference(&tiny(), &expected, 2e-5);
    eprintln!("bert-tiny: max |diff| of cls/mean vs numpy float64: {worst:e}");
}

#[test]
fn tiny_bert_special_ids_come_from_the_vocabulary() {
    // the fixture's [CLS]/[SEP] are not bert-base-uncased's 101/102
    let expected = json(&tiny().join("expected.json"));
    let t = BertTokenizer::from_file(&tiny().join("tokenizer.json"), 50).unwrap();
    assert_eq!(
        t.cls_id() as u64,
        expected["special_ids"]["[CLS]"].as_u64().unwrap()
    );
    assert_eq!(
        t.sep_id() as u64,
        expected["special_ids"]["[SEP]"].as_u64().unwrap()
    );
    assert_eq!(t.pad_id(), 0);
    assert_ne!(t.cls_id(), 101);
}

#[test]
fn truncation_keeps_the_first_word_pieces_then_sep() {
    let long = "the movie was really good and the acting was great ".repeat(10);
    let t50 = BertTokenizer::from_file(&tiny().join("tokenizer.json"), 50).unwrap();
    let t12 = BertTokenizer::from_file(&tiny().join("tokenizer.json"), 12).unwrap();
    let (a, b) = (t50.encode(&[&long]).unwrap(), t12.encode(&[&long]).unwrap());
    assert_eq!(a.max_len(), 50);
    assert_eq!(b.max_len(), 12);
    assert!(a.attention_mask.iter().all(|&m| m == 1));
    assert!(b.attention_mask.iter().all(|&m| m == 1));
    assert_eq!(a.input_ids[[0, 49]], t50.sep_id());
    assert_eq!(b.input_ids[[0, 11]], t12.sep_id());
    assert_eq!(
        a.input_ids.slice(s![0, ..11]),
        b.input_ids.slice(s![0, ..11])
    );
}

#[test]
fn padding_does_not_change_the_vectors() {
    // the same sentence without padding (max_len 15) and padded to 64 through the full forward
    // pass (encode_hidden keeps every position): the same [CLS] and mean vectors
    let s = ["I didn't like it, but the acting was GREAT!"];
    let e15 = TextEncoder::load_with(&tiny(), &Device::Cpu, 15)
        .unwrap()
        .encode(&s)
        .unwrap();
    assert_eq!(e15.tokens.attention_mask.sum(), 15);
    let enc64 = TextEncoder::load_with(&tiny(), &Device::Cpu, 64).unwrap();
    let tok64 = enc64.tokenize(&s).unwrap();
    assert_eq!(
        tok64.input_ids.slice(s![.., 15..]).iter().max(),
        Some(&0),
        "padding is [PAD] = 0"
    );
    let h64 = enc64.encode_hidden(&tok64).unwrap();
    let cls64 = h64.slice(s![.., 0, ..]).to_owned();
    let mean64 = h64.slice(s![.., ..15, ..]).mean_axis(Axis(1)).unwrap();
    assert!(max_abs_diff(&e15.cls, &cls64) < 1e-5);
    assert!(max_abs_diff(&e15.mean, &mean64) < 1e-5);
    // and batching does not either: the sentence alone vs in a batch with others
    let enc = TextEncoder::load(&tiny(), &Device::Cpu).unwrap();
    let many: Vec<String> = (0..70)
        .map(|i| format!("the film was {}", "good ".repeat(i % 7)))
        .collect();
    let together = enc.encode(&many).unwrap();
    // (batched by length, then put back in input order)
    for i in [0, 5, 66] {
        let alone = enc.encode(&many[i..i + 1]).unwrap();
        let row = together.cls.slice(s![i..i + 1, ..]).to_owned();
        assert!(max_abs_diff(&row, &alone.cls) < 1e-6, "text {i}");
        assert_eq!(
            together.tokens.input_ids.row(i),
            alone.tokens.input_ids.row(0)
        );
    }
}

#[test]
fn pooling_is_cls_row_and_masked_mean_of_the_last_hidden_state() {
    let enc = TextEncoder::load(&tiny(), &Device::Cpu).unwrap();
    let tok = enc.tokenize(&["the movie was really good", "bad"]).unwrap();
    let h = enc.encode_hidden(&tok).unwrap();
    let e = enc.encode_tokens(tok.clone()).unwrap();
    for i in 0..2 {
        let n = tok.attention_mask.row(i).sum() as usize;
        let mean = h.slice(s![i, ..n, ..]).mean_axis(Axis(0)).unwrap();
        let d = mean
            .iter()
            .zip(e.mean.row(i))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-5, "mean of the first {n} positions");
        let cls = h.slice(s![i..i + 1, 0, ..]).to_owned();
        assert!(max_abs_diff(&cls, &e.cls.slice(s![i..i + 1, ..]).to_owned()) < 1e-5);
    }
    // MMSA's text_bert layout: ids, mask, segment ids on axis 1
    let tb = tok.text_bert();
    assert_eq!(tb.dim(), (2, 3, 50));
    assert_eq!(tb[[1, 0, 0]], i64::from(enc.tokenizer().cls_id()));
    assert_eq!(
        tb.slice(s![.., 1, ..]).sum(),
        tok.attention_mask.sum() as i64
    );
    assert_eq!(tb.slice(s![.., 2, ..]).sum(), 0);
}

/// Maps a tensor name of the tiny checkpoint to another (`None`: drop the tensor).
type Rename = Box<dyn Fn(&str) -> Option<String>>;

/// Writes a copy of the tiny checkpoint whose tensor names are mapped by `rename` (tensors for
/// which it returns `None` are dropped).
fn renamed_copy(dir: &Path, rename: impl Fn(&str) -> Option<String>) {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(tiny().join(f), dir.join(f)).unwrap();
    }
    let ts =
        candle_core::safetensors::load(tiny().join("model.safetensors"), &Device::Cpu).unwrap();
    let out: HashMap<String, Tensor> = ts
        .into_iter()
        .filter_map(|(k, v)| rename(&k).map(|k| (k, v)))
        .collect();
    candle_core::safetensors::save(&out, dir.join("model.safetensors")).unwrap();
}

#[test]
fn checkpoint_naming_variants_load_to_the_same_model() {
    let s = [
        "the movie was really good",
        "Café naïve résumé — über cool?",
    ];
    let base = TextEncoder::load(&tiny(), &Device::Cpu)
        .unwrap()
        .encode(&s)
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let old_ln = |k: &str| {
        k.replace("LayerNorm.weight", "LayerNorm.gamma")
            .replace("LayerNorm.bias", "LayerNorm.beta")
    };
    let variants: [(&str, Rename); 3] = [
        ("bert-prefix", Box::new(|k: &str| Some(format!("bert.{k}")))),
        ("gamma-beta", Box::new(move |k: &str| Some(old_ln(k)))),
        (
            "prefix+gamma-beta+mlm-head",
            Box::new(move |k: &str| Some(format!("bert.{}", old_ln(k)))),
        ),
    ];
    for (name, f) in variants {
        let d = tmp.path().join(name);
        renamed_copy(&d, f);
        if name.ends_with("mlm-head") {
            // an extra head under another prefix is ignored
            let mut ts =
                candle_core::safetensors::load(d.join("model.safetensors"), &Device::Cpu).unwrap();
            ts.insert(
                "cls.predictions.bias".into(),
                Tensor::zeros(183, DType::F32, &Device::Cpu).unwrap(),
            );
            candle_core::safetensors::save(&ts, d.join("model.safetensors")).unwrap();
        }
        let e = TextEncoder::load(&d, &Device::Cpu)
            .unwrap()
            .encode(&s)
            .unwrap();
        assert_eq!(e.cls, base.cls, "{name}");
        assert_eq!(e.mean, base.mean, "{name}");
    }
    // a checkpoint without one of the encoder's tensors: the error names it
    let d = tmp.path().join("missing");
    renamed_copy(&d, |k| {
        (!k.contains("layer.1.output.dense.weight")).then(|| k.to_string())
    });
    let err = TextEncoder::load(&d, &Device::Cpu).unwrap_err();
    assert!(matches!(err, TextEncoderError::Weights { .. }), "{err}");
    assert!(
        err.to_string().contains("layer.1.output.dense.weight"),
        "{err}"
    );
}

fn broken_copy(name: &str, edit: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join(name);
    std::fs::create_dir_all(&d).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(tiny().join(f), d.join(f)).unwrap();
    }
    edit(&d);
    (tmp, d)
}

#[test]
fn bad_checkpoints_give_typed_errors_never_a_panic() {
    let load = |d: &Path| TextEncoder::load(d, &Device::Cpu).unwrap_err();
    // missing folder / files: the message says how to fetch the encoder
    let err = load(Path::new("/nonexistent/encoder"));
    assert!(matches!(err, TextEncoderError::MissingFile { .. }), "{err}");
    assert!(
        err.to_string().contains("scripts/fetch-encoder.sh"),
        "{err}"
    );
    assert!(
        err.to_string().contains("NEURAL_SYNERGY_TEXT_ENCODER"),
        "{err}"
    );
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        let (_t, d) = broken_copy(f, |d| std::fs::remove_file(d.join(f)).unwrap());
        let err = load(&d);
        assert!(
            matches!(err, TextEncoderError::MissingFile { .. }),
            "{f}: {err}"
        );
        assert!(err.to_string().contains(f), "{err}");
    }
    // corrupt safetensors: truncated, garbage, empty
    for (name, cut) in [("truncated", Some(5000usize)), ("garbage", None)] {
        let (_t, d) = broken_copy(name, |d| {
            let p = d.join("model.safetensors");
            let bytes = std::fs::read(&p).unwrap();
            let new = match cut {
                Some(n) => bytes[..bytes.len() - n].to_vec(),
                None => b"\xff\x00\x00\x00\x00\x00\x00\x00not json".to_vec(),
            };
            std::fs::write(&p, new).unwrap();
        });
        let err = load(&d);
        assert!(
            matches!(err, TextEncoderError::Weights { .. }),
            "{name}: {err}"
        );
    }
    let (_t, d) = broken_copy("empty", |d| {
        std::fs::write(d.join("model.safetensors"), b"").unwrap()
    });
    assert!(matches!(load(&d), TextEncoderError::Weights { .. }));
    // corrupt tokenizer / config
    let (_t, d) = broken_copy("tok", |d| {
        std::fs::write(d.join("tokenizer.json"), "{\"version\":").unwrap()
    });
    assert!(matches!(load(&d), TextEncoderError::Tokenizer { .. }));
    let (_t, d) = broken_copy("cfg", |d| {
        std::fs::write(d.join("config.json"), "[1, 2]").unwrap()
    });
    assert!(matches!(load(&d), TextEncoderError::Config { .. }));
    // config.json with one field changed
    let with_config = |from: &str, to: &str| {
        broken_copy("config", |d| {
            let c = std::fs::read_to_string(d.join("config.json")).unwrap();
            assert!(c.contains(from));
            std::fs::write(d.join("config.json"), c.replace(from, to)).unwrap();
        })
    };
    let (_t, d) = with_config("\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
    assert!(matches!(load(&d), TextEncoderError::Config { .. }));
    // shapes that do not fit the weights
    let (_t, d) = with_config("\"intermediate_size\": 64", "\"intermediate_size\": 65");
    let err = load(&d);
    assert!(matches!(err, TextEncoderError::Weights { .. }), "{err}");
    // max_len outside [2, max_position_embeddings = 64]
    for bad in [0, 1, 65] {
        let err = TextEncoder::load_with(&tiny(), &Device::Cpu, bad).unwrap_err();
        assert!(
            matches!(
                err,
                TextEncoderError::InvalidParameter {
                    name: "max_len",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
}

#[test]
fn hand_built_tokens_are_checked_before_the_forward_pass() {
    let enc = TextEncoder::load(&tiny(), &Device::Cpu).unwrap();
    let good = enc.tokenize(&["good"]).unwrap();
    let mut t = good.clone();
    t.input_ids[[0, 1]] = 10_000; // outside the 183-token vocabulary
    assert!(matches!(
        enc.encode_tokens(t),
        Err(TextEncoderError::InvalidParameter { .. })
    ));
    let mut t = good.clone();
    t.attention_mask.fill(0);
    assert!(matches!(
        enc.encode_tokens(t),
        Err(TextEncoderError::InvalidParameter { .. })
    ));
    let mut t = good.clone();
    t.token_type_ids[[0, 0]] = 2;
    assert!(matches!(
        enc.encode_tokens(t),
        Err(TextEncoderError::InvalidParameter { .. })
    ));
    let t = Tokenized {
        input_ids: Array2::zeros((1, 65)),
        attention_mask: Array2::ones((1, 65)),
        token_type_ids: Array2::zeros((1, 65)),
    };
    assert!(matches!(
        enc.encode_tokens(t),
        Err(TextEncoderError::InvalidParameter { .. })
    ));
    // no texts: empty results, not an error
    let e = enc.encode::<&str>(&[]).unwrap();
    assert_eq!(e.cls.dim(), (0, 32));
}

#[test]
fn checkpoint_key_tracks_weights_and_max_len() {
    use sha2::{Digest, Sha256};
    let a = TextEncoder::load(&tiny(), &Device::Cpu).unwrap();
    let b = TextEncoder::load_with(&tiny(), &Device::Cpu, 49).unwrap();
    let bytes = std::fs::read(tiny().join("model.safetensors")).unwrap();
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(a.weights_sha256(), sha);
    assert_eq!(a.checkpoint_key().len(), 16);
    assert_ne!(a.checkpoint_key(), b.checkpoint_key());
    assert_eq!(
        a.checkpoint_key(),
        TextEncoder::load(&tiny(), &Device::Cpu)
            .unwrap()
            .checkpoint_key()
    );
    // the same weights under other tensor names are another checkpoint file: another key
    let tmp = tempfile::tempdir().unwrap();
    renamed_copy(tmp.path(), |k| Some(format!("bert.{k}")));
    assert_ne!(
        a.checkpoint_key(),
        TextEncoder::load(tmp.path(), &Device::Cpu)
            .unwrap()
            .checkpoint_key()
    );
}

#[test]
fn feature_cache_computes_once_then_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = FeatureCache::new(tmp.path().join("features"));
    let enc = TextEncoder::load(&tiny(), &Device::Cpu).unwrap();
    let texts = ["the movie was really good", "bad", ""];
    let (c1, m1, s1) = cache.pooled(&enc, &texts).unwrap();
    assert_eq!(s1, CacheStatus::Miss);
    assert!(cache.path(&enc, &texts, "cls").is_file());
    let (c2, m2, s2) = cache.pooled(&enc, &texts).unwrap();
    assert_eq!(s2, CacheStatus::Hit);
    assert_eq!((c1.clone(), m1), (c2, m2));
    assert_eq!(c1, enc.encode(&texts).unwrap().cls);
    // the key covers the texts (boundaries included) and max_len
    assert_ne!(
        FeatureCache::stem(&enc, &["ab", "c"]),
        FeatureCache::stem(&enc, &["a", "bc"])
    );
    let enc12 = TextEncoder::load_with(&tiny(), &Device::Cpu, 12).unwrap();
    assert_ne!(
        FeatureCache::stem(&enc, &texts),
        FeatureCache::stem(&enc12, &texts)
    );
    assert_eq!(cache.pooled(&enc12, &texts).unwrap().2, CacheStatus::Miss);
    // last hidden states: N × max_len × hidden; position 0 is the [CLS] vector
    let (h, s) = cache.hidden(&enc, &texts).unwrap();
    assert_eq!((h.dim(), s), ((3, 50, 32), CacheStatus::Miss));
    assert!(max_abs_diff(&h.slice(s![.., 0, ..]).to_owned(), &c1) < 1e-5);
    assert_eq!(cache.hidden(&enc, &texts).unwrap(), (h, CacheStatus::Hit));
    // a damaged file is reported, not silently reused
    let p = cache.path(&enc, &texts, "mean");
    ndarray_npy::write_npy(&p, &Array2::<f32>::zeros((2, 32))).unwrap();
    let err = cache.pooled(&enc, &texts).unwrap_err();
    assert!(matches!(err, TextEncoderError::Cache { .. }), "{err}");
    std::fs::write(&p, b"junk").unwrap();
    assert!(matches!(
        cache.pooled(&enc, &texts),
        Err(TextEncoderError::Cache { .. })
    ));
}

/// The real all-MiniLM-L6-v2: `$NEURAL_SYNERGY_TEXT_ENCODER` or the fetch script's folder.
fn minilm() -> Option<PathBuf> {
    match resolve_encoder_dir(None) {
        Ok(d) if d.join("model.safetensors").is_file() => Some(d),
        r => {
            let why = match r {
                Ok(d) => format!("{} has no model.safetensors", d.display()),
                Err(e) => e.to_string(),
            };
            if shared().is_some() {
                panic!("SYNERGY_SHARED is set (CI), so the encoder must be present: {why}");
            }
            eprintln!("skipping the MiniLM parity test: {why}");
            None
        }
    }
}

#[test]
fn minilm_matches_the_numpy_reference() {
    let Some(dir) = minilm() else { return };
    let enc = TextEncoder::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(enc.weights_sha256(), MINILM_SHA256, "{}", dir.display());
    assert_eq!(
        (enc.hidden_size(), enc.config().num_hidden_layers),
        (384, 6)
    );
    let expected =
        json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/minilm-expected.json"));
    assert_eq!(expected["model_safetensors_sha256"], MINILM_SHA256);
    let worst = check_against_reference(&dir, &expected, 2e-5);
    eprintln!("MiniLM: max |diff| of cls/mean vs numpy float64: {worst:e}");
}

fn encode_text(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut a = vec!["encode-text"];
    a.extend_from_slice(args);
    run_bin_with(env!("CARGO_BIN_EXE_synergy"), &a, stdin, env)
}

#[test]
fn cli_encode_text_prints_ids_mask_and_vectors() {
    let expected = json(&tiny().join("expected.json"));
    let case = &expected["cases"][1]; // max_len 12
    let sentences = strings(&case["sentences"]);
    // the last fixture sentence holds a tab; lines are what the CLI splits on
    let stdin = sentences.join("\n") + "\r\n";
    let dir = tiny().display().to_string();
    let (code, out, err) = encode_text(
        &["--text-encoder", &dir, "--max-len", "12", "--json"],
        &stdin,
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["max_len"], 12);
    assert_eq!(v["hidden_size"], 32);
    assert_eq!(u32_rows(&v["input_ids"]), u32_rows(&case["input_ids"]));
    assert_eq!(
        u32_rows(&v["attention_mask"]),
        u32_rows(&case["attention_mask"])
    );
    assert!(max_abs_diff(&f32_rows(&v["cls"]), &f32_rows(&case["cls"])) < 1e-4);
    assert!(max_abs_diff(&f32_rows(&v["mean"]), &f32_rows(&case["mean"])) < 1e-4);
    // the folder from the environment, default max_len 50
    let (code, out, err) = encode_text(
        &["--json"],
        "good\n",
        &[("NEURAL_SYNERGY_TEXT_ENCODER", &dir)],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["input_ids"][0].as_array().unwrap().len(), 50);
}

#[test]
fn cli_encode_text_errors_are_one_line() {
    let empty = tempfile::tempdir().unwrap();
    let cache = empty.path().display().to_string();
    let dir = tiny().display().to_string();
    let no_encoder = [
        ("NEURAL_SYNERGY_TEXT_ENCODER", ""),
        ("NEURAL_SYNERGY_CACHE", cache.as_str()),
    ];
    // (arguments, stdin, environment, a word the error must contain)
    type Case<'a> = (&'a [&'a str], &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            &["--text-encoder", "/nonexistent/dir"],
            "good\n",
            &[],
            "scripts/fetch-encoder.sh",
        ),
        (&[], "good\n", &no_encoder, "scripts/fetch-encoder.sh"),
        (
            &["--text-encoder", &dir, "--max-len", "1"],
            "good\n",
            &[],
            "max_len",
        ),
        (&["--text-encoder", &dir], "", &[], "no sentences"),
    ];
    for (args, stdin, env, needle) in cases {
        let (code, out, err) = encode_text(args, stdin, env);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every row is `[CLS] pieces [SEP]` then `[PAD]`s: exactly max_len ids, the mask a prefix of
    /// ones, segment ids 0, no special token inside, and a shorter max_len keeps a prefix of the
    /// same word-pieces.
    #[test]
    fn tokenized_rows_are_cls_pieces_sep_then_padding(
        words in prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec!["the", "movie", "GREAT", "didn't", "unbelievably", "Café", "好", "—", "?!", "x"]).prop_map(String::from),
                "[a-zA-Z0-9 .,'é\t-]{0,12}",
            ],
            0..40,
        ),
        max_len in 2usize..64,
    ) {
        let text = words.join(" ");
        let path = tiny().join("tokenizer.json");
        let t = BertTokenizer::from_file(&path, max_len).unwrap();
        let full = BertTokenizer::from_file(&path, 64).unwrap();
        let (tok, long) = (t.encode(&[&text]).unwrap(), full.encode(&[&text]).unwrap());
        let ids = tok.input_ids.row(0);
        let mask = tok.attention_mask.row(0);
        prop_assert_eq!(ids.len(), max_len);
        let real = mask.iter().take_while(|&&m| m == 1).count();
        prop_assert!(real >= 2);
        prop_assert!(mask.iter().skip(real).all(|&m| m == 0));
        prop_assert_eq!(ids[0], t.cls_id());
        prop_assert_eq!(ids[real - 1], t.sep_id());
        prop_assert!(ids.iter().skip(real).all(|&i| i == t.pad_id()));
        prop_assert!(ids.iter().take(real - 1).skip(1).all(|&i| i != t.cls_id() && i != t.sep_id() && i != t.pad_id()));
        prop_assert!(tok.token_type_ids.iter().all(|&s| s == 0));
        let long_real = long.attention_mask.row(0).sum() as usize;
        prop_assert_eq!(real - 2, (long_real - 2).min(max_len - 2));
        prop_assert_eq!(ids.slice(s![1..real - 1]), long.input_ids.slice(s![0, 1..real - 1]));
    }
}
