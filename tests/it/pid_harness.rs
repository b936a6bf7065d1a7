//! Synergy measured in the harness (issue 27 §2): the PID of each tier's label
//! (`experiments::synergy_pid`, `synergy pid-tier`), the per-clip codes in `run.json`
//! (`synergy pid-codes`), and the PID of the runs' test predictions with the claim "the C-network
//! raises the synergy the model uses" (`report::prediction_pid`).

use crate::common::*;
use neural_synergy::data::{synthetic, DatasetName, Task, Tier};
use neural_synergy::experiments::synergy_pid::{
    check_rebuilt, label_codes, loading_plan, pid_codes, prediction_codes, tier_pid, PairPid,
    PidCodes, TierPidOptions,
};
use neural_synergy::experiments::{select, RunContext, Selected};
use neural_synergy::report::prediction_pid::{
    markdown, prediction_pid, prediction_pid_with, PredictionPidRow,
};
use neural_synergy::report::stats::Verdict;
use neural_synergy::train::Variant;
use rand::Rng;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn row<'a>(rows: &'a [PairPid], pair: &str, subset: &str) -> &'a PairPid {
    rows.iter()
        .find(|r| r.pair == pair && r.subset == subset)
        .unwrap_or_else(|| panic!("no row {pair} / {subset} in {rows:?}"))
}

fn finite(r: &PairPid) -> bool {
    [
        r.redundancy,
        r.unique_x1,
        r.unique_x2,
        r.synergy,
        r.mutual_information,
        r.null_mean,
        r.null_p95,
    ]
    .iter()
    .all(|v| v.is_finite() && *v >= -1e-9)
}

/// The MOSI-shaped synthetic tier: the label's sign is `sign(words) × (sarcastic ? −1 : 1)`, the
/// words in text and the sarcasm cue in audio/vision. On the whole test split that is synergy
/// between text and audio+vision, far above the permutation null; within each subset the cue is
/// constant, so the synergy vanishes there (it *is* the mixture of sarcastic and plain clips);
/// audio and vision carry no polarity, so their pair shows no synergy.
#[test]
fn synthetic_mosi_sarcasm_is_synergy_above_the_null() {
    let ds = synthetic::generate(0);
    let t = tier_pid(&ds, &TierPidOptions::default()).unwrap();
    assert_eq!(t.rows.len(), 6, "{:?}", t.rows);
    assert!(t.rows.iter().all(finite), "{:?}", t.rows);
    let all = row(&t.rows, "(text, audio+vision)", "all");
    assert_eq!(all.clips, 686);
    assert!(all.above_null, "{all:?}");
    assert!(all.synergy > 0.3, "{all:?}");
    assert!(all.synergy > 4.0 * all.null_p95, "{all:?}");
    assert!(all.p_value < 0.02, "{all:?}");
    // the decomposition adds up
    let sum = all.redundancy + all.unique_x1 + all.unique_x2 + all.synergy;
    assert!((sum - all.mutual_information).abs() < 1e-9, "{all:?}");
    for sub in ["sarcastic", "not sarcastic"] {
        let r = row(&t.rows, "(text, audio+vision)", sub);
        assert!(!r.above_null, "{r:?}");
        assert!(r.synergy < all.synergy / 5.0, "{r:?}");
        // within a subset the words alone tell the sign
        assert!(r.unique_x1 > 0.5, "{r:?}");
    }
    let sarcastic = ds.test_subsets.iter().find(|s| s.name == "sarcastic");
    assert_eq!(
        row(&t.rows, "(text, audio+vision)", "sarcastic").clips,
        sarcastic.unwrap().members.iter().filter(|m| **m).count()
    );
    let av = row(&t.rows, "(audio, vision)", "all");
    assert!(!av.above_null, "{av:?}");
    assert!(av.mutual_information < 0.1, "{av:?}");
}

/// The UR-FUNNY-shaped tier: humour is the incongruity of the words' and the delivery's polarity,
/// so text alone and audio+vision alone are at chance and what they carry together is synergy.
#[test]
fn synthetic_urfunny_humour_is_synergy() {
    let ds = synthetic::generate_urfunny(0);
    let t = tier_pid(&ds, &TierPidOptions::default()).unwrap();
    let r = row(&t.rows, "(text, audio+vision)", "all");
    assert_eq!(r.clips, 3290);
    assert!(r.above_null, "{r:?}");
    assert!(r.synergy > 0.2, "{r:?}");
    // nearly all of the information is synergy
    assert!(r.synergy > 0.8 * r.mutual_information, "{r:?}");
    assert!(r.unique_x1 < 0.02 && r.unique_x2 < 0.02, "{r:?}");
}

