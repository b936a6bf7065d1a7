//! MMSA feature pickles (`{MOSI,MOSEI}/Processed/{aligned,unaligned}_50.pkl`), read natively with
//! [`super::pickle`], as a [`Dataset`] of the `full` tier.
//!
//! Layout: a dict `train|valid|test` → dict with `raw_text, audio, vision, id, text, text_bert,
//! annotations, classification_labels, regression_labels` (+ `audio_lengths, vision_lengths` when
//! unaligned). Conventions applied on load (MMSA's `data_loader.py` where it has one):
//!
//! * every array is cast to f32; audio `-inf` → 0 (MMSA does the same; no other value is changed);
//! * labels = `regression_labels` (task: regression);
//! * text = the `text` array (BERT last hidden states / word vectors), or with
//!   [`TextFeatures::TextBert`] the `text_bert` (N, 3, T) ids/mask/segments transposed to (N, T, 3);
//! * valid length of a clip = the sum of its `text_bert` attention mask (row 1), clamped to 1..=T
//!   (MISA and MMIM take lengths the same way); without `text_bert` every step is valid (T). The
//!   `text` array itself cannot give lengths: BERT states at padding positions are not zero;
//! * unaligned files (`audio_lengths` present, or audio/vision with another length than text):
//!   the [`Dataset`] has one length per clip, so each clip's first `audio_lengths[i]` audio frames
//!   (resp. vision) are split into as many contiguous, near-equal chunks as the clip has text steps
//!   and each chunk is averaged (chunk j = frames ⌊j·l/L⌋ .. ⌊(j+1)·l/L⌋; a chunk that is empty
//!   because l < L takes frame ⌊j·l/L⌋; l = 0 gives zeros). This is an approximation of word
//!   alignment, not what MMSA's unaligned models (TFN, MMIM, MISA) see: they read the raw frame
//!   sequences. Prefer `aligned_50.pkl` where it matters;
//! * `need_normalized` (time-averaging for TFN/MFN) is a model-side choice and is not applied.

use super::pickle::{self, Array, ArrayData, Obj};
use super::{charge, DataError, Dataset, FieldError, Split, Task, Tier};
use crate::io::{bytes_of, MemoryBudget};
use std::path::Path;

/// Which array becomes the text modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextFeatures {
    /// `text`: (N, T, 768) BERT states (or word vectors).
    #[default]
    Text,
    /// `text_bert`: (N, 3, T) token ids, attention mask, segment ids, as (N, T, 3).
    TextBert,
}

/// The split names of an MMSA pickle, in order.
pub(crate) const SPLITS: [&str; 3] = ["train", "valid", "test"];

/// The valid range of `regression_labels` (MOSI/MOSEI sentiment; SIMS's [−1, 1] is inside it).
pub(crate) const LABEL_RANGE: [f64; 2] = [-3.0, 3.0];

/// Loads an MMSA pickle as a regression [`Dataset`] of the `full` tier (memory budget:
/// [`crate::io::memory_budget`]).
pub fn load(path: &Path, which: TextFeatures) -> Result<Dataset, DataError> {
    let mut budget = MemoryBudget::from_env()?;
    load_with(path, which, &mut budget)
}

/// [`load`] charging `budget` for the pickle and the dataset built from it.
pub fn load_with(
    path: &Path,
    which: TextFeatures,
    budget: &mut MemoryBudget,
) -> Result<Dataset, DataError> {
    let obj = pickle::load_file_with(path, budget)?;
    from_obj_with(obj, path, which, budget)
}

/// Builds the dataset from an already loaded pickle (`path` names it in errors).
pub fn from_obj(obj: Obj, path: &Path, which: TextFeatures) -> Result<Dataset, DataError> {
    let mut budget = MemoryBudget::from_env()?;
    from_obj_with(obj, path, which, &mut budget)
}

