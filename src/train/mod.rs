//! Training protocol (Appendix C), generic over every [`FusionModel`]: AdamW, gradient clip 5,
//! model selection on the **validation** split only (MAE for regression, accuracy for binary
//! tasks) with early stopping (patience 8 epochs), grid over batch size × learning rate; test
//! metrics are computed once, for the selected checkpoint only.
//!
//! Task loss ([`TaskLoss`]): L1 (MMSA's regression loss for MOSI/MOSEI; the paper's "NLL" rows are
//! this likelihood-only training), MSE, or binary cross-entropy on the model's logit (UR-FUNNY).
//! A model's own auxiliary loss ([`ModelOutput::aux_loss`], e.g. MISA's) is added to it. Variants:
//! `NLL` (task loss only), `NLL+SKL` and `NLL+SMMD` (Algorithm D with the C-network, `L_d` =
//! DV-estimated KL or MMD).
//!
//! Anything that goes wrong **inside** a run — a non-finite loss, a collapsed batch whose median
//! bandwidth is 0, a failed Cholesky in `L_κ` — ends that run, is recorded as its
//! [`RunResult::failure`] (epoch, step and cause) and the run is never selected; the caller's grid
//! goes on. Only an invalid configuration is an `Err`.

pub mod robustness;

use crate::data::{Dataset, Split, Task};
use crate::metrics::{binary_acc_f1, mae, regression_metrics, RegressionMetrics};
use crate::models::{
    is_buffer, BuildCtx, FusionModel, ModelConfig, ModelOutput, ModelParams, ModelVisitor,
    TRAIN_DTYPE,
};
use crate::synergy::iwas::IwasStep;
use crate::synergy::nets::seed_varmap;
use crate::synergy::{
    CNetwork, Divergence, ParamGroups, SynergyConfig, SynergyError, SynergyStep, TaskStep,
};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
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
    pub const ABLATION: [Variant; 3] = [Variant::NllL2, Variant::NllLd, Variant::NllLk];

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
    pub fn is_control(self) -> bool {
        self == Variant::NllTextOnly
    }

    /// The modalities this variant zeroes everywhere (0 = text, 1 = audio, 2 = vision): audio and
    /// vision for the text-only control, none otherwise.
    pub fn zeroed_modalities(self) -> &'static [usize] {
        match self {
            Variant::NllTextOnly => &[1, 2],
            _ => &[],
        }
    }

    /// Whether this variant trains with the C-network or IWas (else at the cost of NLL).
    pub fn has_regulariser(self) -> bool {
        self.divergence().is_some() || self == Variant::NllIwas
    }

    /// Whether this is one of Table 5's single-term ablations.
    pub fn is_ablation(self) -> bool {
        Self::ABLATION.contains(&self)
    }

    /// The name of the row in `table` (Table 5 calls NLL "MLE" and NLL+SMMD "+SMMD").
    pub fn name_in_table(self, table: u8) -> &'static str {
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
    pub fn gammas(self, l2: f64, d: f64, k: f64) -> (f64, f64, f64) {
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
    pub fn for_task(task: Task) -> Self {
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

impl RunConfig {
    /// Checks the whole configuration once (model, protocol, synergy settings).
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate()?;
        if self.batch_size < 2 {
            return Err(format!("batch size must be >= 2, got {}", self.batch_size));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!(
                "learning rate must be finite and > 0, got {}",
                self.lr
            ));
        }
        if self.max_epochs == 0 {
            return Err("max_epochs must be >= 1".into());
        }
        if self.variant == Variant::Nll {
            return Ok(());
        }
        self.synergy_config()
            .unwrap_or_else(|| self.synergy.clone())
            .validate()
            .map_err(|e| e.to_string())
    }

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
    pub fn for_task(task: Task) -> Self {
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

/// Binary-task metrics (a logit `≥ 0` predicts class 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub accuracy: f64,
    pub f1: f64,
}

/// Accuracy and F1 of logits against 0/1 labels.
pub fn binary_metrics(logits: &[f64], label: &[f64]) -> BinaryMetrics {
    let p: Vec<bool> = logits.iter().map(|z| *z >= 0.0).collect();
    let t: Vec<bool> = label.iter().map(|y| *y >= 0.5).collect();
    let (accuracy, f1) = binary_acc_f1(&p, &t);
    BinaryMetrics { accuracy, f1 }
}

/// Test metrics of the selected checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum TestMetrics {
    Regression(RegressionMetrics),
    Binary(BinaryMetrics),
}