#[test]
fn labels_and_predictions_are_discretised_at_the_metrics_thresholds() {
    assert_eq!(
        label_codes(&[-0.5, 0.0, 0.2, -3.0], Task::Regression).unwrap(),
        vec![0, 1, 1, 0]
    );
    assert_eq!(label_codes(&[0.0, 1.0], Task::Binary).unwrap(), vec![0, 1]);
    // a binary model's prediction is a logit: 0 is a probability of 1/2
    assert_eq!(
        prediction_codes(&[-0.1, 0.0, 2.0], Task::Binary).unwrap(),
        vec![0, 1, 1]
    );
    let e = label_codes(&[0.0, f64::NAN], Task::Regression).unwrap_err();
    assert!(e.to_string().contains("label 1"), "{e}");
    assert!(prediction_codes(&[f64::INFINITY], Task::Regression).is_err());
}

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of a committed results folder's `run.json` and `results.jsonl` in a temp dir.
fn folder_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["run.json", "results.jsonl"] {
        std::fs::copy(manifest().join("results").join(name).join(f), dir.join(f)).unwrap();
    }
    (tmp, dir)
}

fn read_ctx(dir: &Path) -> RunContext {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

fn selected(dir: &Path) -> Vec<Selected> {
    let merged = neural_synergy::experiments::read_results_dir(dir).unwrap();
    select(&merged.records)
}

fn without_codes(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("pid_codes");
    v
}

/// `synergy pid-codes` on a copy of a committed folder: adds codes that equal those of the
/// regenerated data, changes nothing else, is idempotent, and the report section renders from the
/// folder (timed: a re-render must stay within seconds).
#[test]
fn pid_codes_cli_adds_codes_to_a_committed_folder_and_the_section_renders() {
    let (_tmp, dir) = folder_copy("quick5-flstm-mosi-synthetic");
    // the committed folder has codes by now: strip them, as in a run.json written before them
    let mut before: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    before.as_object_mut().unwrap().remove("pid_codes");
    std::fs::write(
        dir.join("run.json"),
        serde_json::to_string_pretty(&before).unwrap(),
    )
    .unwrap();
    assert!(before.get("pid_codes").is_none());
    let old = read_ctx(&dir);
    assert!(
        old.pid_codes.is_none(),
        "an old run.json loads without codes"
    );
    // without codes the section says how to add them, and nothing is computed
    assert!(prediction_pid(&selected(&dir), &old).is_empty());
    assert!(markdown(&[], &old).contains("synergy pid-codes --from DIR"));

    let (code, out, err) = synergy(&["--json", "pid-codes", "--from", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["test_clips"], 686);
    assert_eq!(v["had_codes"], false);
    let after: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    // every field run.json had is unchanged; pid_codes is added
    for (k, v) in before.as_object().unwrap() {
        assert_eq!(&after[k], v, "{k}");
    }
    assert_eq!(
        without_codes(&after).as_object().unwrap().len(),
        before.as_object().unwrap().len() + usize::from(after.get("grid").is_some())
    );
    let ctx = read_ctx(&dir);
    let codes = ctx.pid_codes.clone().unwrap();
    assert_eq!(codes, pid_codes(&synthetic::generate(0)).unwrap());
    assert_eq!(codes.len(), 686);
    assert_eq!(codes.clusters, 8);
    assert!(codes.text.iter().chain(&codes.audio_vision).all(|c| *c < 8));
    // round trip through run.json
    let again: RunContext = serde_json::from_str(&serde_json::to_string(&ctx).unwrap()).unwrap();
    assert_eq!(again.pid_codes, ctx.pid_codes);
    // a second run changes nothing
    let (code, out, err) = synergy(&["--json", "pid-codes", "--from", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["had_codes"].clone(), v["changed"].clone()),
        (true.into(), false.into())
    );
    assert!(!dir.read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".tmp")));

    let sel = selected(&dir);
    assert_eq!(sel.len(), 15);
    let start = std::time::Instant::now();
    let rows = prediction_pid(&sel, &ctx);
    let md = markdown(&rows, &ctx);
    let secs = start.elapsed().as_secs_f64();
    eprintln!("prediction PID of 15 runs (100 null draws each) + labels: {secs:.2} s");
    assert!(secs < 30.0, "{secs} s");
    assert_eq!(
        rows.iter().map(|r| r.variant.as_str()).collect::<Vec<_>>(),
        ["NLL", "NLL+SKL", "NLL+SMMD"]
    );
    for r in &rows {
        assert_eq!(r.seeds, vec![0, 1, 2, 3, 4], "{r:?}");
        assert!(r.synergy.mean.is_finite() && r.synergy.mean >= 0.0, "{r:?}");
        assert_eq!(r.claim, r.variant != "NLL");
        if r.claim {
            assert!(r.vs_nll.is_some() && r.verdict.is_some(), "{r:?}");
        }
    }
    assert!(md.contains("### Synergy the models use"), "{md}");
    assert!(md.contains("| FLSTM | NLL+SKL | 5 |"), "{md}");
    assert!(md.contains("Labels: S = "), "{md}");
    assert!(md.contains("C-network raises the synergy"), "{md}");
    // the rows serialise for table.json
    let j = serde_json::to_value(&rows).unwrap();
    assert_eq!(j[1]["variant"], "NLL+SKL");
    assert!(j[1]["per_seed"][0]["synergy"].is_f64());
}

