//! The `synergy` CLI contract: JSON keys and values equal to the library, one-line errors, exit codes.

use crate::common::*;
use ndarray::{arr1, Array3};
use ndarray_npy::write_npy;
use neural_synergy::estimators::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = synergy(&a);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.lines().count(), 1, "one JSON object on one line: {out}");
    serde_json::from_str(&out).unwrap()
}

fn p(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(|s| s.as_str()).collect();
    k.sort();
    k
}

#[test]
fn estimate_commands_print_the_library_values() {
    let dir = tempfile::tempdir().unwrap();
    let x = randn(60, 3, 1);
    let y = randn(60, 3, 2) * 1.2 + 0.4;
    let (xp, yp) = (p(dir.path(), "x.npy"), p(dir.path(), "y.npy"));
    write_npy(&xp, &x).unwrap();
    // f32 input is accepted and converted
    write_npy(&yp, &y.mapv(|v| v as f32)).unwrap();
    let y = y.mapv(|v| v as f32 as f64);
    let (xs, ys) = (s(&xp), s(&yp));

    let v = json(&[
        "estimate",
        "mmd",
        "--x",
        xs,
        "--y",
        ys,
        "--variant",
        "biased",
        "--bandwidth",
        "0.5",
        "--bandwidth",
        "2",
    ]);
    assert_eq!(keys(&v), ["bandwidths", "estimator", "value", "variant"]);
    assert_eq!(v["estimator"], "mmd");
    assert_eq!(v["variant"], "biased");
    assert_eq!(v["bandwidths"], serde_json::json!([0.5, 2.0]));
    let bw = Bandwidths::new(vec![0.5, 2.0]).unwrap();
    assert_eq!(
        v["value"].as_f64().unwrap(),
        mmd2(&x.view(), &y.view(), MmdVariant::Biased, &bw).unwrap()
    );

    let v = json(&["estimate", "mmd", "--x", xs, "--y", ys, "--median"]);
    assert_eq!(v["variant"], "unbiased", "unbiased is the default variant");
    let bw = median_bandwidths(&x.view(), &y.view()).unwrap();
    assert_eq!(v["bandwidths"].as_array().unwrap().len(), 5);
    assert_eq!(
        v["value"].as_f64().unwrap(),
        mmd2(&x.view(), &y.view(), MmdVariant::Unbiased, &bw).unwrap()
    );

    let v = json(&["estimate", "kl", "--x", xs, "--y", ys, "--method", "gauss"]);
    assert_eq!(
        v["value"].as_f64().unwrap(),
        gaussian_kl(&x.view(), &y.view()).unwrap()
    );
    let v = json(&[
        "estimate", "kl", "--x", xs, "--y", ys, "--method", "knn", "--k", "3",
    ]);
    assert_eq!(
        v["value"].as_f64().unwrap(),
        knn_kl(&x.view(), &y.view(), 3).unwrap()
    );

    let v = json(&["estimate", "kurtosis", "--x", xs]);
    let m = mardia(&x.view()).unwrap();
    assert_eq!(keys(&v), ["estimator", "value", "z"]);
    assert_eq!(v["value"].as_f64().unwrap(), m.b2);
    assert_eq!(v["z"].as_f64().unwrap(), m.z);

    let v = json(&[
        "estimate", "mine", "--x", xs, "--y", ys, "--steps", "50", "--seed", "7",
    ]);
    let r = mine_kl(
        &x.view(),
        &y.view(),
        &MineParams {
            steps: 50,
            seed: 7,
            ..MineParams::default()
        },
    )
    .unwrap();
    assert_eq!(v["value"].as_f64().unwrap(), r.value);
}

