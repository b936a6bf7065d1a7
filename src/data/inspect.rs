//! Summaries of loaded feature files (`synergy data inspect`): per split the number of samples,
//! each modality's shape, sum and sum of squares (f64 accumulation), and the same for the labels.

use super::csd::Csd;
use super::{Dataset, Split, Task};
use serde_json::{json, Value};

/// Shape, sum and sum of squares of a slice (f64 accumulation).
pub fn stats(shape: &[usize], v: &[f32]) -> Value {
    let (s, q) = v.iter().fold((0f64, 0f64), |(s, q), &x| {
        let x = f64::from(x);
        (s + x, q + x * x)
    });
    json!({ "shape": shape, "sum": s, "sumsq": q })
}

fn split(ds: &Dataset, s: &Split) -> Value {
    let (n, t) = (s.len(), ds.t_max);
    let [dt, da, dv] = ds.dims;
    json!({
        "n": n,
        "text": stats(&[n, t, dt], &s.text),
        "audio": stats(&[n, t, da], &s.audio),
        "vision": stats(&[n, t, dv], &s.vision),
        "labels": stats(&[n], &s.labels),
        "lengths_sum": s.lengths.iter().sum::<usize>(),
        "first_id": s.ids.first(),
    })
}

/// The summary of a dataset.
pub fn dataset(ds: &Dataset, format: &str) -> Value {
    json!({
        "format": format,
        "name": ds.name,
        "tier": ds.tier.name(),
        "task": match ds.task { Task::Regression => "regression", Task::Binary => "binary" },
        "dims": ds.dims,
        "t_max": ds.t_max,
        "description": ds.description,
        "splits": {
            "train": split(ds, &ds.train),
            "valid": split(ds, &ds.valid),
            "test": split(ds, &ds.test),
        },
    })
}

/// The summary of a computational sequence: videos, rows, feature width, sum and sum of squares
/// of all features.
pub fn csd(c: &Csd) -> Value {
    let (mut s, mut q) = (0f64, 0f64);
    for v in &c.videos {
        for &x in &v.features {
            let x = f64::from(x);
            s += x;
            q += x * x;
        }
    }
    let widths: Vec<usize> = c.videos.iter().map(|v| v.width).collect();
    let width = match widths.first() {
        Some(&w) if widths.iter().all(|&x| x == w) => json!(w),
        Some(_) => json!(widths),
        None => json!(0),
    };
    json!({
        "format": "csd",
        "root": c.root,
        "videos": c.videos.len(),
        "rows": c.videos.iter().map(|v| v.rows).sum::<usize>(),
        "width": width,
        "sum": s,
        "sumsq": q,
        "metadata_keys": c.metadata.keys().collect::<Vec<_>>(),
    })
}
