//! What a finished run records: its test metrics, the Table 4 corruptions, the robustness curves
//! and the failure, if any ([`RunResult`], one line of `results.jsonl`), and the selection among
//! usable runs.

use super::protocol::{RunConfig, Selection};
use super::robustness;
use crate::metrics::{binary_acc_f1, RegressionMetrics};
use candle_core::Device;
use serde::{Deserialize, Serialize};

/// Binary-task metrics (a logit `≥ 0` predicts class 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub accuracy: f64,
    pub f1: f64,
}

/// Accuracy and F1 of logits against 0/1 labels.
pub(crate) fn binary_metrics(logits: &[f64], label: &[f64]) -> BinaryMetrics {
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
pub(crate) fn device_label(device: &Device) -> Option<String> {
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
    pub(crate) fn test_predictions_f64(&self) -> Option<Vec<f64>> {
        Some(
            self.test_predictions
                .as_ref()?
                .iter()
                .map(|x| *x as f64)
                .collect(),
        )
    }

    /// Test metrics under a corruption condition (`"none"` = the clean test metrics).
    pub(crate) fn test_under(&self, condition: &str) -> Option<&TestMetrics> {
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
    pub(crate) fn predictions_under(&self, condition: &str) -> Option<Vec<f64>> {
        if condition == "none" {
            return self.test_predictions_f64();
        }
        let d = self.dropped.iter().find(|d| d.condition == condition)?;
        Some(d.predictions.as_ref()?.iter().map(|v| *v as f64).collect())
    }

    /// Whether this run can be selected (finished without failure, with a checkpoint).
    pub(crate) fn is_usable(&self) -> bool {
        self.failure.is_none() && self.test.is_some() && self.valid_score.is_finite()
    }
}

/// Model selection: among usable runs, the one with the best validation score.
pub(crate) fn select_best<'a>(
    runs: impl IntoIterator<Item = &'a RunResult>,
) -> Option<&'a RunResult> {
    runs.into_iter().filter(|r| r.is_usable()).reduce(|a, b| {
        if a.selection.better(b.valid_score, a.valid_score) {
            b
        } else {
            a
        }
    })
}

#[cfg(test)]
impl RunResult {
    /// A finished NLL run of `model` (seed 0, quick-profile protocol, default hyper-parameters)
    /// that trained `epochs` epochs in `wall_s` seconds, on `device` (`None`: the CPU): what the
    /// cost projections read, for unit tests.
    pub(crate) fn finished_for_tests(
        model: crate::models::ModelKind,
        epochs: usize,
        wall_s: f64,
        device: Option<&str>,
    ) -> Self {
        let config = RunConfig {
            model: model.default_config(),
            variant: crate::train::Variant::Nll,
            batch_size: 32,
            lr: 1e-3,
            seed: 0,
            max_epochs: 10,
            patience: 8,
            loss: crate::train::TaskLoss::L1,
            synergy: crate::synergy::SynergyConfig::default(),
        };
        Self {
            config,
            epochs,
            best_epoch: epochs,
            selection: Selection::Mae,
            valid_score: 1.0,
            valid_score_baseline: 2.0,
            test: None,
            test_predictions: None,
            failure: None,
            wall_s,
            dropped: Vec::new(),
            device: device.map(str::to_string),
            robustness: Vec::new(),
        }
    }
}
