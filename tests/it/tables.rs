//! Tables 2–6 as data (`--tables`), Table 5's ablation variants and the real-text cue modes (Table
//! 4's corruption claims and the per-subset metrics are unit tests in `src/report/tests.rs`).

use crate::common::shared;
use neural_synergy::data::{realtext, DatasetName};
use neural_synergy::experiments::expected::expected;
use neural_synergy::experiments::tables::{self, TableError};
use neural_synergy::models::ModelKind;
use neural_synergy::synergy::SynergyConfig;
use neural_synergy::train::{RunConfig, TaskLoss, Variant};

#[test]
fn table_selection_rejects_unknown_tables_and_mixed_corpora() {
    assert_eq!(tables::select(&[7]).unwrap_err(), TableError::Unknown(7));
    assert!(matches!(
        tables::select(&[2, 3]).unwrap_err(),
        TableError::MixedCorpora(2, 3, "mosi", "mosei")
    ));
    let s = tables::select(&[4, 2, 4]).unwrap();
    assert_eq!(s.iter().map(|t| t.number).collect::<Vec<_>>(), [4, 2]);
    assert!(s.iter().all(|t| t.dataset == DatasetName::Mosi));
    assert_eq!(
        tables::select(&[6]).unwrap()[0].dataset,
        DatasetName::UrFunny
    );
}

#[test]
fn table_layouts_follow_the_papers_rows() {
    let e = expected();
    let all = tables::all();
    let t = |n: u8| all.iter().find(|s| s.number == n).unwrap();
    // Table 4: 3 variants × 4 conditions of one model
    let l4 = tables::layout(t(4), &e);
    assert_eq!(l4.len(), 12);
    assert!(l4.iter().all(|(m, _, _)| m == "MAGBERT"));
    // Table 5: MLE, +LL2, +Ld/MMD, +Lk, +SMMD — each maps to a variant
    let l5: Vec<String> = tables::layout(t(5), &e).into_iter().map(|r| r.1).collect();
    assert_eq!(l5, ["MLE", "+LL2", "+Ld/MMD", "+Lk", "+SMMD"]);
    let v5: Vec<Variant> = l5
        .iter()
        .map(|n| tables::variant_of(5, n).unwrap())
        .collect();
    assert_eq!(
        v5,
        [
            Variant::Nll,
            Variant::NllL2,
            Variant::NllLd,
            Variant::NllLk,
            Variant::NllSmmd
        ]
    );
    // Table 2's pairs: FLSTM without IWas (the paper has no such row), LFN planned as TFN only
    let (pairs, _) = tables::pairs(&[t(2).clone()]);
    assert!(pairs.contains(&(ModelKind::Flstm, Variant::NllSkl)));
    assert!(pairs.contains(&(ModelKind::Tfn, Variant::NllSmmd)));
    assert!(!pairs.iter().any(|(k, _)| *k == ModelKind::Lmf));
    assert!(!pairs.contains(&(ModelKind::Flstm, Variant::NllIwas)));
    // Table 3 adds IWas for MFN and TFN
    let (p3, _) = tables::pairs(&[t(3).clone()]);
    assert!(p3.contains(&(ModelKind::Mfn, Variant::NllIwas)));
    // Table 6 is MISA, MFN, TFN
    let (p6, _) = tables::pairs(&[t(6).clone()]);
    let mut k6: Vec<ModelKind> = p6.iter().map(|(k, _)| *k).collect();
    k6.sort();
    k6.dedup();
    assert_eq!(k6, [ModelKind::Tfn, ModelKind::Mfn, ModelKind::Misa]);
}

