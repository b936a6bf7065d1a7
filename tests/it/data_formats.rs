//! Full-tier loaders: the pickle VM, MMSA pickles, UR-FUNNY, CMU-SDK `.csd`, and
//! `synergy data inspect`, on the committed fixtures (`fixtures/`, written by
//! `fixtures/make_fixtures.py`; expected values in `fixtures/expected.json`) and, through
//! `SYNERGY_SHARED`, on the real UR-FUNNY folds/labels and the real MOSI `.csd`.

use crate::common::{shared, synergy};
use neural_synergy::data::pickle::{self, Obj};
use neural_synergy::data::{csd, inspect, mmsa, urfunny, Dataset, Task, Tier};
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn expected() -> Value {
    let s = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

const MMSA: [&str; 6] = [
    "aligned_p4",
    "aligned_p4_np2",
    "aligned_p2",
    "aligned_p5",
    "aligned_p5_np1",
    "unaligned_p4",
];

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
        "{what}: {a} vs expected {b}"
    );
}

/// Compares an `inspect` summary with an entry of expected.json.
fn check_summary(got: &Value, want: &Value, what: &str) {
    assert_eq!(got["dims"], want["dims"], "{what} dims");
    assert_eq!(got["t_max"], want["t_max"], "{what} t_max");
    assert_eq!(got["task"], want["task"], "{what} task");
    for split in ["train", "valid", "test"] {
        let (g, w) = (&got["splits"][split], &want["splits"][split]);
        assert_eq!(g["n"], w["n"], "{what} {split} n");
        assert_eq!(g["lengths_sum"], w["lengths_sum"], "{what} {split} lengths");
        assert_eq!(g["first_id"], w["first_id"], "{what} {split} first id");
        for m in ["text", "audio", "vision", "labels"] {
            assert_eq!(g[m]["shape"], w[m]["shape"], "{what} {split} {m} shape");
            for k in ["sum", "sumsq"] {
                close(
                    g[m][k].as_f64().unwrap(),
                    w[m][k].as_f64().unwrap(),
                    &format!("{what} {split} {m} {k}"),
                );
            }
        }
    }
}

