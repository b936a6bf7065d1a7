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
use super::{DataError, Dataset, Split, Task, Tier};
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
pub const SPLITS: [&str; 3] = ["train", "valid", "test"];

/// Loads an MMSA pickle as a regression [`Dataset`] of the `full` tier.
pub fn load(path: &Path, which: TextFeatures) -> Result<Dataset, DataError> {
    let obj = pickle::load_file(path)?;
    from_obj(obj, path, which)
}

/// Builds the dataset from an already loaded pickle (`path` names it in errors).
pub fn from_obj(mut obj: Obj, path: &Path, which: TextFeatures) -> Result<Dataset, DataError> {
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
        let (split, dims, t, unaligned) =
            split_from(d, which).map_err(|r| e(format!("{name}: {r}")))?;
        match shape {
            None => shape = Some((dims, t, unaligned)),
            Some((d0, t0, _)) if d0 != dims || t0 != t => {
                return Err(e(format!(
                    "{name}: widths {dims:?} × {t} steps differ from train's {d0:?} × {t0}"
                )))
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
    Ok(Dataset {
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
    })
}

fn array(d: &mut Obj, key: &str) -> Result<Array, String> {
    match d.take(key) {
        Some(Obj::Array(a)) => Ok(a),
        Some(o) => Err(format!("'{key}' is a {}, not an array", o.kind())),
        None => Err(format!("no '{key}' array")),
    }
}

fn numeric(a: Array, key: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
    match a.data {
        ArrayData::Num(v) => Ok((a.shape, v)),
        _ => Err(format!("'{key}' has dtype {}, not a number type", a.dtype)),
    }
}

fn seq3(d: &mut Obj, key: &str) -> Result<([usize; 3], Vec<f32>), String> {
    let (shape, v) = numeric(array(d, key)?, key)?;
    match shape.as_slice() {
        &[n, t, w] => Ok(([n, t, w], v)),
        s => Err(format!("'{key}' has shape {s:?}, expected (N, T, d)")),
    }
}

/// The strings of an id array (`U`/`S` dtype, object dtype of strings, or a list).
pub fn strings(o: Obj, key: &str) -> Result<Vec<String>, String> {
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
        o => return Err(format!("'{key}' is a {}, not strings", o.kind())),
    };
    items
        .into_iter()
        .map(|x| match x {
            Obj::Str(s) => Ok(s),
            Obj::Bytes(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Obj::Int(i) => Ok(i.to_string()),
            o => Err(format!("'{key}' holds a {}", o.kind())),
        })
        .collect()
}

fn split_from(mut d: Obj, which: TextFeatures) -> Result<(Split, [usize; 3], usize, bool), String> {
    if !matches!(d, Obj::Dict(_)) {
        return Err(format!("a {}, not a dict of arrays", d.kind()));
    }
    let bert = match d.take("text_bert") {
        Some(Obj::Array(a)) => Some(numeric(a, "text_bert")?),
        _ => None,
    };
    let (text_shape, text) = match which {
        TextFeatures::Text => seq3(&mut d, "text")?,
        TextFeatures::TextBert => {
            let (s, v) = bert.clone().ok_or("no 'text_bert' array")?;
            let &[n, three, t] = s.as_slice() else {
                return Err(format!("'text_bert' has shape {s:?}, expected (N, 3, T)"));
            };
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
    let (ash, mut audio) = seq3(&mut d, "audio")?;
    let (vsh, mut vision) = seq3(&mut d, "vision")?;
    for (k, s) in [("audio", ash), ("vision", vsh)] {
        if s[0] != n {
            return Err(format!("'{k}' has {} clips, text has {n}", s[0]));
        }
    }
    let (lsh, labels) = numeric(array(&mut d, "regression_labels")?, "regression_labels")?;
    if labels.len() != n {
        return Err(format!(
            "'regression_labels' has shape {lsh:?}: {} values for {n} clips",
            labels.len()
        ));
    }
    let ids = strings(d.take("id").ok_or("no 'id' array")?, "id")?;
    if ids.len() != n {
        return Err(format!("'id' has {} entries for {n} clips", ids.len()));
    }
    // MMSA: audio[audio == -inf] = 0
    for x in audio.iter_mut() {
        if *x == f32::NEG_INFINITY {
            *x = 0.0;
        }
    }
    let lengths: Vec<usize> = match &bert {
        Some((s, v)) if s.len() == 3 && s[0] == n && s[1] >= 2 && s[2] == t => (0..n)
            .map(|i| {
                let row = &v[(i * s[1] + 1) * t..(i * s[1] + 2) * t];
                (row.iter().filter(|&&m| m > 0.5).count()).clamp(1, t)
            })
            .collect(),
        _ => vec![t; n],
    };
    let lens = |d: &mut Obj, key: &str, tm: usize| -> Result<Option<Vec<usize>>, String> {
        match d.take(key) {
            Some(Obj::Array(a)) => {
                let (_, v) = numeric(a, key)?;
                if v.len() != n {
                    return Err(format!("'{key}' has {} values for {n} clips", v.len()));
                }
                Ok(Some(
                    v.iter()
                        .map(|&x| {
                            if x.is_finite() && x > 0.0 {
                                (x as usize).min(tm)
                            } else {
                                0
                            }
                        })
                        .collect(),
                ))
            }
            Some(o) => Err(format!("'{key}' is a {}", o.kind())),
            None => Ok(None),
        }
    };
    let al = lens(&mut d, "audio_lengths", ash[1])?;
    let vl = lens(&mut d, "vision_lengths", vsh[1])?;
    let unaligned = al.is_some() || vl.is_some() || ash[1] != t || vsh[1] != t;
    if unaligned {
        let al = al.unwrap_or_else(|| vec![ash[1]; n]);
        let vl = vl.unwrap_or_else(|| vec![vsh[1]; n]);
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