impl TestMetrics {
    /// The regression metrics, if this is a regression task.
    pub fn regression(&self) -> Option<&RegressionMetrics> {
        match self {
            TestMetrics::Regression(m) => Some(m),
            TestMetrics::Binary(_) => None,
        }
    }

    /// The binary metrics, if this is a binary task.
    pub fn binary(&self) -> Option<&BinaryMetrics> {
        match self {
            TestMetrics::Binary(m) => Some(m),
            TestMetrics::Regression(_) => None,
        }
    }
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub config: RunConfig,
    /// Epochs trained (including the patience tail).
    pub epochs: usize,
    /// Epoch (1-based) of the selected checkpoint (0: none).
    pub best_epoch: usize,
    /// What selects checkpoints and grid points.
    pub selection: Selection,
    /// Validation value of that metric for the selected checkpoint.
    pub valid_score: f64,
    /// The same metric for predicting the training mean (regression) or the majority class.
    pub valid_score_baseline: f64,
    /// Test metrics of the selected checkpoint (None if the run failed before any checkpoint).
    pub test: Option<TestMetrics>,
    /// Test predictions (logits for binary tasks) of the selected checkpoint, in the test split's
    /// order (ids in the dataset), so any metric can be recomputed.
    pub test_predictions: Option<Vec<f32>>,
    /// `"epoch E, step S: cause"` when something inside the run failed (non-finite loss, a
    /// degenerate batch, a failed factorisation); such a run is never selected.
    pub failure: Option<String>,
    pub wall_s: f64,
    /// Test metrics of the selected checkpoint with modalities zeroed at test time, one per
    /// [`DROP_CONDITIONS`] entry (Table 4); empty in records written before it existed.
    #[serde(default)]
    pub dropped: Vec<DroppedEval>,
    /// The device the run trained on when not the CPU (`"cuda:0"`); `None`: the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Graded robustness curves of the selected checkpoint ([`robustness`]): per modality, noise
    /// and dropped steps at [`robustness::ROBUSTNESS_LEVELS`]; empty in records written before
    /// they existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub robustness: Vec<robustness::RobustnessCurve>,
}

/// How a device is named in results: `None` for the CPU, `"cuda:N"` for a CUDA GPU.
pub fn device_label(device: &Device) -> Option<String> {
    match device.location() {
        candle_core::DeviceLocation::Cpu => None,
        candle_core::DeviceLocation::Cuda { gpu_id } => Some(format!("cuda:{gpu_id}")),
        candle_core::DeviceLocation::Metal { gpu_id } => Some(format!("metal:{gpu_id}")),
    }
}

/// Table 4's test-time modality corruptions (after Colombo et al. 2021): the text alone, text and
/// vision, text and audio zeroed (0 = text, 1 = audio, 2 = vision), named as the paper's columns.
pub const DROP_CONDITIONS: [(&str, &[usize]); 3] =
    [("T", &[0]), ("T+V", &[0, 2]), ("T+A", &[0, 1])];

/// The selected checkpoint's test metrics under one modality corruption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedEval {
    /// `"T"`, `"T+V"` or `"T+A"` (the dropped modalities).
    pub condition: String,
    pub test: TestMetrics,
    /// The test predictions under the corruption, in the order of the clean ones (absent in
    /// records written before they were saved): a one-seed cell's Table 4 claim bootstraps over
    /// them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<Vec<f32>>,
}

impl RunResult {
    /// The saved test predictions as f64 (what metrics and bootstraps take).
    pub fn test_predictions_f64(&self) -> Option<Vec<f64>> {
        Some(
            self.test_predictions
                .as_ref()?
                .iter()
                .map(|x| *x as f64)
                .collect(),
        )
    }

    /// Test metrics under a corruption condition (`"none"` = the clean test metrics).
    pub fn test_under(&self, condition: &str) -> Option<&TestMetrics> {
        if condition == "none" {
            self.test.as_ref()
        } else {
            self.dropped
                .iter()
                .find(|d| d.condition == condition)
                .map(|d| &d.test)
        }
    }

