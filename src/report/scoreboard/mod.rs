//! The scoreboard: every claim of the paper (each variant-vs-baseline delta of Tables 2, 3, 5 and
//! 6 on each metric the table reports, and Table 4's robustness deltas) against the best
//! measurement of it in any results folder, per data tier (`reproduce-paper scoreboard --from
//! results`). No training: it reads the folders' `run.json` and results files.
//!
//! **Which measurement.** A claim (table, corpus, paper model, variant, condition, metric) is
//! measured by a folder on the same corpus and tier that selected runs of the model's NLL row and
//! of the variant, paired by seed. Among several such folders the scoreboard takes the one with the
//! highest profile (paper > quick > smoke), then the most paired seeds, then the model the row
//! names before a stand-in (TFN before LMF for the paper's LFN rows), then the folder name.
//!
//! **Statistics.** As in every report ([`super::claims`]): a 95 % t-interval over ≥ 2 paired
//! seeds, a paired bootstrap over test clips (2,000 resamples) for one seed; the verdict is
//! [`Verdict::of`] against the paper's delta; Holm's correction runs over each table's claims on
//! each tier (the claims with a paper direction and an interval).
//!
//! The rooms: this file holds the board's types and the community baselines it is given;
//! `collect.rs` the paper's claims and the results folders read; `measure.rs` the best
//! measurement of one claim on one tier (or why there is none, and the command that would make
//! it); `board.rs` the board itself (Holm's correction, the counts, the text-only controls, the
//! synergy the models use, the baselines); `markdown.rs` its page, `results/SCOREBOARD.md`.

use super::stats::{Interval, Verdict};
use crate::data::{DatasetName, Tier};
use crate::experiments::{Profile, Selected};
use serde::{Deserialize, Serialize};

mod board;
mod collect;
mod markdown;
mod measure;
#[cfg(test)]
mod tests;

pub(crate) use board::scoreboard;
pub use collect::paper_claims;
pub(crate) use collect::read_sources;
pub(crate) use markdown::markdown;

/// The tiers a scoreboard reports, in column order (the `full` tier needs users' own features).
pub const TIERS: [Tier; 2] = [Tier::Synthetic, Tier::RealText];

/// One results folder as the scoreboard reads it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The folder's name under the scoreboard's root.
    pub name: String,
    pub tier: Tier,
    pub dataset: DatasetName,
    pub profile: Profile,
    /// Test labels in the order of the saved predictions (for one-seed bootstraps).
    pub test_labels: Vec<f64>,
    pub selected: Vec<Selected>,
    /// Regression or binary (how predictions are discretised for the PID).
    pub task: crate::data::Task,
    /// The test clips' PID codes from `run.json`, when it has them.
    pub pid_codes: Option<crate::experiments::synergy_pid::PidCodes>,
}

/// A claim of the paper: variant − baseline of one metric in one table's row pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperClaim {
    pub table: u8,
    pub dataset: String,
    /// The paper's model name (`TFN` stands for the paper's LFN rows).
    pub model: String,
    /// The variant as the table prints it (Table 5: `+LL2`, `+SMMD`, …).
    pub variant: String,
    /// `none`, or Table 4's zeroed modalities (`T`, `T+V`, `T+A`).
    pub condition: String,
    /// `acc7`, `acc2`, `mae`, `corr` or `acc` (UR-FUNNY accuracy), as in `paper/expected.toml`.
    pub metric: String,
    /// The paper's variant value − its baseline value (NLL; Table 5's MLE).
    pub paper_delta: f64,
}

/// The measurement of a claim on one tier.
#[derive(Debug, Clone, Serialize)]
pub struct TierCell {
    pub tier: String,
    /// The measured delta (variant − baseline) with its 95 % interval; `None`: not measured.
    pub measured: Option<Interval>,
    pub verdict: Option<Verdict>,
    /// Whether the directional verdict survives Holm's correction within its table's claims on
    /// this tier (`None` outside the family).
    pub survives_holm: Option<bool>,
    /// Paired seeds behind the interval.
    pub seeds: usize,
    pub profile: Option<String>,
    /// The folder the measurement comes from (under the scoreboard's root).
    pub folder: Option<String>,
    /// The model that ran (LMF or TFN for the paper's LFN rows).
    pub measured_model: Option<String>,
    /// Why there is no measurement, and the command that would make one.
    pub not_measured: Option<String>,
    pub command: Option<String>,
    /// What a run of the command would cost, from wall times recorded in the folders read
    /// (`None`: measured, or no folder has a CPU run of the model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<RunCost>,
}

