//! The `real-text` tier: real MOSI or MOSEI transcripts, labels and standard splits
//! (`<data-dir>/mosi/label.csv`: 2195 clips, 1281/229/685; `<data-dir>/mosei/label.csv`: 22788
//! clips, 16274/1861/4653), words embedded with GloVe-50d
//! (`<data-dir>/glove/glove.6B.50d.mosi-mosei.txt`), and synthetic audio/visual cues generated from
//! the real label. MOSI and MOSEI get the same construction and the same amplitudes (the cues'
//! strength on the validation splits is compared in the `data_tiers` tests).
//!
//! * Tokenisation: lower-case, split on whitespace, trim characters other than letters, digits and
//!   apostrophes from both ends of each token, drop empty tokens.
//! * Out-of-vocabulary words get the zero vector (their step is kept, so lengths are word counts);
//!   sequences are capped at the first 50 words; an empty transcript becomes one zero step.
//! * Audio (74-d) and vision (35-d) at every word step: `s_m · (y/1.57) · b_m + N(0, 1)` with fixed
//!   random directions `b_m` and amplitudes `s_A = 0.02`, `s_V = 0.015` (seeded; see [`CUE_SNR`]).
//!   They are weak noisy functions of the label, so gains over text-only models here reflect these
//!   synthetic cues, not real prosody or faces.
//! * **Cue modes** ([`CueMode`]). `label` (the default, above) makes the cues *redundant* with the
//!   words: both carry the signed label, and a least-squares readout of the cue projections alone
//!   reaches about 70 % Acc2 on MOSI's test split (printed with every table as a reference
//!   predictor). `intensity` puts only the intensity `|y|/1.57` in the cues, so the polarity must
//!   come from the words and the intensity partly from the cues: the cues are then useless alone
//!   (their readout sits at the majority rate) and complementary to the text.

use super::{charge, split_bytes, DataError, Dataset, DatasetName, Split, Tier};
use crate::io::MemoryBudget;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::HashMap;
use std::path::Path;

/// GloVe width.
pub const GLOVE_DIM: usize = 50;
/// Words kept per transcript.
pub const T_MAX: usize = 50;
/// Widths of the synthetic audio and vision cues.
pub(crate) const CUE_DIMS: [usize; 2] = [74, 35];
/// Signal amplitudes of the audio and vision cues per feature and step (noise has unit variance).
/// A readout that averages a clip's steps and features sees an SNR of about
/// `s·sqrt(d·L)·|y|/1.57` — with `s = 0.02`, d = 74 and L = 10 words, ≈ 0.55·|y|/1.57: weak
/// cues, as real acoustic/visual features are for MOSI sentiment. (Amplitudes of 0.5/0.3 leaked the
/// label: a text+cue EF-LSTM reached test MAE 0.16 and Acc2 99.4 %.)
pub const CUE_SNR: [f32; 2] = [0.02, 0.015];

/// What the real-text tier's synthetic audio/vision cues carry.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum CueMode {
    /// The signed label `y/1.57` (redundant with the words).
    #[default]
    Label,
    /// The intensity `|y|/1.57` only (polarity needs the words).
    Intensity,
}

impl CueMode {
    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CueMode::Label => "label",
            CueMode::Intensity => "intensity",
        }
    }
}

/// Reads GloVe text vectors (`word v1 … v50` per line; memory budget:
/// [`crate::io::memory_budget`]).
pub fn load_glove(path: &Path) -> Result<HashMap<String, Vec<f32>>, DataError> {
    let mut budget = MemoryBudget::from_env()?;
    load_glove_with(path, &mut budget)
}

