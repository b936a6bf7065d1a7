//! The arguments of the `synergy` command line: the top-level [`Cli`] and [`Command`], and each
//! subcommand's options (clap's derive types; their doc comments are the `--help` text).

use crate::estimators::{MineParams, MmdVariant};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Estimators and metrics of the neural-synergy harness on `.npy` files (rows = samples).
#[derive(Debug, Parser)]
#[command(name = "synergy", version, about)]
pub struct Cli {
    /// Print one JSON object on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a reference estimator.
    #[command(subcommand)]
    Estimate(Estimate),
    /// Train a small synthetic fusion model with the C-network (Algorithm D); print the losses
    /// and write a PNG plot.
    TrainDemo {
        #[arg(long, default_value_t = 300)]
        steps: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, value_enum, default_value_t = DivArg::Mmd)]
        divergence: DivArg,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// PNG plot of the loss curves.
        #[arg(long, default_value = "train-demo.png")]
        plot: PathBuf,
        /// Print a table row every this many steps.
        #[arg(long, default_value_t = 25)]
        every: usize,
    },
    /// Parity of the Candle losses on a device against the CPU f64 reference, and timings.
    CheckDevice {
        /// Use CUDA device 0 (needs a build with `--features cuda`).
        #[arg(long)]
        cuda: bool,
        /// Also time forward+backward of the synergy losses at batch 64 and 256, d = 128.
        #[arg(long)]
        bench: bool,
        #[arg(long, default_value_t = 50)]
        iters: usize,
    },
    /// Feature files of the full tier (MMSA pickles, UR-FUNNY folders, CMU-SDK .csd).
    #[command(subcommand)]
    Data(DataCmd),
    /// Encode sentences (one per line on stdin) with a pretrained BERT: token ids, attention
    /// masks, \[CLS\] and masked-mean vectors (see scripts/fetch-encoder.sh).
    EncodeText(crate::app::encode_text::EncodeTextArgs),
    /// MOSI/MOSEI regression metrics (MMSA conventions) of predictions against labels.
    Metrics {
        /// Predictions, 1-D .npy.
        #[arg(long)]
        pred: PathBuf,
        /// Labels in [-3, 3], 1-D .npy.
        #[arg(long)]
        label: PathBuf,
    },
    /// BROJA partial information decomposition of I(Y; X1, X2), in bits: redundancy, unique
    /// information of each input, synergy (docs/src/pid.md).
    Pid(PidArgs),
    /// The PID of a data tier's label (sign, or UR-FUNNY's 0/1) against (text, audio+vision) and
    /// (audio, vision) clip codes, with a permutation null, on all test clips and on each test
    /// subset (docs/src/synergy-measured.md).
    PidTier(PidTierArgs),
    /// Adds the test clips' text and audio+vision PID codes to a results folder's run.json (for
    /// the PID of the runs' predictions in its report): rebuilds the data run.json describes and
    /// refuses when its test clips or labels differ.
    PidCodes(PidCodesArgs),
}

/// Arguments of `synergy pid-tier`.
#[derive(Debug, Args)]
pub struct PidTierArgs {
    /// The data tier.
    #[arg(long, value_enum)]
    pub tier: crate::data::Tier,
    /// The corpus.
    #[arg(long, value_enum)]
    pub dataset: crate::data::DatasetName,
    /// The folder holding mosi/, mosei/ and glove/ (real-text tier), or the full tier's file or
    /// folder.
    #[arg(long, value_name = "D")]
    pub data_dir: Option<PathBuf>,
    /// k-means clusters per input, fitted on the train split.
    #[arg(long, value_name = "K", default_value_t = crate::experiments::synergy_pid::DEFAULT_CLUSTERS)]
    pub clusters: usize,
    /// Permutations of the label in the null.
    #[arg(long, value_name = "N", default_value_t = crate::experiments::synergy_pid::DEFAULT_DRAWS)]
    pub draws: usize,
    /// Seed of the k-means and of the permutations.
    #[arg(long, default_value_t = crate::experiments::synergy_pid::DEFAULT_SEED)]
    pub seed: u64,
    /// What the real-text tier's audio/vision cues carry.
    #[arg(long, value_enum, default_value_t = crate::data::realtext::CueMode::Label)]
    pub cues: crate::data::realtext::CueMode,
    /// The split measured (valid: for design checks that must not look at test numbers).
    #[arg(long, value_enum, default_value_t = crate::experiments::synergy_pid::EvalSplit::Test)]
    pub split: crate::experiments::synergy_pid::EvalSplit,
}

/// Arguments of `synergy pid-codes`.
#[derive(Debug, Args)]
pub struct PidCodesArgs {
    /// The results folder (its run.json is rewritten, atomically, with the codes added).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The data folder for the real-text tier (the folder holding mosi/, mosei/ and glove/), or
    /// the full tier's file or folder.
    #[arg(long, value_name = "D")]
    pub data_dir: Option<PathBuf>,
}

