//! The protocol's configuration: the training variants (the paper's rows), the task loss, one
//! run's configuration ([`RunConfig`], validated before a run starts) and what selects checkpoints
//! ([`Selection`]).

use super::result::binary_metrics;
use crate::data::Task;
use crate::error::{check_positive, check_width, ParamError};
use crate::metrics::mae;
use crate::models::ModelConfig;
use crate::params::Validate;
use crate::synergy::{Divergence, SynergyConfig};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// Training variant (a row of the paper's tables).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
pub enum Variant {
    /// The task loss alone.
    #[serde(rename = "NLL")]
    Nll,
    /// The synergy regulariser with the KL (SKL) alignment loss.
    #[serde(rename = "NLL+SKL")]
    NllSkl,
    /// The synergy regulariser with the MMD (SMMD) alignment loss.
    #[serde(rename = "NLL+SMMD")]
    NllSmmd,
    /// The IWas baseline (Colombo et al. 2021): Wasserstein dependency between the unimodal
    /// representations, maximised (see `synergy::iwas`).
    #[serde(rename = "NLL+IWas")]
    NllIwas,
    /// Table 5's ablation: the reconstruction loss `L_L2` alone (γ_d = γ_κ = 0).
    #[serde(rename = "+LL2")]
    NllL2,
    /// Table 5's ablation: the MMD alignment loss `L_d` alone (γ_L2 = γ_κ = 0).
    #[serde(rename = "+Ld/MMD")]
    NllLd,
    /// Table 5's ablation: the kurtosis penalty `L_κ` alone (γ_L2 = γ_d = 0).
    #[serde(rename = "+Lk")]
    NllLk,
    /// A control, not a paper row: NLL with audio and vision zeroed at training, validation and
    /// test, so a report shows whether the other modalities carry anything on its tier
    /// (the report's "multimodal NLL − text-only" section).
    #[serde(rename = "NLL text-only")]
    NllTextOnly,
}

impl Variant {
    /// The variants of Table 2's rows (the default plan).
    pub const ALL: [Variant; 3] = [Variant::Nll, Variant::NllSkl, Variant::NllSmmd];

    /// Every variant (Table 3 adds IWas), in table order.
    pub const EVERY: [Variant; 4] = [
        Variant::Nll,
        Variant::NllSkl,
        Variant::NllSmmd,
        Variant::NllIwas,
    ];

    /// Table 5's ablation rows between MLE (= NLL) and +SMMD (= NLL+SMMD): each term alone. The
    /// paper's text says "without each" in one place and "activated each" in another; the row
    /// labels (+L_L2, +L_d, +L_κ) add one term to MLE, which is what these are.
    pub(crate) const ABLATION: [Variant; 3] = [Variant::NllL2, Variant::NllLd, Variant::NllLk];

    /// Every variant of every table, in table order (what reports iterate over), then the
    /// text-only control.
    pub const TABLE_ORDER: [Variant; 8] = [
        Variant::Nll,
        Variant::NllSkl,
        Variant::NllSmmd,
        Variant::NllIwas,
        Variant::NllL2,
        Variant::NllLd,
        Variant::NllLk,
        Variant::NllTextOnly,
    ];

    /// The paper's name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Nll => "NLL",
            Variant::NllSkl => "NLL+SKL",
            Variant::NllSmmd => "NLL+SMMD",
            Variant::NllIwas => "NLL+IWas",
            Variant::NllL2 => "+LL2",
            Variant::NllLd => "+Ld/MMD",
            Variant::NllLk => "+Lk",
            Variant::NllTextOnly => "NLL text-only",
        }
    }

    /// Whether this is a control of the harness (no paper row, no paper claim).
    pub(crate) fn is_control(self) -> bool {
        self == Variant::NllTextOnly
    }

    /// The modalities this variant zeroes everywhere (0 = text, 1 = audio, 2 = vision): audio and
    /// vision for the text-only control, none otherwise.
    pub(crate) fn zeroed_modalities(self) -> &'static [usize] {
        match self {
            Variant::NllTextOnly => &[1, 2],
            _ => &[],
        }
    }

    /// Whether this variant trains with the C-network or IWas (else at the cost of NLL).
    pub(crate) fn has_regulariser(self) -> bool {
        self.divergence().is_some() || self == Variant::NllIwas
    }

    /// Whether this is one of Table 5's single-term ablations.
    pub(crate) fn is_ablation(self) -> bool {
        Self::ABLATION.contains(&self)
    }

    /// The name of the row in `table` (Table 5 calls NLL "MLE" and NLL+SMMD "+SMMD").
    pub(crate) fn name_in_table(self, table: u8) -> &'static str {
        match (table, self) {
            (5, Variant::Nll) => "MLE",
            (5, Variant::NllSmmd) => "+SMMD",
            _ => self.name(),
        }
    }

    /// The divergence of `L_d` (None: no C-network).
    pub fn divergence(self) -> Option<Divergence> {
        match self {
            Variant::Nll | Variant::NllIwas | Variant::NllTextOnly => None,
            Variant::NllSkl => Some(Divergence::Kl),
            Variant::NllSmmd | Variant::NllL2 | Variant::NllLd | Variant::NllLk => {
                Some(Divergence::Mmd)
            }
        }
    }

    /// The regulariser's weights `(γ_L2, γ_d, γ_κ)` for this variant from the configured ones:
    /// an ablation keeps its own term's weight and zeroes the other two.
    pub(crate) fn gammas(self, l2: f64, d: f64, k: f64) -> (f64, f64, f64) {
        match self {
            Variant::NllL2 => (l2, 0.0, 0.0),
            Variant::NllLd => (0.0, d, 0.0),
            Variant::NllLk => (0.0, 0.0, k),
            _ => (l2, d, k),
        }
    }
}

