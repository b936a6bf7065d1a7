//! The arguments of `reproduce-paper`: the top-level [`ReproduceArgs`] and its
//! [`ReproduceCommand`]s, the options of `run` and `plan` ([`RunArgs`]) and their value types
//! ([`MisaText`], [`DeviceArg`]) — clap's derive types; their doc comments are the `--help` text.

use super::folder::MIB;
use crate::data::realtext::CueMode;
use crate::data::{DatasetName, Tier};
use crate::experiments::shard::Shard;
use crate::experiments::Profile;
use crate::models::ModelKind;
use crate::train::Variant;
use anyhow::Result;
use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// MISA's text path (`--misa-text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MisaText {
    /// The tier's word vectors through MISA's BiLSTM–LayerNorm–BiLSTM stack.
    Lstm,
    /// A fine-tunable BERT over the clip's word-pieces, masked mean of its last hidden state.
    Bert,
}

/// The paper's experiments: train, plan, re-render, compact, compare with the paper.
#[derive(Debug, Parser)]
#[command(name = "reproduce-paper", version)]
#[command(
    about = "Train the paper's models with and without the synergy regulariser and report measured vs expected tables",
    long_about = "Train the paper's models with and without the synergy regulariser and report measured vs \
expected tables (paired confidence intervals, verdicts, Holm). Without a subcommand, `run` is meant: \
`reproduce-paper --profile smoke` is `reproduce-paper run --profile smoke`."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReproduceArgs {
    #[command(subcommand)]
    pub command: Option<ReproduceCommand>,
    /// The options of `run` (the default subcommand).
    #[command(flatten)]
    pub run: RunArgs,
}

