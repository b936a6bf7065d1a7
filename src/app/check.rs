//! Device parity and timing (`synergy check-device`): every loss on the chosen device, in f64 and
//! f32, against the CPU f64 reference estimators; gradients against the CPU; and the forward +
//! backward time of the synergy losses at the sizes of the issue.

use crate::estimators::{self as est, Bandwidths, MmdVariant, StreamingKurtosisParams};
use crate::synergy::losses::{self, scalar, BandwidthSpec, KurtosisLoss};
use crate::synergy::{from_array2, to_array2, Result};
use candle_core::{DType, Device, Tensor, Var};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::time::Instant;

fn randn(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| StandardNormal.sample(&mut r))
}

/// Largest relative error of one loss on the device.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ParityRow {
    pub loss: String,
    pub dtype: String,
    /// max over the cases of |device − reference| / max(|reference|, 0.01)
    pub max_rel_err: f64,
    pub tolerance: f64,
}

/// Timing of forward + backward of the synergy losses.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TimingRow {
    pub batch: usize,
    pub dim: usize,
    pub dtype: String,
    pub ms_per_iter: f64,
    pub iters: usize,
}

/// Everything `synergy check-device` reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeviceReport {
    pub device: String,
    pub parity: Vec<ParityRow>,
    /// max relative difference of device gradients (f64) from the CPU's (which the test suite
    /// checks against finite differences of the reference)
    pub grad_max_rel_err: f64,
    pub timings: Vec<TimingRow>,
    pub all_within_tolerance: bool,
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-2)
}

fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_lowercase()
}

/// The workload timed by `--bench` (and by `benches/torch_synergy.py`, op for op): unbiased MMD²
/// between `X` and `Y` with five fixed bandwidths, `L_κ` of `X` with a fixed precision matrix, and
/// the DV bound of the linear critic `t = Xw`, summed; gradients with respect to `X` and `Y`.
pub fn synergy_workload(
    x: &Tensor,
    y: &Tensor,
    bw: &Bandwidths,
    precision: &Tensor,
    w: &Tensor,
) -> Result<Tensor> {
    let mmd = losses::mmd2(
        x,
        y,
        MmdVariant::Unbiased,
        &BandwidthSpec::Fixed(bw.clone()),
    )?;
    let k = losses::kurtosis_loss(x, precision)?;
    let dv = losses::dv_bound(&x.matmul(w)?, &y.matmul(w)?)?;
    Ok(((mmd + k)? + dv)?)
}

