//! `synergy pid`: the BROJA PID of integer codes (or of k-means codes of feature matrices) read
//! from `.npy` files of any integer, bool or float dtype, optionally with its permutation null.

use super::PidArgs;
use crate::estimators as est;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::PathBuf;

/// `synergy pid`: codes (or k-means codes of features) → the BROJA PID, optionally with its
/// permutation null.
pub(super) fn pid(a: &PidArgs) -> Result<Value> {
    let codes = |path: &PathBuf| -> Result<Vec<usize>> {
        match a.clusters {
            Some(k) => pid_features_codes(path, k, a.seed),
            None => pid_codes(path),
        }
    };
    let x1 = codes(&a.x1)?;
    let x2 = codes(&a.x2)?;
    let y = pid_codes(&a.y)?;
    let mut v = match a.null {
        None => {
            let p = est::pid_discrete(&x1, &x2, &y)?;
            serde_json::to_value(p)?
        }
        Some(draws) => {
            if draws == 0 {
                bail!("--null needs at least 1 permutation (100 or more recommended)");
            }
            let s = est::synergy_null(&x1, &x2, &y, draws, a.seed)?;
            let mut v = serde_json::to_value(s.observed)?;
            v["null_draws"] = json!(draws);
            v["null_mean"] = json!(s.mean);
            v["null_p95"] = json!(s.p95);
            v["p_value"] = json!(s.p_value);
            v
        }
    };
    v["estimator"] = json!("pid");
    v["units"] = json!("bits");
    v["n"] = json!(y.len());
    if let Some(k) = a.clusters {
        v["clusters"] = json!(k);
    }
    if a.clusters.is_some() || a.null.is_some() {
        v["seed"] = json!(a.seed);
    }
    Ok(v)
}

/// An `.npy` of any integer, bool or float dtype: integers exactly (as i128), floats as f64.
enum NpyValues {
    Int(ndarray::ArrayD<i128>),
    Float(ndarray::ArrayD<f64>),
}

fn read_npy_any(path: &std::path::Path) -> Result<NpyValues> {
    use ndarray::ArrayD;
    use ndarray_npy::{read_npy, ReadNpyError};
    // the header's shape must fit in the file before any reader allocates for it
    crate::io::read_npy_header(path)?;
    macro_rules! try_int {
        ($($t:ty),*) => {$(
            match read_npy::<_, ArrayD<$t>>(path) {
                Ok(a) => return Ok(NpyValues::Int(a.mapv(|v| v as i128))),
                Err(ReadNpyError::WrongDescriptor(_)) => {}
                Err(e) => bail!("{}: cannot read .npy ({e})", path.display()),
            }
        )*};
    }
    try_int!(i64, i32, i16, i8, u8, u16, u32, u64);
    match read_npy::<_, ArrayD<bool>>(path) {
        Ok(a) => return Ok(NpyValues::Int(a.mapv(i128::from))),
        Err(ReadNpyError::WrongDescriptor(_)) => {}
        Err(e) => bail!("{}: cannot read .npy ({e})", path.display()),
    }
    match read_npy::<_, ArrayD<f64>>(path) {
        Ok(a) => return Ok(NpyValues::Float(a)),
        Err(ReadNpyError::WrongDescriptor(_)) => {}
        Err(e) => bail!("{}: cannot read .npy ({e})", path.display()),
    }
    match read_npy::<_, ArrayD<f32>>(path) {
        Ok(a) => Ok(NpyValues::Float(a.mapv(f64::from))),
        Err(ReadNpyError::WrongDescriptor(d)) => bail!(
            "{}: unsupported dtype {d} (integer, bool, float32 or float64 expected)",
            path.display()
        ),
        Err(e) => bail!("{}: cannot read .npy ({e})", path.display()),
    }
}

/// Integer codes from a 1-D (or n × 1) `.npy`, renumbered `0..k` in increasing order; floats must
/// hold integers.
fn pid_codes(path: &std::path::Path) -> Result<Vec<usize>> {
    let vals = read_npy_any(path)?;
    let shape = match &vals {
        NpyValues::Int(a) => a.shape().to_vec(),
        NpyValues::Float(a) => a.shape().to_vec(),
    };
    if !(shape.len() == 1 || (shape.len() == 2 && shape[1] == 1)) {
        bail!(
            "{}: expected 1-D integer codes, found shape {shape:?} (use --clusters K for a feature matrix)",
            path.display()
        );
    }
    let ints: Vec<i128> = match vals {
        NpyValues::Int(a) => a.iter().copied().collect(),
        NpyValues::Float(a) => {
            let mut v = Vec::with_capacity(a.len());
            for (i, &x) in a.iter().enumerate() {
                if !x.is_finite() {
                    bail!("{}: non-finite value {x} at index {i}", path.display());
                }
                if x.fract() != 0.0 || x.abs() > 9.007_199_254_740_992e15 {
                    bail!(
                        "{}: non-integral value {x} at index {i} (integer codes expected; use --clusters K for continuous features)",
                        path.display()
                    );
                }
                v.push(x as i128);
            }
            v
        }
    };
    if ints.is_empty() {
        bail!("{}: empty (no samples)", path.display());
    }
    let mut labels = ints.clone();
    labels.sort_unstable();
    labels.dedup();
    Ok(ints
        .iter()
        .map(|v| labels.binary_search(v).expect("label present"))
        .collect())
}

/// k-means codes (K clusters, fitted on these rows) of a 1-D or 2-D feature `.npy`.
fn pid_features_codes(path: &std::path::Path, k: usize, seed: u64) -> Result<Vec<usize>> {
    let a = match read_npy_any(path)? {
        NpyValues::Float(a) => a,
        NpyValues::Int(a) => a.mapv(|v| v as f64),
    };
    let shape = a.shape().to_vec();
    let x = match shape.len() {
        1 => a.into_shape_with_order((shape[0], 1)).expect("same size"),
        2 => a
            .into_dimensionality::<ndarray::Ix2>()
            .expect("rank checked"),
        _ => bail!(
            "{}: expected a 1-D or 2-D feature array, found shape {shape:?}",
            path.display()
        ),
    };
    if x.nrows() == 0 || x.ncols() == 0 {
        bail!("{}: empty (no samples)", path.display());
    }
    let km = est::KMeans::fit(&x.view(), k, seed)
        .with_context(|| format!("k-means of {}", path.display()))?;
    km.predict(&x.view())
        .with_context(|| format!("k-means of {}", path.display()))
}
