//! CMU-MultimodalSDK computational sequences (`.csd`, HDF5): `/<root>/data/<video_id>/{features
//! (n × d), intervals (n × 2, seconds)}` and `/<root>/metadata/<key>` (vlen-string JSON).
//!
//! Read with the pure-Rust `hdf5-pure` crate (no libhdf5): it handles what the SDK's files use —
//! superblock v0, old-style symbol-table groups (v1 B-trees, local heaps), chunked + deflate
//! datasets and vlen strings in the global heap — and was checked on the official
//! `CMU_MOSI_Opinion_Labels.csd`. Like the SDK's `read_CSD`, the first top-level group is the
//! sequence's root.
//!
//! # A set of `.csd` files as a dataset ([`load_set`])
//!
//! `reproduce-paper --tier full --data DIR`, where `DIR` holds one `.csd` file per role and a
//! `label.csv` for the splits. Roles are told by the file name (case-insensitive; each role must
//! match exactly one file, a file only one role):
//!
//! | role | the file name contains | e.g. (CMU-SDK names) |
//! | --- | --- | --- |
//! | labels | `label` | `CMU_MOSI_Opinion_Labels.csd` |
//! | text | `word`, `text`, `glove` or `bert` | `CMU_MOSI_TimestampedWordVectors.csd` |
//! | audio | `covarep`, `audio` or `opensmile` | `CMU_MOSI_COVAREP.csd` |
//! | vision | `facet`, `openface`, `vision` or `visual` | `CMU_MOSI_Visual_Facet_42.csd` |
//!
//! (`label` is tested first, so `..._Labels.csd` is never a text file.) The rule, per labelled
//! segment — row `k` (0-based, in stored order) of video `v` in the labels file, with interval
//! `[s, e]` and label `features[k][0]`:
//!
//! * its id is `v_{k+1}` (MOSI's clip ids: `03bSnISJMiM_1` is the first segment of
//!   `03bSnISJMiM`; checked on the real `CMU_MOSI_Opinion_Labels.csd` against `label.csv`);
//! * its split is the `mode` of that id in `DIR/label.csv` (MMSA's MOSI layout
//!   `id,text,label,mode`, as `../shared/data/mosi/label.csv`: the standard folds); a segment
//!   whose id is not there is dropped (counted in the description). The label itself comes from
//!   the labels file (must be finite);
//! * as CMU-SDK's alignment to the labels, a modality's feature rows of video `v` belong to the
//!   segment when their interval `[a, b]` overlaps it by more than [`OVERLAP_EPS`] seconds:
//!   `min(b, e) − max(a, s) > 1e-6` (rows that only touch an end are out), kept in stored order;
//! * the text rows are the steps: `L = min(#text rows, T_MAX)` (the first `T_MAX` = 50 rows; a
//!   segment without text rows, or whose video is missing from a modality, is dropped and
//!   counted). Audio and vision rows are used as they are when their count equals the text's
//!   (word-aligned files); otherwise they are averaged in contiguous near-equal chunks onto the text
//!   steps (as for unaligned MMSA pickles; no rows → zeros);
//! * NaN and ±inf features become 0; padding is at the end; `t_max` = the longest kept segment
//!   (≤ 50).
//!
//! The dataset is `csd-mosi` / `csd-mosei` when the labels file's `dataset name` metadata names
//! CMU-MOSI / CMU-MOSEI, else `csd-custom`; the task is regression.

use super::{DataError, Dataset, Split, Task, Tier};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

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

/// Minimum overlap (seconds) of a feature row's interval with a label segment's.
pub const OVERLAP_EPS: f64 = 1e-6;
/// Steps kept per segment.
pub const T_MAX: usize = 50;

/// The four files of a `.csd` set.
#[derive(Debug, Clone, PartialEq)]
pub struct CsdSet {
    pub labels: PathBuf,
    pub text: PathBuf,
    pub audio: PathBuf,
    pub vision: PathBuf,
}

const ROLES: [(&str, &[&str]); 4] = [
    ("labels", &["label"]),
    ("text", &["word", "text", "glove", "bert"]),
    ("audio", &["covarep", "audio", "opensmile"]),
    ("vision", &["facet", "openface", "vision", "visual"]),
];