/// The projected cost of one quick-profile run of a model on a corpus that has none, from the
/// wall times of finished CPU runs of the same model in the folders read: seconds per epoch
/// (`wall_s / epochs`, one thread, as recorded on whatever machine trained them), scaled linearly
/// by training clips when they were measured on another corpus, times the quick profile's epoch
/// cap. An upper bound (early stopping ends most runs sooner) and rough (sequence lengths and
/// widths differ between corpora), as [`crate::experiments::cost`] says of `--plan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCost {
    /// Mean seconds per epoch of the measured runs, on the corpus they ran on.
    pub epoch_s: f64,
    /// Finished CPU runs behind `epoch_s`.
    pub runs: usize,
    /// The folder they are in, and its corpus and tier.
    pub folder: String,
    pub measured_on: String,
    pub measured_tier: String,
    /// Training clips of the claim's corpus ÷ those of `measured_on` (1 on the same corpus).
    pub scale: f64,
    /// Epochs a run may train (the quick profile's cap).
    pub epoch_cap: usize,
    /// `epoch_s × scale × epoch_cap`, in hours of one thread.
    pub hours_per_run: f64,
}

/// A claim with its measurement on every tier.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreRow {
    #[serde(flatten)]
    pub claim: PaperClaim,
    pub tiers: Vec<TierCell>,
}

/// Counts of one tier.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TierCounts {
    pub tier: String,
    pub claims: usize,
    pub with_verdict: usize,
    pub supported: usize,
    pub contradicted: usize,
    pub inconclusive: usize,
    /// Directional verdicts (supported or contradicted) that survive Holm.
    pub survive_holm: usize,
}

/// One model's NLL baseline in the paper beside the community's published one.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineRow {
    pub dataset: String,
    pub model: String,
    pub metric: String,
    pub paper: f64,
    pub community: Option<f64>,
    /// Paper − community in the metric's good direction (positive: the paper's baseline is
    /// stronger).
    pub paper_stronger_by: Option<f64>,
}

/// A text-only control measured in a folder: multimodal NLL − text-only NLL.
#[derive(Debug, Clone, Serialize)]
pub struct ControlRow {
    pub folder: String,
    pub tier: String,
    pub dataset: String,
    #[serde(flatten)]
    pub control: super::claims::Claim,
    pub reading: String,
}

/// "The C-network raises the synergy the model uses" in one folder: the seed-paired difference
/// of the PID synergy of the test predictions, variant − NLL ([`super::prediction_pid`]).
#[derive(Debug, Clone, Serialize)]
pub struct SynergyUseRow {
    pub folder: String,
    pub tier: String,
    pub dataset: String,
    pub model: String,
    pub variant: String,
    /// `S(variant) − S(NLL)` in bits with its 95 % t-interval over seeds.
    pub vs_nll: Option<super::stats::Interval>,
    pub verdict: Option<super::stats::Verdict>,
    pub survives_holm: Option<bool>,
    pub note: Option<String>,
}

/// The whole scoreboard.
#[derive(Debug, Clone, Serialize)]
pub struct Scoreboard {
    pub counts: Vec<TierCounts>,
    pub rows: Vec<ScoreRow>,
    pub baselines: Vec<BaselineRow>,
    pub controls: Vec<ControlRow>,
    /// The claim "the C-network raises the synergy the model uses", per folder with PID codes.
    pub synergy_use: Vec<SynergyUseRow>,
    /// The folders read, in order.
    pub folders: Vec<String>,
    /// Folders skipped, with why.
    pub skipped: Vec<String>,
}

/// A community baseline row (`paper/community_baselines.toml`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CommunityRow {
    pub dataset: String,
    pub model: String,
    pub mmsa_name: String,
    pub acc7: f64,
    pub acc2: f64,
    pub mae: f64,
    pub corr: f64,
}

/// The community baselines, as shipped (`paper/community_baselines.toml`).
pub const COMMUNITY_TOML: &str = include_str!("../../../paper/community_baselines.toml");

/// Parses [`COMMUNITY_TOML`].
pub fn community() -> Vec<CommunityRow> {
    #[derive(Deserialize)]
    struct File {
        row: Vec<CommunityRow>,
    }
    toml::from_str::<File>(COMMUNITY_TOML)
        .expect("paper/community_baselines.toml is valid (tested)")
        .row
}