/// The options of `run` and `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// smoke (a subsample, ≤ 4 epochs), quick (full data, one grid point, ≤ 10 epochs), paper
    /// (full grid, ≥ 5 seeds).
    #[arg(long, value_enum, default_value_t = Profile::Quick)]
    pub profile: Profile,
    /// synthetic (embedded generator), real-text (real MOSI transcripts + GloVe; needs --data-dir)
    /// or full (your own feature file; needs --data).
    #[arg(long, value_enum, default_value_t = Tier::Synthetic)]
    pub tier: Tier,
    /// mosi, mosei or urfunny (binary): which corpus the synthetic tier imitates and the
    /// real-text tier reads (MOSI, MOSEI); the full tier reads whatever its file is.
    #[arg(long, value_enum, default_value_t = DatasetName::Mosi)]
    pub dataset: DatasetName,
    /// Comma-separated models (default: all registered, in table order).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub models: Option<Vec<ModelKind>>,
    /// real-text: the folder holding mosi/ (or mosei/) label.csv and glove/ (e.g.
    /// ../shared/data); full: an MMSA pickle (aligned_50.pkl), a UR-FUNNY folder, or a folder of
    /// .csd files with a label.csv (`--data` is the same flag).
    #[arg(long, visible_alias = "data")]
    pub data_dir: Option<PathBuf>,
    /// Comma-separated variants (default: Table 2's nll,nll-skl,nll-smmd; nll-iwas adds the IWas
    /// baseline of Table 3).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub variants: Option<Vec<Variant>>,
    /// Comma-separated seeds (default: 0 for smoke/quick, 0..4 for paper).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Output folder: table.md, table.json, table.csv, report.html and the resumable
    /// results.jsonl (default: runs/PROFILE-DATASET-TIER, e.g. runs/quick-mosi-synthetic; a
    /// second run with the same options resumes there).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads for Candle's CPU kernels (default: 1, measured fastest for these models).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Cap on training epochs per run (default: the profile's; 1 times one epoch per model).
    #[arg(long)]
    pub max_epochs: Option<usize>,
    /// Independent runs of the grid trained in parallel, each on one thread (results identical to
    /// a sequential run; only the order of lines in results.jsonl differs).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Comma-separated learning rates replacing the profile's (the grid is the batch sizes ×
    /// these; each seed's selection on validation chooses among them), e.g. `--lr 5e-4,1e-4`
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub lr: Option<Vec<f64>>,
    /// Comma-separated batch sizes replacing the profile's (the grid is these × the learning
    /// rates)
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub batch_size: Option<Vec<usize>>,
    /// Run only shard K of N of the grid (0 <= K < N; e.g. a Slurm array task:
    /// `--shard $SLURM_ARRAY_TASK_ID/N`). Each shard appends to its own
    /// results.shard-K-of-N.jsonl in --out; `reproduce-paper report --from OUT` merges them.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// real-text tier: what the synthetic audio/vision cues carry — `label` (the signed label:
    /// redundant with the words; their readout alone reaches ~70 Acc2 on MOSI) or `intensity`
    /// (|label| only: polarity needs the words).
    #[arg(long, value_enum, default_value_t = CueMode::Label)]
    pub cues: CueMode,
    /// Comma-separated paper tables to run (2-6, all on one corpus: 2,4 on MOSI; 3,5 on MOSEI; 6 on
    /// UR-FUNNY): trains exactly the (model, variant) pairs those tables contain, for the models
    /// this build has, on their corpus; --models / --variants narrow it further.
    #[arg(long, value_delimiter = ',')]
    pub tables: Option<Vec<u8>>,
    /// BERT checkpoint folder (config.json, model.safetensors, tokenizer.json) for MAGBERT and
    /// MIM (default: $NEURAL_SYNERGY_TEXT_ENCODER, else scripts/fetch-encoder.sh's cache).
    #[arg(long, value_name = "DIR")]
    pub text_encoder: Option<PathBuf>,
    /// MISA's text path: `lstm` (the tier's word vectors through MISA's BiLSTM stack) or `bert`
    /// (MMSA's MISA: the --text-encoder checkpoint, fine-tuned, masked mean of its last hidden
    /// state; reads word-pieces, so the real-text tier only). Use a separate --out per path: both
    /// are the "MISA" row.
    #[arg(long, value_enum, default_value_t = MisaText::Lstm)]
    pub misa_text: MisaText,
    /// Freeze BERT in MIM, BERT-MISA and MAGBERT (default: fine-tuned, as MMSA). MIM and BERT-MISA
    /// then compute each clip's BERT vector once and cache it on disk
    /// (~/.cache/neural-synergy/features, or $NEURAL_SYNERGY_CACHE/features); MAGBERT still runs
    /// BERT at every step (its gate acts inside BERT).
    #[arg(long)]
    pub frozen_bert: bool,
    /// A wall-clock budget for this command (a Slurm job's --time, what is left of a session): a
    /// run starts only when it is projected to end within it (its epoch cap × the slowest
    /// measured seconds per epoch on this data in --out); the runs that do not fit are left for
    /// the next command, which resumes them. Minutes (90), Slurm's forms (1:30:00, 1-12) or
    /// units (2h30m).
    #[arg(long, value_name = "DURATION")]
    pub time_limit: Option<crate::experiments::TimeLimit>,
    /// Same as the `plan` subcommand (kept for old scripts).
    #[arg(long, hide = true)]
    pub plan: bool,
    /// Same as the `expected` subcommand (kept for old scripts).
    #[arg(long, hide = true)]
    pub expected: bool,
    /// JSON on stdout instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// No progress display (neither the live one on a terminal nor the plain lines otherwise).
    #[arg(long)]
    pub quiet: bool,
    /// Weight β of L_reg in the task model's objective (default 0.01).
    #[arg(long)]
    pub beta: Option<f64>,
    /// γ_L2 of the reconstruction loss (default 1; 0.01 on a binary task such as UR-FUNNY; 0 disables it).
    #[arg(long)]
    pub gamma_l2: Option<f64>,
    /// γ_d of the alignment loss (default 1; 0 disables it).
    #[arg(long)]
    pub gamma_d: Option<f64>,
    /// γ_κ of the kurtosis penalty (default 0.1; 0 disables it).
    #[arg(long)]
    pub gamma_k: Option<f64>,
    /// Choose a synergy weight on validation: `WEIGHT=V1,V2,...` (beta, gamma_l2, gamma_d,
    /// gamma_k; repeat the flag for several). The synergy variants' runs take every combination,
    /// at every grid point, and each seed's selection on validation picks the weights together
    /// with the batch size and learning rate. Multiplies those variants' runs.
    #[arg(long, value_name = "WEIGHT=VALUES")]
    pub tune: Vec<String>,
    /// Set a model hyper-parameter for every run of that model, baseline included:
    /// `MODEL.FIELD=VALUE` (e.g. `magbert.beta_shift=0.1`; nested fields with dots,
    /// `misa.bert.finetune=false`; repeat the flag for several). FIELD is a name of the model's
    /// configuration as results.jsonl stores it; the value is checked before anything trains. The
    /// runs get their own keys, and run.json and the tables record the settings.
    #[arg(long, value_name = "MODEL.FIELD=VALUE")]
    pub model_param: Vec<String>,
    /// Where to train: cpu (default) or cuda (GPU 0; needs a build with `--features cuda`). GPU
    /// runs get their own run keys (a CPU run in --out never stands in for a GPU run).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// The CPU (Candle's CPU backend; `--threads` per run, `--jobs` runs at once).
    Cpu,
    /// CUDA GPU 0 (a build with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    /// The candle device; a clear error when CUDA is not available.
    pub fn device(self) -> Result<candle_core::Device> {
        match self {
            DeviceArg::Cpu => Ok(candle_core::Device::Cpu),
            DeviceArg::Cuda => candle_core::Device::new_cuda(0).map_err(|e| {
                anyhow::anyhow!(
                    "--device cuda: no CUDA device ({}); it needs a build with --features cuda on a GPU machine",
                    e.to_string().lines().next().unwrap_or("unknown error")
                )
            }),
        }
    }
}