    /// The saved test predictions under `condition` (`"none"`: the clean ones) as f64.
    pub fn predictions_under(&self, condition: &str) -> Option<Vec<f64>> {
        if condition == "none" {
            return self.test_predictions_f64();
        }
        let d = self.dropped.iter().find(|d| d.condition == condition)?;
        Some(d.predictions.as_ref()?.iter().map(|v| *v as f64).collect())
    }

    /// Whether this run can be selected (finished without failure, with a checkpoint).
    pub fn is_usable(&self) -> bool {
        self.failure.is_none() && self.test.is_some() && self.valid_score.is_finite()
    }
}

/// The trainable variables of a model's `VarMap` (without buffers), sorted by name.
pub fn trainable_vars(vm: &VarMap) -> Vec<Var> {
    let data = vm.data().lock().expect("VarMap lock");
    let mut named: Vec<(&String, &Var)> = data.iter().filter(|(n, _)| !is_buffer(n)).collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named.into_iter().map(|(_, v)| v.clone()).collect()
}

/// The trainable variables of `model`'s `VarMap` grouped by learning rate
/// ([`FusionModel::learning_rate`] of each name at the protocol's `base` rate), in name order;
/// variables the model keeps out of the main optimiser (frozen, or an extra stage's) are left out.
pub fn param_groups<M: FusionModel>(model: &M, vm: &VarMap, base: f64) -> ParamGroups {
    let data = vm.data().lock().expect("VarMap lock");
    let mut named: Vec<(&String, &Var)> = data.iter().filter(|(n, _)| !is_buffer(n)).collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let mut groups: ParamGroups = Vec::new();
    for (name, var) in named {
        let Some(lr) = model.learning_rate(name, base) else {
            continue;
        };
        match groups.iter_mut().find(|(_, l)| l.to_bits() == lr.to_bits()) {
            Some((vars, _)) => vars.push(var.clone()),
            None => groups.push((vec![var.clone()], lr)),
        }
    }
    groups
}

/// The variables of `model`'s extra optimisation stage ([`FusionModel::in_extra_stage`]), in
/// name order.
pub fn extra_stage_vars<M: FusionModel>(model: &M, vm: &VarMap) -> Vec<Var> {
    let data = vm.data().lock().expect("VarMap lock");
    let mut named: Vec<(&String, &Var)> = data
        .iter()
        .filter(|(n, _)| !is_buffer(n) && model.in_extra_stage(n))
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named.into_iter().map(|(_, v)| v.clone()).collect()
}

/// Builds model `M` with fresh variables initialised from `seed`, then loads its pretrained
/// weights ([`FusionModel::load_pretrained`], after the seeding so they are kept); returns it with
/// its `VarMap`.
pub fn build_model<M: FusionModel>(
    cfg: &M::Config,
    ctx: &BuildCtx,
    device: &Device,
) -> crate::synergy::Result<(M, VarMap)> {
    cfg.validate().map_err(SynergyError::Config)?;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, TRAIN_DTYPE, device);
    let model = M::new(cfg, ctx, vb)?;
    seed_varmap(&vm, ctx.seed)?;
    model.load_pretrained(&vm, ctx)?;
    Ok((model, vm))
}

/// Where a run's batches are assembled. On the CPU, on the host from the dataset's arrays (no copy
/// is needed). On any other device each split is uploaded once, the first time it is used
/// ([`crate::data::DeviceSplit`]), and batches are gathered there — a GPU step then uploads only
/// its row indices and lengths instead of the batch's sequences.
pub(crate) struct Batcher<'a> {
    ds: &'a Dataset,
    device: Device,
    uploaded: [std::cell::OnceCell<crate::data::DeviceSplit>; 3],
}

impl<'a> Batcher<'a> {
    pub(crate) fn new(ds: &'a Dataset, device: &Device) -> Self {
        Self {
            ds,
            device: device.clone(),
            uploaded: Default::default(),
        }
    }

    /// The batch of rows `idx` of `split` (one of the dataset's three), modalities in `drop` zeroed.
    pub(crate) fn batch(
        &self,
        split: &Split,
        idx: &[usize],
        drop: &[usize],
    ) -> candle_core::Result<crate::data::SeqBatch> {
        let ds = self.ds;
        let which = [&ds.train, &ds.valid, &ds.test]
            .iter()
            .position(|s| std::ptr::eq(*s, split));
        match which {
            Some(k) if !self.device.is_cpu() => {
                let up = match self.uploaded[k].get() {
                    Some(up) => up,
                    None => {
                        let up =
                            crate::data::DeviceSplit::upload(ds, split, TRAIN_DTYPE, &self.device)?;
                        self.uploaded[k].get_or_init(|| up)
                    }
                };
                up.batch(ds, split, idx, drop)
            }
            _ => ds.batch(split, idx, drop, TRAIN_DTYPE, &self.device),
        }
    }
}

