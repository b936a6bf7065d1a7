//! Datasets in three tiers (see docs/src/data-tiers.md): `synthetic` (seeded generators with a known
//! information structure, shaped like MOSI, MOSEI or UR-FUNNY), `real-text` (real MOSI or MOSEI
//! transcripts, labels and splits, GloVe words, synthetic audio/visual cues), and `full`
//! (researchers' own feature files: MMSA pickles, UR-FUNNY pickles, a set of CMU-SDK `.csd`
//! files; see [`mmsa`], [`urfunny`], [`csd`]). Which corpus a run is about is a [`DatasetName`].
//!
//! Files: `dataset.rs` ([`Dataset`], [`Split`], the checks every loader runs), `batch.rs` ([`SeqBatch`],
//! [`DeviceSplit`]), `error.rs` ([`DataError`], charging the memory budget), one file or folder
//! per format ([`pickle`], [`mmsa`], [`urfunny`], [`csd`], [`realtext`], [`bert`]), the
//! generators ([`synthetic`]) and [`inspect`]; this file: the tier and corpus names and
//! [`load_full`].

mod batch;
pub mod bert;
pub mod csd;
mod dataset;
mod error;
pub mod inspect;
pub mod mmsa;
pub mod pickle;
pub mod realtext;
pub mod synthetic;
pub mod urfunny;

pub use batch::{DeviceSplit, SeqBatch};
pub(crate) use dataset::{check_unique_ids, split_bytes};
pub use dataset::{same_data, split_token_note, Ceiling, Dataset, Split, TestSubset, TOKEN_NOTE};
pub use error::DataError;
pub(crate) use error::{charge, FieldError};

use serde::{Deserialize, Serialize};

/// The experiment tier: where the features come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Synthetic,
    RealText,
    /// Researchers' own feature files (MMSA pickles, UR-FUNNY pickles, a set of .csd files),
    /// read natively (see `load_full`).
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

/// The corpus an experiment is about (`reproduce-paper --dataset`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DatasetName {
    /// CMU-MOSI (sentiment regression in [−3, 3]).
    #[default]
    Mosi,
    /// CMU-MOSEI (sentiment regression in [−3, 3]).
    Mosei,
    /// UR-FUNNY (binary humour).
    #[value(name = "urfunny", alias = "ur-funny")]
    UrFunny,
}

