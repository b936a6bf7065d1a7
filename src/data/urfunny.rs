//! UR-FUNNY (V1 and V2) SDK pickles, read natively with [`super::pickle`], as a binary
//! [`Dataset`] of the `full` tier.
//!
//! A UR-FUNNY folder holds `data_folds.pkl` ({train, dev, test} → ids), `humor_label_sdk.pkl`
//! (id → 0/1: floats in V1, ints in V2), `covarep_features_sdk.pkl` and
//! `openface_features_sdk.pkl` (id → {punchline_features: n_words × 81 / n_words × 371 (V2) or
//! 75 (V1), context_features, …}), the words as `language_sdk.pkl` (V2: id →
//! {punchline_embedding_indexes, …}) or `word_embedding_indexes_sdk.pkl` (V1: id →
//! {punchline_embedding_indexes, …}), and `word_embedding_list.pkl` (GloVe rows by word index).
//! Ids are ints (kept as their decimal strings).
//!
//! Conventions (as MISA's `create_dataset.py` for UR-FUNNY): punchline only; text = the
//! embedding rows of the punchline's word indices; a sample whose word, acoustic and visual
//! lengths differ is dropped (counted in the description), as is an empty punchline; NaN/±inf
//! features → 0; sequences keep their first [`T_MAX`] words (padding at the end); the label is
//! `humor_label_sdk[id]` as 0/1; `dev` is the validation split.
//!
//! Untrusted files: an id may be in one fold only, once, and a dict keyed by id may hold each id
//! once ([`DataError::DuplicateId`]); every pickle and every array built from them (a word-index
//! list of a million entries becomes a million embedding rows) is charged to the memory budget.

use super::pickle::{self, Array, ArrayData, Obj};
use super::{charge, split_bytes, DataError, Dataset, FieldError, Split, Task, Tier};
use crate::io::{bytes_of, MemoryBudget};
use std::collections::HashMap;
use std::path::Path;

/// Words kept per punchline.
pub const T_MAX: usize = 50;

/// The official folds (ids as decimal strings).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Folds {
    pub train: Vec<String>,
    pub dev: Vec<String>,
    pub test: Vec<String>,
}

fn ferr(path: &Path, reason: String) -> DataError {
    DataError::File {
        path: path.display().to_string(),
        reason,
    }
}

