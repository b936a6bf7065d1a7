//! LMF-specific facts: the low-rank fusion equals the contraction of its rank-r weight tensor
//! `Σ_k w_k ⊗_m W_m[k]` with `ẑ_a ⊗ ẑ_v ⊗ ẑ_t` (explicit loops); at full rank it expresses any
//! TFN-style linear layer on the fused tensor; the forward pass is wired as documented; bad shapes
//! and configurations are errors.

use crate::common::rng;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};
use neural_synergy::data::{synthetic, Task};
use neural_synergy::models::lmf::{low_rank_fusion, Lmf, LmfConfig};
use neural_synergy::models::tfn::tensor_fusion;
use neural_synergy::models::{BuildCtx, FusionModel};
use neural_synergy::synergy::nets::seed_varmap;
use neural_synergy::train::build_model;
use neural_synergy::{Checked, Validate};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn draw(r: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(&mut *r)).collect()
}

fn t(v: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn ext(z: &[f64]) -> Vec<f64> {
    std::iter::once(1.0).chain(z.iter().copied()).collect()
}

/// Widths `(d_a, d_v, d_t)`, batch `B`, output `o`.
const D: [usize; 3] = [2, 3, 2];
const B: usize = 3;
const O: usize = 2;

#[test]
fn low_rank_fusion_equals_the_contraction_of_its_rank_r_tensor() {
    let mut g = rng(11);
    for r in [1usize, 4] {
        let z: Vec<Vec<f64>> = D.iter().map(|&d| draw(&mut g, B * d)).collect();
        // factors W_m[k][i][o], row-major r × (d_m+1) × o
        let w: Vec<Vec<f64>> = D.iter().map(|&d| draw(&mut g, r * (d + 1) * O)).collect();
        let fw = draw(&mut g, r);
        let bias = draw(&mut g, O);
        let zt: Vec<Tensor> = (0..3).map(|m| t(z[m].clone(), &[B, D[m]])).collect();
        let wt: Vec<Tensor> = (0..3).map(|m| t(w[m].clone(), &[r, D[m] + 1, O])).collect();
        let got = low_rank_fusion(
            [&zt[0], &zt[1], &zt[2]],
            [&wt[0], &wt[1], &wt[2]],
            &t(fw.clone(), &[1, r]),
            &t(bias.clone(), &[1, O]),
        )
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
        let (a1, v1, t1) = (D[0] + 1, D[1] + 1, D[2] + 1);
        let f = |m: usize, k: usize, i: usize, o: usize| w[m][(k * (D[m] + 1) + i) * O + o];
        // the full tensor 𝒲[i,j,l,o] = Σ_k w_k W_a[k,i,o] W_v[k,j,o] W_t[k,l,o]
        let mut full = vec![0.0; a1 * v1 * t1 * O];
        for i in 0..a1 {
            for j in 0..v1 {
                for l in 0..t1 {
                    for o in 0..O {
                        full[((i * v1 + j) * t1 + l) * O + o] = (0..r)
                            .map(|k| fw[k] * f(0, k, i, o) * f(1, k, j, o) * f(2, k, l, o))
                            .sum();
                    }
                }
            }
        }
        for n in 0..B {
            let za = ext(&z[0][n * D[0]..(n + 1) * D[0]]);
            let zv = ext(&z[1][n * D[1]..(n + 1) * D[1]]);
            let ztx = ext(&z[2][n * D[2]..(n + 1) * D[2]]);
            for o in 0..O {
                let mut h = bias[o];
                for i in 0..a1 {
                    for j in 0..v1 {
                        for l in 0..t1 {
                            h += full[((i * v1 + j) * t1 + l) * O + o] * za[i] * zv[j] * ztx[l];
                        }
                    }
                }
                assert!(
                    (got[n][o] - h).abs() < 1e-10,
                    "rank {r}, row {n}, out {o}: {} vs {h}",
                    got[n][o]
                );
            }
        }
    }
}

/// With rank `(d_a+1)(d_v+1)` (one rank per `(i, j)`: `W_a[k] = e_i`, `W_v[k] = e_j`,
/// `W_t[k] = 𝒲[i, j, :, :]`, `w_k = 1`) LMF reproduces an arbitrary weight tensor, i.e. a
/// TFN-style linear layer `vec(ẑ_a ⊗ ẑ_v ⊗ ẑ_t) · 𝒲 + b` on [`tensor_fusion`]'s output.
#[test]
fn full_rank_lmf_equals_a_linear_layer_on_the_tfn_tensor() {
    let mut g = rng(12);
    let (a1, v1, t1) = (D[0] + 1, D[1] + 1, D[2] + 1);
    let r = a1 * v1;
    let full = draw(&mut g, a1 * v1 * t1 * O); // 𝒲[(i,j,l), o]
    let bias = draw(&mut g, O);
    let z: Vec<Tensor> = D.iter().map(|&d| t(draw(&mut g, B * d), &[B, d])).collect();
    let mut wa = vec![0.0; r * a1 * O];
    let mut wv = vec![0.0; r * v1 * O];
    let mut wt = vec![0.0; r * t1 * O];
    for i in 0..a1 {
        for j in 0..v1 {
            let k = i * v1 + j;
            for o in 0..O {
                wa[(k * a1 + i) * O + o] = 1.0;
                wv[(k * v1 + j) * O + o] = 1.0;
                for l in 0..t1 {
                    wt[(k * t1 + l) * O + o] = full[((i * v1 + j) * t1 + l) * O + o];
                }
            }
        }
    }
    let lmf = low_rank_fusion(
        [&z[0], &z[1], &z[2]],
        [
            &t(wa, &[r, a1, O]),
            &t(wv, &[r, v1, O]),
            &t(wt, &[r, t1, O]),
        ],
        &Tensor::ones((1, r), DType::F64, &Device::Cpu).unwrap(),
        &t(bias.clone(), &[1, O]),
    )
    .unwrap();
    let tfn = tensor_fusion(&z[0], &z[1], &z[2])
        .unwrap()
        .matmul(&t(full, &[a1 * v1 * t1, O]))
        .unwrap()
        .broadcast_add(&t(bias, &[1, O]))
        .unwrap();
    let d = (lmf - tfn)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(d < 1e-10, "full-rank LMF vs TFN linear layer: {d}");
}

#[test]
fn low_rank_fusion_rejects_inconsistent_shapes() {
    let z = |b, d| Tensor::zeros((b, d), DType::F64, &Device::Cpu).unwrap();
    let w = |r, d, o| Tensor::zeros((r, d, o), DType::F64, &Device::Cpu).unwrap();
    let fw = Tensor::zeros((1, 2), DType::F64, &Device::Cpu).unwrap();
    let fb = Tensor::zeros((1, 3), DType::F64, &Device::Cpu).unwrap();
    let (za, zv, zt) = (z(4, 2), z(4, 3), z(4, 1));
    let (wa, wv, wt) = (w(2, 3, 3), w(2, 4, 3), w(2, 2, 3));
    assert!(low_rank_fusion([&za, &zv, &zt], [&wa, &wv, &wt], &fw, &fb).is_ok());
    // a factor whose input width is not d_m + 1
    assert!(low_rank_fusion([&za, &zv, &zt], [&wa, &wa, &wt], &fw, &fb).is_err());
    // batch sizes differ
    assert!(low_rank_fusion([&za, &z(5, 3), &zt], [&wa, &wv, &wt], &fw, &fb).is_err());
    // weights not 1 × r, bias not 1 × o
    assert!(low_rank_fusion([&za, &zv, &zt], [&wa, &wv, &wt], &fb, &fb).is_err());
    assert!(low_rank_fusion([&za, &zv, &zt], [&wa, &wv, &wt], &fw, &fw).is_err());
    // ranks differ between factors
    assert!(low_rank_fusion([&za, &zv, &zt], [&wa, &w(3, 4, 3), &wt], &fw, &fb).is_err());
}

#[test]
fn forward_is_wired_as_documented() {
    let ds = synthetic::generate(0);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let ctx = BuildCtx {
        text_encoder: None,
        dims: ds.dims,
        seed: 9,
        task: Task::Regression,
    };
    let cfg = LmfConfig::default();
    let m = Lmf::new(&Checked::new(cfg).unwrap(), &ctx, vb).unwrap();
    seed_varmap(&vm, 9).unwrap();
    assert_eq!(m.rep_dims(), (vec![64, 16, 128], 64));
    let idx: Vec<usize> = (0..5).collect();
    let b = ds
        .batch(&ds.train, &idx, &[], DType::F64, &Device::Cpu)
        .unwrap();
    let out = m.forward(&b, false).unwrap();
    let (r, o) = (cfg.rank, cfg.fusion_out);
    let data = vm.data().lock().unwrap();
    let get = |n: &str| data[n].as_tensor().clone();
    // stored (r·o) × (d+1) → r × (d+1) × o
    let factor = |n: &str| {
        let w = get(n);
        let d1 = w.dim(1).unwrap();
        w.reshape((r, o, d1)).unwrap().transpose(1, 2).unwrap()
    };
    let (wa, wv, wt) = (factor("factor_a"), factor("factor_v"), factor("factor_t"));
    let (zt, za, zv) = (&out.unimodal[0], &out.unimodal[1], &out.unimodal[2]);
    let h = low_rank_fusion(
        [za, zv, zt],
        [&wa, &wv, &wt],
        &get("fusion_weights"),
        &get("fusion_bias"),
    )
    .unwrap();
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    assert!(diff(&h, &out.fused) < 1e-12);
    let last = Linear::new(get("out.weight"), Some(get("out.bias")));
    let p = last.forward(&h).unwrap().squeeze(1).unwrap();
    assert!(diff(&p, &out.prediction) < 1e-12);
    // Z is not degenerate at initialisation: it varies across clips
    let spread = out.fused.var(0).unwrap().sum_all().unwrap();
    assert!(spread.to_scalar::<f64>().unwrap() > 0.0);
}

#[test]
fn configs_are_validated_and_bad_ones_are_errors() {
    assert!(LmfConfig::default().validate().is_ok());
    for c in [
        LmfConfig {
            rank: 0,
            ..Default::default()
        },
        LmfConfig {
            audio_dropout: -0.1,
            ..Default::default()
        },
        LmfConfig {
            rank: usize::MAX,
            fusion_out: 2,
            ..Default::default()
        },
    ] {
        assert!(c.validate().is_err(), "{c:?}");
        assert!(Checked::new(c).is_err(), "{c:?}");
        let ctx = BuildCtx {
            text_encoder: None,
            dims: [4, 3, 2],
            seed: 0,
            task: Task::Regression,
        };
        assert!(build_model::<Lmf>(&c, &ctx, &Device::Cpu).is_err(), "{c:?}");
    }
    assert!(serde_json::from_str::<LmfConfig>(r#"{"post_fusion": 3}"#).is_err());
    let c: LmfConfig = serde_json::from_str(r#"{"rank": 5}"#).unwrap();
    assert_eq!((c.rank, c.fusion_out), (5, 64));
}