/// [`from_obj`] charging what it allocates to `budget`.
pub(crate) fn from_obj_with(
    mut obj: Obj,
    path: &Path,
    which: TextFeatures,
    budget: &mut MemoryBudget,
) -> Result<Dataset, DataError> {
    let p = path.display().to_string();
    let e = |reason: String| DataError::File {
        path: p.clone(),
        reason,
    };
    if !matches!(obj, Obj::Dict(_)) {
        return Err(e(format!(
            "not an MMSA pickle: the top level is a {}, not a dict of splits",
            obj.kind()
        )));
    }
    let mut splits = Vec::new();
    let mut shape: Option<([usize; 3], usize, bool)> = None;
    for name in SPLITS {
        let d = obj.take(name).ok_or_else(|| {
            e(format!(
                "no '{name}' split (MMSA pickles have train/valid/test)"
            ))
        })?;
        let mut ctx = Ctx {
            path,
            split: name,
            budget: &mut *budget,
        };
        let (split, dims, t, unaligned) = split_from(d, which, &mut ctx)?;
        match shape {
            None => shape = Some((dims, t, unaligned)),
            Some((d0, t0, _)) if d0 != dims || t0 != t => {
                return Err(DataError::Mismatch {
                    path: p.clone(),
                    place: name.into(),
                    what: format!("widths {dims:?} × {t} steps differ from train's {d0:?} × {t0}"),
                })
            }
            _ => {}
        }
        splits.push(split);
    }
    let (dims, t_max, unaligned) = shape.expect("three splits");
    let corpus = match dims {
        [768, 5, 20] => "mosi",
        [768, 74, 35] => "mosei",
        _ => "custom",
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut it = splits.into_iter();
    let (train, valid, test) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let ds = Dataset {
        name: format!("mmsa-{corpus}"),
        tier: Tier::Full,
        task: Task::Regression,
        dims,
        t_max,
        description: format!(
            "MMSA pickle {stem} ({corpus}, {} data; text/audio/vision widths {dims:?}, {t_max} steps; \
             {} / {} / {} clips){}",
            if unaligned { "unaligned" } else { "aligned" },
            train.len(),
            valid.len(),
            test.len(),
            if unaligned {
                "; audio/vision averaged in chunks onto the text steps"
            } else {
                ""
            }
        ),
        train,
        valid,
        test,
        ceilings: Vec::new(),
        test_subsets: Vec::new(),
    };
    ds.check(path)?;
    Ok(ds)
}

/// Where a split is read from, for errors and the budget.
struct Ctx<'p, 'b> {
    path: &'p Path,
    split: &'static str,
    budget: &'b mut MemoryBudget,
}

impl Ctx<'_, '_> {
    /// A [`DataError::File`] about this split.
    fn file(&self, reason: impl std::fmt::Display) -> DataError {
        DataError::File {
            path: self.path.display().to_string(),
            reason: format!("{}: {reason}", self.split),
        }
    }

    /// A [`DataError::Mismatch`] about `key` of this split.
    fn mismatch(&self, key: &str, what: String) -> DataError {
        DataError::Mismatch {
            path: self.path.display().to_string(),
            place: format!("{} '{key}'", self.split),
            what,
        }
    }

    /// Charges `bytes` for `what`.
    fn charge(&mut self, bytes: u64, what: impl FnOnce() -> String) -> Result<(), DataError> {
        let split = self.split;
        charge(self.budget, bytes, self.path, 0, || {
            format!("{split}: {}", what())
        })
    }
}

fn array(d: &mut Obj, key: &str) -> Result<Array, FieldError> {
    match d.take(key) {
        Some(Obj::Array(a)) => Ok(a),
        Some(o) => Err(FieldError::WrongKind {
            key: key.into(),
            kind: o.kind(),
            expected: "an array",
        }),
        None => Err(FieldError::Missing { key: key.into() }),
    }
}

fn numeric(a: Array, key: &str) -> Result<(Vec<usize>, Vec<f32>), FieldError> {
    match a.data {
        ArrayData::Num(v) => Ok((a.shape, v)),
        _ => Err(FieldError::NotNumeric {
            key: key.into(),
            dtype: a.dtype,
        }),
    }
}

fn seq3(d: &mut Obj, key: &str) -> Result<([usize; 3], Vec<f32>), FieldError> {
    let (shape, v) = numeric(array(d, key)?, key)?;
    match shape.as_slice() {
        &[n, t, w] => Ok(([n, t, w], v)),
        _ => Err(FieldError::NotSequences {
            key: key.into(),
            shape,
        }),
    }
}

/// One number per clip: a 1-D (or N × 1) numeric array, or a list of numbers (ints, floats,
/// bools, 0-d arrays) — MMSA's tools write both. Returns the values as f64 and the shape seen.
pub(crate) fn per_clip_numbers(o: Obj, key: &str) -> Result<(Vec<f64>, Vec<usize>), FieldError> {
    let key = key.to_string();
    match o {
        Obj::Array(Array {
            shape,
            data: ArrayData::Num(v),
            ..
        }) => match shape.as_slice() {
            [_] | [_, 1] => Ok((v.into_iter().map(f64::from).collect(), shape)),
            _ => Err(FieldError::NotPerClip { key, shape }),
        },
        Obj::Array(a) => Err(FieldError::NotNumeric {
            key,
            dtype: a.dtype,
        }),
        Obj::List(items) => {
            let n = items.len();
            let v = items
                .iter()
                .enumerate()
                .map(|(index, x)| {
                    x.as_f64().ok_or_else(|| FieldError::NotANumber {
                        key: key.clone(),
                        index,
                        kind: x.kind(),
                    })
                })
                .collect::<Result<Vec<f64>, FieldError>>()?;
            Ok((v, vec![n]))
        }
        o => Err(FieldError::WrongKind {
            key,
            kind: o.kind(),
            expected: "a list or array of numbers",
        }),
    }
}

/// The strings of an id array (`U`/`S` dtype, object dtype of strings, or a list).
pub(crate) fn strings(o: Obj, key: &str) -> Result<Vec<String>, FieldError> {
    let items = match o {
        Obj::Array(Array {
            data: ArrayData::Str(s),
            ..
        }) => return Ok(s),
        Obj::Array(Array {
            data: ArrayData::Obj(v),
            ..
        })
        | Obj::List(v) => v,
        o => {
            return Err(FieldError::WrongKind {
                key: key.into(),
                kind: o.kind(),
                expected: "strings",
            })
        }
    };
    items
        .into_iter()
        .map(|x| match x {
            Obj::Str(s) => Ok(s),
            Obj::Bytes(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Obj::Int(i) => Ok(i.to_string()),
            o => Err(FieldError::NotAString {
                key: key.into(),
                kind: o.kind(),
            }),
        })
        .collect()
}

/// The value of `key`, treating a stored `None` as absent.
fn present(d: &mut Obj, key: &str) -> Option<Obj> {
    d.take(key).filter(|o| !matches!(o, Obj::None))
}

type SplitParts = (Split, [usize; 3], usize, bool);

fn split_from(mut d: Obj, which: TextFeatures, cx: &mut Ctx) -> Result<SplitParts, DataError> {
    if !matches!(d, Obj::Dict(_)) {
        return Err(cx.file(format!("a {}, not a dict of arrays", d.kind())));
    }
    let bert = match present(&mut d, "text_bert") {
        Some(Obj::Array(a)) => Some(numeric(a, "text_bert").map_err(|r| cx.file(r))?),
        Some(o) => {
            return Err(cx.file(format!("'text_bert' is a {}, not an array", o.kind())));
        }
        None => None,
    };
    let (text_shape, text) = match which {
        TextFeatures::Text => seq3(&mut d, "text").map_err(|r| cx.file(r))?,
        TextFeatures::TextBert => {
            let (s, v) = bert.as_ref().ok_or_else(|| {
                cx.file(FieldError::Missing {
                    key: "text_bert".into(),
                })
            })?;
            let &[n, three, t] = s.as_slice() else {
                return Err(cx.mismatch("text_bert", format!("shape {s:?}, expected (N, 3, T)")));
            };
            cx.charge(bytes_of(v.len(), 4), || "'text_bert' as (N, T, 3)".into())?;
            let mut out = vec![0f32; v.len()];
            for i in 0..n {
                for c in 0..three {
                    for s in 0..t {
                        out[(i * t + s) * three + c] = v[(i * three + c) * t + s];
                    }
                }
            }
            ([n, t, three], out)
        }
    };
    let [n, t, dt] = text_shape;
    if t == 0 {
        return Err(cx.mismatch("text", format!("shape {text_shape:?}: no time steps")));
    }
    // text_bert gives the lengths: it must be (N, ≥ 2, T) for these clips and steps
    if let Some((s, _)) = &bert {
        if !matches!(s.as_slice(), &[bn, c, bt] if bn == n && c >= 2 && bt == t) {
            return Err(cx.mismatch(
                "text_bert",
                format!("shape {s:?}, but the text has {n} clips × {t} steps: (N, 3, T) expected"),
            ));
        }
    }
    let (ash, mut audio) = seq3(&mut d, "audio").map_err(|r| cx.file(r))?;
    let (vsh, mut vision) = seq3(&mut d, "vision").map_err(|r| cx.file(r))?;
    for (k, s) in [("audio", ash), ("vision", vsh)] {
        if s[0] != n {
            return Err(cx.mismatch(k, format!("{} clips, the text has {n}", s[0])));
        }
    }
    let ids = strings(
        present(&mut d, "id").ok_or_else(|| cx.file(FieldError::Missing { key: "id".into() }))?,
        "id",
    )
    .map_err(|r| cx.file(r))?;
    if ids.len() != n {
        return Err(cx.mismatch("id", format!("{} entries for {n} clips", ids.len())));
    }
    if let Some(raw) = present(&mut d, "raw_text") {
        let raw = strings(raw, "raw_text").map_err(|r| cx.file(r))?;
        if raw.len() != n {
            return Err(cx.mismatch("raw_text", format!("{} entries for {n} clips", raw.len())));
        }
    }
    let (labels, lsh) = per_clip_numbers(
        present(&mut d, "regression_labels").ok_or_else(|| {
            cx.file(FieldError::Missing {
                key: "regression_labels".into(),
            })
        })?,
        "regression_labels",
    )
    .map_err(|r| cx.file(r))?;
    if labels.len() != n {
        return Err(cx.mismatch(
            "regression_labels",
            format!("shape {lsh:?}: {} values for {n} clips", labels.len()),
        ));
    }
    let [lo, hi] = LABEL_RANGE;
    if let Some(i) = labels
        .iter()
        .position(|&y| !(y.is_finite() && (lo..=hi).contains(&y)))
    {
        return Err(DataError::LabelOutOfRange {
            path: cx.path.display().to_string(),
            place: format!("{} id '{}' (row {i}) 'regression_labels'", cx.split, ids[i]),
            value: labels[i],
            lo,
            hi,
        });
    }
    let labels: Vec<f32> = labels.into_iter().map(|y| y as f32).collect();
    // MMSA: audio[audio == -inf] = 0
    for x in audio.iter_mut() {
        if *x == f32::NEG_INFINITY {
            *x = 0.0;
        }
    }
    let lengths: Vec<usize> = match &bert {
        Some((s, v)) => (0..n)
            .map(|i| {
                let row = &v[(i * s[1] + 1) * t..(i * s[1] + 2) * t];
                (row.iter().filter(|&&m| m > 0.5).count()).clamp(1, t)
            })
            .collect(),
        None => vec![t; n],
    };
    let al = frame_lengths(&mut d, "audio_lengths", ash[1], &ids, cx)?;
    let vl = frame_lengths(&mut d, "vision_lengths", vsh[1], &ids, cx)?;
    let unaligned = al.is_some() || vl.is_some() || ash[1] != t || vsh[1] != t;
    if unaligned {
        let al = al.unwrap_or_else(|| vec![ash[1]; n]);
        let vl = vl.unwrap_or_else(|| vec![vsh[1]; n]);
        for (k, sh) in [("audio", ash), ("vision", vsh)] {
            cx.charge(bytes_of(n, 4).saturating_mul((t * sh[2]) as u64), || {
                format!("{k} averaged onto {n} clips × {t} steps × {}", sh[2])
            })?;
        }
        audio = chunk_average(&audio, ash, &al, &lengths, t);
        vision = chunk_average(&vision, vsh, &vl, &lengths, t);
    }
    Ok((
        Split {
            ids,
            text,
            audio,
            vision,
            lengths,
            labels,
            words: Vec::new(),
            tokens: None,
        },
        [dt, ash[2], vsh[2]],
        t,
        unaligned,
    ))
}

/// `audio_lengths` / `vision_lengths`: a list of ints or an integer/float array, one
/// non-negative whole number per clip (`None` when absent). A length beyond the `frames` stored
/// is clamped to them (MMSA's tools count frames before padding/cutting to the array's length).
fn frame_lengths(
    d: &mut Obj,
    key: &str,
    frames: usize,
    ids: &[String],
    cx: &mut Ctx,
) -> Result<Option<Vec<usize>>, DataError> {
    let Some(o) = present(d, key) else {
        return Ok(None);
    };
    let n = ids.len();
    let (v, shape) = per_clip_numbers(o, key).map_err(|r| cx.file(r))?;
    if v.len() != n {
        return Err(cx.mismatch(
            key,
            format!("shape {shape:?}: {} values for {n} clips", v.len()),
        ));
    }
    v.iter()
        .enumerate()
        .map(|(i, &x)| {
            if x.is_finite() && x >= 0.0 && x.fract() == 0.0 {
                Ok((x.min(frames as f64)) as usize)
            } else {
                Err(cx.mismatch(
                    key,
                    format!("id '{}' (row {i}): {x} is not a frame count", ids[i]),
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Averages each clip's first `valid[i]` frames in `steps[i]` contiguous chunks; output N × t × d.
pub(crate) fn chunk_average(
    src: &[f32],
    [n, tf, d]: [usize; 3],
    valid: &[usize],
    steps: &[usize],
    t: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; n * t * d];
    for i in 0..n {
        let l = valid[i].min(tf);
        let big_l = steps[i].min(t);
        if l == 0 {
            continue;
        }
        for j in 0..big_l {
            let a = j * l / big_l;
            let b = ((j + 1) * l / big_l).max(a + 1).min(l);
            let dst = &mut out[(i * t + j) * d..(i * t + j + 1) * d];
            for f in a..b {
                let row = &src[(i * tf + f) * d..(i * tf + f + 1) * d];
                for (o, &x) in dst.iter_mut().zip(row) {
                    *o += x;
                }
            }
            let k = (b - a) as f32;
            for o in dst.iter_mut() {
                *o /= k;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(shape: &[usize], v: &[f32]) -> Obj {
        Obj::Array(Array {
            shape: shape.to_vec(),
            dtype: "<f4".into(),
            data: ArrayData::Num(v.to_vec()),
        })
    }

    #[test]
    fn per_clip_numbers_take_vectors_columns_and_lists_and_name_what_is_not() {
        assert_eq!(
            per_clip_numbers(num(&[2, 1], &[1.0, 2.0]), "k").unwrap(),
            (vec![1.0, 2.0], vec![2, 1])
        );
        let list = Obj::List(vec![Obj::Int(1), Obj::Bool(true), Obj::Float(0.5)]);
        assert_eq!(
            per_clip_numbers(list, "k").unwrap(),
            (vec![1.0, 1.0, 0.5], vec![3])
        );
        let msg = |o: Obj| per_clip_numbers(o, "k").unwrap_err().to_string();
        assert_eq!(
            msg(num(&[1, 2], &[1.0, 2.0])),
            "'k' has shape [1, 2], expected one value per clip (N,) or (N, 1)"
        );
        assert_eq!(
            msg(Obj::List(vec![Obj::Int(1), Obj::Str("x".into())])),
            "'k'[1] is a str, not a number"
        );
        assert_eq!(
            msg(Obj::Str("x".into())),
            "'k' is a str, not a list or array of numbers"
        );
    }

    #[test]
    fn strings_take_str_arrays_object_arrays_and_lists() {
        let list = Obj::List(vec![
            Obj::Str("a".into()),
            Obj::Bytes(b"b".to_vec()),
            Obj::Int(3),
        ]);
        assert_eq!(strings(list, "id").unwrap(), ["a", "b", "3"]);
        assert_eq!(
            strings(Obj::List(vec![Obj::None]), "id")
                .unwrap_err()
                .to_string(),
            "'id' holds a None"
        );
        assert_eq!(
            strings(Obj::Int(1), "id").unwrap_err().to_string(),
            "'id' is a int, not strings"
        );
    }

    #[test]
    fn sequences_must_be_numeric_and_three_dimensional() {
        let mut d = Obj::Dict(vec![
            (Obj::Str("a".into()), num(&[1, 2], &[0.0, 0.0])),
            (Obj::Str("s".into()), Obj::Str("x".into())),
        ]);
        assert_eq!(
            seq3(&mut d, "a").unwrap_err().to_string(),
            "'a' has shape [1, 2], expected (N, T, d)"
        );
        assert_eq!(
            seq3(&mut d, "s").unwrap_err().to_string(),
            "'s' is a str, not an array"
        );
        assert_eq!(seq3(&mut d, "z").unwrap_err().to_string(), "no 'z' array");
    }
}
