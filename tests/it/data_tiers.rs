//! Tiers × datasets: the CSV label reader, the real-text MOSEI tier, the MOSEI- and
//! UR-FUNNY-shaped synthetic tiers and their embedded facts, `--dataset` through
//! `reproduce-paper`, and a set of `.csd` files aligned to label segments (fixture in
//! `fixtures/csd/set`, written by `fixtures/make_fixtures.py`).

use crate::common::{run_bin, shared};
use ndarray::{Array1, Array2, Axis};
use neural_synergy::data::{
    self, csd, inspect, mosei_facts, realtext, synthetic, urfunny, urfunny_facts, Dataset,
    DatasetName, Split, Task, Tier,
};
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn split_sizes(ds: &Dataset) -> [usize; 3] {
    [ds.train.len(), ds.valid.len(), ds.test.len()]
}

// ------------------------------------------------------------------------------ label.csv

/// A string with plenty of the characters CSV must quote.
fn csv_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just(','),
            Just('"'),
            Just('\n'),
            Just('\r'),
            Just(' '),
            any::<char>()
        ],
        0..40,
    )
    .prop_map(|v| v.into_iter().collect())
}

const MODES: [&str; 4] = ["train", "dev", "valid", "test"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn label_csv_written_by_a_csv_writer_parses_back_equal(
        mosei in any::<bool>(),
        recs in prop::collection::vec(
            (csv_text(), csv_text(), csv_text(), -3.0f64..=3.0, 0usize..4),
            0..12,
        ),
    ) {
        // distinct ids (a repeated id is refused: tests/it/hostile.rs)
        let ids: std::collections::BTreeSet<String> = recs
            .iter()
            .map(|(a, b, ..)| if mosei { format!("{a}$_${b}") } else { a.clone() })
            .collect();
        prop_assume!(ids.len() == recs.len());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("label.csv");
        let mut w = csv::Writer::from_path(&p).unwrap();
        if mosei {
            w.write_record(["video_id", "clip_id", "text", "label", "mode"]).unwrap();
        } else {
            w.write_record(["id", "text", "label", "mode"]).unwrap();
        }
        for (a, b, text, label, mode) in &recs {
            let label = label.to_string();
            if mosei {
                w.write_record([a.as_str(), b, text, &label, MODES[*mode]]).unwrap();
            } else {
                w.write_record([a.as_str(), text, &label, MODES[*mode]]).unwrap();
            }
        }
        w.flush().unwrap();
        drop(w);
        let rows = realtext::load_labels(&p).unwrap();
        prop_assert_eq!(rows.len(), recs.len());
        for (r, (a, b, text, label, mode)) in rows.iter().zip(&recs) {
            let id = if mosei { format!("{a}$_${b}") } else { a.clone() };
            prop_assert_eq!(&r.id, &id);
            prop_assert_eq!(&r.text, text);
            prop_assert_eq!(r.label, *label);
            prop_assert_eq!(r.split, [0, 1, 1, 2][*mode]);
        }
    }
}

#[test]
fn real_label_files_have_the_readme_row_counts_per_split() {
    let Some(sh) = shared() else { return };
    for (file, counts) in [
        ("mosi/label.csv", [1281, 229, 685]),
        ("mosei/label.csv", [16274, 1861, 4653]),
    ] {
        let rows = realtext::load_labels(&sh.join("data").join(file)).unwrap();
        let mut got = [0usize; 3];
        for r in &rows {
            got[r.split] += 1;
        }
        assert_eq!(got, counts, "{file}");
        let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), rows.len(), "{file}: ids are unique");
    }
    // MOSEI's first transcript is quoted and holds commas and an apostrophe
    let rows = realtext::load_labels(&sh.join("data/mosei/label.csv")).unwrap();
    assert_eq!(rows[0].id, "-3g5yACwYnA$_$82_7645");
    assert!(rows[0]
        .text
        .starts_with("Key is part of the people that we use to solve"));
    assert!(rows[0]
        .text
        .ends_with("they've been able to bring solutions."));
    assert_eq!(rows[0].label, 1.0);
    assert!(rows.iter().filter(|r| r.text.contains(',')).count() > 1000);
}