#[test]
fn ablation_variants_keep_only_their_own_term() {
    let s = SynergyConfig {
        gamma_l2: 2.0,
        gamma_d: 3.0,
        gamma_k: 0.5,
        ..SynergyConfig::default()
    };
    let cfg = |variant| RunConfig {
        model: ModelKind::Flstm.default_config(),
        variant,
        batch_size: 32,
        lr: 1e-3,
        seed: 7,
        max_epochs: 1,
        patience: 1,
        loss: TaskLoss::L1,
        synergy: s.clone(),
    };
    let g = |v| {
        let c = cfg(v).synergy_config().unwrap();
        (c.gamma_l2, c.gamma_d, c.gamma_k)
    };
    assert_eq!(g(Variant::NllL2), (2.0, 0.0, 0.0));
    assert_eq!(g(Variant::NllLd), (0.0, 3.0, 0.0));
    assert_eq!(g(Variant::NllLk), (0.0, 0.0, 0.5));
    assert_eq!(g(Variant::NllSmmd), (2.0, 3.0, 0.5));
    for v in Variant::TABLE_ORDER {
        // serde names are the paper's, and round-trip
        let j = serde_json::to_string(&v).unwrap();
        assert_eq!(j, format!("\"{}\"", v.name()));
        assert_eq!(serde_json::from_str::<Variant>(&j).unwrap(), v);
        neural_synergy::Validate::validate(&cfg(v)).unwrap();
    }
    // the ablations' keys differ from each other and from SMMD's
    let keys: std::collections::HashSet<String> = Variant::TABLE_ORDER
        .iter()
        .map(|v| cfg(*v).key("ctx"))
        .collect();
    assert_eq!(keys.len(), Variant::TABLE_ORDER.len());
}

#[test]
fn mosei_runs_are_compared_with_table_3() {
    assert_eq!(DatasetName::Mosi.paper_table(), 2);
    assert_eq!(DatasetName::Mosei.paper_table(), 3);
    assert_eq!(DatasetName::UrFunny.paper_table(), 6);
}

#[test]
fn synthetic_mosi_marks_its_sarcastic_test_clips() {
    let ds = neural_synergy::data::synthetic::generate_for(DatasetName::Mosi, 0);
    assert_eq!(ds.test_subsets.len(), 2);
    let (a, b) = (&ds.test_subsets[0].members, &ds.test_subsets[1].members);
    assert_eq!(a.len(), ds.test.len());
    // complementary, and the sarcastic share is near the generator's 15 %
    assert!(a.iter().zip(b).all(|(x, y)| x != y));
    let share = a.iter().filter(|x| **x).count() as f64 / a.len() as f64;
    assert!(
        (share - neural_synergy::data::synthetic::SARCASM).abs() < 0.05,
        "{share}"
    );
}

#[test]
fn real_text_cue_modes_label_cues_are_readable_alone_intensity_cues_are_not() {
    let Some(sh) = shared() else { return };
    let dir = sh.join("data");
    let lab = realtext::load_with(&dir, DatasetName::Mosi, 0, realtext::CueMode::Label).unwrap();
    let int =
        realtext::load_with(&dir, DatasetName::Mosi, 0, realtext::CueMode::Intensity).unwrap();
    let readout = |d: &neural_synergy::data::Dataset| {
        d.ceilings
            .iter()
            .find(|c| c.name.starts_with("audio+vision cues only"))
            .unwrap()
            .acc2
    };
    let mean = |d: &neural_synergy::data::Dataset| {
        d.ceilings
            .iter()
            .find(|c| c.name == "train-mean predictor")
            .unwrap()
            .acc2
    };
    // the label cues alone separate polarity well above the mean predictor
    assert!(readout(&lab) > mean(&lab) + 0.15, "{}", readout(&lab));
    // intensity cues carry no polarity: the readout stays within 3 points of the mean predictor
    assert!(
        (readout(&int) - mean(&int)).abs() < 0.03,
        "{}",
        readout(&int)
    );
    // same words, same labels; only the cues and the description differ
    assert_eq!(lab.test.labels, int.test.labels);
    assert_eq!(lab.test.text, int.test.text);
    assert_ne!(lab.test.audio, int.test.audio);
    assert!(int.description.contains("intensity"));
    // the default loader is the label mode, byte for byte (resume keys hash the description)
    let def = realtext::load(&dir, DatasetName::Mosi, 0).unwrap();
    assert_eq!(def.description, lab.description);
    assert_eq!(def.train.audio, lab.train.audio);
}