/// Predictions built from the codes: a function of the text code alone has no synergy and all its
/// information is text's (up to the small plug-in redundancy with an independent code); the XOR
/// of the two codes' parities is synergy far above its null, and a variant predicting it over NLL's
/// text-only predictions "raises the synergy the model uses" (supported); a variant predicting
/// exactly what NLL predicts is inconclusive.
#[test]
fn prediction_pid_sees_text_only_and_xor_predictions() {
    let (_tmp, dir) = folder_copy("quick5-flstm-mosi-synthetic");
    let mut sel = selected(&dir);
    let n = 686;
    let mut r = rng(27);
    let codes = PidCodes {
        clusters: 8,
        seed: 0,
        method: "independent uniform codes (test)".into(),
        text: (0..n).map(|_| r.random_range(0..8)).collect(),
        audio_vision: (0..n).map(|_| r.random_range(0..8)).collect(),
    };
    let text_only: Vec<f32> = codes
        .text
        .iter()
        .map(|c| if c % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let xor: Vec<f32> = codes
        .text
        .iter()
        .zip(&codes.audio_vision)
        .map(|(a, b)| if (a + b) % 2 == 0 { 0.5 } else { -0.5 })
        .collect();
    for s in &mut sel {
        s.result.test_predictions = Some(match s.variant {
            Variant::NllSkl => xor.clone(),
            _ => text_only.clone(),
        });
    }
    let rows = prediction_pid_with(&sel, &codes, Task::Regression, 100);
    let get = |v: &str| -> &PredictionPidRow { rows.iter().find(|r| r.variant == v).unwrap() };
    let nll = get("NLL");
    for s in &nll.per_seed {
        assert!(s.pid.synergy.abs() < 1e-9, "{s:?}");
        assert_eq!(s.pid.above_null, Some(false), "{s:?}");
        assert!((s.pid.mutual_information - 1.0).abs() < 0.01, "{s:?}");
        assert!(
            (s.pid.unique_text - s.pid.mutual_information).abs() < 0.03,
            "{s:?}"
        );
        assert!(s.pid.unique_audio_vision.abs() < 1e-9, "{s:?}");
    }
    let skl = get("NLL+SKL");
    assert_eq!(skl.seeds_above_null, Some(5));
    assert!(skl.synergy.mean > 0.9, "{skl:?}");
    assert!(skl.per_seed[0].pid.synergy > 10.0 * skl.per_seed[0].pid.null_p95.unwrap());
    let ci = skl.vs_nll.unwrap();
    assert!(ci.lo > 0.9 && ci.n == 5, "{ci:?}");
    assert_eq!(skl.verdict, Some(Verdict::Supported));
    let smmd = get("NLL+SMMD");
    assert_eq!(smmd.vs_nll.unwrap().mean, 0.0);
    assert_eq!(smmd.verdict, Some(Verdict::Inconclusive));

    // one seed: no t-interval, no verdict, and the reason is given
    let one: Vec<Selected> = sel.iter().filter(|s| s.seed == 0).cloned().collect();
    let rows = prediction_pid_with(&one, &codes, Task::Regression, 20);
    let skl = rows.iter().find(|r| r.variant == "NLL+SKL").unwrap();
    assert!(skl.vs_nll.is_none() && skl.verdict.is_none());
    assert!(skl.note.as_deref().unwrap().contains("one seed"), "{skl:?}");

    // without a null (what a scoreboard over many folders needs): the same PIDs and claims
    let fast = prediction_pid_with(&sel, &codes, Task::Regression, 0);
    let fast_skl = fast.iter().find(|r| r.variant == "NLL+SKL").unwrap();
    let full_skl = prediction_pid_with(&sel, &codes, Task::Regression, 5);
    let full_skl = full_skl.iter().find(|r| r.variant == "NLL+SKL").unwrap();
    assert_eq!(fast_skl.synergy.mean, full_skl.synergy.mean);
    assert_eq!(fast_skl.verdict, Some(Verdict::Supported));
    assert_eq!(fast_skl.seeds_above_null, None);
    assert_eq!(fast_skl.per_seed[0].pid.null_p95, None);
    let j = serde_json::to_value(fast_skl.per_seed[0]).unwrap();
    assert!(j.get("null_p95").is_none() && j["synergy"].is_f64(), "{j}");

    // runs without saved predictions are left out and counted
    let mut bare = sel.clone();
    bare[0].result.test_predictions = None;
    let rows = prediction_pid_with(&bare, &codes, Task::Regression, 20);
    let first = rows
        .iter()
        .find(|r| r.model == "FLSTM" && r.variant == bare[0].variant.name())
        .unwrap();
    assert_eq!(first.seeds.len(), 4);
    assert!(
        first.note.as_deref().unwrap().contains("1 of 5 runs"),
        "{first:?}"
    );
}

/// `synergy pid-codes` refuses a folder whose run.json's test clips or labels are not those of the
/// data it describes, and leaves its run.json as it was.
#[test]
fn pid_codes_refuses_a_folder_whose_test_clips_differ() {
    for (what, edit) in [
        ("test clip ids", "ids"),
        ("test labels", "labels"),
        ("data description", "data"),
    ] {
        let (_tmp, dir) = folder_copy("quick5-flstm-mosi-synthetic");
        let path = dir.join("run.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        match edit {
            "ids" => v["test_ids"][3] = "syn-test-999999".into(),
            "labels" => v["test_labels"][5] = 2.5.into(),
            _ => v["data"] = "synthetic MOSI-shaped data (seed 1)".into(),
        }
        let text = serde_json::to_string_pretty(&v).unwrap();
        std::fs::write(&path, &text).unwrap();
        let (code, out, err) = synergy(&["pid-codes", "--from", dir.to_str().unwrap()]);
        assert_ne!(code, 0, "{out}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(what), "{what}: {err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
    // the library check names the first differing row
    let ds = synthetic::generate(0);
    let (_tmp, dir) = folder_copy("quick5-flstm-mosi-synthetic");
    let mut ctx = read_ctx(&dir);
    check_rebuilt(&ctx, &ds).unwrap();
    ctx.test_ids[7] = "other".into();
    let e = check_rebuilt(&ctx, &ds).unwrap_err().to_string();
    assert!(e.contains("test row 7"), "{e}");
}

/// Folders merged into one table must agree on their codes where both have them; an old folder
/// without codes merges with a new one and the merge keeps the codes.
#[test]
fn merge_requires_equal_pid_codes() {
    let (_tmp, dir) = folder_copy("quick5-flstm-mosi-synthetic");
    let mut old = read_ctx(&dir);
    old.pid_codes = None; // a run.json written before the codes
    let mut new = old.clone();
    new.pid_codes = Some(PidCodes {
        clusters: 8,
        seed: 0,
        method: "m".into(),
        text: vec![0; old.test_ids.len()],
        audio_vision: vec![1; old.test_ids.len()],
    });
    let merged = RunContext::merge(&[old.clone(), new.clone()]).unwrap();
    assert_eq!(merged.pid_codes, new.pid_codes);
    let mut other = new.clone();
    other.pid_codes.as_mut().unwrap().text[0] = 1;
    let e = RunContext::merge(&[new, other]).unwrap_err();
    assert!(e.contains("PID codes"), "{e}");
}

#[test]
fn run_context_new_stores_codes() {
    let ds = synthetic::generate(0);
    let plan = loading_plan(
        Tier::Synthetic,
        DatasetName::Mosi,
        neural_synergy::experiments::Profile::Smoke,
        None,
        Default::default(),
    );
    // the smoke profile's subsample, as reproduce-paper loads it
    let small = neural_synergy::experiments::load_dataset(&plan).unwrap();
    assert_eq!(small.test.ids[..], ds.test.ids[..256]);
    let ds = small;
    let ctx = RunContext::new(&plan, &ds);
    let codes = ctx.pid_codes.as_ref().unwrap();
    codes.check_len(256).unwrap();
    assert_eq!(codes, &pid_codes(&ds).unwrap());
    let json = serde_json::to_value(&ctx).unwrap();
    assert_eq!(json["pid_codes"]["text"].as_array().unwrap().len(), 256);
    let mut none = ctx.clone();
    none.pid_codes = None;
    assert!(serde_json::to_value(&none)
        .unwrap()
        .get("pid_codes")
        .is_none());
}

#[test]
fn pid_cli_bad_input_is_one_line() {
    let cases: &[&[&str]] = &[
        &[
            "pid-tier",
            "--tier",
            "synthetic",
            "--dataset",
            "mosi",
            "--draws",
            "0",
        ],
        &[
            "pid-tier",
            "--tier",
            "synthetic",
            "--dataset",
            "mosi",
            "--clusters",
            "0",
        ],
        &["pid-tier", "--tier", "real-text", "--dataset", "mosi"],
        &["pid-tier", "--tier", "synthetic", "--dataset", "imdb"],
        &[
            "pid-tier",
            "--tier",
            "real-text",
            "--dataset",
            "mosi",
            "--data-dir",
            "/nonexistent",
        ],
        &["pid-codes", "--from", "/nonexistent"],
        &["pid-codes"],
    ];
    for args in cases {
        let (code, out, err) = synergy(args);
        assert_ne!(code, 0, "{args:?}: {out}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    // more clusters than training clips: refused by the k-means, one line
    let (code, _, err) = synergy(&[
        "pid-tier",
        "--tier",
        "synthetic",
        "--dataset",
        "mosi",
        "--clusters",
        "5000",
    ]);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("clusters"), "{err}");
}

/// The real-text MOSI tier with `SYNERGY_SHARED` (unset: skipped with a message; set: a missing
/// file fails): the PIDs are finite on the 685 test clips, and the synthetic cues of the default
/// mode (the signed label, weakly) are not synergistic with the words at this sample size — the
/// synergy of the codes stays within the permutation null.
#[test]
fn real_text_mosi_tier_pid() {
    let Some(shared) = shared() else { return };
    let plan = loading_plan(
        Tier::RealText,
        DatasetName::Mosi,
        neural_synergy::experiments::Profile::Quick,
        Some(shared.join("data")),
        Default::default(),
    );
    let ds = neural_synergy::experiments::load_dataset(&plan).unwrap();
    let t = tier_pid(&ds, &TierPidOptions::default()).unwrap();
    assert_eq!(t.rows.len(), 2, "{:?}", t.rows);
    assert!(t.rows.iter().all(finite), "{:?}", t.rows);
    let r = row(&t.rows, "(text, audio+vision)", "all");
    assert_eq!(r.clips, 685);
    assert!(!r.above_null, "{r:?}");
}

/// `synergy pid-codes` on copies of committed real-text folders (with `SYNERGY_SHARED`): it finds
/// the cue mode whose data description run.json recorded (the default `label` and `intensity`)
/// and adds codes for the 685 test clips.
#[test]
fn pid_codes_on_real_text_folders() {
    let Some(shared) = shared() else { return };
    let data = shared.join("data");
    for name in [
        "quick5-flstm-mosi-real-text",
        "quick5-flstm-mosi-real-text-intensity",
    ] {
        let (_tmp, dir) = folder_copy(name);
        let (code, out, err) = synergy(&[
            "--json",
            "pid-codes",
            "--from",
            dir.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{name}: {out}{err}");
        let ctx = read_ctx(&dir);
        ctx.pid_codes.as_ref().unwrap().check_len(685).unwrap();
        let rows = prediction_pid(&selected(&dir), &ctx);
        assert_eq!(rows.len(), 3, "{name}");
    }
    // without the data folder: refused, one line
    let (_tmp, dir) = folder_copy("quick5-flstm-mosi-real-text");
    let (code, _, err) = synergy(&["pid-codes", "--from", dir.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--data-dir"), "{err}");
}