/// Predictions of `model` on a whole split (inference: no C-network, no dropout), with the
/// modalities in `drop` zeroed (0 = text, 1 = audio, 2 = vision).
pub fn predict<M: FusionModel>(
    model: &M,
    ds: &Dataset,
    split: &Split,
    drop: &[usize],
    device: &Device,
) -> crate::synergy::Result<Vec<f64>> {
    predict_with(model, split, drop, &Batcher::new(ds, device))
}

/// [`predict`] with a run's batcher (its uploaded splits are reused).
fn predict_with<M: FusionModel>(
    model: &M,
    split: &Split,
    drop: &[usize],
    batcher: &Batcher<'_>,
) -> crate::synergy::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(split.len());
    let idx: Vec<usize> = (0..split.len()).collect();
    for chunk in idx.chunks(128) {
        let b = batcher.batch(split, chunk, drop)?;
        let p = model.forward(&b, false)?.prediction;
        out.extend(p.to_dtype(DType::F64)?.to_vec1::<f64>()?);
    }
    Ok(out)
}

/// A copy of every variable (weights and buffers).
pub fn snapshot(vm: &VarMap) -> candle_core::Result<Vec<(Var, Tensor)>> {
    let data = vm.data().lock().expect("VarMap lock");
    data.values()
        .map(|v| Ok((v.clone(), v.as_tensor().copy()?)))
        .collect()
}

/// Restores a [`snapshot`].
pub fn restore(s: &[(Var, Tensor)]) -> candle_core::Result<()> {
    for (v, t) in s {
        v.set(t)?;
    }
    Ok(())
}

fn labels_f64(s: &Split) -> Vec<f64> {
    s.labels.iter().map(|v| *v as f64).collect()
}

enum Stepper {
    Task(TaskStep),
    Synergy(Box<SynergyStep>),
    Iwas(Box<IwasStep>),
}

impl Stepper {
    fn step(&mut self, out: &ModelOutput, loss: &Tensor) -> crate::synergy::Result<()> {
        match self {
            Stepper::Task(t) => t.step(loss).map(|_| ()),
            Stepper::Synergy(s) => s.step(out, loss).map(|_| ()),
            Stepper::Iwas(s) => s.step(out, loss).map(|_| ()),
        }
    }
}

/// The generator of a run's batch order (one shuffle per epoch), from its seed.
fn batch_order_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0x5EED)
}

/// What a model is built from for a run of `cfg` on `ds`.
fn build_ctx(ds: &Dataset, cfg: &RunConfig) -> BuildCtx {
    BuildCtx {
        dims: ds.dims,
        seed: cfg.seed,
        task: ds.task,
        text_encoder: ds.train.tokens.as_ref().map(|t| t.source.dir.clone()),
    }
}

/// The optimiser of a run: the plain task step (NLL), Algorithm D's step with a fresh C-network
/// (synergy variants and ablations) or the IWas step.
fn make_stepper<M: FusionModel>(
    model: &M,
    vm: &VarMap,
    cfg: &RunConfig,
    device: &Device,
) -> crate::synergy::Result<Stepper> {
    let groups = param_groups(model, vm, cfg.lr);
    Ok(match cfg.synergy_config() {
        None if cfg.variant == Variant::NllIwas => {
            let sc = SynergyConfig {
                seed: cfg.seed,
                ..cfg.synergy.clone()
            };
            let (dims, _) = model.rep_dims();
            Stepper::Iwas(Box::new(IwasStep::grouped(
                &sc,
                &dims,
                groups,
                TRAIN_DTYPE,
                device,
            )?))
        }
        None => Stepper::Task(TaskStep::grouped(
            groups,
            cfg.synergy.weight_decay,
            cfg.synergy.grad_clip,
        )?),
        Some(sc) => {
            let (dims, fused) = model.rep_dims();
            let cnet = CNetwork::new(sc, &dims, fused, TRAIN_DTYPE, device)?;
            Stepper::Synergy(Box::new(SynergyStep::grouped(cnet, groups)?))
        }
    })
}

