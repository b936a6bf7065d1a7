//! MISA-specific facts: its CMD and difference losses against plain-loop evaluations of their
//! formulas, their invariances (CMD of identical samples, CMD symmetry, zero difference loss for
//! orthogonal centred columns), the weighting of the auxiliary loss, the precomputed-text entry
//! point, the masked-mean text path and configuration checks.

use crate::common::randn;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ndarray::Array2;
use neural_synergy::data::{synthetic, Dataset, Task};
use neural_synergy::models::misa::{cmd_loss, diff_loss, Misa, MisaConfig, TextEncoderKind};
use neural_synergy::models::{BuildCtx, FusionModel};
use neural_synergy::synergy::nets::seed_varmap;
use neural_synergy::train::build_model;
use neural_synergy::{Checked, Validate};
use std::sync::OnceLock;

fn t(a: &Array2<f64>) -> Tensor {
    let (n, d) = a.dim();
    Tensor::from_vec(a.iter().copied().collect::<Vec<_>>(), (n, d), &Device::Cpu).unwrap()
}

fn scalar(x: &Tensor) -> f64 {
    x.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn col_means(a: &Array2<f64>) -> Vec<f64> {
    let (n, d) = a.dim();
    (0..d)
        .map(|j| (0..n).map(|i| a[[i, j]]).sum::<f64>() / n as f64)
        .collect()
}

/// `‖μ₁ − μ₂‖ + Σ_{k=2..K} ‖mean((x₁−μ₁)^k) − mean((x₂−μ₂)^k)‖` with loops.
fn cmd_direct(a: &Array2<f64>, b: &Array2<f64>, k: usize) -> f64 {
    let (ma, mb) = (col_means(a), col_means(b));
    let d = ma.len();
    let norm = |v: Vec<f64>| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut total = norm((0..d).map(|j| ma[j] - mb[j]).collect());
    for p in 2..=k {
        let moment = |x: &Array2<f64>, m: &[f64], j: usize| {
            let n = x.nrows();
            (0..n)
                .map(|i| (x[[i, j]] - m[j]).powi(p as i32))
                .sum::<f64>()
                / n as f64
        };
        total += norm(
            (0..d)
                .map(|j| moment(a, &ma, j) - moment(b, &mb, j))
                .collect(),
        );
    }
    total
}

/// `(1/(d₁d₂)) Σ_{ij} (Σ_r ã_ri b̃_rj)²`, `x̃ = (x − μ) / (‖row‖ + 1e-6)`, with loops.
fn diff_direct(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let prep = |x: &Array2<f64>| {
        let m = col_means(x);
        let (n, d) = x.dim();
        let mut c = Array2::zeros((n, d));
        for i in 0..n {
            let norm = (0..d)
                .map(|j| (x[[i, j]] - m[j]).powi(2))
                .sum::<f64>()
                .sqrt();
            for j in 0..d {
                c[[i, j]] = (x[[i, j]] - m[j]) / (norm + 1e-6);
            }
        }
        c
    };
    let (pa, pb) = (prep(a), prep(b));
    let (n, d1) = pa.dim();
    let d2 = pb.ncols();
    let mut s = 0.0;
    for i in 0..d1 {
        for j in 0..d2 {
            let dot: f64 = (0..n).map(|r| pa[[r, i]] * pb[[r, j]]).sum();
            s += dot * dot;
        }
    }
    s / (d1 * d2) as f64
}

#[test]
fn cmd_loss_equals_its_formula() {
    for (seed, n1, n2, d, k) in [(1, 7, 5, 4, 5), (2, 9, 9, 3, 3), (3, 4, 6, 6, 1)] {
        let a = randn(n1, d, seed);
        let b = randn(n2, d, seed + 100).mapv(|v| 0.5 * v * v + 0.3);
        let got = scalar(&cmd_loss(&t(&a), &t(&b), k).unwrap());
        let want = cmd_direct(&a, &b, k);
        assert!(want > 0.1, "non-trivial case ({want})");
        assert!(
            (got - want).abs() < 1e-9,
            "CMD_{k} {n1}x{d} vs {n2}x{d}: {got} vs {want}"
        );
    }
}

#[test]
fn cmd_of_identical_samples_is_zero_and_cmd_is_symmetric() {
    let a = randn(8, 5, 11);
    let b = randn(8, 5, 12).mapv(|v| v.powi(3));
    let same = scalar(&cmd_loss(&t(&a), &t(&a), 5).unwrap());
    assert!(same.abs() < 1e-12, "CMD(x, x) = {same}");
    let ab = scalar(&cmd_loss(&t(&a), &t(&b), 5).unwrap());
    let ba = scalar(&cmd_loss(&t(&b), &t(&a), 5).unwrap());
    assert!(ab > 0.1, "different samples have a positive CMD ({ab})");
    assert!(
        (ab - ba).abs() < 1e-12,
        "CMD(a, b) = {ab}, CMD(b, a) = {ba}"
    );
}

#[test]
fn diff_loss_equals_its_formula() {
    for (seed, n, d1, d2) in [(4, 6, 4, 3), (5, 10, 2, 5), (6, 3, 3, 3)] {
        let a = randn(n, d1, seed).mapv(|v| v + 2.0);
        let b = randn(n, d2, seed + 50);
        let got = scalar(&diff_loss(&t(&a), &t(&b)).unwrap());
        let want = diff_direct(&a, &b);
        assert!(want > 1e-3, "non-trivial case ({want})");
        assert!(
            (got - want).abs() < 1e-9,
            "diff {n}x{d1} vs {n}x{d2}: {got} vs {want}"
        );
    }
}

/// Columns of a 4×4 Hadamard matrix other than the all-ones one are centred and mutually
/// orthogonal, and any two of them give rows of equal norm; so after centring and row
/// normalisation `x̃ᵀỹ` stays 0. Column offsets are added to check the centring.
#[test]
fn diff_loss_of_orthogonal_centred_columns_is_zero() {
    let h = [
        [1.0, 1.0, 1.0, 1.0],
        [1.0, -1.0, 1.0, -1.0],
        [1.0, 1.0, -1.0, -1.0],
        [1.0, -1.0, -1.0, 1.0],
    ];
    let x = Array2::from_shape_fn((4, 2), |(i, j)| 3.0 * h[i][j + 1] + [0.7, -2.0][j]);
    let y = Array2::from_shape_fn((4, 1), |(i, _)| 0.5 * h[i][3] + 5.0);
    let zero = scalar(&diff_loss(&t(&x), &t(&y)).unwrap());
    assert!(zero.abs() < 1e-12, "orthogonal: {zero}");
    // the same columns with x's second column shared by y: no longer orthogonal
    let y2 = Array2::from_shape_fn((4, 1), |(i, _)| h[i][2] + 1.0);
    let pos = scalar(&diff_loss(&t(&x), &t(&y2)).unwrap());
    assert!(pos > 0.1, "shared direction: {pos}");
}

fn data() -> &'static Dataset {
    static D: OnceLock<Dataset> = OnceLock::new();
    D.get_or_init(|| synthetic::generate(0))
}