fn mmsa_fixture(name: &str) -> Dataset {
    mmsa::load(
        &fixtures().join("mmsa").join(format!("{name}.pkl")),
        mmsa::TextFeatures::Text,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn mmsa_fixtures_load_and_match_expected_json() {
    let exp = expected();
    for name in MMSA {
        let ds = mmsa_fixture(name);
        assert_eq!(ds.tier, Tier::Full);
        assert_eq!(ds.task, Task::Regression);
        check_summary(&inspect::dataset(&ds, "mmsa"), &exp["mmsa"][name], name);
        // audio -inf became 0; everything is finite
        assert!(ds.train.audio.iter().all(|x| x.is_finite()), "{name}");
    }
}

#[test]
fn numpy1_and_numpy2_module_names_load_identically() {
    let dir = fixtures().join("mmsa");
    for (a, b) in [
        ("aligned_p4.pkl", "aligned_p4_np2.pkl"),
        ("aligned_p5_np1.pkl", "aligned_p5.pkl"),
    ] {
        let x = pickle::load_file(&dir.join(a)).unwrap();
        let y = pickle::load_file(&dir.join(b)).unwrap();
        assert_eq!(x, y, "{a} vs {b}");
    }
    // the two spellings really are in the files
    let raw1 = std::fs::read(dir.join("aligned_p4.pkl")).unwrap();
    let raw2 = std::fs::read(dir.join("aligned_p4_np2.pkl")).unwrap();
    let has = |r: &[u8], s: &[u8]| r.windows(s.len()).any(|w| w == s);
    assert!(has(&raw1, b"numpy.core.multiarray") && !has(&raw1, b"numpy._core"));
    assert!(has(&raw2, b"numpy._core.multiarray"));
}

#[test]
fn pickle_protocols_2_4_5_load_identically() {
    let dir = fixtures().join("mmsa");
    let proto = |f: &str| std::fs::read(dir.join(f)).unwrap()[1];
    assert_eq!(
        [
            proto("aligned_p2.pkl"),
            proto("aligned_p4.pkl"),
            proto("aligned_p5.pkl")
        ],
        [2, 4, 5]
    );
    let base = pickle::load_file(&dir.join("aligned_p4.pkl")).unwrap();
    for f in ["aligned_p2.pkl", "aligned_p5.pkl"] {
        assert_eq!(pickle::load_file(&dir.join(f)).unwrap(), base, "{f}");
    }
    let d4 = mmsa_fixture("aligned_p4");
    for name in ["aligned_p2", "aligned_p5"] {
        let d = mmsa_fixture(name);
        for (a, b) in [
            (&d.train, &d4.train),
            (&d.valid, &d4.valid),
            (&d.test, &d4.test),
        ] {
            assert_eq!(a.text, b.text);
            assert_eq!(a.audio, b.audio);
            assert_eq!(a.vision, b.vision);
            assert_eq!(a.labels, b.labels);
            assert_eq!(a.ids, b.ids);
            assert_eq!(a.lengths, b.lengths);
        }
    }
}

#[test]
fn mmsa_reads_dtypes_strings_and_text_bert_choice() {
    let obj = pickle::load_file(&fixtures().join("mmsa/aligned_p4.pkl")).unwrap();
    let train = obj.get("train").unwrap();
    let dtype = |k: &str| match train.get(k) {
        Some(Obj::Array(a)) => a.dtype.clone(),
        o => panic!("{k}: {o:?}"),
    };
    assert_eq!(dtype("text"), "<f4");
    assert_eq!(dtype("audio"), "<f8");
    assert_eq!(dtype("text_bert"), "<i8");
    assert_eq!(dtype("raw_text"), "|O");
    assert!(dtype("id").starts_with("<U"));
    let ds = mmsa::load(
        &fixtures().join("mmsa/aligned_p4.pkl"),
        mmsa::TextFeatures::TextBert,
    )
    .unwrap();
    assert_eq!(ds.dims[0], 3);
    // the mask channel of text_bert sums to the valid lengths
    let s = &ds.train;
    let mask_sum: f32 = s.text.chunks(3).map(|c| c[1]).sum();
    assert_eq!(mask_sum as usize, s.lengths.iter().sum::<usize>());
}

#[test]
fn urfunny_v1_and_v2_fixtures_match_expected_json() {
    let exp = expected();
    for v in ["v1", "v2"] {
        let dir = fixtures().join("urfunny").join(v);
        let ds = urfunny::load(&dir).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(ds.task, Task::Binary);
        assert_eq!(ds.tier, Tier::Full);
        check_summary(&inspect::dataset(&ds, "urfunny"), &exp["urfunny"][v], v);
        let folds = urfunny::read_folds(&dir.join("data_folds.pkl")).unwrap();
        let w = &exp["urfunny"][v]["folds"];
        assert_eq!(folds.train.len() as u64, w["train"].as_u64().unwrap());
        assert_eq!(folds.dev.len() as u64, w["dev"].as_u64().unwrap());
        assert_eq!(folds.test.len() as u64, w["test"].as_u64().unwrap());
    }
    assert_eq!(
        urfunny::version(&fixtures().join("urfunny/v1")).unwrap(),
        urfunny::Version::V1
    );
}

#[test]
fn csd_fixture_matches_expected_json() {
    let exp = &expected()["csd"]["fixture"];
    let c = csd::read(&fixtures().join("csd/fixture.csd")).unwrap();
    let s = inspect::csd(&c);
    for k in ["root", "videos", "rows", "width"] {
        assert_eq!(s[k], exp[k], "{k}");
    }
    close(
        s["sum"].as_f64().unwrap(),
        exp["sum"].as_f64().unwrap(),
        "sum",
    );
    close(
        s["sumsq"].as_f64().unwrap(),
        exp["sumsq"].as_f64().unwrap(),
        "sumsq",
    );
    assert_eq!(
        c.metadata.get("root name").map(String::as_str),
        Some("\"Fixture Features\"")
    );
    assert!(c.videos.iter().all(|v| v.intervals.len() == 2 * v.rows));
}

#[test]
fn forbidden_globals_are_errors_naming_them() {
    // protocol 2: os.system('echo hi')
    let p2 = b"\x80\x02cos\nsystem\nX\x07\x00\x00\x00echo hi\x85R.";
    let e = pickle::loads(p2).unwrap_err();
    assert!(e.reason.contains("os.system"), "{e}");
    assert_eq!(e.offset, 2);
    // protocol 4: STACK_GLOBAL builtins.eval
    let p4 = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R.";
    let e = pickle::loads(p4).unwrap_err();
    assert!(e.reason.contains("builtins.eval"), "{e}");
    // a numpy global that is not on the list
    let p = b"\x80\x04\x8c\x05numpy\x8c\x04load\x93.";
    assert!(pickle::loads(p).unwrap_err().reason.contains("numpy.load"));
}

/// `_reconstruct` + BUILD of an f4 array of `shape` whose data is 4 bytes.
fn array_pickle(shape: &[i32]) -> Vec<u8> {
    let mut b = b"\x80\x04".to_vec();
    b.extend(b"\x8c\x15numpy.core.multiarray\x8c\x0c_reconstruct\x93");
    b.extend(b"\x8c\x05numpy\x8c\x07ndarray\x93K\x00\x85C\x01b\x87R");
    b.extend(b"(K\x01("); // state: (1, shape, dtype, False, data)
    for d in shape {
        b.push(b'J');
        b.extend(d.to_le_bytes());
    }
    b.extend(b"t\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02f4\x89\x88\x87R");
    b.extend(b"\x89C\x04\x00\x00\x80?tb.");
    b
}

#[test]
fn huge_declared_shape_in_a_tiny_file_is_an_error() {
    let ok = pickle::loads(&array_pickle(&[1])).unwrap();
    assert!(matches!(ok, Obj::Array(ref a) if a.shape == [1]), "{ok:?}");
    // 100000 × 100000 × 2500 f4 = 100 TB declared, 4 bytes present
    let big = array_pickle(&[100_000, 100_000, 2500]);
    assert!(big.len() < 1024);
    let e = pickle::loads(&big).unwrap_err();
    assert!(
        e.reason.contains("needs") && e.reason.contains("holds 4"),
        "{e}"
    );
    // overflowing shape product
    let e = pickle::loads(&array_pickle(&[i32::MAX, i32::MAX, i32::MAX, i32::MAX])).unwrap_err();
    assert!(e.reason.contains("overflows"), "{e}");
    // a BINBYTES8 that claims more than the file holds
    let mut b = b"\x80\x04\x8e".to_vec();
    b.extend((1u64 << 40).to_le_bytes());
    b.extend(b"abc.");
    assert!(pickle::loads(&b).unwrap_err().reason.contains("truncated"));
}

#[test]
fn truncated_and_corrupt_files_are_errors_naming_file_and_offset() {
    let src = std::fs::read(fixtures().join("mmsa/aligned_p4.pkl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.pkl");
    std::fs::write(&p, &src[..src.len() / 2]).unwrap();
    let msg = mmsa::load(&p, mmsa::TextFeatures::Text)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cut.pkl") && msg.contains("byte offset"),
        "{msg}"
    );
    // not a pickle at all
    std::fs::write(&p, b"\xffhello").unwrap();
    let msg = mmsa::load(&p, mmsa::TextFeatures::Text)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cut.pkl") && msg.contains("opcode"), "{msg}");
    // a valid pickle of the wrong layout
    let msg = mmsa::load(
        &fixtures().join("urfunny/v1/data_folds.pkl"),
        Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("not a dict of arrays"), "{msg}");
}

/// Found by the mutation property in CI: a BINGET changed to point at the object array's own
/// item list made the reader borrow that list twice (a RefCell panic). It must be a value or an
/// error, never a panic.
#[test]
fn an_object_array_whose_items_reach_themselves_does_not_panic() {
    let mut b = std::fs::read(fixtures().join("mmsa/aligned_p4.pkl")).unwrap();
    assert_eq!(
        b[4797], 86,
        "fixture changed: the BINGET 86 this test mutates moved"
    );
    b[4797] = 85;
    let r = std::panic::catch_unwind(|| pickle::loads(&b).map(|_| ()));
    assert!(r.is_ok(), "the reader panicked");
}

#[test]
fn a_list_that_contains_itself_reads_as_one_level() {
    // PROTO 2, EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP
    let b = b"\x80\x02]q\x00h\x00a.";
    assert_eq!(
        pickle::loads(b).unwrap(),
        Obj::List(vec![Obj::List(vec![])])
    );
}

#[test]
fn nesting_one_level_per_byte_is_an_error_not_a_stack_overflow() {
    // a million nested 1-tuples: TUPLE1 repeated
    let mut t = b"\x80\x02N".to_vec();
    t.extend(std::iter::repeat_n(0x85u8, 1_000_000));
    t.push(b'.');
    let e = pickle::loads(&t).unwrap_err().to_string();
    assert!(e.contains("nested deeper than"), "{e}");
    // half a million nested lists: EMPTY_LIST repeated, then APPEND repeated
    let n = 500_000;
    let mut l = b"\x80\x02".to_vec();
    l.extend(std::iter::repeat_n(b']', n));
    l.extend(std::iter::repeat_n(b'a', n - 1));
    l.push(b'.');
    let e = pickle::loads(&l).unwrap_err().to_string();
    assert!(e.contains("nested deeper than"), "{e}");
    // nesting up to the limit still reads
    let mut ok = b"\x80\x02N".to_vec();
    ok.extend(std::iter::repeat_n(0x85u8, pickle::MAX_NESTING));
    ok.push(b'.');
    assert!(pickle::loads(&ok).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Random byte mutations and truncations of a valid fixture never panic.
    #[test]
    fn pickle_mutations_and_truncations_never_panic(
        file in 0usize..3,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<proptest::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let name = ["mmsa/aligned_p4.pkl", "mmsa/aligned_p5.pkl", "urfunny/v2/language_sdk.pkl"][file];
        let mut b = std::fs::read(fixtures().join(name)).unwrap();
        for (i, v) in &edits {
            let k = i.index(b.len());
            b[k] = *v;
        }
        if truncate {
            b.truncate(cut.index(b.len()));
        }
        let r = std::panic::catch_unwind(|| {
            if let Ok(o) = pickle::loads(&b) {
                let _ = mmsa::from_obj(o, Path::new("mutated.pkl"), mmsa::TextFeatures::Text);
            }
        });
        prop_assert!(r.is_ok(), "panicked on a mutated {}", name);
        if truncate && edits.is_empty() {
            prop_assert!(pickle::loads(&b).is_err());
        }
    }
}

#[test]
fn real_urfunny_folds_and_labels_read_exactly() {
    let Some(sh) = shared() else { return };
    let d = sh.join("data/urfunny");
    let folds = urfunny::read_folds(&d.join("v1/data_folds.pkl")).unwrap();
    assert_eq!(
        [folds.train.len(), folds.dev.len(), folds.test.len()],
        [10598, 2626, 3290]
    );
    assert_eq!(folds.train[..3], ["0", "1", "2"]);
    assert_eq!(folds.dev[..3], ["18", "59", "60"]);
    let test_sum: u64 = folds.test.iter().map(|s| s.parse::<u64>().unwrap()).sum();
    assert_eq!(test_sum, 28_131_837);
    let l1 = urfunny::read_labels(&d.join("v1/humor_label_sdk.pkl")).unwrap();
    assert_eq!(l1.len(), 16606);
    assert_eq!(l1.values().filter(|&&x| x == 1.0).count(), 8257);
    let all = folds.train.iter().chain(&folds.dev).chain(&folds.test);
    assert!(all.clone().all(|id| l1.contains_key(id)));
    let l2 = urfunny::read_labels(&d.join("v2/humor_label_sdk.pkl")).unwrap();
    assert_eq!(l2.len(), 10166);
    assert_eq!(l2.values().filter(|&&x| x == 1.0).count(), 5083);
    assert_eq!(all.filter(|id| l2.contains_key(*id)).count(), 10046);
}

#[test]
fn real_mosi_opinion_labels_csd_reads() {
    let Some(sh) = shared() else { return };
    let c = csd::read(&sh.join("data/mosi/CMU_MOSI_Opinion_Labels.csd")).unwrap();
    assert_eq!(c.root, "Opinion Segment Labels");
    assert_eq!(c.videos.len(), 93);
    let s = inspect::csd(&c);
    assert_eq!(s["rows"], 2199);
    assert_eq!(s["width"], 1);
    close(s["sum"].as_f64().unwrap(), 154.51666775345802, "sum");
    close(s["sumsq"].as_f64().unwrap(), 5440.614739308625, "sumsq");
    let v = &c.videos[0];
    assert_eq!((v.id.as_str(), v.rows), ("03bSnISJMiM", 13));
    let iv: f64 = c.videos.iter().flat_map(|v| &v.intervals).sum();
    close(iv, 385769.19709164463, "interval sum");
    assert!(c.metadata["dataset name"].contains("CMU-MOSI"));
}

#[test]
fn cli_data_inspect_json_equals_expected() {
    let exp = expected();
    let f = fixtures();
    let mut paths: Vec<String> = MMSA
        .iter()
        .map(|n| f.join(format!("mmsa/{n}.pkl")).display().to_string())
        .collect();
    paths.push(f.join("urfunny/v1").display().to_string());
    paths.push(f.join("urfunny/v2").display().to_string());
    paths.push(f.join("csd/fixture.csd").display().to_string());
    let mut args = vec!["data", "inspect"];
    args.extend(paths.iter().map(String::as_str));
    args.push("--json");
    let (code, out, err) = synergy(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), paths.len());
    for (i, n) in MMSA.iter().enumerate() {
        assert_eq!(files[i]["format"], "mmsa");
        check_summary(&files[i], &exp["mmsa"][n], n);
    }
    check_summary(&files[6], &exp["urfunny"]["v1"], "v1");
    check_summary(&files[7], &exp["urfunny"]["v2"], "v2");
    let c = &files[8];
    let w = &exp["csd"]["fixture"];
    for k in ["root", "videos", "rows", "width"] {
        assert_eq!(c[k], w[k], "{k}");
    }
    close(
        c["sum"].as_f64().unwrap(),
        w["sum"].as_f64().unwrap(),
        "csd sum",
    );
    // explicit --format, and a one-line error with a non-zero exit
    let p = f.join("csd/fixture.csd");
    let (code, _, err) = synergy(&["data", "inspect", p.to_str().unwrap(), "--format", "mmsa"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("fixture.csd"), "{err}");
    let (code, _, err) = synergy(&["data", "inspect", "/nonexistent/x.pkl", "--json"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/x.pkl"), "{err}");
}
