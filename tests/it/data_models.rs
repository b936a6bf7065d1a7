//! Data tiers, loaders and the EF-LSTM.
use crate::common::shared;
use candle_core::{DType, Device};
use neural_synergy::data::{mosi_facts, realtext, synthetic};

#[test]
fn synthetic_generator_is_deterministic_with_mosi_shape_and_ordered_ceilings() {
    let a = synthetic::generate(3);
    let b = synthetic::generate(3);
    assert_eq!(a.train.text, b.train.text);
    assert_eq!(a.test.labels, b.test.labels);
    assert_ne!(synthetic::generate(4).train.labels, a.train.labels);
    assert_eq!(
        [a.train.len(), a.valid.len(), a.test.len()],
        mosi_facts::SPLITS
    );
    assert_eq!(a.dims, [300, 74, 35]);
    assert!(a.train.lengths.iter().all(|&l| (1..=50).contains(&l)));
    // rounded-label shares within 3 points of MOSI's
    let all: Vec<f32> = [&a.train, &a.valid, &a.test]
        .iter()
        .flat_map(|s| s.labels.clone())
        .collect();
    let total: f64 = mosi_facts::ROUNDED_COUNTS.iter().sum();
    for (k, c) in mosi_facts::ROUNDED_COUNTS.iter().enumerate() {
        let share = all
            .iter()
            .filter(|l| (l.round() as i64).clamp(-3, 3) == k as i64 - 3)
            .count() as f64
            / all.len() as f64;
        assert!(
            (share - c / total).abs() < 0.03,
            "class {}: {share} vs {}",
            k as i64 - 3,
            c / total
        );
    }
    let m: Vec<f64> = a.ceilings.iter().map(|c| c.mae.unwrap()).collect();
    assert!(
        m[0] < m[1] && m[1] < m[2],
        "oracle < text-only < audio+vision-only: {m:?}"
    );
    assert!(
        (m[2] - m[3]).abs() < 0.1,
        "audio+vision alone carry no polarity: {m:?}"
    );
}

#[test]
fn dropped_modalities_are_zeros() {
    let ds = synthetic::generate(0);
    let b = ds
        .batch(&ds.test, &[0, 1, 2], &[0, 2], DType::F32, &Device::Cpu)
        .unwrap();
    assert_eq!(
        b.inputs[0]
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    assert_eq!(
        b.inputs[2]
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    assert!(
        b.inputs[1]
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    );
}

#[test]
fn label_loader_rejects_malformed_files_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("id,text,label\na,b,1.0\n", "line 1"),
        (
            "id,text,label,mode\nx_1,hello,abc,train\n",
            "line 2: bad label",
        ),
        (
            "id,text,label,mode\nx_1,hello,0.5,train\nx_2,hi,4.5,test\n",
            "line 3: label 4.5 outside",
        ),
        (
            "id,text,label,mode\nx_1,hello,0.5,holdout\n",
            "unknown split 'holdout'",
        ),
        (
            "id,text,label,mode\nx_1,0.5\n",
            "line 2: expected 4 columns",
        ),
        (
            "id,text,label,mode\nx_1,ok,0.5,train\nx_2,a, b,0.5,train\n",
            "line 3: expected 4 columns",
        ),
        (
            "id,text,label,mode\nx_1,\"never closed,0.5,train\n",
            "line 2: expected 4 columns",
        ),
    ];
    for (i, (content, needle)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("label{i}.csv"));
        std::fs::write(&p, content).unwrap();
        let e = realtext::load_labels(&p).unwrap_err().to_string();
        assert!(
            e.contains(p.to_str().unwrap()) && e.contains(needle),
            "'{e}' lacks '{needle}'"
        );
    }
    let p = dir.path().join("ok.csv");
    std::fs::write(
        &p,
        "id,text,label,mode\nv_1,\"well, it was \"\"fine\"\"\nreally\",0.4,dev\nv_2,ok,-1,test\n",
    )
    .unwrap();
    let rows = realtext::load_labels(&p).unwrap();
    assert_eq!(
        rows[0].text, "well, it was \"fine\"\nreally",
        "quoted commas, doubled quotes and newlines are kept"
    );
    assert_eq!(rows[0].split, 1);
    assert_eq!((rows[1].id.as_str(), rows[1].split), ("v_2", 2));
    let g = dir.path().join("glove.txt");
    std::fs::write(&g, "the 0.1 0.2\n").unwrap();
    let e = realtext::load_glove(&g).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("expected 50"), "{e}");
}

#[test]
fn tokenizer_lowercases_and_trims_punctuation() {
    assert_eq!(
        realtext::tokenize("Well, it's GOOD!  (really)"),
        vec!["well", "it's", "good", "really"]
    );
    assert!(realtext::tokenize("  ... ").is_empty());
}

#[test]
fn real_text_tier_loads_mosi_with_standard_splits() {
    let Some(shared) = shared() else { return };
    let ds = realtext::load_mosi(&shared.join("data"), 0)
        .expect("real MOSI files under SYNERGY_SHARED/data");
    assert_eq!(
        [ds.train.len(), ds.valid.len(), ds.test.len()],
        [1281, 229, 685]
    );
    assert_eq!(ds.dims, [50, 74, 35]);
    assert!(ds.train.ids.contains(&"03bSnISJMiM_1".to_string()));
    let i = ds
        .train
        .ids
        .iter()
        .position(|s| s == "03bSnISJMiM_1")
        .unwrap();
    assert_eq!(ds.train.labels[i], 2.4);
    assert_eq!(ds.train.lengths[i], 5, "'anyhow it was really good'");
    // 'the' is in GloVe: the first step of a clip starting with a known word is non-zero
    assert!(ds.train.text[i * 50 * 50..i * 50 * 50 + 50]
        .iter()
        .any(|v| *v != 0.0));
    assert!(ds.description.contains("out of vocabulary"));
}