/// One training step on the training clips `chunk`: forward, task loss (+ the model's auxiliary
/// loss), the stepper's backward and updates.
fn train_step<M: FusionModel>(
    model: &M,
    stepper: &mut Stepper,
    batcher: &Batcher<'_>,
    chunk: &[usize],
    cfg: &RunConfig,
) -> crate::synergy::Result<()> {
    let b = batcher.batch(&batcher.ds.train, chunk, cfg.variant.zeroed_modalities())?;
    let out = model.forward(&b, true)?;
    let mut loss = cfg.loss.loss(&out.prediction, &b.label)?;
    if let Some(aux) = &out.aux_loss {
        loss = (loss + aux)?;
    }
    stepper.step(&out, &loss)
}

/// Wall time of training steps alone (no validation, no test), for benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EpochTiming {
    /// Training steps timed (one epoch: `⌈train clips / batch⌉`, batches of one skipped).
    pub steps: usize,
    /// Clips those steps consumed.
    pub samples: usize,
    /// Wall seconds for the timed epoch.
    pub seconds: f64,
    /// CPU seconds the process spent in it (all threads; `None` off Unix). On a machine shared
    /// with other jobs this is the steadier number: waiting for a core does not count.
    pub cpu_seconds: Option<f64>,
}

/// CPU time of the process so far (`CLOCK_PROCESS_CPUTIME_ID`), in seconds.
pub fn process_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a valid pointer to a timespec.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Times one training epoch of `cfg` on `ds` — batch assembly, forward, loss, backward and the
/// optimiser step(s) of every batch, exactly the steps [`train_run`] takes (the model's extra
/// stage excluded) — after `warmup` untimed steps on the first batches. The model is built as for
/// a run (same seed, same initialisation).
pub fn time_epoch(
    ds: &Dataset,
    cfg: &RunConfig,
    warmup: usize,
) -> crate::synergy::Result<EpochTiming> {
    time_epoch_on(ds, cfg, warmup, &Device::Cpu)
}

/// [`time_epoch`] on `device` (a CUDA GPU with the `cuda` feature); the clock stops after the
/// last step's results are on the host, so asynchronous GPU work is counted.
pub fn time_epoch_on(
    ds: &Dataset,
    cfg: &RunConfig,
    warmup: usize,
    device: &Device,
) -> crate::synergy::Result<EpochTiming> {
    struct V<'a> {
        ds: &'a Dataset,
        cfg: &'a RunConfig,
        warmup: usize,
        device: &'a Device,
    }
    impl ModelVisitor for V<'_> {
        type Output = crate::synergy::Result<EpochTiming>;
        fn visit<M: FusionModel>(self, m: &M::Config) -> Self::Output {
            let (ds, cfg) = (self.ds, self.cfg);
            cfg.validate().map_err(SynergyError::Config)?;
            let device = self.device.clone();
            let (model, vm) = build_model::<M>(m, &build_ctx(ds, cfg), &device)?;
            model.prepare(ds)?;
            let mut stepper = make_stepper(&model, &vm, cfg, &device)?;
            let batcher = Batcher::new(ds, &device);
            let mut order: Vec<usize> = (0..ds.train.len()).collect();
            order.shuffle(&mut batch_order_rng(cfg.seed));
            let batches: Vec<&[usize]> = order
                .chunks(cfg.batch_size)
                .filter(|c| c.len() >= 2)
                .collect();
            for chunk in batches.iter().cycle().take(self.warmup) {
                train_step(&model, &mut stepper, &batcher, chunk, cfg)?;
            }
            device.synchronize()?;
            let (start, cpu0) = (std::time::Instant::now(), process_cpu_seconds());
            for chunk in &batches {
                train_step(&model, &mut stepper, &batcher, chunk, cfg)?;
            }
            device.synchronize()?;
            let seconds = start.elapsed().as_secs_f64();
            Ok(EpochTiming {
                steps: batches.len(),
                samples: batches.iter().map(|c| c.len()).sum(),
                seconds,
                cpu_seconds: cpu0.zip(process_cpu_seconds()).map(|(a, b)| b - a),
            })
        }
    }
    cfg.model.visit(V {
        ds,
        cfg,
        warmup,
        device,
    })
}

