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
//! Untrusted files ([`read`]): every interval must be finite with start ≤ end
//! ([`DataError::BadInterval`]: a NaN bound made a segment take every row of its video, an end
//! before the start emptied a modality), `intervals` must be (rows × 2), each dataset's declared
//! shape × element size must fit in the file (deflate-compressed chunks: 1032 × the file, the
//! format's largest ratio) and in the memory budget before it is read. In a set, labels must be in
//! [−3, 3] and `label.csv` may name an id once ([`super::realtext::load_labels`]).
//!
//! The dataset is `csd-mosi` / `csd-mosei` when the labels file's `dataset name` metadata names
//! CMU-MOSI / CMU-MOSEI, else `csd-custom`; the task is regression.

use super::{charge, split_bytes, DataError, Dataset, Split, Task, Tier};
use crate::io::{bytes_of, MemoryBudget};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The largest expansion of deflate (zlib) data: 1032:1. A compressed dataset cannot hold more
/// than this many times the file's bytes.
pub(crate) const DEFLATE_MAX_RATIO: u64 = 1032;

/// Checks what `ds` declares (shape × element size) against the file's length, charges
/// `per_elem` bytes per element to `budget` and reads it as f64; returns the values and shape.
fn read_f64_checked(
    ds: &hdf5_pure::Dataset,
    what: &str,
    path: &Path,
    file_len: u64,
    budget: &mut MemoryBudget,
    per_elem: usize,
) -> Result<(Vec<f64>, Vec<u64>), DataError> {
    let e = |reason: String| DataError::File {
        path: path.display().to_string(),
        reason,
    };
    let shape = ds.shape().map_err(|x| e(format!("'{what}' shape: {x}")))?;
    let elem = ds
        .element_size()
        .map_err(|x| e(format!("'{what}' datatype: {x}")))?;
    let layout = ds
        .layout()
        .map_err(|x| e(format!("'{what}' layout: {x}")))?;
    let (offset, factor, how) = match layout {
        hdf5_pure::Layout::Contiguous { address, .. } => (address.unwrap_or(0), 1, ""),
        hdf5_pure::Layout::Compact { .. } => (0, 1, ""),
        hdf5_pure::Layout::Chunked { .. } => {
            let first = ds
                .chunks()
                .ok()
                .and_then(|c| c.iter().map(|c| c.address).min())
                .unwrap_or(0);
            if ds.filters().is_empty() {
                (first, 1, " (chunked)")
            } else {
                (
                    first,
                    DEFLATE_MAX_RATIO,
                    " (compressed: at most 1032 × the file's bytes)",
                )
            }
        }
        _ => return Err(e(format!("'{what}': unsupported storage layout"))),
    };
    let count = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let stored = count.and_then(|c| c.checked_mul(elem));
    let available = file_len.saturating_sub(offset);
    match stored {
        Some(b) if b <= available.saturating_mul(factor) => {}
        _ => {
            return Err(DataError::beyond_file(
                path,
                offset,
                format!("'{what}' of shape {shape:?} × {elem}-byte elements{how}"),
                stored.unwrap_or(u64::MAX),
                available,
            ))
        }
    }
    let n = usize::try_from(count.unwrap_or(u64::MAX)).map_err(|_| {
        e(format!(
            "'{what}' of shape {shape:?} does not fit in memory"
        ))
    })?;
    charge(budget, bytes_of(n, per_elem), path, offset, || {
        format!("'{what}' of shape {shape:?}")
    })?;
    let v = ds.read_f64().map_err(|x| DataError::File {
        path: path.display().to_string(),
        reason: format!("'{what}' (numeric data expected): {x}"),
    })?;
    if v.len() != n {
        return Err(DataError::Mismatch {
            path: path.display().to_string(),
            place: format!("'{what}'"),
            what: format!("{} values for shape {shape:?}", v.len()),
        });
    }
    Ok((v, shape))
}

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

/// Reads a `.csd` file (memory budget: [`crate::io::memory_budget`]).
pub fn read(path: &Path) -> Result<Csd, DataError> {
    let mut budget = MemoryBudget::from_env()?;
    read_with(path, &mut budget)
}