/// Runs the parity checks (and, with `bench`, the timings) on `device`.
pub(crate) fn check_device(device: &Device, bench: bool, iters: usize) -> Result<DeviceReport> {
    let mut parity = Vec::new();
    let mut ok = true;
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
        let mut worst = std::collections::BTreeMap::<String, f64>::new();
        let mut note = |name: &str, v: f64| {
            let e = worst.entry(name.to_string()).or_insert(0.0);
            *e = e.max(v);
        };
        for case in 0..6u64 {
            let (n, d) = (16 + 37 * case as usize, 1 + 3 * case as usize);
            let x = randn(n, d, case);
            let y = randn(n, d, 100 + case) * 1.3 + 0.4;
            let (tx, ty) = (
                from_array2(&x, dtype, device)?,
                from_array2(&y, dtype, device)?,
            );
            for v in [MmdVariant::Biased, MmdVariant::Unbiased, MmdVariant::Linear] {
                let bw = est::median_bandwidths(&x.view(), &y.view())?;
                let want = est::mmd2(&x.view(), &y.view(), v, &bw)?;
                let got = scalar(&losses::mmd2(&tx, &ty, v, &BandwidthSpec::Median)?)?;
                note(&format!("mmd2_{}", v.name()), rel(got, want));
            }
            let (tp, tq) = (x.column(0).to_owned(), y.column(0).to_owned());
            let want_dv = est::dv_bound(&tp.view(), &tq.view())?;
            let want_nwj = est::nwj_bound(&tp.view(), &tq.view())?;
            let (dp, dq) = (tx.narrow(1, 0, 1)?, ty.narrow(1, 0, 1)?);
            note("dv", rel(scalar(&losses::dv_bound(&dp, &dq)?)?, want_dv));
            note("nwj", rel(scalar(&losses::nwj_bound(&dp, &dq)?)?, want_nwj));
            let params = StreamingKurtosisParams {
                alpha: 0.8,
                ridge: 1e-2,
                clip: 3.0,
            };
            let mut reference = params.init()?;
            let mut lk = KurtosisLoss::new(params)?;
            for b in 0..3u64 {
                let z = randn(n, d, 1000 * case + b).mapv(|v| v + 0.2 * v * v);
                let want = reference.update(&z.view())?;
                let got = scalar(&lk.forward(&from_array2(&z, dtype, device)?)?)?;
                note("kurtosis_streaming", rel(got, want));
            }
        }
        for (name, e) in worst {
            ok &= e <= tol;
            parity.push(ParityRow {
                loss: name,
                dtype: dtype_name(dtype),
                max_rel_err: e,
                tolerance: tol,
            });
        }
    }
    // gradients: device f64 vs CPU f64
    let (x, y) = (randn(64, 8, 7), randn(64, 8, 8) + 0.3);
    let bw = est::median_bandwidths(&x.view(), &y.view())?;
    let prec = from_array2(&Array2::eye(8), DType::F64, &Device::Cpu)?;
    let w = from_array2(&randn(8, 1, 9), DType::F64, &Device::Cpu)?;
    let grads = |dev: &Device| -> Result<Array2<f64>> {
        let xv = Var::from_tensor(&from_array2(&x, DType::F64, dev)?)?;
        let l = synergy_workload(
            xv.as_tensor(),
            &from_array2(&y, DType::F64, dev)?,
            &bw,
            &prec.to_device(dev)?,
            &w.to_device(dev)?,
        )?;
        let g = l.backward()?;
        to_array2(g.get(xv.as_tensor()).expect("x is a variable"))
    };
    let (gc, gd) = (grads(&Device::Cpu)?, grads(device)?);
    let scale = gc.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    let grad_max_rel_err = (&gc - &gd).iter().fold(0.0f64, |m, v| m.max(v.abs())) / scale;
    ok &= grad_max_rel_err <= 1e-10;

    let mut timings = Vec::new();
    if bench {
        for batch in [64usize, 256] {
            let d = 128;
            let x = randn(batch, d, 1);
            let y = randn(batch, d, 2);
            let bw = est::median_bandwidths(&x.view(), &y.view())?;
            let mut reference = StreamingKurtosisParams::default().init()?;
            let prec = reference.prepare(&x.view())?.precision();
            reference.update(&x.view())?;
            let dt = DType::F32;
            let xv = Var::from_tensor(&from_array2(&x, dt, device)?)?;
            let yv = Var::from_tensor(&from_array2(&y, dt, device)?)?;
            let p = from_array2(&prec, dt, device)?;
            let w = from_array2(&randn(d, 1, 3), dt, device)?;
            let run = || -> Result<()> {
                let l = synergy_workload(xv.as_tensor(), yv.as_tensor(), &bw, &p, &w)?;
                let g = l.backward()?;
                std::hint::black_box(g.get(xv.as_tensor()));
                Ok(())
            };
            for _ in 0..5 {
                run()?;
            }
            device.synchronize()?;
            let t0 = Instant::now();
            for _ in 0..iters {
                run()?;
            }
            device.synchronize()?;
            timings.push(TimingRow {
                batch,
                dim: d,
                dtype: dtype_name(dt),
                ms_per_iter: t0.elapsed().as_secs_f64() * 1e3 / iters as f64,
                iters,
            });
        }
    }
    Ok(DeviceReport {
        device: format!("{device:?}"),
        parity,
        grad_max_rel_err,
        timings,
        all_within_tolerance: ok,
    })
}