// ------------------------------------------------------------------------------ embedded facts

#[test]
fn mosei_facts_match_the_real_label_file() {
    let Some(sh) = shared() else { return };
    let rows = realtext::load_labels(&sh.join("data/mosei/label.csv")).unwrap();
    let mut counts = [0f64; 37];
    for r in &rows {
        let k = (6.0 * r.label).round();
        assert!(
            (6.0 * r.label - k).abs() < 1e-4,
            "{} is on the 1/6 grid",
            r.label
        );
        counts[(k + 18.0) as usize] += 1.0;
    }
    assert_eq!(counts, mosei_facts::LABEL_COUNTS);
    let n = rows.len() as f64;
    let mean = rows.iter().map(|r| r.label).sum::<f64>() / n;
    let sd = (rows.iter().map(|r| (r.label - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!((sd - mosei_facts::LABEL_SD).abs() < 1e-4, "sd {sd}");
    let mut words: Vec<usize> = rows
        .iter()
        .map(|r| realtext::tokenize(&r.text).len())
        .collect();
    words.sort();
    let mean_w = words.iter().sum::<usize>() as f64 / n;
    assert!((mean_w - mosei_facts::MEAN_WORDS).abs() < 0.01, "{mean_w}");
    assert_eq!(words[words.len() / 2] as f64, mosei_facts::MEDIAN_WORDS);
}

#[test]
fn urfunny_facts_match_the_real_folds_and_labels() {
    let Some(sh) = shared() else { return };
    let d = sh.join("data/urfunny/v1");
    let folds = urfunny::read_folds(&d.join("data_folds.pkl")).unwrap();
    let labels = urfunny::read_labels(&d.join("humor_label_sdk.pkl")).unwrap();
    let fs = [&folds.train, &folds.dev, &folds.test];
    assert_eq!(fs.map(|f| f.len()), urfunny_facts::FOLDS);
    assert_eq!(
        fs.map(|f| f.iter().filter(|id| labels[*id] == 1.0).count()),
        urfunny_facts::HUMOROUS
    );
}

// ------------------------------------------------------------------------------ real-text MOSEI

/// Clip means of a modality's valid steps (`n × d`).
fn clip_means(s: &Split, x: &[f32], t_max: usize, d: usize) -> Array2<f64> {
    Array2::from_shape_fn((s.len(), d), |(i, j)| {
        let l = s.lengths[i].clamp(1, t_max);
        (0..l)
            .map(|t| f64::from(x[(i * t_max + t) * d + j]))
            .sum::<f64>()
            / l as f64
    })
}

fn pearson(a: &Array1<f64>, b: &Array1<f64>) -> f64 {
    let (ma, mb) = (a.mean().unwrap(), b.mean().unwrap());
    let cov = ((a - ma) * (b - mb)).sum();
    cov / (((a - ma).mapv(|v| v * v).sum() * (b - mb).mapv(|v| v * v).sum()).sqrt())
}

// The helpers below use plain loops, not `dot`/LAPACK: with ndarray's `blas` feature those call
// OpenBLAS, which is not safe to call from several test threads at once (a run of the whole
// module once gave a garbage readout here).

/// `xᵀx` (`d × d`).
fn gram(x: &Array2<f64>) -> Array2<f64> {
    let d = x.ncols();
    let mut g = Array2::zeros((d, d));
    for row in x.rows() {
        for i in 0..d {
            let ri = row[i];
            for j in 0..d {
                g[[i, j]] += ri * row[j];
            }
        }
    }
    g
}

/// `x · v`.
fn matvec(x: &Array2<f64>, v: &Array1<f64>) -> Array1<f64> {
    Array1::from_iter(
        x.rows()
            .into_iter()
            .map(|r| r.iter().zip(v).map(|(a, b)| a * b).sum()),
    )
}

/// Solves `a w = b` by Gaussian elimination with partial pivoting (`a` symmetric positive
/// definite here).
fn solve(mut a: Array2<f64>, mut b: Array1<f64>) -> Array1<f64> {
    let n = b.len();
    for k in 0..n {
        let p = (k..n)
            .max_by(|&i, &j| a[[i, k]].abs().total_cmp(&a[[j, k]].abs()))
            .unwrap();
        for j in 0..n {
            a.swap([k, j], [p, j]);
        }
        b.swap(k, p);
        for i in k + 1..n {
            let f = a[[i, k]] / a[[k, k]];
            for j in k..n {
                a[[i, j]] -= f * a[[k, j]];
            }
            b[i] -= f * b[k];
        }
    }
    let mut w = Array1::zeros(n);
    for k in (0..n).rev() {
        let s: f64 = (k + 1..n).map(|j| a[[k, j]] * w[j]).sum();
        w[k] = (b[k] - s) / a[[k, k]];
    }
    w
}

/// Validation correlation of a ridge-regularised linear readout of the clip-mean audio+vision
/// cues, fitted on train: how much of the label the synthetic cues give away.
fn cue_readout_corr(ds: &Dataset) -> f64 {
    let [_, da, dv] = ds.dims;
    let feats = |s: &Split| {
        let a = clip_means(s, &s.audio, ds.t_max, da);
        let v = clip_means(s, &s.vision, ds.t_max, dv);
        let ones = Array2::ones((s.len(), 1));
        ndarray::concatenate![Axis(1), a, v, ones]
    };
    let (x, xv) = (feats(&ds.train), feats(&ds.valid));
    let y = Array1::from_iter(ds.train.labels.iter().map(|v| f64::from(*v)));
    let yv = Array1::from_iter(ds.valid.labels.iter().map(|v| f64::from(*v)));
    let mut g = gram(&x);
    for i in 0..g.nrows() - 1 {
        g[[i, i]] += 1e-3 * x.nrows() as f64;
    }
    let xty = Array1::from_iter(
        x.columns()
            .into_iter()
            .map(|c| c.iter().zip(&y).map(|(a, b)| a * b).sum()),
    );
    let w = solve(g, xty);
    pearson(&matvec(&xv, &w), &yv)
}

#[test]
fn real_text_mosei_has_mosei_splits_and_cues_as_weak_as_mosi() {
    let Some(sh) = shared() else { return };
    let t0 = std::time::Instant::now();
    let ds = realtext::load_mosei(&sh.join("data"), 0).expect("real MOSEI under SYNERGY_SHARED");
    eprintln!(
        "real-text MOSEI loaded in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(split_sizes(&ds), [16274, 1861, 4653]);
    assert_eq!((ds.name.as_str(), ds.tier), ("mosei", Tier::RealText));
    assert_eq!(ds.corpus(), Some(DatasetName::Mosei));
    assert_eq!(ds.dims, [50, 74, 35]);
    assert!(ds.description.starts_with("real MOSEI transcripts"));
    let i = ds
        .train
        .ids
        .iter()
        .position(|s| s == "-3g5yACwYnA$_$119_919")
        .expect("a known MOSEI clip");
    // "They've been able to find solutions or at least bring some answers to the table."
    assert_eq!(ds.train.lengths[i], 15);
    assert!((ds.train.labels[i] - 0.6666667).abs() < 1e-6);
    assert!(ds.train.lengths.iter().all(|&l| (1..=50).contains(&l)));
    // design check on validation data: with MOSI's amplitudes, the cues' linear readout on
    // MOSEI's validation split is as weak as on MOSI's (present, far from the label)
    let mosi = realtext::load_mosi(&sh.join("data"), 0).unwrap();
    let (r_mosi, r_mosei) = (cue_readout_corr(&mosi), cue_readout_corr(&ds));
    eprintln!("validation cue readout correlation: MOSI {r_mosi:.3}, MOSEI {r_mosei:.3}");
    for r in [r_mosi, r_mosei] {
        assert!(r > 0.05 && r < 0.6, "cue readout correlation {r}");
    }
    assert!((r_mosi - r_mosei).abs() < 0.2, "{r_mosi} vs {r_mosei}");
}

#[test]
fn real_text_has_no_urfunny_tier() {
    let e = realtext::load(Path::new("/nonexistent"), DatasetName::UrFunny, 0).unwrap_err();
    assert!(e.to_string().contains("UR-FUNNY"), "{e}");
}

// ------------------------------------------------------------------------------ synthetic MOSEI

#[test]
fn synthetic_mosei_has_mosei_shape_histogram_and_ordered_ceilings() {
    let ds = synthetic::generate_mosei(0);
    assert_eq!(split_sizes(&ds), [16326, 1871, 4659]);
    assert_eq!(ds.dims, [300, 74, 35]);
    assert_eq!(
        (ds.t_max, ds.task, ds.tier),
        (50, Task::Regression, Tier::Synthetic)
    );
    assert_eq!(ds.corpus(), Some(DatasetName::Mosei));
    let all: Vec<f32> = [&ds.train, &ds.valid, &ds.test]
        .iter()
        .flat_map(|s| s.labels.clone())
        .collect();
    let total: f64 = mosei_facts::LABEL_COUNTS.iter().sum();
    let mut counts = [0f64; 37];
    for &y in &all {
        let k = (6.0 * f64::from(y)).round();
        assert!(
            (6.0 * f64::from(y) - k).abs() < 1e-4,
            "{y} off the 1/6 grid"
        );
        counts[(k + 18.0) as usize] += 1.0;
    }
    for (k, (c, want)) in counts.iter().zip(mosei_facts::LABEL_COUNTS).enumerate() {
        let (got, want) = (c / all.len() as f64, want / total);
        assert!(
            (got - want).abs() < 0.01,
            "6·label = {}: share {got} vs {want}",
            k as i64 - 18
        );
    }
    let mut lens: Vec<usize> = ds.train.lengths.clone();
    lens.sort();
    assert!(lens.iter().all(|&l| (2..=50).contains(&l)));
    let median = lens[lens.len() / 2] as f64;
    assert!(
        (median - mosei_facts::MEDIAN_WORDS).abs() <= 1.0,
        "median length {median}"
    );
    let m: Vec<f64> = ds.ceilings.iter().map(|c| c.mae.unwrap()).collect();
    assert!(
        m[0] < m[1] && m[1] < m[2],
        "oracle < text < audio+vision: {m:?}"
    );
    assert!(
        (m[2] - m[3]).abs() < 0.1,
        "audio+vision carry no polarity: {m:?}"
    );
    // padding is zero and the first padded step of a short clip is padding in every modality
    let i = ds.test.lengths.iter().position(|&l| l < 50).unwrap();
    let l = ds.test.lengths[i];
    let [dt, da, _] = ds.dims;
    assert!(ds.test.text[(i * 50 + l) * dt..(i * 50 + l + 1) * dt]
        .iter()
        .all(|v| *v == 0.0));
    assert!(ds.test.audio[(i * 50 + l - 1) * da..(i * 50 + l) * da]
        .iter()
        .any(|v| *v != 0.0));
}

// ------------------------------------------------------------------------------ synthetic UR-FUNNY

/// The top principal direction of the rows of `x` (power iteration on the covariance).
fn top_direction(x: &Array2<f64>) -> Array1<f64> {
    let c = x - &x.mean_axis(Axis(0)).unwrap();
    let cov = gram(&c);
    let mut v = Array1::from_elem(cov.nrows(), 1.0);
    for _ in 0..200 {
        let w = matvec(&cov, &v);
        v = &w / w.iter().map(|a| a * a).sum::<f64>().sqrt();
    }
    v
}

/// Accuracy on `test` of the majority label per cell, cells fitted on `train`.
fn cell_classifier(train: &[(usize, bool)], test: &[(usize, bool)], cells: usize) -> f64 {
    let mut n = vec![(0usize, 0usize); cells];
    for &(c, h) in train {
        n[c].0 += 1;
        n[c].1 += usize::from(h);
    }
    let prior = train.iter().filter(|x| x.1).count() * 2 >= train.len();
    let ok = test
        .iter()
        .filter(|&&(c, h)| {
            let p = if n[c].0 == 0 {
                prior
            } else {
                2 * n[c].1 >= n[c].0
            };
            p == h
        })
        .count();
    ok as f64 / test.len() as f64
}

#[test]
fn synthetic_urfunny_humour_needs_text_and_delivery_together() {
    let ds = synthetic::generate_urfunny(0);
    assert_eq!(split_sizes(&ds), urfunny_facts::FOLDS);
    assert_eq!((ds.task, ds.tier), (Task::Binary, Tier::Synthetic));
    assert_eq!(ds.dims, urfunny_facts::DIMS);
    assert_eq!(ds.corpus(), Some(DatasetName::UrFunny));
    let humorous =
        [&ds.train, &ds.valid, &ds.test].map(|s| s.labels.iter().filter(|&&y| y == 1.0).count());
    assert_eq!(humorous, urfunny_facts::HUMOROUS);
    assert!([&ds.train, &ds.valid, &ds.test]
        .iter()
        .all(|s| s.labels.iter().all(|&y| y == 0.0 || y == 1.0)));
    // readouts from the features alone (no generator internals): each modality's clip means,
    // projected on their top principal direction (fitted on train)
    let [dt, da, dv] = ds.dims;
    let t = ds.t_max;
    let score = |s: &Split, m: usize, dir: &Array1<f64>| -> Vec<f64> {
        let x = match m {
            0 => clip_means(s, &s.text, t, dt),
            _ => ndarray::concatenate![
                Axis(1),
                clip_means(s, &s.audio, t, da),
                clip_means(s, &s.vision, t, dv)
            ],
        };
        matvec(&x, dir).to_vec()
    };
    let dirs: Vec<Array1<f64>> = (0..2)
        .map(|m| {
            let x = match m {
                0 => clip_means(&ds.train, &ds.train.text, t, dt),
                _ => ndarray::concatenate![
                    Axis(1),
                    clip_means(&ds.train, &ds.train.audio, t, da),
                    clip_means(&ds.train, &ds.train.vision, t, dv)
                ],
            };
            top_direction(&x)
        })
        .collect();
    let h = |s: &Split| -> Vec<bool> { s.labels.iter().map(|&y| y == 1.0).collect() };
    let (h_tr, h_te) = (h(&ds.train), h(&ds.test));
    let scores = |s: &Split| [score(s, 0, &dirs[0]), score(s, 1, &dirs[1])];
    let (s_tr, s_te) = (scores(&ds.train), scores(&ds.test));
    // unimodal: 20 quantile bins of the score
    let bins = |v: &[f64], edges: &[f64]| -> Vec<usize> {
        v.iter()
            .map(|x| edges.iter().filter(|e| x > e).count())
            .collect()
    };
    let majority = {
        let k = h_te.iter().filter(|x| **x).count() as f64 / h_te.len() as f64;
        k.max(1.0 - k)
    };
    let mut uni = Vec::new();
    for m in 0..2 {
        let mut sorted = s_tr[m].clone();
        sorted.sort_by(f64::total_cmp);
        let edges: Vec<f64> = (1..20).map(|q| sorted[q * sorted.len() / 20]).collect();
        let tr: Vec<(usize, bool)> = bins(&s_tr[m], &edges)
            .into_iter()
            .zip(h_tr.clone())
            .collect();
        let te: Vec<(usize, bool)> = bins(&s_te[m], &edges)
            .into_iter()
            .zip(h_te.clone())
            .collect();
        uni.push(cell_classifier(&tr, &te, 20));
    }
    // joint: the four sign cells of (text score, audio+vision score)
    let cell =
        |s: &[Vec<f64>; 2], i: usize| usize::from(s[0][i] > 0.0) * 2 + usize::from(s[1][i] > 0.0);
    let tr: Vec<(usize, bool)> = (0..h_tr.len()).map(|i| (cell(&s_tr, i), h_tr[i])).collect();
    let te: Vec<(usize, bool)> = (0..h_te.len()).map(|i| (cell(&s_te, i), h_te[i])).collect();
    let joint = cell_classifier(&tr, &te, 4);
    eprintln!(
        "UR-FUNNY synthetic test accuracy: text {:.3}, audio+vision {:.3}, joint {joint:.3}, majority {majority:.3}",
        uni[0], uni[1]
    );
    for (m, acc) in uni.iter().enumerate() {
        assert!(
            *acc < majority + 0.03,
            "modality {m} alone predicts humour: {acc} vs chance {majority}"
        );
    }
    assert!(joint > 0.8, "text and delivery together: {joint}");
    // the generator's own reference predictors say the same
    let c: Vec<f64> = ds.ceilings.iter().map(|c| c.acc2).collect();
    assert!(ds.ceilings.iter().all(|c| c.mae.is_none()));
    assert!(c[0] > 0.85, "oracle {c:?}");
    for acc in &c[1..] {
        assert!(
            (acc - majority).abs() < 0.03,
            "unimodal/majority ceilings {c:?}"
        );
    }
}

// ------------------------------------------------------------------------------ .csd set

fn expected_set() -> Value {
    let s = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let v: Value = serde_json::from_str(&s).unwrap();
    v["csd"]["set"].clone()
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
        "{what}: {a} vs expected {b}"
    );
}

#[test]
fn csd_set_fixture_aligns_to_label_segments_as_expected_json() {
    let dir = fixtures().join("csd/set");
    let set = csd::find_set(&dir).unwrap();
    assert!(set.labels.ends_with("fixture_Opinion_Labels.csd"));
    assert!(set.text.ends_with("fixture_WordVectors.csd"));
    let ds = data::load_full(&dir).unwrap();
    let want = expected_set();
    assert_eq!(ds.name, want["name"]);
    assert_eq!(ds.corpus(), Some(DatasetName::Mosi));
    assert_eq!(ds.tier, Tier::Full);
    let got = inspect::dataset(&ds, "csd-set");
    assert_eq!(got["dims"], want["dims"]);
    assert_eq!(got["t_max"], want["t_max"]);
    for (split, s) in [
        ("train", &ds.train),
        ("valid", &ds.valid),
        ("test", &ds.test),
    ] {
        let (g, w) = (&got["splits"][split], &want["splits"][split]);
        assert_eq!(g["n"], w["n"], "{split} n");
        assert_eq!(
            serde_json::to_value(&s.ids).unwrap(),
            w["ids"],
            "{split} ids"
        );
        assert_eq!(g["lengths_sum"], w["lengths_sum"], "{split} lengths");
        for m in ["text", "audio", "vision", "labels"] {
            assert_eq!(g[m]["shape"], w[m]["shape"], "{split} {m}");
            for k in ["sum", "sumsq"] {
                close(
                    g[m][k].as_f64().unwrap(),
                    w[m][k].as_f64().unwrap(),
                    &format!("{split} {m} {k}"),
                );
            }
        }
    }
    // `synergy data inspect` on the folder prints the same summary
    let (code, out, err) = crate::common::synergy(&[
        "data",
        "inspect",
        fixtures().join("csd/set").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"][0]["format"], "csd-set");
    assert_eq!(v["files"][0]["splits"], got["splits"]);
    // dropped: vidA_3 (no words in its segment), vidC_2 (not in label.csv), vidD_1 (no vision)
    assert!(
        ds.description.contains("1 not in label.csv"),
        "{}",
        ds.description
    );
    assert!(ds.description.contains("1 with a video missing"));
    assert!(ds.description.contains("1 without text rows"));
    // a > 50-word segment is truncated to 50 steps
    assert_eq!(ds.valid.lengths, vec![4, 50]);
}

#[test]
fn csd_set_errors_name_the_folder_and_the_missing_piece() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("csd/set");
    for f in [
        "fixture_Opinion_Labels.csd",
        "fixture_WordVectors.csd",
        "fixture_COVAREP.csd",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let e = csd::load_set(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("no vision .csd file") && e.contains(dir.path().to_str().unwrap()),
        "{e}"
    );
    std::fs::copy(
        src.join("fixture_FACET.csd"),
        dir.path().join("fixture_FACET.csd"),
    )
    .unwrap();
    let e = csd::load_set(dir.path()).unwrap_err().to_string();
    assert!(e.contains("needs label.csv"), "{e}");
    std::fs::copy(
        src.join("fixture_FACET.csd"),
        dir.path().join("more_openface.csd"),
    )
    .unwrap();
    let e = csd::load_set(dir.path()).unwrap_err().to_string();
    assert!(e.contains("could be the vision file"), "{e}");
}

#[test]
fn real_mosi_label_segments_are_the_label_csv_clips_in_stored_order() {
    let Some(sh) = shared() else { return };
    let c = csd::read(&sh.join("data/mosi/CMU_MOSI_Opinion_Labels.csd")).unwrap();
    let rows = realtext::load_labels(&sh.join("data/mosi/label.csv")).unwrap();
    let by_id: std::collections::HashMap<&str, f64> =
        rows.iter().map(|r| (r.id.as_str(), r.label)).collect();
    let mut matched = 0;
    for v in &c.videos {
        for k in 0..v.rows {
            if let Some(&y) = by_id.get(format!("{}_{}", v.id, k + 1).as_str()) {
                assert!(
                    (f64::from(v.features[k]) - y).abs() < 1e-4,
                    "{}_{}",
                    v.id,
                    k + 1
                );
                matched += 1;
            }
        }
    }
    assert_eq!(
        matched, 2195,
        "every label.csv clip is segment k+1 of its video"
    );
}

// ------------------------------------------------------------------------------ --dataset

fn reproduce(args: &[&str]) -> (i32, String, String) {
    run_bin(env!("CARGO_BIN_EXE_reproduce-paper"), args)
}

#[test]
fn dataset_flag_reports_binary_urfunny_and_keeps_datasets_apart_in_one_results_file() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let base = [
        "--profile",
        "smoke",
        "--models",
        "flstm",
        "--max-epochs",
        "1",
        "--quiet",
        "--out",
        o,
    ];
    let run = |dataset: &str| {
        let mut a = base.to_vec();
        a.extend(["--dataset", dataset]);
        let (code, md, err) = reproduce(&a);
        assert_eq!(code, 0, "{dataset}: {err}");
        md
    };
    let md = run("urfunny");
    assert!(
        md.contains("## Table 6 (UR-FUNNY)") && md.contains("dataset `urfunny`, tier `synthetic`"),
        "{md}"
    );
    assert!(md.contains("| Accuracy | paper | F1 |"), "{md}");
    assert!(
        md.contains("γ_L2 = 0.01,") && md.contains("a binary task's γ_L2 = 0.01"),
        "{md}"
    );
    // an explicit --gamma-l2 overrides the binary default (own folder: new run keys)
    let other = tempfile::tempdir().unwrap();
    let mut a = base.to_vec();
    let last = a.len() - 1;
    a[last] = other.path().to_str().unwrap();
    a.extend([
        "--dataset",
        "urfunny",
        "--gamma-l2",
        "1",
        "--variants",
        "nll-skl",
    ]);
    let (code, md1, err) = reproduce(&a);
    assert_eq!(code, 0, "{err}");
    let l = std::fs::read_to_string(other.path().join("results.jsonl")).unwrap();
    let r: Value = serde_json::from_str(l.lines().next().unwrap()).unwrap();
    assert_eq!(
        r["result"]["config"]["synergy"]["gamma_l2"].as_f64(),
        Some(1.0)
    );
    assert!(
        md1.contains("γ_L2 = 1,") && !md1.contains("a binary task's γ_L2"),
        "{md1}"
    );
    assert!(
        !md.contains("MAE") && !md.contains("Acc7"),
        "no regression columns:\n{md}"
    );
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("table.json")).unwrap())
            .unwrap();
    assert_eq!(table["dataset"], "urfunny");
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r["accuracy"]["mean"].as_f64().is_some() && r.get("mae").is_none()));
    let csv = std::fs::read_to_string(out.path().join("table.csv")).unwrap();
    assert!(csv.starts_with("dataset,tier,profile,model,variant,n_seeds,accuracy"));
    assert!(csv
        .lines()
        .skip(1)
        .all(|l| l.starts_with("urfunny,synthetic,smoke,")));
    // the same models on MOSI in the same folder: new runs, not resumed from UR-FUNNY's
    let md = run("mosi");
    assert!(
        md.contains("## Table 2 (CMU-MOSI)") && md.contains("dataset `mosi`"),
        "{md}"
    );
    let lines = std::fs::read_to_string(out.path().join("results.jsonl")).unwrap();
    let keys: std::collections::HashSet<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!((lines.lines().count(), keys.len()), (6, 6));
    // a binary task's synergy runs take the binary γ_L2 default, regression's keep 1; NLL runs
    // carry the base configuration of their task
    for l in lines.lines() {
        let r: Value = serde_json::from_str(l).unwrap();
        let c = &r["result"]["config"];
        let want = if c["loss"] == "bce" {
            neural_synergy::experiments::BINARY_TASK_GAMMA_L2
        } else {
            1.0
        };
        assert_eq!(c["synergy"]["gamma_l2"].as_f64(), Some(want), "{c}");
    }
    assert!(
        md.contains("γ_L2 = 1,") && !md.contains("a binary task's γ_L2"),
        "{md}"
    );
    // report --from renders only run.json's dataset (MOSI, the last run)
    let (code, js, err) = reproduce(&["report", "--from", o, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["dataset"], "mosi");
    assert_eq!(v["rows"].as_array().unwrap().len(), 3);
    assert_eq!(v["selected_runs"].as_array().unwrap().len(), 3);
}

#[test]
fn full_tier_reads_a_csd_set_folder_and_names_its_dataset() {
    let out = tempfile::tempdir().unwrap();
    let dir = fixtures().join("csd/set");
    let (d, o) = (dir.to_str().unwrap(), out.path().to_str().unwrap());
    let run = |extra: &[&str]| {
        let mut a = vec![
            "--profile",
            "smoke",
            "--tier",
            "full",
            "--data",
            d,
            "--models",
            "flstm",
        ];
        a.extend(["--max-epochs", "1", "--quiet", "--out", o]);
        a.extend(extra);
        let (code, md, err) = reproduce(&a);
        assert_eq!(code, 0, "{err}");
        (md, err)
    };
    let (md, _) = run(&[]);
    assert!(md.contains("dataset `mosi`, tier `full`"), "{md}");
    assert!(md.contains("CMU-SDK .csd set (mosi"), "{md}");
    // a wrong --dataset is noted, and the file's corpus is what the report says
    let (md, err) = run(&["--dataset", "mosei"]);
    assert!(err.contains("holds mosi data"), "{err}");
    assert!(md.contains("dataset `mosi`"), "{md}");
}