/// Trains one configuration (any registered model) with early stopping on the validation metric;
/// `on_epoch(epoch, valid_score)` reports progress. `Err` only for an invalid configuration.
pub fn train_run(
    ds: &Dataset,
    cfg: &RunConfig,
    on_epoch: impl FnMut(usize, f64),
) -> crate::synergy::Result<RunResult> {
    train_run_on(ds, cfg, &Device::Cpu, on_epoch)
}

/// [`train_run`] on `device`: the CPU, or a CUDA GPU in a build with the `cuda` feature (the
/// fused CPU kernels fall back to composed candle ops there; results differ from the CPU's by
/// rounding).
pub fn train_run_on(
    ds: &Dataset,
    cfg: &RunConfig,
    device: &Device,
    on_epoch: impl FnMut(usize, f64),
) -> crate::synergy::Result<RunResult> {
    struct V<'a, F> {
        ds: &'a Dataset,
        cfg: &'a RunConfig,
        device: &'a Device,
        on_epoch: F,
    }
    impl<F: FnMut(usize, f64)> ModelVisitor for V<'_, F> {
        type Output = crate::synergy::Result<RunResult>;
        fn visit<M: FusionModel>(self, m: &M::Config) -> Self::Output {
            train_model::<M>(self.ds, self.cfg, m, self.device, self.on_epoch)
        }
    }
    cfg.model.visit(V {
        ds,
        cfg,
        device,
        on_epoch,
    })
}