fn build(cfg: &MisaConfig, seed: u64) -> (Misa, VarMap) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let ctx = BuildCtx {
        text_encoder: None,
        dims: data().dims,
        seed,
        task: Task::Regression,
    };
    let m = Misa::new(&Checked::new(*cfg).unwrap(), &ctx, vb).unwrap();
    seed_varmap(&vm, seed).unwrap();
    (m, vm)
}

/// Small widths keep these tests fast; the structure is the default one.
fn small() -> MisaConfig {
    MisaConfig {
        text_hidden: Some(16),
        ffn: 64,
        ..MisaConfig::default()
    }
}

#[test]
fn aux_loss_is_the_weighted_sum_of_the_three_terms() {
    let ds = data();
    let b = ds
        .batch(
            &ds.train,
            &[0, 3, 5, 8, 13, 21],
            &[],
            DType::F64,
            &Device::Cpu,
        )
        .unwrap();
    let aux = |diff, sim, recon| {
        let cfg = MisaConfig {
            diff_weight: diff,
            sim_weight: sim,
            recon_weight: recon,
            ..small()
        };
        let (m, _) = build(&cfg, 9);
        assert!(m.forward(&b, false).unwrap().aux_loss.is_none());
        scalar(&m.forward(&b, true).unwrap().aux_loss.unwrap())
    };
    let (d, s, r) = (aux(1.0, 0.0, 0.0), aux(0.0, 1.0, 0.0), aux(0.0, 0.0, 1.0));
    for (name, v) in [("diff", d), ("cmd", s), ("recon", r)] {
        assert!(v.is_finite() && v > 0.0, "{name} term {v}");
    }
    let mixed = aux(0.1, 0.3, 1.0);
    let want = 0.1 * d + 0.3 * s + r;
    assert!((mixed - want).abs() < 1e-9, "{mixed} vs {want}");
}

