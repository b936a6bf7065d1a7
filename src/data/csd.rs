//! CMU-MultimodalSDK computational sequences (`.csd`, HDF5): `/<root>/data/<video_id>/{features
//! (n × d), intervals (n × 2, seconds)}` and `/<root>/metadata/<key>` (vlen-string JSON).
//!
//! Read with the pure-Rust `hdf5-pure` crate (no libhdf5): it handles what the SDK's files use —
//! superblock v0, old-style symbol-table groups (v1 B-trees, local heaps), chunked + deflate
//! datasets and vlen strings in the global heap — and was checked on the official
//! `CMU_MOSI_Opinion_Labels.csd`. Like the SDK's `read_CSD`, the first top-level group is the
//! sequence's root.

use super::DataError;
use std::collections::BTreeMap;
use std::path::Path;

/// One video's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct CsdVideo {
    pub id: String,
    pub rows: usize,
    pub width: usize,
    /// rows × width, row-major.
    pub features: Vec<f32>,
    /// rows × 2 (start, end) in seconds.
    pub intervals: Vec<f64>,
}

/// A computational sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Csd {
    pub root: String,
    /// Videos sorted by id.
    pub videos: Vec<CsdVideo>,
    /// Metadata key → its (JSON) string.
    pub metadata: BTreeMap<String, String>,
}

/// Reads a `.csd` file.
pub fn read(path: &Path) -> Result<Csd, DataError> {
    let p = path.display().to_string();
    let e = |reason: String| DataError::File {
        path: p.clone(),
        reason,
    };
    let h5 = |what: &str, err: hdf5_pure::Error| e(format!("{what}: {err}"));
    let file = hdf5_pure::File::open(path).map_err(|x| h5("not a readable HDF5 file", x))?;
    let tops = file
        .root()
        .groups()
        .map_err(|x| h5("listing the top-level groups", x))?;
    let root = tops
        .first()
        .cloned()
        .ok_or_else(|| e("no top-level group (a computational sequence has one)".into()))?;
    let g = file
        .group(&root)
        .map_err(|x| h5(&format!("group '{root}'"), x))?;
    let data = g
        .group("data")
        .map_err(|x| h5(&format!("'{root}/data'"), x))?;
    let mut ids = data
        .groups()
        .map_err(|x| h5(&format!("listing '{root}/data'"), x))?;
    ids.sort();
    let mut videos = Vec::with_capacity(ids.len());
    for id in ids {
        let v = data
            .group(&id)
            .map_err(|x| h5(&format!("video '{id}'"), x))?;
        let f = v
            .dataset("features")
            .map_err(|x| h5(&format!("'{id}/features'"), x))?;
        let shape = f
            .shape()
            .map_err(|x| h5(&format!("'{id}/features' shape"), x))?;
        let (rows, width) = match shape.as_slice() {
            [n, d] => (*n as usize, *d as usize),
            [n] => (*n as usize, 1),
            s => {
                return Err(e(format!(
                    "'{id}/features' has shape {s:?}, expected (n, d)"
                )))
            }
        };
        let features: Vec<f32> = f
            .read_f64()
            .map_err(|x| h5(&format!("'{id}/features' (numeric features expected)"), x))?
            .into_iter()
            .map(|x| x as f32)
            .collect();
        if features.len() != rows * width {
            return Err(e(format!(
                "'{id}/features' holds {} values for shape {shape:?}",
                features.len()
            )));
        }
        let iv = v
            .dataset("intervals")
            .map_err(|x| h5(&format!("'{id}/intervals'"), x))?;
        let intervals = iv
            .read_f64()
            .map_err(|x| h5(&format!("'{id}/intervals'"), x))?;
        if intervals.len() != rows * 2 {
            return Err(e(format!(
                "'{id}/intervals' holds {} values for {rows} feature rows (expected {rows} × 2)",
                intervals.len()
            )));
        }
        videos.push(CsdVideo {
            id,
            rows,
            width,
            features,
            intervals,
        });
    }
    let mut metadata = BTreeMap::new();
    if let Ok(md) = g.group("metadata") {
        for k in md.datasets().unwrap_or_default() {
            if let Ok(s) = md.dataset(&k).and_then(|d| d.read_string()) {
                metadata.insert(k, s.join("\n"));
            }
        }
    }
    Ok(Csd {
        root,
        videos,
        metadata,
    })
}