/// [`load_glove`] charging `budget` (the file's text, then each vector as it is stored).
pub fn load_glove_with(
    path: &Path,
    budget: &mut MemoryBudget,
) -> Result<HashMap<String, Vec<f32>>, DataError> {
    let p = path.display().to_string();
    let len = std::fs::metadata(path)
        .map_err(|e| DataError::File {
            path: p.clone(),
            reason: e.to_string(),
        })?
        .len();
    charge(budget, len, path, 0, || "the GloVe file's text".into())?;
    let text = std::fs::read_to_string(path).map_err(|e| DataError::File {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    let mut map = HashMap::new();
    let mut offset = 0u64;
    for (i, line) in text.lines().enumerate() {
        let at = offset;
        offset += line.len() as u64 + 1;
        let mut parts = line.split(' ');
        let word = parts.next().unwrap_or_default().to_string();
        let v: Result<Vec<f32>, _> = parts.map(str::parse::<f32>).collect();
        match v {
            Ok(v) if v.len() == GLOVE_DIM && v.iter().all(|x| x.is_finite()) => {
                // the vector, the word and the map's slot
                let need = (GLOVE_DIM * 4 + word.len() + 64) as u64;
                charge(budget, need, path, at, || {
                    format!("the vector of line {}", i + 1)
                })?;
                map.insert(word, v);
            }
            Ok(v) => {
                return Err(DataError::Line {
                    path: p,
                    line: i + 1,
                    reason: format!(
                        "expected {GLOVE_DIM} finite numbers after the word, found {}",
                        v.len()
                    ),
                })
            }
            Err(e) => {
                return Err(DataError::Line {
                    path: p,
                    line: i + 1,
                    reason: format!("not a number: {e}"),
                })
            }
        }
    }
    if map.is_empty() {
        return Err(DataError::File {
            path: p,
            reason: "no vectors".into(),
        });
    }
    Ok(map)
}

/// One row of `label.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// MOSI: the `id` column (`<video>_<clip>`); MOSEI: `<video_id>$_$<clip_id>` (MMSA's id
    /// form: both parts may contain `_`).
    pub id: String,
    pub text: String,
    pub label: f64,
    /// 0 = train, 1 = dev/valid, 2 = test.
    pub split: usize,
}

/// The two header layouts of MMSA-style label files.
const MOSI_HEADER: [&str; 4] = ["id", "text", "label", "mode"];
const MOSEI_HEADER: [&str; 5] = ["video_id", "clip_id", "text", "label", "mode"];

/// Reads an MMSA-style `label.csv` with a CSV parser (RFC 4180: fields may be quoted, quoted
/// fields may hold commas, doubled quotes and newlines). Two layouts are accepted, told apart by
/// the header: MOSI's `id,text,label,mode` and MOSEI's `video_id,clip_id,text,label,mode` (see
/// [`LabelRow::id`]). `label` must be a finite number in [−3, 3]; `mode` is `train`,
/// `dev`/`valid` or `test`. Every record must have the header's number of fields (a transcript
/// with a comma must be quoted, as pandas and Python's `csv` write it). Errors name the file and
/// the line the record starts on. An id may appear once: an id twice in one split, or in two
/// splits (test leakage), is a [`DataError::DuplicateId`] naming both lines.
pub fn load_labels(path: &Path) -> Result<Vec<LabelRow>, DataError> {
    let mut budget = MemoryBudget::from_env()?;
    load_labels_with(path, &mut budget)
}

/// [`load_labels`] charging `budget` for the rows it keeps.
pub fn load_labels_with(
    path: &Path,
    budget: &mut MemoryBudget,
) -> Result<Vec<LabelRow>, DataError> {
    let p = path.display().to_string();
    let mut first_line: HashMap<String, (u64, usize)> = HashMap::new();
    let file = std::fs::File::open(path).map_err(|e| DataError::File {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(std::io::BufReader::new(file));
    let line_err = |line: u64, reason: String| DataError::Line {
        path: p.clone(),
        line: line as usize,
        reason,
    };
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |pos| pos.line());
        line_err(line, format!("not valid CSV: {e}"))
    };
    let header: Vec<String> = rd
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(DataError::File {
            path: p,
            reason: "empty file".into(),
        });
    }
    let mosei = if header == MOSI_HEADER {
        false
    } else if header == MOSEI_HEADER {
        true
    } else {
        return Err(line_err(
            1,
            format!(
                "expected the header 'id,text,label,mode' (MOSI) or \
                 'video_id,clip_id,text,label,mode' (MOSEI), found '{}'",
                header.join(",")
            ),
        ));
    };
    let n = header.len();
    let mut rows = Vec::new();
    let mut rec = csv::StringRecord::new();
    loop {
        match rd.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_err(e)),
        }
        let line = rec.position().map_or(0, |pos| pos.line());
        let err = |reason: String| line_err(line, reason);
        if rec.len() != n {
            return Err(err(format!(
                "expected {n} columns ({}), found {} (quote a transcript that contains commas)",
                header.join(","),
                rec.len()
            )));
        }
        let label_s = &rec[n - 2];
        let label: f64 = label_s
            .trim()
            .parse()
            .map_err(|_| err(format!("bad label '{label_s}'")))?;
        if !(label.is_finite() && (-3.0..=3.0).contains(&label)) {
            return Err(err(format!("label {label} outside [-3, 3]")));
        }
        let split = match rec[n - 1].trim() {
            "train" => 0,
            "dev" | "valid" => 1,
            "test" => 2,
            other => {
                return Err(err(format!(
                    "unknown split '{other}' (train|dev|valid|test)"
                )))
            }
        };
        let id = if mosei {
            format!("{}$_${}", &rec[0], &rec[1])
        } else {
            rec[0].to_string()
        };
        let names = ["train", "dev", "test"];
        if let Some(&(l0, s0)) = first_line.get(&id) {
            return Err(DataError::DuplicateId {
                path: p.clone(),
                id,
                first: format!("line {l0} ({})", names[s0]),
                second: format!("line {line} ({})", names[split]),
            });
        }
        // the row, its id twice (row and index) and its transcript
        let need = (std::mem::size_of::<LabelRow>() + 2 * id.len() + rec[n - 3].len() + 64) as u64;
        let at = rec.position().map_or(0, |pos| pos.byte());
        charge(budget, need, path, at, || format!("the row of line {line}"))?;
        first_line.insert(id.clone(), (line, split));
        rows.push(LabelRow {
            id,
            text: rec[n - 3].to_string(),
            label,
            split,
        });
    }
    Ok(rows)
}