/// The task loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TaskLoss {
    /// Mean absolute error (MMSA's regression loss).
    #[default]
    L1,
    /// Mean squared error.
    Mse,
    /// Binary cross-entropy on the logit, `mean(softplus(z) − y z)` (labels 0/1).
    Bce,
}

impl TaskLoss {
    /// The default loss of a task: L1 for regression, BCE for binary.
    pub(crate) fn for_task(task: Task) -> Self {
        match task {
            Task::Regression => TaskLoss::L1,
            Task::Binary => TaskLoss::Bce,
        }
    }

    /// The loss of predictions (or logits) `p` against labels `y` (both `B`).
    pub fn loss(self, p: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            TaskLoss::L1 => (p - y)?.abs()?.mean_all(),
            TaskLoss::Mse => (p - y)?.sqr()?.mean_all(),
            TaskLoss::Bce => {
                // softplus(z) = max(z, 0) + log(1 + exp(−|z|)), stable for any z
                let sp = (p.relu()? + (p.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                (sp - (p * y)?)?.mean_all()
            }
        }
    }
}

/// One training run: the model and its hyper-parameters, the variant and the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The model (serde-tagged by name) with its hyper-parameters.
    pub model: ModelConfig,
    pub variant: Variant,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    pub max_epochs: usize,
    pub patience: usize,
    pub loss: TaskLoss,
    /// The synergy regulariser and Algorithm D's settings; its `divergence` and `seed` are set
    /// from the variant and the run's seed, and it is unused by `NLL`.
    pub synergy: SynergyConfig,
}

impl Validate for RunConfig {
    /// Checks the whole configuration (model, protocol, synergy settings); a run is trained from
    /// the [`crate::Checked`] value, so this runs once per run.
    fn validate(&self) -> Result<(), ParamError> {
        self.model.validate()?;
        if self.batch_size < 2 {
            return Err(ParamError::new(
                "batch_size",
                format!("must be >= 2, got {}", self.batch_size),
            ));
        }
        check_positive("lr", self.lr)?;
        check_width("max_epochs", self.max_epochs)?;
        if self.variant == Variant::Nll {
            return Ok(());
        }
        self.synergy_config()
            .unwrap_or_else(|| self.synergy.clone())
            .validate()
            .map_err(|e| e.of("synergy"))
    }
}

impl RunConfig {
    /// The C-network's configuration of this run (None for `NLL`).
    pub fn synergy_config(&self) -> Option<SynergyConfig> {
        let divergence = self.variant.divergence()?;
        let s = &self.synergy;
        let (gamma_l2, gamma_d, gamma_k) = self.variant.gammas(s.gamma_l2, s.gamma_d, s.gamma_k);
        Some(SynergyConfig {
            divergence,
            seed: self.seed,
            gamma_l2,
            gamma_d,
            gamma_k,
            ..self.synergy.clone()
        })
    }

    /// The resume key: a 64-bit FNV-1a hash of the serialised configuration (with the tier,
    /// profile and data description it ran on), in hex.
    pub fn key(&self, context: &str) -> String {
        let json = serde_json::to_string(self).expect("RunConfig serialises");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in context.bytes().chain([0u8]).chain(json.bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// Which validation metric selects checkpoints and grid points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// Validation MAE, lower is better (regression).
    Mae,
    /// Validation accuracy, higher is better (binary).
    Accuracy,
}

impl Selection {
    /// The selection metric of a task.
    pub(crate) fn for_task(task: Task) -> Self {
        match task {
            Task::Regression => Selection::Mae,
            Task::Binary => Selection::Accuracy,
        }
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Selection::Mae => a < b,
            Selection::Accuracy => a > b,
        }
    }

    /// The metric of predictions on labels.
    pub fn score(self, pred: &[f64], label: &[f64]) -> f64 {
        match self {
            Selection::Mae => mae(pred, label),
            Selection::Accuracy => binary_metrics(pred, label).accuracy,
        }
    }

    /// The worst possible value (before any checkpoint).
    pub fn worst(self) -> f64 {
        match self {
            Selection::Mae => f64::INFINITY,
            Selection::Accuracy => f64::NEG_INFINITY,
        }
    }
}