#[test]
fn a_precomputed_text_utterance_replaces_the_text_encoder() {
    let ds = data();
    let b = ds
        .batch(&ds.valid, &[1, 2, 4, 7], &[], DType::F64, &Device::Cpu)
        .unwrap();
    let (m, _) = build(&small(), 3);
    let utt = m.text_utterance(&b).unwrap();
    assert_eq!(utt.dims2().unwrap(), (4, m.text_utterance_dim()));
    let direct = m.forward(&b, false).unwrap().prediction;
    let via = m.forward_with_text(&b, &utt, false).unwrap().prediction;
    let (x, y) = (
        direct.to_vec1::<f64>().unwrap(),
        via.to_vec1::<f64>().unwrap(),
    );
    assert_eq!(x, y);
    // a different text vector changes the prediction; a wrong width is an error
    let other = m
        .forward_with_text(&b, &(&utt * 2.0).unwrap(), false)
        .unwrap();
    assert_ne!(other.prediction.to_vec1::<f64>().unwrap(), x);
    let wrong = Tensor::zeros((4, m.text_utterance_dim() + 1), DType::F64, &Device::Cpu).unwrap();
    assert!(m.forward_with_text(&b, &wrong, false).is_err());
}

#[test]
fn the_masked_mean_text_path_ignores_padding() {
    let ds = data();
    let s = &ds.test;
    let short = (0..s.len()).min_by_key(|&i| s.lengths[i]).unwrap();
    let long = (0..s.len()).max_by_key(|&i| s.lengths[i]).unwrap();
    let cfg = MisaConfig {
        text_encoder: TextEncoderKind::MaskedMean,
        ..small()
    };
    let (m, _) = build(&cfg, 5);
    assert_eq!(m.text_utterance_dim(), ds.dims[0]);
    let p = |idx: &[usize]| {
        let b = ds.batch(s, idx, &[], DType::F64, &Device::Cpu).unwrap();
        m.forward(&b, false)
            .unwrap()
            .prediction
            .to_vec1::<f64>()
            .unwrap()[0]
    };
    let (a, b) = (p(&[short]), p(&[short, long]));
    assert!((a - b).abs() < 1e-9, "{a} alone vs {b} padded");
}

#[test]
fn invalid_configurations_are_rejected() {
    let bad = MisaConfig {
        heads: 3,
        ..MisaConfig::default()
    };
    assert_eq!(bad.validate().unwrap_err().field, "heads");
    let bad = MisaConfig {
        sim_weight: f64::NAN,
        ..MisaConfig::default()
    };
    assert_eq!(bad.validate().unwrap_err().field, "sim_weight");
    let ctx = BuildCtx {
        text_encoder: None,
        dims: [4, 3, 2],
        seed: 0,
        task: Task::Binary,
    };
    let bad = MisaConfig {
        hidden: 0,
        ..MisaConfig::default()
    };
    assert!(Checked::new(bad).is_err());
    assert!(build_model::<Misa>(&bad, &ctx, &Device::Cpu).is_err());
    assert!(serde_json::from_str::<MisaConfig>(r#"{"hiden": 64}"#).is_err());
    let text: MisaConfig = serde_json::from_str(r#"{"text_encoder": "masked_mean"}"#).unwrap();
    assert_eq!(text.text_encoder, TextEncoderKind::MaskedMean);
}