fn csd_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csd"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether `dir` holds `.csd` files (then [`super::load_full`] reads it as a set).
pub fn is_set(dir: &Path) -> bool {
    !csd_files(dir).is_empty()
}

/// Finds the four files of a set in `dir` by their names (see the module docs).
pub fn find_set(dir: &Path) -> Result<CsdSet, DataError> {
    let e = |reason: String| DataError::File {
        path: dir.display().to_string(),
        reason,
    };
    let mut found: [Vec<PathBuf>; 4] = Default::default();
    for f in csd_files(dir) {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if let Some(r) = ROLES
            .iter()
            .position(|(_, keys)| keys.iter().any(|k| name.contains(k)))
        {
            found[r].push(f);
        }
    }
    let mut pick = |r: usize| -> Result<PathBuf, DataError> {
        let (role, keys) = ROLES[r];
        match std::mem::take(&mut found[r]).as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(e(format!(
                "no {role} .csd file (its name must contain one of: {})",
                keys.join(", ")
            ))),
            many => Err(e(format!(
                "{} .csd files could be the {role} file ({}); keep one",
                many.len(),
                many.iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    };
    Ok(CsdSet {
        labels: pick(0)?,
        text: pick(1)?,
        audio: pick(2)?,
        vision: pick(3)?,
    })
}

/// The rows of `v` whose interval overlaps `[s, e]` by more than [`OVERLAP_EPS`].
fn rows_in(v: &CsdVideo, s: f64, e: f64) -> Vec<usize> {
    (0..v.rows)
        .filter(|&r| {
            let (a, b) = (v.intervals[2 * r], v.intervals[2 * r + 1]);
            b.min(e) - a.max(s) > OVERLAP_EPS
        })
        .collect()
}

/// The features of `rows` of `v`, non-finite values set to 0 (rows × width).
fn gather(v: &CsdVideo, rows: &[usize]) -> Vec<f32> {
    let w = v.width;
    let mut out = Vec::with_capacity(rows.len() * w);
    for &r in rows {
        out.extend(
            v.features[r * w..(r + 1) * w]
                .iter()
                .map(|&x| if x.is_finite() { x } else { 0.0 }),
        );
    }
    out
}

fn width(c: &Csd, path: &Path) -> Result<usize, DataError> {
    let w = c.videos.first().map_or(0, |v| v.width);
    match c.videos.iter().find(|v| v.width != w) {
        Some(v) => Err(DataError::File {
            path: path.display().to_string(),
            reason: format!(
                "video '{}' has {} features per row, the first video {w}",
                v.id, v.width
            ),
        }),
        None if w == 0 => Err(DataError::File {
            path: path.display().to_string(),
            reason: "no feature rows".into(),
        }),
        None => Ok(w),
    }
}

/// Loads a folder of `.csd` files with a `label.csv` as a regression [`Dataset`] of the `full`
/// tier, by the rule in the module docs.
pub fn load_set(dir: &Path) -> Result<Dataset, DataError> {
    let set = find_set(dir)?;
    let csv = dir.join("label.csv");
    if !csv.exists() {
        return Err(DataError::File {
            path: dir.display().to_string(),
            reason: "a .csd set needs label.csv (MMSA's id,text,label,mode) for the splits".into(),
        });
    }
    let modes: HashMap<String, usize> = super::realtext::load_labels(&csv)?
        .into_iter()
        .map(|r| (r.id, r.split))
        .collect();
    let labels = read(&set.labels)?;
    let feats = [read(&set.text)?, read(&set.audio)?, read(&set.vision)?];
    let paths = [&set.text, &set.audio, &set.vision];
    let mut dims = [0usize; 3];
    for m in 0..3 {
        dims[m] = width(&feats[m], paths[m])?;
    }
    let by_id: Vec<HashMap<&str, &CsdVideo>> = feats
        .iter()
        .map(|c| c.videos.iter().map(|v| (v.id.as_str(), v)).collect())
        .collect();
    struct Seg {
        id: String,
        split: usize,
        label: f32,
        len: usize,
        x: [Vec<f32>; 3],
    }
    let (mut not_in_csv, mut missing, mut no_text) = (0usize, 0usize, 0usize);
    let mut segs = Vec::new();
    for v in &labels.videos {
        if v.width != 1 {
            return Err(DataError::File {
                path: set.labels.display().to_string(),
                reason: format!(
                    "video '{}': labels have {} values per segment, expected 1",
                    v.id, v.width
                ),
            });
        }
        for k in 0..v.rows {
            let id = format!("{}_{}", v.id, k + 1);
            let Some(&split) = modes.get(&id) else {
                not_in_csv += 1;
                continue;
            };
            let label = v.features[k];
            if !label.is_finite() {
                return Err(DataError::File {
                    path: set.labels.display().to_string(),
                    reason: format!("segment {id}: label {label} is not finite"),
                });
            }
            let (s, e) = (v.intervals[2 * k], v.intervals[2 * k + 1]);
            let Some(vids) = by_id
                .iter()
                .map(|m| m.get(v.id.as_str()))
                .collect::<Option<Vec<_>>>()
            else {
                missing += 1;
                continue;
            };
            let text_rows = rows_in(vids[0], s, e);
            if text_rows.is_empty() {
                no_text += 1;
                continue;
            }
            let n = text_rows.len();
            let len = n.min(T_MAX);
            let mut x: [Vec<f32>; 3] = Default::default();
            x[0] = gather(vids[0], &text_rows[..len]);
            for m in 1..3 {
                let rows = rows_in(vids[m], s, e);
                let d = dims[m];
                let mut f = if rows.len() == n {
                    gather(vids[m], &rows)
                } else {
                    super::mmsa::chunk_average(
                        &gather(vids[m], &rows),
                        [1, rows.len(), d],
                        &[rows.len()],
                        &[n],
                        n,
                    )
                };
                f.truncate(len * d);
                x[m] = f;
            }
            segs.push(Seg {
                id,
                split,
                label,
                len,
                x,
            });
        }
    }
    let t = segs
        .iter()
        .map(|s| s.len)
        .max()
        .ok_or_else(|| DataError::File {
            path: dir.display().to_string(),
            reason: format!(
                "no usable segment ({not_in_csv} not in label.csv, {missing} with a video missing \
             from a modality, {no_text} without text rows)"
            ),
        })?;
    let mut counts = [0usize; 3];
    for s in &segs {
        counts[s.split] += 1;
    }
    let mut splits: Vec<Split> = counts
        .iter()
        .map(|&n| Split::with_capacity(n, t, dims))
        .collect();
    for seg in segs {
        let sp = &mut splits[seg.split];
        for (m, out) in [&mut sp.text, &mut sp.audio, &mut sp.vision]
            .into_iter()
            .enumerate()
        {
            out.extend_from_slice(&seg.x[m]);
            out.extend(std::iter::repeat_n(0.0, (t - seg.len) * dims[m]));
        }
        sp.ids.push(seg.id);
        sp.lengths.push(seg.len);
        sp.labels.push(seg.label);
    }
    let mut it = splits.into_iter();
    let (train, valid, test) = (
        it.next().expect("3 splits"),
        it.next().expect("3 splits"),
        it.next().expect("3 splits"),
    );
    let meta = labels
        .metadata
        .get("dataset name")
        .map(|s| s.to_uppercase())
        .unwrap_or_default();
    let corpus = if meta.contains("MOSEI") {
        "mosei"
    } else if meta.contains("MOSI") {
        "mosi"
    } else {
        "custom"
    };
    let file = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    Ok(Dataset {
        name: format!("csd-{corpus}"),
        tier: Tier::Full,
        task: Task::Regression,
        dims,
        t_max: t,
        description: format!(
            "CMU-SDK .csd set ({corpus}; text {} / audio {} / vision {} aligned to the segments of \
             {}, widths {dims:?}, ≤ {t} steps; {} / {} / {} clips by label.csv; dropped: \
             {not_in_csv} not in label.csv, {missing} with a video missing from a modality, \
             {no_text} without text rows)",
            file(&set.text),
            file(&set.audio),
            file(&set.vision),
            file(&set.labels),
            train.len(),
            valid.len(),
            test.len()
        ),
        train,
        valid,
        test,
        ceilings: Vec::new(),
        test_subsets: Vec::new(),
    })
}
