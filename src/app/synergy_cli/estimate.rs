//! `synergy estimate …`: the reference estimators (MMD², KL, the DV and NWJ bounds, MINE,
//! Mardia's kurtosis, the streaming regularised kurtosis) on `.npy` files.

use super::{Estimate, KlMethod};
use crate::estimators::{self as est, Bandwidths, MineParams, MmdVariant, StreamingKurtosisParams};
use crate::io::{read_batches, read_matrix, read_vector};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub(super) fn estimate(e: &Estimate) -> Result<Value> {
    Ok(match e {
        Estimate::Mmd(a) => {
            let x = read_matrix(&a.x)?;
            let y = read_matrix(&a.y)?;
            let bw = if a.median {
                est::median_bandwidths(&x.view(), &y.view())?
            } else {
                Bandwidths::new(a.bandwidth.clone())?
            };
            let variant: MmdVariant = a.variant.into();
            let v = est::mmd2(&x.view(), &y.view(), variant, &bw)?;
            json!({"estimator": "mmd", "variant": variant.name(), "bandwidths": bw.as_slice(), "value": v})
        }
        Estimate::Kl { x, y, method, k } => {
            let x = read_matrix(x)?;
            let y = read_matrix(y)?;
            let v = match method {
                KlMethod::Gauss => est::gaussian_kl(&x.view(), &y.view())?,
                KlMethod::Knn => est::knn_kl(&x.view(), &y.view(), *k)?,
            };
            json!({"estimator": "kl", "value": v})
        }
        Estimate::Dv { tp, tq } => {
            let tp = read_vector(tp)?;
            let tq = read_vector(tq)?;
            let b = est::dv_nwj(&tp.view(), &tq.view())?;
            json!({"estimator": "dv", "dv": b.dv, "nwj": b.nwj})
        }
        Estimate::Mine {
            x,
            y,
            steps,
            seed,
            hidden,
            batch,
            lr,
        } => {
            let x = read_matrix(x)?;
            let y = read_matrix(y)?;
            let p = MineParams {
                steps: *steps,
                seed: *seed,
                hidden: *hidden,
                batch: *batch,
                lr: *lr,
                ..MineParams::default()
            };
            let r = est::mine_kl(&x.view(), &y.view(), &p)?;
            json!({"estimator": "mine", "value": r.value, "train_value": r.train_value, "steps": r.steps})
        }
        Estimate::Kurtosis { x } => {
            let x = read_matrix(x)?;
            let m = est::mardia(&x.view())?;
            json!({"estimator": "kurtosis", "value": m.b2, "z": m.z})
        }
        Estimate::KurtosisEma {
            batches,
            alpha,
            ridge,
            clip,
        } => {
            let b = read_batches(batches)?;
            if b.shape()[0] == 0 {
                bail!("{}: no batches (K = 0)", batches.display());
            }
            let mut s = StreamingKurtosisParams {
                alpha: *alpha,
                ridge: *ridge,
                clip: *clip,
            }
            .init()?;
            let mut values = Vec::with_capacity(b.shape()[0]);
            for (t, batch) in b.outer_iter().enumerate() {
                values.push(s.update(&batch).with_context(|| format!("batch {t}"))?);
            }
            json!({"estimator": "kurtosis-ema", "values": values})
        }
    })
}