/// [`read`] charging `budget` (the file is read whole into memory, then each dataset).
pub fn read_with(path: &Path, budget: &mut MemoryBudget) -> Result<Csd, DataError> {
    let p = path.display().to_string();
    let e = |reason: String| DataError::File {
        path: p.clone(),
        reason,
    };
    let h5 = |what: &str, err: hdf5_pure::Error| e(format!("{what}: {err}"));
    let file_len = std::fs::metadata(path).map_err(|x| e(x.to_string()))?.len();
    charge(budget, file_len, path, 0, || {
        "the HDF5 file (read whole)".into()
    })?;
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
        let fname = format!("{id}/features");
        // the f64 read and its f32 copy; the f64 buffer is credited back once converted
        let (f64s, shape) = read_f64_checked(&f, &fname, path, file_len, budget, 12)?;
        let features: Vec<f32> = f64s.iter().map(|&x| x as f32).collect();
        drop(f64s);
        budget.release(bytes_of(features.len(), 8));
        let (rows, width) = match shape.as_slice() {
            [n, d] => (*n as usize, *d as usize),
            [n] => (*n as usize, 1),
            s => {
                return Err(e(format!(
                    "'{id}/features' has shape {s:?}, expected (n, d)"
                )))
            }
        };
        let iv = v
            .dataset("intervals")
            .map_err(|x| h5(&format!("'{id}/intervals'"), x))?;
        let iname = format!("{id}/intervals");
        let (intervals, ishape) = read_f64_checked(&iv, &iname, path, file_len, budget, 8)?;
        if ishape.as_slice() != [rows as u64, 2] || intervals.len() != rows * 2 {
            return Err(DataError::Mismatch {
                path: p.clone(),
                place: format!("video '{id}'"),
                what: format!(
                    "'intervals' has shape {ishape:?} for {rows} feature rows (expected ({rows}, 2))"
                ),
            });
        }
        for r in 0..rows {
            let (s, t) = (intervals[2 * r], intervals[2 * r + 1]);
            let reason = if !(s.is_finite() && t.is_finite()) {
                "has a non-finite bound"
            } else if t < s {
                "ends before it starts"
            } else {
                continue;
            };
            return Err(DataError::BadInterval {
                path: p.clone(),
                video: id.clone(),
                row: r,
                start: s,
                end: t,
                reason,
            });
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
            if let Some(s) = md.dataset(&k).ok().and_then(|d| read_meta(&d, file_len)) {
                metadata.insert(k, s.join("\n"));
            }
        }
    }
    // the file's bytes are freed with `file`
    drop(file);
    budget.release(file_len);
    Ok(Csd {
        root,
        videos,
        metadata,
    })
}

/// A metadata entry's strings, bounded by the file (`None` when unreadable or too large: the
/// metadata is informative only).
fn read_meta(d: &hdf5_pure::Dataset, file_len: u64) -> Option<Vec<String>> {
    let count = d
        .shape()
        .ok()?
        .iter()
        .try_fold(1u64, |a, &x| a.checked_mul(x))?;
    let stored = count.checked_mul(d.element_size().ok()?)?;
    if stored > file_len || count > 4096 {
        return None;
    }
    if matches!(d.dtype().ok()?, hdf5_pure::DType::VariableLengthString) {
        let limits = hdf5_pure::VlenStringReadOptions::new()
            .with_max_elements(count as usize)
            .with_max_payload_bytes(usize::try_from(file_len).ok()?);
        d.read_vlen_strings(limits).ok()
    } else {
        d.read_string().ok()
    }
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
pub(crate) fn is_set(dir: &Path) -> bool {
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
    let mut budget = MemoryBudget::from_env()?;
    load_set_with(dir, &mut budget)
}

/// [`load_set`] charging `budget` for the four files and the dataset built from them.
pub fn load_set_with(dir: &Path, budget: &mut MemoryBudget) -> Result<Dataset, DataError> {
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
    let labels = read_with(&set.labels, budget)?;
    let feats = [
        read_with(&set.text, budget)?,
        read_with(&set.audio, budget)?,
        read_with(&set.vision, budget)?,
    ];
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
            let [lo, hi] = super::mmsa::LABEL_RANGE;
            if !(label.is_finite() && (lo..=hi).contains(&f64::from(label))) {
                return Err(DataError::LabelOutOfRange {
                    path: set.labels.display().to_string(),
                    place: format!("segment {id} (video '{}' row {k})", v.id),
                    value: f64::from(label),
                    lo,
                    hi,
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
            let other_rows = [rows_in(vids[1], s, e), rows_in(vids[2], s, e)];
            // text steps, and each other modality's rows plus their averages onto the steps
            let need = (len as u64)
                .saturating_mul(dims[0] as u64)
                .saturating_add((1..3).fold(0u64, |a, m| {
                    a.saturating_add(bytes_of(other_rows[m - 1].len() + n, dims[m]))
                }))
                .saturating_mul(4);
            charge(budget, need, &set.labels, 0, || {
                format!("segment {id} ({n} text rows, widths {dims:?})")
            })?;
            let mut x: [Vec<f32>; 3] = Default::default();
            x[0] = gather(vids[0], &text_rows[..len]);
            for m in 1..3 {
                let rows = &other_rows[m - 1];
                let d = dims[m];
                let mut f = if rows.len() == n {
                    gather(vids[m], rows)
                } else {
                    super::mmsa::chunk_average(
                        &gather(vids[m], rows),
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
    charge(budget, split_bytes(segs.len(), t, dims), dir, 0, || {
        format!("{} segments × {t} steps × widths {dims:?}", segs.len())
    })?;
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
    let ds = Dataset {
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
    };
    ds.check(dir)?;
    Ok(ds)
}