impl DatasetName {
    /// Name used in files, keys and `--dataset`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetName::Mosi => "mosi",
            DatasetName::Mosei => "mosei",
            DatasetName::UrFunny => "urfunny",
        }
    }

    /// Name used in table headers.
    pub fn label(self) -> &'static str {
        match self {
            DatasetName::Mosi => "CMU-MOSI",
            DatasetName::Mosei => "CMU-MOSEI",
            DatasetName::UrFunny => "UR-FUNNY",
        }
    }

    /// The task of the corpus.
    pub fn task(self) -> Task {
        match self {
            DatasetName::Mosi | DatasetName::Mosei => Task::Regression,
            DatasetName::UrFunny => Task::Binary,
        }
    }

    /// Training clips of the corpus's standard split (Table 1; the synthetic tiers generate
    /// exactly these, the real-text tier's label files hold within 0.5 % of them): what a cost
    /// measured on one corpus is scaled by to project another.
    pub fn train_clips(self) -> usize {
        match self {
            DatasetName::Mosi => mosi_facts::SPLITS[0],
            DatasetName::Mosei => mosei_facts::SPLITS[0],
            DatasetName::UrFunny => urfunny_facts::FOLDS[0],
        }
    }

    /// The paper's table with this corpus's main results (2: MOSI, 3: MOSEI, 6: UR-FUNNY; Table 5,
    /// the ablation on MOSEI, is looked up per variant).
    pub fn paper_table(self) -> u8 {
        match self {
            DatasetName::Mosi => 2,
            DatasetName::Mosei => 3,
            DatasetName::UrFunny => 6,
        }
    }

    /// The corpus a [`Dataset::name`] stands for, when known: `mosi`, `mosei`, `urfunny` and
    /// the loaders' prefixed/suffixed forms (`mmsa-mosei`, `csd-mosi`, `urfunny-v1`, …);
    /// `None` for a file whose corpus the loader could not tell (e.g. `mmsa-custom`).
    pub(crate) fn of_dataset(name: &str) -> Option<Self> {
        let base = name
            .strip_prefix("mmsa-")
            .or_else(|| name.strip_prefix("csd-"))
            .unwrap_or(name);
        let base = base.split('-').next().unwrap_or(base);
        match base {
            "mosi" => Some(DatasetName::Mosi),
            "mosei" => Some(DatasetName::Mosei),
            "urfunny" => Some(DatasetName::UrFunny),
            _ => None,
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

/// Loads a `full`-tier path: a folder of UR-FUNNY SDK pickles ([`urfunny::load`]), a folder
/// of `.csd` files ([`csd::load_set`]), or an MMSA pickle ([`mmsa::load`], `text` features).
pub fn load_full(path: &std::path::Path) -> Result<Dataset, DataError> {
    if path.is_dir() {
        if csd::is_set(path) {
            csd::load_set(path)
        } else {
            urfunny::load(path)
        }
    } else {
        mmsa::load(path, mmsa::TextFeatures::Text)
    }
}

/// Facts about the real MOSI label distribution (from `mosi/label.csv`, 2195 clips), used to give
/// the synthetic labels MOSI's shape: counts of labels rounded to −3..3, the share of labels that are
/// exactly 0, and the mean transcript length in words (median 10, max 114).
pub mod mosi_facts {
    /// Counts of `round(label)` for −3, −2, …, 3.
    pub const ROUNDED_COUNTS: [f64; 7] = [80.0, 383.0, 404.0, 402.0, 379.0, 462.0, 85.0];
    /// Share of labels exactly 0.
    pub(crate) const EXACT_ZERO: f64 = 0.0437;
    /// Median and mean words per transcript.
    pub const MEDIAN_WORDS: f64 = 10.0;
    pub const MEAN_WORDS: f64 = 12.6;
    /// Standard split sizes of Table 1.
    pub const SPLITS: [usize; 3] = [1284, 229, 686];
}

/// Facts about the real MOSEI labels (`mosei/label.csv`, 22788 clips), used to give the synthetic
/// MOSEI-shaped tier MOSEI's label distribution. Computed by `python3 scripts/data_facts.py
/// ../shared/data` (standard library only); the `data_tiers` tests recompute them from the file
/// when `SYNERGY_SHARED` is set.
pub mod mosei_facts {
    /// Counts of `6·label` (MOSEI labels are means of annotators' integer scores: every label is
    /// a multiple of 1/6) for `6·label` = −18, −17, …, 18.
    pub const LABEL_COUNTS: [f64; 37] = [
        126.0, 0.0, 279.0, 0.0, 411.0, 0.0, 647.0, 0.0, 756.0, 0.0, 828.0, 0.0, 883.0, 0.0, 1118.0,
        4.0, 1528.0, 3.0, 4972.0, 11.0, 2989.0, 11.0, 2507.0, 7.0, 1881.0, 3.0, 1404.0, 8.0,
        1009.0, 2.0, 737.0, 0.0, 396.0, 1.0, 206.0, 0.0, 61.0,
    ];
    /// Population standard deviation of the labels.
    pub const LABEL_SD: f64 = 1.1154;
    /// Median and mean words per transcript (the real-text tokenizer's words).
    pub const MEDIAN_WORDS: f64 = 17.0;
    pub const MEAN_WORDS: f64 = 19.72;
    /// Split sizes of the MMSA/MulT pickles the paper uses (Table 1); `label.csv` has
    /// 16274/1861/4653 of them.
    pub const SPLITS: [usize; 3] = [16326, 1871, 4659];
}

/// Facts about UR-FUNNY's official folds (`urfunny/v1/data_folds.pkl`,
/// `urfunny/v1/humor_label_sdk.pkl`), used by the synthetic UR-FUNNY-shaped tier. Computed by
/// `python3 scripts/data_facts.py ../shared/data`; checked against the files by the `data_tiers`
/// tests when `SYNERGY_SHARED` is set.
pub mod urfunny_facts {
    /// Clips in the train / dev / test folds.
    pub const FOLDS: [usize; 3] = [10598, 2626, 3290];
    /// Humorous clips (label 1) per fold.
    pub const HUMOROUS: [usize; 3] = [5306, 1313, 1638];
    /// Widths of UR-FUNNY V1's features: GloVe-840B 300 words, COVAREP 81, OpenFace 75.
    pub const DIMS: [usize; 3] = [300, 81, 75];
}
