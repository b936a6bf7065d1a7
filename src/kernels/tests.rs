//! The fused CPU kernels against the candle ops they replace: values and gradients (bit for bit
//! where the same gemm runs, to stated tolerances where the summation order differs), finite
//! differences, and clear errors for mismatched shapes.

use crate::estimators::StreamingKurtosisParams;
use crate::synergy::from_array2;
use crate::synergy::losses::{self, scalar};
use crate::synergy::to_array2;
use crate::test_util::{cpu, randn, value_and_grad};
use candle_core::{DType, Tensor, Var};
use proptest::prelude::*;

fn t(a: &ndarray::Array2<f64>, dtype: DType) -> Tensor {
    from_array2(a, dtype, &cpu()).unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The fused LeakyReLU is candle-nn's five-op `leaky_relu`, bit for bit, value and gradient,
    /// in f32 and f64 — including exact zeros, where candle splits the tie between max and min.
    #[test]
    fn fused_leaky_relu_equals_candle_nn_bit_for_bit(n in 1usize..40, m in 1usize..9, zeros in 0usize..5, seed in any::<u64>(), f32_ in any::<bool>()) {
        let mut a = randn(n, m, seed) * 2.0;
        for (i, v) in a.iter_mut().enumerate() {
            if i % 7 < zeros {
                *v = 0.0;
            }
        }
        let dt = if f32_ { DType::F32 } else { DType::F64 };
        let x = from_array2(&a, dt, &cpu()).unwrap();
        let w = from_array2(&randn(n, m, seed ^ 1), dt, &cpu()).unwrap();
        let fused = value_and_grad(&x, &w, |x| super::leaky_relu(x, 0.01));
        let composed = value_and_grad(&x, &w, |x| candle_nn::ops::leaky_relu(x, 0.01));
        prop_assert_eq!(fused, composed);
    }

    /// The fused coupling update `b ⊙ exp(tanh s) + t` equals the composed candle ops (value and
    /// both gradients to 1e-12 in f64).
    #[test]
    fn fused_coupling_update_equals_the_composed_ops(n in 1usize..30, m in 1usize..8, seed in any::<u64>()) {
        let b = from_array2(&randn(n, m, seed), DType::F64, &cpu()).unwrap();
        let st = from_array2(&(randn(n, 2 * m, seed ^ 2) * 2.0), DType::F64, &cpu()).unwrap();
        let w = from_array2(&randn(n, m, seed ^ 3), DType::F64, &cpu()).unwrap();
        let composed = |b: &Tensor, st: &Tensor| -> candle_core::Result<Tensor> {
            let s = st.narrow(1, 0, m)?.tanh()?;
            b.mul(&s.exp()?)? + st.narrow(1, m, m)?
        };
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-12 * (1.0 + y.abs()));
        // gradient with respect to b, then to st
        let (yf, gbf) = value_and_grad(&b, &w, |b| super::affine_couple(b, &st));
        let (yc, gbc) = value_and_grad(&b, &w, |b| composed(b, &st));
        prop_assert!(close(&yf, &yc));
        prop_assert!(close(&gbf, &gbc));
        let (_, gsf) = value_and_grad(&st, &w, |st| super::affine_couple(&b, st));
        let (_, gsc) = value_and_grad(&st, &w, |st| composed(&b, st));
        prop_assert!(close(&gsf, &gsc), "{gsf:?} vs {gsc:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// `linear_nt` is candle-nn's `Linear` (`x·wᵀ + b`): the same output bit for bit (the same
    /// gemm call) and the same gradients for `x`, `w` and `b` — to 1e-12 in f64 and 1e-5 relative
    /// in f32 (the weight gradient's batch sum is a different gemm) — with and without a bias.
    #[test]
    fn linear_nt_equals_candle_nn_linear(n in 1usize..40, d_in in 1usize..70, d_out in 1usize..9, bias in any::<bool>(), seed in any::<u64>(), f32_ in any::<bool>()) {
        use candle_nn::Module;
        let dt = if f32_ { DType::F32 } else { DType::F64 };
        let tol = if f32_ { 1e-5 } else { 1e-12 };
        let x = from_array2(&randn(n, d_in, seed), dt, &cpu()).unwrap();
        let w = from_array2(&randn(d_out, d_in, seed ^ 1), dt, &cpu()).unwrap();
        let b = from_array2(&randn(1, d_out, seed ^ 2), dt, &cpu()).unwrap().squeeze(0).unwrap();
        let g = from_array2(&randn(n, d_out, seed ^ 3), dt, &cpu()).unwrap();
        let b = bias.then_some(b);
        let close = |a: &[f64], c: &[f64]| a.iter().zip(c).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()));
        let fused = |x: &Tensor, w: &Tensor, b: Option<&Tensor>| super::linear_nt(x, w, b);
        let composed = |x: &Tensor, w: &Tensor, b: Option<&Tensor>| candle_nn::Linear::new(w.clone(), b.cloned()).forward(x);
        let (yf, gxf) = value_and_grad(&x, &g, |x| fused(x, &w, b.as_ref()));
        let (yc, gxc) = value_and_grad(&x, &g, |x| composed(x, &w, b.as_ref()));
        prop_assert_eq!(yf, yc);
        prop_assert!(close(&gxf, &gxc));
        let (_, gwf) = value_and_grad(&w, &g, |w| fused(&x, w, b.as_ref()));
        let (_, gwc) = value_and_grad(&w, &g, |w| composed(&x, w, b.as_ref()));
        prop_assert!(close(&gwf, &gwc), "{gwf:?} vs {gwc:?}");
        if let Some(b) = &b {
            let (_, gbf) = value_and_grad(b, &g, |b| fused(&x, &w, Some(b)));
            let (_, gbc) = value_and_grad(b, &g, |b| composed(&x, &w, Some(b)));
            prop_assert!(close(&gbf, &gbc));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The fused dense layer (`ops::dense`: gemm, bias and LeakyReLU in one op) is `linear_nt`
    /// followed by the LeakyReLU op: the same output bit for bit, and the same gradients for `x`,
    /// `w` and `b` (1e-12 in f64, 1e-5 relative in f32), with and without the activation.
    #[test]
    fn fused_dense_equals_linear_then_leaky_relu(n in 1usize..40, d_in in 1usize..70, d_out in 1usize..20, act in any::<bool>(), ties in any::<bool>(), seed in any::<u64>(), f32_ in any::<bool>()) {
        use super as ops;
        let dt = if f32_ { DType::F32 } else { DType::F64 };
        let tol = if f32_ { 1e-5 } else { 1e-12 };
        let slope = act.then_some(0.01);
        // ties: every other input row zero and a zero bias, so those pre-activations are exactly 0
        let mut xa = randn(n, d_in, seed);
        let mut ba = randn(1, d_out, seed ^ 2);
        if ties {
            for (i, mut row) in xa.rows_mut().into_iter().enumerate() {
                if i % 2 == 0 {
                    row.fill(0.0);
                }
            }
            ba.fill(0.0);
        }
        let x = from_array2(&xa, dt, &cpu()).unwrap();
        let w = from_array2(&randn(d_out, d_in, seed ^ 1), dt, &cpu()).unwrap();
        let b = from_array2(&ba, dt, &cpu()).unwrap().squeeze(0).unwrap();
        let g = from_array2(&randn(n, d_out, seed ^ 3), dt, &cpu()).unwrap();
        let close = |a: &[f64], c: &[f64]| a.len() == c.len() && a.iter().zip(c).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()));
        let composed = |x: &Tensor, w: &Tensor, b: &Tensor| -> candle_core::Result<Tensor> {
            let y = ops::linear_nt(x, w, Some(b))?;
            match slope { Some(s) => ops::leaky_relu(&y, s), None => Ok(y) }
        };
        let (yf, gxf) = value_and_grad(&x, &g, |x| ops::dense(x, &w, &b, slope));
        let (yc, gxc) = value_and_grad(&x, &g, |x| composed(x, &w, &b));
        prop_assert_eq!(yf, yc);
        prop_assert!(close(&gxf, &gxc));
        let (_, gwf) = value_and_grad(&w, &g, |w| ops::dense(&x, w, &b, slope));
        let (_, gwc) = value_and_grad(&w, &g, |w| composed(&x, w, &b));
        prop_assert!(close(&gwf, &gwc));
        let gb = from_array2(&randn(n, d_out, seed ^ 3), dt, &cpu()).unwrap();
        let (_, gbf) = value_and_grad(&b, &gb, |b| ops::dense(&x, &w, b, slope));
        let (_, gbc) = value_and_grad(&b, &gb, |b| composed(&x, &w, b));
        prop_assert!(close(&gbf, &gbc), "{gbf:?} vs {gbc:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// `scale_shift` (a normalisation's `x ⊙ w + b` as one op) is the composed
    /// `broadcast_mul`/`broadcast_add` bit for bit: value and the gradients of `x`, `w` and `b`,
    /// in f32 and f64, for 2-D and 3-D inputs.
    #[test]
    fn scale_shift_equals_broadcast_mul_add_bit_for_bit(a in 1usize..6, n in 1usize..12, m in 1usize..20, three_d in any::<bool>(), seed in any::<u64>(), f32_ in any::<bool>()) {
        use super::scale_shift;
        let dt = if f32_ { DType::F32 } else { DType::F64 };
        let shape: Vec<usize> = if three_d { vec![a, n, m] } else { vec![a * n, m] };
        let x = from_array2(&randn(a * n, m, seed), dt, &cpu()).unwrap().reshape(shape.clone()).unwrap();
        let g = from_array2(&randn(a * n, m, seed ^ 3), dt, &cpu()).unwrap().reshape(shape).unwrap();
        let w = from_array2(&randn(1, m, seed ^ 1), dt, &cpu()).unwrap().squeeze(0).unwrap();
        let b = from_array2(&randn(1, m, seed ^ 2), dt, &cpu()).unwrap().squeeze(0).unwrap();
        let composed = |x: &Tensor, w: &Tensor, b: &Tensor| x.broadcast_mul(w)?.broadcast_add(b);
        let (yf, gxf) = value_and_grad(&x, &g, |x| scale_shift(x, &w, &b));
        let (yc, gxc) = value_and_grad(&x, &g, |x| composed(x, &w, &b));
        prop_assert_eq!(yf, yc);
        prop_assert_eq!(gxf, gxc);
        let (_, gwf) = value_and_grad(&w, &g, |w| scale_shift(&x, w, &b));
        let (_, gwc) = value_and_grad(&w, &g, |w| composed(&x, w, &b));
        prop_assert_eq!(gwf, gwc);
        let (_, gbf) = value_and_grad(&b, &g, |b| scale_shift(&x, &w, b));
        let (_, gbc) = value_and_grad(&b, &g, |b| composed(&x, &w, b));
        prop_assert_eq!(gbf, gbc);
    }

    /// `linear_rows` is candle-nn's `Linear` on 2-D and 3-D inputs: values and the gradients of
    /// the input, weight and bias to 1e-12 in f64 and 1e-5 (relative to the largest) in f32 —
    /// the gemm runs over all rows at once instead of per batch, so the last bits may differ.
    #[test]
    fn linear_rows_equals_candle_nn_linear(a in 1usize..5, n in 1usize..10, d_in in 1usize..40, d_out in 1usize..12, three_d in any::<bool>(), seed in any::<u64>(), f32_ in any::<bool>()) {
        use candle_nn::Module;
        use super::linear_rows;
        let dt = if f32_ { DType::F32 } else { DType::F64 };
        let tol = if f32_ { 1e-5 } else { 1e-12 };
        let (xs, gs): (Vec<usize>, Vec<usize>) = if three_d { (vec![a, n, d_in], vec![a, n, d_out]) } else { (vec![a * n, d_in], vec![a * n, d_out]) };
        let x = from_array2(&randn(a * n, d_in, seed), dt, &cpu()).unwrap().reshape(xs).unwrap();
        let g = from_array2(&randn(a * n, d_out, seed ^ 3), dt, &cpu()).unwrap().reshape(gs).unwrap();
        let w = from_array2(&randn(d_out, d_in, seed ^ 1), dt, &cpu()).unwrap();
        let b = from_array2(&randn(1, d_out, seed ^ 2), dt, &cpu()).unwrap().squeeze(0).unwrap();
        let close = |p: &[f64], q: &[f64]| {
            let scale = q.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            p.len() == q.len() && p.iter().zip(q).all(|(u, v)| (u - v).abs() <= tol * scale)
        };
        let fused = |x: &Tensor, w: &Tensor, b: &Tensor| linear_rows(&candle_nn::Linear::new(w.clone(), Some(b.clone())), x);
        let composed = |x: &Tensor, w: &Tensor, b: &Tensor| candle_nn::Linear::new(w.clone(), Some(b.clone())).forward(x);
        let (yf, gxf) = value_and_grad(&x, &g, |x| fused(x, &w, &b));
        let (yc, gxc) = value_and_grad(&x, &g, |x| composed(x, &w, &b));
        prop_assert!(close(&yf, &yc));
        prop_assert!(close(&gxf, &gxc));
        let (_, gwf) = value_and_grad(&w, &g, |w| fused(&x, w, &b));
        let (_, gwc) = value_and_grad(&w, &g, |w| composed(&x, w, &b));
        prop_assert!(close(&gwf, &gwc));
        let (_, gbf) = value_and_grad(&b, &g, |b| fused(&x, &w, b));
        let (_, gbc) = value_and_grad(&b, &g, |b| composed(&x, &w, b));
        prop_assert!(close(&gbf, &gbc));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// `linear_rows` of a `detached` layer (a frozen one) has the value and input gradient of the
    /// same layer on variables bit for bit (the same gemms), and no gradient at all reaches the
    /// weight or the bias, though they are variables of the graph. Without a bias it is candle-nn's
    /// `Linear`.
    #[test]
    fn frozen_linear_rows_equal_linear_rows_and_give_the_weights_no_gradient(a in 1usize..5, n in 1usize..10, d_in in 1usize..40, d_out in 1usize..12, three_d in any::<bool>(), bias in any::<bool>(), seed in any::<u64>(), f32_ in any::<bool>()) {
        use candle_nn::Module;
        use super::{detached, linear_rows};
        let dt = if f32_ { DType::F32 } else { DType::F64 };
        let (xs, gs): (Vec<usize>, Vec<usize>) = if three_d { (vec![a, n, d_in], vec![a, n, d_out]) } else { (vec![a * n, d_in], vec![a * n, d_out]) };
        let x = from_array2(&randn(a * n, d_in, seed), dt, &cpu()).unwrap().reshape(xs).unwrap();
        let g = from_array2(&randn(a * n, d_out, seed ^ 3), dt, &cpu()).unwrap().reshape(gs).unwrap();
        let w = candle_core::Var::from_tensor(&from_array2(&randn(d_out, d_in, seed ^ 1), dt, &cpu()).unwrap()).unwrap();
        let b = candle_core::Var::from_tensor(&from_array2(&randn(1, d_out, seed ^ 2), dt, &cpu()).unwrap().squeeze(0).unwrap()).unwrap();
        let layer = candle_nn::Linear::new(w.as_tensor().clone(), bias.then(|| b.as_tensor().clone()));
        let frozen = detached(&layer);
        let (yf, gxf) = value_and_grad(&x, &g, |x| linear_rows(&frozen, x));
        let (yr, gxr) = value_and_grad(&x, &g, |x| if bias { linear_rows(&layer, x) } else { layer.forward(x) });
        prop_assert_eq!(yf, yr);
        prop_assert_eq!(gxf, gxr);
        // the weights are variables of this graph, yet get no gradient
        let xv = candle_core::Var::from_tensor(&x).unwrap();
        let y = linear_rows(&frozen, xv.as_tensor()).unwrap();
        let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        prop_assert!(grads.get(xv.as_tensor()).is_some());
        prop_assert!(grads.get(w.as_tensor()).is_none());
        prop_assert!(grads.get(b.as_tensor()).is_none());
    }
}

/// Mismatched shapes, too few rows and missing bandwidths are clear errors from the fused dense
/// and MMD² ops, not panics or NaNs.
#[test]
fn fused_dense_and_mmd2_reject_mismatched_shapes() {
    use super as ops;
    let x = from_array2(&randn(4, 5, 1), DType::F32, &cpu()).unwrap();
    let w = from_array2(&randn(3, 5, 2), DType::F32, &cpu()).unwrap();
    let b = from_array2(&randn(1, 4, 3), DType::F32, &cpu())
        .unwrap()
        .squeeze(0)
        .unwrap();
    let e = ops::dense(&x, &w, &b, Some(0.01)).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    let y = from_array2(&randn(4, 6, 4), DType::F32, &cpu()).unwrap();
    let e = ops::mmd2_gaussian(&x, &y, true, &[1.0]).unwrap_err();
    assert!(e.to_string().contains("mmd2"), "{e}");
    // one row is too few for the unbiased estimate (not a silent NaN); bandwidths are required
    let one = from_array2(&randn(1, 5, 5), DType::F32, &cpu()).unwrap();
    assert!(ops::mmd2_gaussian(&one, &x, true, &[1.0]).is_err());
    assert!(ops::mmd2_gaussian(&one, &x, false, &[1.0]).is_ok());
    assert!(ops::mmd2_gaussian(&x, &x, false, &[]).is_err());
    assert!(ops::mmd2_gaussian(&x, &x, false, &[0.0]).is_err());
}

/// A weight whose width is not the input's is a clear error from `linear_nt`, not a panic.
#[test]
fn linear_nt_rejects_mismatched_widths() {
    let x = from_array2(&randn(4, 5, 1), DType::F32, &cpu()).unwrap();
    let w = from_array2(&randn(3, 6, 2), DType::F32, &cpu()).unwrap();
    let e = super::linear_nt(&x, &w, None).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
}

/// Central differences of `Σ w ⊙ (b ⊙ exp(tanh s) + t)` agree with the fused op's gradient
/// with respect to `st` (f64, step 1e-6).
#[test]
fn fused_coupling_gradient_matches_finite_differences() {
    let (n, m) = (5, 3);
    let b = from_array2(&randn(n, m, 11), DType::F64, &cpu()).unwrap();
    let st0 = randn(n, 2 * m, 12);
    let w = from_array2(&randn(n, m, 13), DType::F64, &cpu()).unwrap();
    let obj = |st: &ndarray::Array2<f64>| {
        let st = from_array2(st, DType::F64, &cpu()).unwrap();
        let y = super::affine_couple(&b, &st).unwrap();
        scalar(&(y * &w).unwrap().sum_all().unwrap()).unwrap()
    };
    let st = from_array2(&st0, DType::F64, &cpu()).unwrap();
    let (_, g) = value_and_grad(&st, &w, |st| super::affine_couple(&b, st));
    let h = 1e-6;
    for (k, gk) in g.iter().enumerate() {
        let (mut p, mut q) = (st0.clone(), st0.clone());
        p.as_slice_mut().unwrap()[k] += h;
        q.as_slice_mut().unwrap()[k] -= h;
        let fd = (obj(&p) - obj(&q)) / (2.0 * h);
        assert!(
            (fd - gk).abs() < 1e-6,
            "entry {k}: finite difference {fd}, op {gk}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The fused kurtosis op (triangular solves with the buffer's factor, f64 on the host) equals
    /// the composed loss with the precision matrix `L⁻ᵀL⁻¹` — value (1e-10 relative in f64,
    /// 1e-5 in f32) and gradient (1e-9 in f64, 1e-4 in f32, of the largest component) — for
    /// buffers of one or several batches.
    #[test]
    fn fused_kurtosis_equals_the_composed_loss_with_the_precision_matrix(n in 2usize..40, p in 1usize..10, batches in 1usize..3, seed in any::<u64>(), ridge in 1e-3f64..0.5, f32_ in any::<bool>()) {
        use super::kurtosis_fixed_factor;
        let mut state = StreamingKurtosisParams { alpha: 0.9, ridge, clip: f64::INFINITY }.init().unwrap();
        let mut step = None;
        for b in 0..batches {
            let s = state.prepare(&randn(n + 3, p, seed ^ (b as u64 + 7)).view()).unwrap();
            step = Some(s.clone());
            state.commit(s);
        }
        let step = step.unwrap();
        let dt = if f32_ { DType::F32 } else { DType::F64 };
        let z = t(&(randn(n, p, seed).mapv(|v| v + 0.4 * v * v)), dt);
        let prec = t(&step.precision(), dt);
        let fused = kurtosis_fixed_factor(&z, &step.chol).unwrap();
        let composed = losses::kurtosis_loss(&z, &prec).unwrap();
        let (a, b) = (scalar(&fused).unwrap(), scalar(&composed).unwrap());
        prop_assert!(rel(a, b) <= if f32_ { 1e-5 } else { 1e-10 }, "{a} vs {b}");
        let zv = Var::from_tensor(&z).unwrap();
        let gf = to_array2(kurtosis_fixed_factor(zv.as_tensor(), &step.chol).unwrap().backward().unwrap().get(zv.as_tensor()).unwrap()).unwrap();
        let gc = to_array2(losses::kurtosis_loss(zv.as_tensor(), &prec).unwrap().backward().unwrap().get(zv.as_tensor()).unwrap()).unwrap();
        let scale = gc.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let err = (&gf - &gc).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let tol = if f32_ { 1e-4 } else { 1e-9 };
        prop_assert!(err <= tol * scale, "max gradient difference {err} (scale {scale})");
    }
}

/// A batch whose width is not the buffer's, or a factor that is not one, is a clear error from
/// the fused kurtosis op.
#[test]
fn fused_kurtosis_rejects_a_batch_of_another_width() {
    let state = StreamingKurtosisParams::default().init().unwrap();
    let step = state.prepare(&randn(10, 3, 1).view()).unwrap();
    let z = t(&randn(5, 4, 2), DType::F32);
    let e = super::kurtosis_fixed_factor(&z, &step.chol).unwrap_err();
    assert!(e.to_string().contains("3-wide buffer"), "{e}");
    // a factor that is not square or has a zero pivot is an error, not a panic in LAPACK's solve
    let z3 = t(&randn(5, 3, 2), DType::F64);
    let bad = ndarray::Array2::<f64>::eye(3)
        .slice(ndarray::s![.., ..2])
        .to_owned();
    assert!(super::kurtosis_fixed_factor(&z3, &bad).is_err());
    let mut singular = ndarray::Array2::<f64>::eye(3);
    singular[[1, 1]] = 0.0;
    let e = super::kurtosis_fixed_factor(&z3, &singular).unwrap_err();
    assert!(e.to_string().contains("positive"), "{e}");
}