/// [`train_run`] for a concrete model type.
pub fn train_model<M: FusionModel>(
    ds: &Dataset,
    cfg: &RunConfig,
    mcfg: &M::Config,
    device: &Device,
    mut on_epoch: impl FnMut(usize, f64),
) -> crate::synergy::Result<RunResult> {
    cfg.validate().map_err(SynergyError::Config)?;
    let start = std::time::Instant::now();
    let device = device.clone();
    let selection = Selection::for_task(ds.task);
    let valid_labels = labels_f64(&ds.valid);
    let valid_score_baseline = {
        let train_mean =
            ds.train.labels.iter().map(|v| *v as f64).sum::<f64>() / ds.train.len().max(1) as f64;
        let constant = match ds.task {
            Task::Regression => train_mean,
            Task::Binary => {
                if train_mean >= 0.5 {
                    1.0
                } else {
                    -1.0
                }
            }
        };
        selection.score(&vec![constant; valid_labels.len()], &valid_labels)
    };
    // the modalities the variant zeroes at training, validation and test (the text-only control)
    let zeroed = cfg.variant.zeroed_modalities();
    let mut result = RunResult {
        config: cfg.clone(),
        epochs: 0,
        best_epoch: 0,
        selection,
        valid_score: selection.worst(),
        valid_score_baseline,
        test: None,
        test_predictions: None,
        failure: None,
        wall_s: 0.0,
        dropped: Vec::new(),
        device: device_label(&device),
        robustness: Vec::new(),
    };
    let (model, vm) = build_model::<M>(mcfg, &build_ctx(ds, cfg), &device)?;
    model.prepare(ds)?;
    let batcher = Batcher::new(ds, &device);
    // where the run stands, for the failure message
    let mut at = (0usize, 0usize);
    let mut best_snap = None;
    let outcome = (|| -> crate::synergy::Result<()> {
        let mut stepper = make_stepper(&model, &vm, cfg, &device)?;
        // a model's extra stage (MMIM's MMILB step) has its own optimiser over its own variables
        let mut extra = match model.extra_stage() {
            Some(st) => Some((
                st,
                TaskStep::new(
                    extra_stage_vars(&model, &vm),
                    st.lr,
                    st.weight_decay,
                    st.grad_clip,
                )?,
            )),
            None => None,
        };
        let mut rng = batch_order_rng(cfg.seed);
        let mut order: Vec<usize> = (0..ds.train.len()).collect();
        for epoch in 1..=cfg.max_epochs {
            result.epochs = epoch;
            order.shuffle(&mut rng);
            model.on_epoch_start();
            if let Some((st, step_x)) = &mut extra {
                let batches = order.len().div_ceil(cfg.batch_size);
                let take = ((batches as f64 * st.batch_fraction).ceil() as usize).min(batches);
                for (step, chunk) in order.chunks(cfg.batch_size).take(take).enumerate() {
                    at = (epoch, step);
                    if chunk.len() < 2 {
                        continue;
                    }
                    let b = batcher.batch(&ds.train, chunk, zeroed)?;
                    step_x.step(&model.extra_stage_loss(&b)?)?;
                }
            }
            for (step, chunk) in order.chunks(cfg.batch_size).enumerate() {
                at = (epoch, step);
                if chunk.len() < 2 {
                    continue; // a batch of one has no batch statistics (MMD, kurtosis, BatchNorm)
                }
                train_step(&model, &mut stepper, &batcher, chunk, cfg)?;
            }
            at = (epoch, usize::MAX);
            let v = selection.score(
                &predict_with(&model, &ds.valid, zeroed, &batcher)?,
                &valid_labels,
            );
            on_epoch(epoch, v);
            if !v.is_finite() {
                return Err(SynergyError::NonFinite {
                    what: "validation metric",
                    value: v,
                    step: 0,
                });
            }
            if selection.better(v, result.valid_score) {
                result.valid_score = v;
                result.best_epoch = epoch;
                best_snap = Some(snapshot(&vm)?);
            } else if epoch - result.best_epoch >= cfg.patience {
                break;
            }
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        let (epoch, step) = at;
        result.failure = Some(if step == usize::MAX {
            format!("epoch {epoch}, validation: {e}")
        } else {
            format!("epoch {epoch}, step {step}: {e}")
        });
        result.wall_s = start.elapsed().as_secs_f64();
        return Ok(result);
    }
    if let Some(s) = &best_snap {
        type Tested = (
            TestMetrics,
            Vec<f64>,
            Vec<DroppedEval>,
            Vec<robustness::RobustnessCurve>,
        );
        let tested = (|| -> crate::synergy::Result<Tested> {
            restore(s)?;
            let (m, p) = evaluate(&model, ds, zeroed, &batcher)?;
            let mut dropped = Vec::with_capacity(DROP_CONDITIONS.len());
            for (condition, drop) in DROP_CONDITIONS {
                // the variant's own zeroed modalities stay zeroed under every corruption
                let mut drop = drop.to_vec();
                drop.extend_from_slice(zeroed);
                drop.sort_unstable();
                drop.dedup();
                let (test, p) = evaluate(&model, ds, &drop, &batcher)?;
                dropped.push(DroppedEval {
                    condition: condition.into(),
                    test,
                    predictions: Some(p.iter().map(|v| *v as f32).collect()),
                });
            }
            let curves = robustness::curves(
                &model,
                ds,
                zeroed,
                M::needs_tokens(mcfg),
                cfg.seed,
                &m,
                &batcher,
            )?;
            Ok((m, p, dropped, curves))
        })();
        match tested {
            Ok((m, p, dropped, curves)) => {
                result.test = Some(m);
                result.test_predictions = Some(p.iter().map(|v| *v as f32).collect());
                result.dropped = dropped;
                result.robustness = curves;
            }
            Err(e) => result.failure = Some(format!("test evaluation: {e}")),
        }
    }
    result.wall_s = start.elapsed().as_secs_f64();
    Ok(result)
}

/// Test metrics and predictions of `model` with the modalities in `drop` zeroed.
fn evaluate<M: FusionModel>(
    model: &M,
    ds: &Dataset,
    drop: &[usize],
    batcher: &Batcher<'_>,
) -> crate::synergy::Result<(TestMetrics, Vec<f64>)> {
    let p = predict_with(model, &ds.test, drop, batcher)?;
    let m = metrics_of(ds.task, &p, &labels_f64(&ds.test))?;
    Ok((m, p))
}

/// The test metrics of predictions `p` against labels `l` for `task`.
fn metrics_of(task: Task, p: &[f64], l: &[f64]) -> crate::synergy::Result<TestMetrics> {
    Ok(match task {
        Task::Regression => TestMetrics::Regression(regression_metrics(
            &ndarray::ArrayView1::from(p),
            &ndarray::ArrayView1::from(l),
        )?),
        Task::Binary => TestMetrics::Binary(binary_metrics(p, l)),
    })
}

/// Model selection: among usable runs, the one with the best validation score.
pub fn select_best<'a>(runs: impl IntoIterator<Item = &'a RunResult>) -> Option<&'a RunResult> {
    runs.into_iter().filter(|r| r.is_usable()).reduce(|a, b| {
        if a.selection.better(b.valid_score, a.valid_score) {
            b
        } else {
            a
        }
    })
}