/// Subcommands (without one, `reproduce-paper` runs `run`).
#[derive(Debug, clap::Subcommand)]
pub enum ReproduceCommand {
    /// Train the plan (resuming the runs already in --out) and write the tables, plots and
    /// report.html; the default subcommand.
    Run(RunArgs),
    /// Print the cost of a plan (runs per model and variant, projected hours from measured
    /// per-epoch times) without training; takes the options of `run`.
    Plan(RunArgs),
    /// Print the paper's Tables 2-6 (the expected values the reports compare with).
    Expected {
        /// JSON on stdout instead of markdown.
        #[arg(long)]
        json: bool,
    },
    /// Re-render the tables (with CIs and verdicts) of a results directory without training.
    Report {
        /// The folder of an earlier run: run.json and results.jsonl and/or the shards'
        /// results.shard-K-of-N.jsonl files, which are merged. Repeat it to render one table
        /// from folders on the same data (e.g. one model per folder; needs --out).
        #[arg(long, required = true)]
        from: Vec<PathBuf>,
        /// Where the tables of several --from folders go (default with one: that folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// JSON on stdout instead of markdown.
        #[arg(long)]
        json: bool,
    },
    /// Drop the saved predictions of the runs no table uses (the unselected grid points of every
    /// finished seed) from a results directory, to keep it small enough to commit; the tables
    /// re-render identically. Run it when no training writes into the folder.
    Compact {
        /// The results folder (results.jsonl and/or results.shard-K-of-N.jsonl).
        #[arg(long)]
        from: PathBuf,
        /// Then split every results file larger than this many MiB into archive parts
        /// (results.part-NNN.jsonl) of whole records, each at most this size; readers and a
        /// resume merge them.
        #[arg(long, default_value_t = crate::experiments::compact::DEFAULT_MAX_FILE_BYTES as f64 / MIB)]
        max_file_mib: f64,
    },
    /// One page of every claim of the paper (Tables 2-6) against the best measurement of it in
    /// the results folders under a root, per tier, with counts, the text-only controls and the
    /// paper's NLL baselines beside the community's; no training.
    Scoreboard {
        /// The folder holding the results folders (each with a run.json), e.g. results.
        #[arg(long)]
        from: PathBuf,
        /// Where the page goes (default: FROM/SCOREBOARD.md).
        #[arg(long)]
        out: Option<PathBuf>,
        /// JSON on stdout (the page is still written).
        #[arg(long)]
        json: bool,
    },
}