/// Arguments of `synergy pid`.
#[derive(Debug, Args)]
pub struct PidArgs {
    /// First input: 1-D integer codes (any integer dtype, or floats holding integers); with
    /// --clusters, a float feature matrix (rows = samples; 1-D is one feature).
    #[arg(long)]
    pub x1: PathBuf,
    /// Second input, like --x1.
    #[arg(long)]
    pub x2: PathBuf,
    /// Target: 1-D integer codes.
    #[arg(long)]
    pub y: PathBuf,
    /// Discretise --x1 and --x2 by k-means with K clusters each, fitted on the given rows (PCA to
    /// 10 components first when wider).
    #[arg(long, value_name = "K")]
    pub clusters: Option<usize>,
    /// Permutation null: shuffle Y N times and report the null synergy's mean, 95th percentile
    /// and the permutation p-value.
    #[arg(long, value_name = "N")]
    pub null: Option<usize>,
    /// Seed of the k-means initialisation and of the permutations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `synergy data …`.
#[derive(Debug, Subcommand)]
pub enum DataCmd {
    /// Load each file as the loaders do and print, per split, the number of samples and each
    /// modality's (and the labels') shape, sum and sum of squares (f64); for a .csd the number of
    /// videos, rows, feature width, sum and sum of squares of all features.
    Inspect {
        /// MMSA pickles (.pkl), UR-FUNNY folders, .csd files, or folders of .csd files with a
        /// label.csv (a dataset, as `reproduce-paper --tier full` reads it).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The format (default: .csd → csd, a folder with .csd files → csd-set, another folder →
        /// urfunny, anything else → mmsa).
        #[arg(long, value_enum)]
        format: Option<DataFormat>,
    },
}

/// Feature-file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    Mmsa,
    Csd,
    CsdSet,
    Urfunny,
}

/// The estimators.
#[derive(Debug, Subcommand)]
pub enum Estimate {
    /// MMD² under the (mean) Gaussian kernel.
    Mmd(MmdArgs),
    /// KL(P‖Q) from samples x ~ P, y ~ Q.
    Kl {
        #[arg(long)]
        x: PathBuf,
        #[arg(long)]
        y: PathBuf,
        /// gauss: Gaussian plug-in; knn: Wang–Kulkarni–Verdú.
        #[arg(long, value_enum)]
        method: KlMethod,
        /// Neighbour order of the kNN estimator.
        #[arg(long, default_value_t = 1)]
        k: usize,
    },
    /// Donsker–Varadhan and NWJ bounds from critic values.
    Dv {
        /// Critic values on samples of P, 1-D .npy.
        #[arg(long)]
        tp: PathBuf,
        /// Critic values on samples of Q, 1-D .npy.
        #[arg(long)]
        tq: PathBuf,
    },
    /// MINE: KL(P‖Q) by maximising the DV bound over an MLP critic (held-out bound reported).
    Mine {
        #[arg(long)]
        x: PathBuf,
        #[arg(long)]
        y: PathBuf,
        #[arg(long, default_value_t = MineParams::default().steps)]
        steps: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = MineParams::default().hidden)]
        hidden: usize,
        #[arg(long, default_value_t = MineParams::default().batch)]
        batch: usize,
        #[arg(long, default_value_t = MineParams::default().lr)]
        lr: f64,
    },
    /// Mardia's multivariate kurtosis b2,p and its z statistic.
    Kurtosis {
        #[arg(long)]
        x: PathBuf,
    },
    /// Streaming regularised kurtosis (the paper's L_kappa) over K batches of a K x N x p array.
    KurtosisEma {
        #[arg(long)]
        batches: PathBuf,
        #[arg(long)]
        alpha: f64,
        #[arg(long)]
        ridge: f64,
        /// Row-norm clip of the covariance update (default: no clipping).
        #[arg(long, default_value_t = f64::INFINITY)]
        clip: f64,
    },
}

/// Arguments of `estimate mmd`.
#[derive(Debug, Args)]
pub struct MmdArgs {
    #[arg(long)]
    pub x: PathBuf,
    #[arg(long)]
    pub y: PathBuf,
    #[arg(long, value_enum, default_value_t = VariantArg::Unbiased)]
    pub variant: VariantArg,
    /// Kernel bandwidth sigma (repeat for a mean over several kernels).
    #[arg(
        long = "bandwidth",
        allow_negative_numbers = true,
        required_unless_present = "median",
        conflicts_with = "median"
    )]
    pub bandwidth: Vec<f64>,
    /// Median heuristic: sigma_med x {0.25, 0.5, 1, 2, 4}.
    #[arg(long)]
    pub median: bool,
}

/// MMD variants on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VariantArg {
    Biased,
    Unbiased,
    Linear,
}

impl From<VariantArg> for MmdVariant {
    fn from(v: VariantArg) -> Self {
        match v {
            VariantArg::Biased => MmdVariant::Biased,
            VariantArg::Unbiased => MmdVariant::Unbiased,
            VariantArg::Linear => MmdVariant::Linear,
        }
    }
}

/// Divergences of `L_d` on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DivArg {
    Mmd,
    Kl,
}

/// KL methods on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KlMethod {
    Gauss,
    Knn,
}