#[test]
fn dv_kurtosis_ema_and_metrics_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (tp, tq) = (arr1(&[0.1, 0.5, 1.0]), arr1(&[-0.2, 0.3]));
    write_npy(p(dir.path(), "tp.npy"), &tp).unwrap();
    write_npy(p(dir.path(), "tq.npy"), &tq).unwrap();
    let v = json(&[
        "estimate",
        "dv",
        "--tp",
        s(&p(dir.path(), "tp.npy")),
        "--tq",
        s(&p(dir.path(), "tq.npy")),
    ]);
    assert_eq!(
        v["dv"].as_f64().unwrap(),
        dv_bound(&tp.view(), &tq.view()).unwrap()
    );
    assert_eq!(
        v["nwj"].as_f64().unwrap(),
        nwj_bound(&tp.view(), &tq.view()).unwrap()
    );

    let data = randn(3 * 40, 4, 9);
    let b: Array3<f64> = data.clone().into_shape_with_order((3, 40, 4)).unwrap();
    write_npy(p(dir.path(), "b.npy"), &b).unwrap();
    let v = json(&[
        "estimate",
        "kurtosis-ema",
        "--batches",
        s(&p(dir.path(), "b.npy")),
        "--alpha",
        "0.9",
        "--ridge",
        "0.01",
        "--clip",
        "3",
    ]);
    let mut st = StreamingKurtosisParams {
        alpha: 0.9,
        ridge: 0.01,
        clip: 3.0,
    }
    .init()
    .unwrap();
    let expect: Vec<f64> = b.outer_iter().map(|bt| st.update(&bt).unwrap()).collect();
    let got: Vec<f64> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(got, expect);

    write_npy(p(dir.path(), "pred.npy"), &arr1(&[0.3, 0.3, 0.3])).unwrap();
    write_npy(p(dir.path(), "label.npy"), &arr1(&[-1.0, 0.0, 2.0])).unwrap();
    let v = json(&[
        "metrics",
        "--pred",
        s(&p(dir.path(), "pred.npy")),
        "--label",
        s(&p(dir.path(), "label.npy")),
    ]);
    assert_eq!(
        keys(&v),
        [
            "acc2_has0",
            "acc2_non0",
            "acc7",
            "corr",
            "f1_has0",
            "f1_non0",
            "mae"
        ]
    );
    assert_eq!(v["corr"], Value::Null, "constant predictions: corr is null");
    assert_eq!(v["acc2_non0"].as_f64().unwrap(), 0.5);
}

#[test]
fn bad_input_exits_non_zero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let x = randn(10, 2, 1);
    let xp = p(dir.path(), "x.npy");
    write_npy(&xp, &x).unwrap();
    let mut nan = x.clone();
    nan[[3, 1]] = f64::NAN;
    let np = p(dir.path(), "nan.npy");
    write_npy(&np, &nan).unwrap();
    // truncated file: the header survives, the data does not
    let bytes = std::fs::read(&xp).unwrap();
    let tp = p(dir.path(), "trunc.npy");
    std::fs::write(&tp, &bytes[..bytes.len() - 17]).unwrap();
    let y3 = p(dir.path(), "y3.npy");
    write_npy(&y3, &randn(10, 3, 2)).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "estimate",
                "mmd",
                "--x",
                s(&xp),
                "--y",
                s(&np),
                "--bandwidth",
                "1",
            ],
            "non-finite",
        ),
        (
            vec![
                "estimate",
                "mmd",
                "--x",
                s(&xp),
                "--y",
                s(&xp),
                "--bandwidth",
                "-1",
            ],
            "bandwidth",
        ),
        (
            vec![
                "estimate",
                "mmd",
                "--x",
                s(&xp),
                "--y",
                s(&y3),
                "--bandwidth",
                "1",
            ],
            "dimension mismatch",
        ),
        (
            vec![
                "estimate",
                "kl",
                "--x",
                s(&xp),
                "--y",
                s(&tp),
                "--method",
                "knn",
            ],
            "trunc.npy",
        ),
        (
            vec![
                "estimate",
                "kl",
                "--x",
                s(&xp),
                "--y",
                s(&xp),
                "--method",
                "knn",
            ],
            "duplicate",
        ),
        (
            vec!["estimate", "kurtosis", "--x", "/nonexistent/x.npy"],
            "/nonexistent/x.npy",
        ),
        (
            vec!["estimate", "mmd", "--x", s(&xp), "--y", s(&xp)],
            "--bandwidth",
        ),
    ];
    for (args, needle) in cases {
        let (code, out, err) = synergy(&args);
        assert_ne!(code, 0, "{args:?} should fail");
        assert!(out.is_empty(), "nothing on stdout: {out}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{args:?}: '{err}' lacks '{needle}'"
        );
    }
}

/// A closed stdout (`synergy … | head`) ends the binaries quietly, never with a panic.
#[test]
fn a_closed_stdout_ends_the_binaries_without_a_panic() {
    use std::process::{Command, Stdio};
    for (exe, args) in [
        (
            env!("CARGO_BIN_EXE_reproduce-paper"),
            vec!["--expected", "--json"],
        ),
        (env!("CARGO_BIN_EXE_reproduce-paper"), vec!["--expected"]),
    ] {
        let mut child = Command::new(exe)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away before the first write
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
