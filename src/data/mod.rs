//! Datasets in three tiers (see the README): `synthetic` (a seeded generator with a known
//! information structure), `real-text` (real MOSI transcripts, labels and splits, GloVe words,
//! synthetic audio/visual cues), and `full` (researchers' own feature files: MMSA pickles,
//! UR-FUNNY pickles, CMU-SDK `.csd`; see [`mmsa`], [`urfunny`], [`csd`]).

pub mod csd;
pub mod inspect;
pub mod mmsa;
pub mod pickle;
pub mod realtext;
pub mod synthetic;
pub mod urfunny;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a data file could not be used.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{path}, byte offset {offset}: {reason}")]
    Offset {
        path: String,
        offset: usize,
        reason: String,
    },
    #[error("{path}, line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
}

/// The experiment tier: where the features come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Synthetic,
    RealText,
    /// Researchers' own feature files (MMSA pickles, UR-FUNNY pickles), read natively.
    Full,
}

impl Tier {
    /// Name used in tables and files.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Synthetic => "synthetic",
            Tier::RealText => "real-text",
            Tier::Full => "full",
        }
    }
}

/// What is predicted: a real-valued label (MOSI/MOSEI sentiment in [−3, 3]) or a binary one
/// (UR-FUNNY humour, labels 0/1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    #[default]
    Regression,
    Binary,
}

/// One split: padded sequences `N × T × d_m` per modality (row-major f32), valid lengths, labels.
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub ids: Vec<String>,
    pub text: Vec<f32>,
    pub audio: Vec<f32>,
    pub vision: Vec<f32>,
    pub lengths: Vec<usize>,
    pub labels: Vec<f32>,
}

impl Split {
    /// Samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct SeqBatch {
    /// `B × T × d_m` for text, audio, vision (`T` = the batch's longest valid length).
    pub inputs: [Tensor; 3],
    /// Valid lengths (≥ 1).
    pub lengths: Vec<usize>,
    /// `B × T` one-hot of the last valid step.
    pub last: Tensor,
    /// `B × T` 1 on valid steps, 0 on padding.
    pub mask: Tensor,
    /// `B` labels.
    pub label: Tensor,
}

/// A dataset with its three splits and what is known about it.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub tier: Tier,
    /// Regression or binary classification.
    pub task: Task,
    /// Widths of text, audio, vision.
    pub dims: [usize; 3],
    /// Padded sequence length.
    pub t_max: usize,
    pub train: Split,
    pub valid: Split,
    pub test: Split,
    /// Human-readable description of the data and its known structure.
    pub description: String,
    /// Reference predictors on the test split (oracle, single-modality ceilings), when known.
    pub ceilings: Vec<Ceiling>,
}

/// A reference predictor's test metrics (e.g. the Bayes-optimal predictor from the latents).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ceiling {
    pub name: String,
    pub mae: f64,
    pub acc2: f64,
}

impl Dataset {
    /// A batch of the rows `idx` of `split`, with modalities in `drop` replaced by zeros
    /// (0 = text, 1 = audio, 2 = vision).
    pub fn batch(
        &self,
        split: &Split,
        idx: &[usize],
        drop: &[usize],
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<SeqBatch> {
        let tm = self.t_max;
        let b = idx.len();
        let lengths: Vec<usize> = idx.iter().map(|&i| split.lengths[i].clamp(1, tm)).collect();
        // padding is at the end: the batch only needs its longest sequence's steps
        let t = lengths.iter().copied().max().unwrap_or(1);
        let gather = |src: &[f32], d: usize, m: usize| -> candle_core::Result<Tensor> {
            let mut v = Vec::with_capacity(b * t * d);
            if drop.contains(&m) {
                v.resize(b * t * d, 0.0);
            } else {
                for &i in idx {
                    v.extend_from_slice(&src[i * tm * d..i * tm * d + t * d]);
                }
            }
            Tensor::from_vec(v, (b, t, d), device)?.to_dtype(dtype)
        };
        let [dt, da, dv] = self.dims;
        let mut last = vec![0f32; b * t];
        let mut mask = vec![0f32; b * t];
        for (r, &l) in lengths.iter().enumerate() {
            last[r * t + l - 1] = 1.0;
            for s in 0..l {
                mask[r * t + s] = 1.0;
            }
        }
        let labels: Vec<f32> = idx.iter().map(|&i| split.labels[i]).collect();
        Ok(SeqBatch {
            inputs: [
                gather(&split.text, dt, 0)?,
                gather(&split.audio, da, 1)?,
                gather(&split.vision, dv, 2)?,
            ],
            lengths,
            last: Tensor::from_vec(last, (b, t), device)?.to_dtype(dtype)?,
            mask: Tensor::from_vec(mask, (b, t), device)?.to_dtype(dtype)?,
            label: Tensor::from_vec(labels, b, device)?.to_dtype(dtype)?,
        })
    }
}

/// Facts about the real MOSI label distribution (from `mosi/label.csv`, 2195 clips), used to give
/// the synthetic labels MOSI's shape: counts of labels rounded to −3..3, the share of labels that are
/// exactly 0, and the mean transcript length in words (median 10, max 114).
pub mod mosi_facts {
    /// Counts of `round(label)` for −3, −2, …, 3.
    pub const ROUNDED_COUNTS: [f64; 7] = [80.0, 383.0, 404.0, 402.0, 379.0, 462.0, 85.0];
    /// Share of labels exactly 0.
    pub const EXACT_ZERO: f64 = 0.0437;
    /// Median and mean words per transcript.
    pub const MEDIAN_WORDS: f64 = 10.0;
    pub const MEAN_WORDS: f64 = 12.6;
    /// Standard split sizes of Table 1.
    pub const SPLITS: [usize; 3] = [1284, 229, 686];
}