fn key(o: &Obj) -> Option<String> {
    match o {
        Obj::Int(i) => Some(i.to_string()),
        Obj::Str(s) => Some(s.clone()),
        Obj::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// A dict keyed by ids (ints or strings), as a map from the id's string; an id twice (`1` and
/// `'1'`, or a key repeated in the pickle) is an error.
fn id_map(o: Obj, path: &Path) -> Result<HashMap<String, Obj>, DataError> {
    let items = match o {
        Obj::Dict(items) => items,
        o => {
            return Err(ferr(
                path,
                format!("a {}, not a dict keyed by id", o.kind()),
            ))
        }
    };
    let mut map: HashMap<String, (usize, Obj)> = HashMap::with_capacity(items.len());
    for (i, (k, v)) in items.into_iter().enumerate() {
        let k = key(&k).ok_or_else(|| ferr(path, format!("a key is a {}, not an id", k.kind())))?;
        if let Some((i0, _)) = map.get(&k) {
            return Err(DataError::DuplicateId {
                path: path.display().to_string(),
                id: k,
                first: format!("dict item {i0}"),
                second: format!("dict item {i}"),
            });
        }
        map.insert(k, (i, v));
    }
    Ok(map.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

/// Reads `data_folds.pkl`; an id in two folds, or twice in one, is a
/// [`DataError::DuplicateId`].
pub fn read_folds(path: &Path) -> Result<Folds, DataError> {
    let mut budget = MemoryBudget::from_env()?;
    read_folds_with(path, &mut budget)
}

/// [`read_folds`] charging `budget`.
pub(crate) fn read_folds_with(path: &Path, budget: &mut MemoryBudget) -> Result<Folds, DataError> {
    let mut o = pickle::load_file_with(path, budget)?;
    let mut get = |name: &str| -> Result<Vec<String>, DataError> {
        let v = o
            .take(name)
            .ok_or_else(|| ferr(path, format!("no '{name}' fold")))?;
        super::mmsa::strings(v, name).map_err(|r| ferr(path, r.to_string()))
    };
    let folds = Folds {
        train: get("train")?,
        dev: get("dev")?,
        test: get("test")?,
    };
    super::check_unique_ids(
        path,
        [
            ("train", &folds.train),
            ("dev", &folds.dev),
            ("test", &folds.test),
        ],
    )?;
    Ok(folds)
}

/// Reads `humor_label_sdk.pkl`: id → 0/1 (V1 stores floats, V2 ints).
pub fn read_labels(path: &Path) -> Result<HashMap<String, f32>, DataError> {
    let mut budget = MemoryBudget::from_env()?;
    read_labels_with(path, &mut budget)
}

/// [`read_labels`] charging `budget`.
pub(crate) fn read_labels_with(
    path: &Path,
    budget: &mut MemoryBudget,
) -> Result<HashMap<String, f32>, DataError> {
    id_map(pickle::load_file_with(path, budget)?, path)?
        .into_iter()
        .map(|(k, v)| match v.as_f64() {
            Some(x) if x == 0.0 || x == 1.0 => Ok((k, x as f32)),
            _ => Err(ferr(path, format!("label of {k} is {}, not 0/1", v.kind()))),
        })
        .collect()
}

/// A feature matrix: n × d from a 2-D array, a list of rows (lists or 1-D arrays), or empty
/// (its copy charged to `budget`; errors are reasons, or the budget's error).
fn matrix(o: &Obj, budget: &mut MemoryBudget) -> Result<(usize, usize, Vec<f32>), MatErr> {
    let mut pay = |n: usize| budget.charge(bytes_of(n, 4)).map_err(MatErr::Budget);
    let clean = |v: Vec<f32>| -> Vec<f32> {
        v.into_iter()
            .map(|x| if x.is_finite() { x } else { 0.0 })
            .collect()
    };
    match o {
        Obj::Array(Array {
            shape,
            data: ArrayData::Num(v),
            ..
        }) => match shape.as_slice() {
            [n, d] => {
                pay(v.len())?;
                Ok((*n, *d, clean(v.clone())))
            }
            [0] => Ok((0, 0, Vec::new())),
            _ => Err(MatErr::Bad(FieldError::NotFeatureMatrix {
                shape: shape.clone(),
            })),
        },
        Obj::List(rows) => {
            let mut d = None;
            let mut out = Vec::new();
            for r in rows {
                let row: Vec<f32> = match r {
                    Obj::Array(Array {
                        data: ArrayData::Num(v),
                        ..
                    }) => v.clone(),
                    Obj::List(xs) => xs
                        .iter()
                        .map(|x| {
                            x.as_f64()
                                .map(|f| f as f32)
                                .ok_or(MatErr::Bad(FieldError::NonNumberFeature))
                        })
                        .collect::<Result<_, _>>()?,
                    o => return Err(MatErr::Bad(FieldError::NotFeatureRow { kind: o.kind() })),
                };
                if *d.get_or_insert(row.len()) != row.len() {
                    return Err(MatErr::Bad(FieldError::RaggedFeatureRows));
                }
                pay(row.len())?;
                out.extend(row);
            }
            Ok((rows.len(), d.unwrap_or(0), clean(out)))
        }
        o => Err(MatErr::Bad(FieldError::NotFeatures { kind: o.kind() })),
    }
}

/// Why [`matrix`] failed.
#[derive(Debug)]
enum MatErr {
    Bad(FieldError),
    Budget(crate::io::OverBudget),
}

impl MatErr {
    fn at(self, path: &Path, what: impl FnOnce() -> String) -> DataError {
        match self {
            MatErr::Bad(r) => ferr(path, format!("{}: {r}", what())),
            MatErr::Budget(o) => DataError::over_budget(path, 0, what(), o),
        }
    }
}

fn indexes(o: &Obj) -> Result<Vec<usize>, FieldError> {
    let as_idx = |f: f64| {
        if f >= 0.0 && f.fract() == 0.0 {
            Ok(f as usize)
        } else {
            Err(FieldError::BadWordIndex { value: f })
        }
    };
    match o {
        Obj::List(v) => v
            .iter()
            .map(|x| {
                x.as_f64()
                    .ok_or(FieldError::NonNumberWordIndex)
                    .and_then(as_idx)
            })
            .collect(),
        Obj::Array(Array {
            data: ArrayData::Num(v),
            ..
        }) => v.iter().map(|&x| as_idx(f64::from(x))).collect(),
        o => Err(FieldError::NotWordIndexes { kind: o.kind() }),
    }
}

/// Which UR-FUNNY release a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Detects the version from the words file present.
pub fn version(dir: &Path) -> Result<Version, DataError> {
    if dir.join("language_sdk.pkl").exists() {
        Ok(Version::V2)
    } else if dir.join("word_embedding_indexes_sdk.pkl").exists() {
        Ok(Version::V1)
    } else {
        Err(ferr(
            dir,
            "not a UR-FUNNY folder: neither language_sdk.pkl (V2) nor word_embedding_indexes_sdk.pkl (V1)"
                .into(),
        ))
    }
}

/// Loads a UR-FUNNY folder (V1 or V2) as a binary [`Dataset`] of punchline features (memory
/// budget: [`crate::io::memory_budget`]).
pub fn load(dir: &Path) -> Result<Dataset, DataError> {
    let mut budget = MemoryBudget::from_env()?;
    load_with(dir, &mut budget)
}

/// [`load`] charging `budget` for the six pickles and the dataset built from them.
pub fn load_with(dir: &Path, budget: &mut MemoryBudget) -> Result<Dataset, DataError> {
    let ver = version(dir)?;
    let words_file = match ver {
        Version::V2 => "language_sdk.pkl",
        Version::V1 => "word_embedding_indexes_sdk.pkl",
    };
    let folds = read_folds_with(&dir.join("data_folds.pkl"), budget)?;
    let labels_path = dir.join("humor_label_sdk.pkl");
    let labels = read_labels_with(&labels_path, budget)?;
    let wp = dir.join(words_file);
    let words = id_map(pickle::load_file_with(&wp, budget)?, &wp)?;
    let ap = dir.join("covarep_features_sdk.pkl");
    let audio = id_map(pickle::load_file_with(&ap, budget)?, &ap)?;
    let vp = dir.join("openface_features_sdk.pkl");
    let vision = id_map(pickle::load_file_with(&vp, budget)?, &vp)?;
    let ep = dir.join("word_embedding_list.pkl");
    let (n_words, dt, emb) = matrix(&pickle::load_file_with(&ep, budget)?, budget)
        .map_err(|x| x.at(&ep, || "the embedding matrix".into()))?;

    struct Clip {
        id: String,
        text: Vec<f32>,
        audio: Vec<f32>,
        vision: Vec<f32>,
        len: usize,
        label: f32,
    }
    let mut dims: Option<[usize; 2]> = None;
    let mut dropped = 0usize;
    let mut per_split: Vec<Vec<Clip>> = Vec::new();
    for ids in [&folds.train, &folds.dev, &folds.test] {
        let mut clips = Vec::new();
        for id in ids {
            let label = *labels
                .get(id)
                .ok_or_else(|| ferr(&labels_path, format!("no label for id {id}")))?;
            let get = |m: &HashMap<String, Obj>, p: &Path, field: &str| -> Result<Obj, DataError> {
                m.get(id)
                    .ok_or_else(|| ferr(p, format!("no entry for id {id}")))?
                    .get(field)
                    .cloned()
                    .ok_or_else(|| ferr(p, format!("id {id} has no '{field}'")))
            };
            let idx = indexes(&get(&words, &wp, "punchline_embedding_indexes")?)
                .map_err(|r| ferr(&wp, format!("id {id}: {r}")))?;
            let (na, da, a) = matrix(&get(&audio, &ap, "punchline_features")?, budget)
                .map_err(|x| x.at(&ap, || format!("id {id}")))?;
            let (nv, dv, v) = matrix(&get(&vision, &vp, "punchline_features")?, budget)
                .map_err(|x| x.at(&vp, || format!("id {id}")))?;
            if idx.is_empty() || idx.len() != na || na != nv {
                dropped += 1;
                continue;
            }
            charge(budget, bytes_of(idx.len(), dt * 4), &wp, 0, || {
                format!("id {id}: {} words × {dt} embedding values", idx.len())
            })?;
            match dims {
                None => dims = Some([da, dv]),
                Some(d) if d != [da, dv] => {
                    return Err(ferr(
                        dir,
                        format!(
                            "id {id}: audio/vision widths {da}/{dv} differ from {}/{}",
                            d[0], d[1]
                        ),
                    ))
                }
                _ => {}
            }
            let mut text = Vec::with_capacity(idx.len() * dt);
            for &w in &idx {
                if w >= n_words {
                    return Err(ferr(
                        &wp,
                        format!("id {id}: word index {w} beyond the {n_words} embeddings"),
                    ));
                }
                text.extend(emb[w * dt..(w + 1) * dt].iter().map(|&x| {
                    if x.is_finite() {
                        x
                    } else {
                        0.0
                    }
                }));
            }
            clips.push(Clip {
                id: id.clone(),
                text,
                audio: a,
                vision: v,
                len: idx.len(),
                label,
            });
        }
        per_split.push(clips);
    }
    let [da, dv] = dims.ok_or_else(|| ferr(dir, "no usable sample in the folds".into()))?;
    let t = per_split
        .iter()
        .flatten()
        .map(|c| c.len)
        .max()
        .unwrap_or(1)
        .min(T_MAX);
    let kept: usize = per_split.iter().map(Vec::len).sum();
    charge(budget, split_bytes(kept, t, [dt, da, dv]), dir, 0, || {
        format!("{kept} clips × {t} steps × widths {:?}", [dt, da, dv])
    })?;
    let to_split = |clips: Vec<Clip>| -> Split {
        let n = clips.len();
        let mut s = Split {
            ids: Vec::with_capacity(n),
            text: vec![0.0; n * t * dt],
            audio: vec![0.0; n * t * da],
            vision: vec![0.0; n * t * dv],
            lengths: Vec::with_capacity(n),
            labels: Vec::with_capacity(n),
            words: Vec::new(),
            tokens: None,
        };
        for (i, c) in clips.into_iter().enumerate() {
            let l = c.len.min(t);
            s.text[i * t * dt..i * t * dt + l * dt].copy_from_slice(&c.text[..l * dt]);
            s.audio[i * t * da..i * t * da + l * da].copy_from_slice(&c.audio[..l * da]);
            s.vision[i * t * dv..i * t * dv + l * dv].copy_from_slice(&c.vision[..l * dv]);
            s.ids.push(c.id);
            s.lengths.push(l);
            s.labels.push(c.label);
        }
        s
    };
    let mut it = per_split.into_iter();
    let train = to_split(it.next().unwrap());
    let valid = to_split(it.next().unwrap());
    let test = to_split(it.next().unwrap());
    let ds = Dataset {
        name: match ver {
            Version::V1 => "urfunny-v1".into(),
            Version::V2 => "urfunny-v2".into(),
        },
        tier: Tier::Full,
        task: Task::Binary,
        dims: [dt, da, dv],
        t_max: t,
        description: format!(
            "UR-FUNNY {ver:?} punchlines (text/audio/vision widths {dt}/{da}/{dv}, ≤ {t} words; \
             {} / {} / {} clips; {dropped} dropped for mismatched or empty word/feature lengths)",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_indexes_are_whole_non_negative_numbers() {
        let list = Obj::List(vec![Obj::Int(0), Obj::Float(2.0)]);
        assert_eq!(indexes(&list).unwrap(), [0, 2]);
        let msg = |o: Obj| indexes(&o).unwrap_err().to_string();
        assert_eq!(
            msg(Obj::List(vec![Obj::Float(1.5)])),
            "word index 1.5 is not a non-negative integer"
        );
        assert_eq!(msg(Obj::List(vec![Obj::None])), "a non-number word index");
        assert_eq!(msg(Obj::None), "word indexes are a None");
    }

    #[test]
    fn feature_matrices_are_rows_of_one_width() {
        let mut budget = MemoryBudget::new(1 << 20);
        let rows = Obj::List(vec![
            Obj::List(vec![Obj::Float(1.0), Obj::Float(f64::NAN)]),
            Obj::List(vec![Obj::Int(3), Obj::Int(4)]),
        ]);
        assert_eq!(
            matrix(&rows, &mut budget).unwrap(),
            (2, 2, vec![1.0, 0.0, 3.0, 4.0])
        );
        let bad = |o: Obj| match matrix(&o, &mut MemoryBudget::new(1 << 20)) {
            Err(MatErr::Bad(e)) => e.to_string(),
            r => panic!("{r:?}"),
        };
        assert_eq!(
            bad(Obj::List(vec![
                Obj::List(vec![Obj::Int(1)]),
                Obj::List(vec![])
            ])),
            "feature rows of different widths"
        );
        assert_eq!(bad(Obj::Int(1)), "features are a int");
        assert_eq!(bad(Obj::List(vec![Obj::Int(1)])), "a feature row is a int");
        assert!(matches!(
            matrix(&rows, &mut MemoryBudget::new(4)),
            Err(MatErr::Budget(_))
        ));
    }
}