/// Tokenises a transcript (see the module docs).
pub fn tokenize(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|t| {
            t.to_lowercase()
                .trim_matches(|c: char| !(c.is_alphanumeric() || c == '\''))
                .to_string()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// Loads the real-text MOSI tier from `data_dir` (the folder holding `mosi/` and `glove/`).
pub fn load_mosi(data_dir: &Path, seed: u64) -> Result<Dataset, DataError> {
    load(data_dir, DatasetName::Mosi, seed)
}

/// Loads the real-text MOSEI tier from `data_dir` (the folder holding `mosei/` and `glove/`).
pub fn load_mosei(data_dir: &Path, seed: u64) -> Result<Dataset, DataError> {
    load(data_dir, DatasetName::Mosei, seed)
}

/// Loads the real-text tier of `dataset` (MOSI or MOSEI: UR-FUNNY has no transcripts here) from
/// `data_dir`.
pub fn load(data_dir: &Path, dataset: DatasetName, seed: u64) -> Result<Dataset, DataError> {
    load_with(data_dir, dataset, seed, CueMode::Label)
}

/// [`load`] with a choice of what the cues carry.
pub fn load_with(
    data_dir: &Path,
    dataset: DatasetName,
    seed: u64,
    cues: CueMode,
) -> Result<Dataset, DataError> {
    let (csv_rel, label) = match dataset {
        DatasetName::Mosi => ("mosi/label.csv", "MOSI"),
        DatasetName::Mosei => ("mosei/label.csv", "MOSEI"),
        DatasetName::UrFunny => {
            return Err(DataError::File {
                path: data_dir.display().to_string(),
                reason: "no real-text tier for UR-FUNNY: its transcripts are not available \
                         (use --tier synthetic or --tier full with the SDK pickles)"
                    .into(),
            })
        }
    };
    let csv_path = data_dir.join(csv_rel);
    let mut budget = MemoryBudget::from_env()?;
    let rows = load_labels_with(&csv_path, &mut budget)?;
    let glove = load_glove_with(
        &data_dir.join("glove/glove.6B.50d.mosi-mosei.txt"),
        &mut budget,
    )?;
    // every clip is padded to T_MAX steps: a 10-byte row of label.csv becomes 32 KB here
    let dims = [GLOVE_DIM, CUE_DIMS[0], CUE_DIMS[1]];
    charge(
        &mut budget,
        split_bytes(rows.len(), T_MAX, dims),
        &csv_path,
        0,
        || format!("{} clips × {T_MAX} steps × widths {dims:?}", rows.len()),
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dirs: Vec<Vec<f32>> = CUE_DIMS
        .iter()
        .map(|&d| (0..d).map(|_| StandardNormal.sample(&mut rng)).collect())
        .collect();
    let mut counts = [0usize; 3];
    for r in &rows {
        counts[r.split] += 1;
    }
    let mut splits: Vec<Split> = counts
        .iter()
        .map(|&n| Split::with_capacity(n, T_MAX, [GLOVE_DIM, CUE_DIMS[0], CUE_DIMS[1]]))
        .collect();
    let (mut words, mut oov) = (0usize, 0usize);
    // per split: each clip's cue projections (mean over steps of b·x / |b|^2), for the readout
    let mut proj: [Vec<[f64; 2]>; 3] = Default::default();
    let norms: Vec<f64> = dirs
        .iter()
        .map(|b| b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>())
        .collect();
    for r in &rows {
        let s = &mut splits[r.split];
        let toks = tokenize(&r.text);
        let len = toks.len().clamp(1, T_MAX);
        let y = match cues {
            CueMode::Label => r.label as f32 / 1.57,
            CueMode::Intensity => r.label.abs() as f32 / 1.57,
        };
        let mut pr = [0.0f64; 2];
        for t in 0..T_MAX {
            match toks.get(t).filter(|_| t < T_MAX) {
                Some(w) => {
                    words += 1;
                    match glove.get(w) {
                        Some(v) => s.text.extend_from_slice(v),
                        None => {
                            oov += 1;
                            s.text.extend(std::iter::repeat_n(0.0, GLOVE_DIM));
                        }
                    }
                }
                None => s.text.extend(std::iter::repeat_n(0.0, GLOVE_DIM)),
            }
            for (m, out) in [&mut s.audio, &mut s.vision].into_iter().enumerate() {
                for &b in &dirs[m] {
                    out.push(if t < len {
                        let e: f32 = StandardNormal.sample(&mut rng);
                        let x = CUE_SNR[m] * y * b + e;
                        pr[m] += (b * x) as f64 / (norms[m] * len as f64);
                        x
                    } else {
                        0.0
                    });
                }
            }
        }
        proj[r.split].push(pr);
        s.ids.push(r.id.clone());
        s.words.push(toks.into_iter().take(T_MAX).collect());
        s.lengths.push(len);
        s.labels.push(r.label as f32);
    }
    let mut it = splits.into_iter();
    let (train, valid, test) = (
        it.next().expect("3 splits"),
        it.next().expect("3 splits"),
        it.next().expect("3 splits"),
    );
    for (name, s) in [("train", &train), ("dev", &valid), ("test", &test)] {
        if s.is_empty() {
            return Err(DataError::File {
                path: csv_path.display().to_string(),
                reason: format!("no '{name}' rows"),
            });
        }
    }
    let ceilings = cue_ceilings(&proj[0], &train.labels, &proj[2], &test.labels);
    let ds = Dataset {
        task: super::Task::Regression,
        name: dataset.name().into(),
        tier: Tier::RealText,
        dims: [GLOVE_DIM, CUE_DIMS[0], CUE_DIMS[1]],
        t_max: T_MAX,
        description: format!(
            "real {label} transcripts/labels/splits ({}/{}/{} clips), GloVe-50d words ({:.1}% of {} \
             tokens out of vocabulary -> zero vectors), synthetic audio/vision cues from the {} \
             (amplitudes 0.02/0.015 per feature, unit noise)",
            train.len(),
            valid.len(),
            test.len(),
            100.0 * oov as f64 / words.max(1) as f64,
            words,
            match cues {
                CueMode::Label => "label",
                CueMode::Intensity => "intensity |label| only (cue mode `intensity`)",
            }
        ),
        train,
        valid,
        test,
        ceilings,
        test_subsets: Vec::new(),
    };
    ds.check(&csv_path)?;
    Ok(ds)
}

/// Reference predictors of the real-text tier: the least-squares readout `y ≈ a + b_A p_A + b_V p_V`
/// of the two cue projections (fit on train, scored on test) — what the synthetic cues alone can
/// tell — and the train-mean predictor.
fn cue_ceilings(
    p_train: &[[f64; 2]],
    y_train: &[f32],
    p_test: &[[f64; 2]],
    y_test: &[f32],
) -> Vec<super::Ceiling> {
    let y: Vec<f64> = y_train.iter().map(|v| *v as f64).collect();
    let label: Vec<f64> = y_test.iter().map(|v| *v as f64).collect();
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let mut out = Vec::new();
    if let Some(w) = least_squares_3(p_train, &y) {
        let pred: Vec<f64> = p_test
            .iter()
            .map(|p| w[0] + w[1] * p[0] + w[2] * p[1])
            .collect();
        out.push(super::Ceiling::regression(
            "audio+vision cues only: least-squares readout of the cue projections (fit on train)",
            &pred,
            &label,
        ));
    }
    out.push(super::Ceiling::regression(
        "train-mean predictor",
        &vec![mean; label.len()],
        &label,
    ));
    out
}

/// Ordinary least squares with an intercept on two features (normal equations, 3×3 Cramer).
fn least_squares_3(x: &[[f64; 2]], y: &[f64]) -> Option<[f64; 3]> {
    let mut a = [[0.0f64; 3]; 3];
    let mut b = [0.0f64; 3];
    for (xi, yi) in x.iter().zip(y) {
        let r = [1.0, xi[0], xi[1]];
        for i in 0..3 {
            b[i] += r[i] * yi;
            for j in 0..3 {
                a[i][j] += r[i] * r[j];
            }
        }
    }
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&a);
    if !d.is_finite() || d.abs() < 1e-12 {
        return None;
    }
    let mut w = [0.0; 3];
    for (k, wk) in w.iter_mut().enumerate() {
        let mut m = a;
        for i in 0..3 {
            m[i][k] = b[i];
        }
        *wk = det(&m) / d;
    }
    Some(w)
}
