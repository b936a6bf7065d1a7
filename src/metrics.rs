//! Evaluation metrics with exactly MMSA's conventions for MOSI/MOSEI regression
//! (`MetricsTop.__eval_mosei_regression`), plus binary accuracy for UR-FUNNY.
//!
//! * `acc7`: prediction and label clipped to `[−3, 3]`, rounded half to even (numpy's `round`),
//!   compared.
//! * `acc2_has0` / `f1_has0`: classes `pred ≥ 0` vs `label ≥ 0`, over all samples.
//! * `acc2_non0` / `f1_non0`: samples whose **label** is exactly 0 are dropped; classes `> 0`.
//! * F1 is the support-weighted F1 over the two classes (scikit-learn `average="weighted"`); a class
//!   that is never predicted has precision 0 and F1 0 (scikit-learn's `zero_division=0`).
//! * `mae`: mean `|pred − label|`; `corr`: Pearson correlation. When predictions or labels are
//!   constant the correlation is undefined: `corr` is `None` (JSON `null`), never NaN.

use crate::error::{EstimatorError, Result};
use ndarray::ArrayView1;
use serde::{Deserialize, Serialize};

/// The seven MOSI/MOSEI regression metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    pub acc7: f64,
    pub acc2_has0: f64,
    pub acc2_non0: f64,
    pub f1_has0: f64,
    pub f1_non0: f64,
    pub mae: f64,
    /// Pearson correlation; `None` when either side is constant.
    pub corr: Option<f64>,
}

fn check(pred: &ArrayView1<f64>, label: &ArrayView1<f64>) -> Result<()> {
    crate::estimators::check_vector("pred", pred)?;
    crate::estimators::check_vector("label", label)?;
    if pred.len() != label.len() {
        return Err(EstimatorError::LengthMismatch {
            x: "pred",
            nx: pred.len(),
            y: "label",
            ny: label.len(),
        });
    }
    Ok(())
}

/// Binary accuracy and support-weighted F1 of boolean predictions.
pub(crate) fn binary_acc_f1(pred: &[bool], truth: &[bool]) -> (f64, f64) {
    let n = pred.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut tp = 0usize;
    let mut tn = 0usize;
    let mut fp = 0usize;
    let mut fneg = 0usize;
    for (&p, &t) in pred.iter().zip(truth) {
        match (p, t) {
            (true, true) => tp += 1,
            (false, false) => tn += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
        }
    }
    let acc = (tp + tn) as f64 / n as f64;
    let f1 = |tp: usize, fp: usize, fneg: usize| {
        let denom = 2 * tp + fp + fneg;
        if denom == 0 {
            0.0
        } else {
            2.0 * tp as f64 / denom as f64
        }
    };
    let support_pos = (tp + fneg) as f64;
    let support_neg = (tn + fp) as f64;
    let weighted = (f1(tp, fp, fneg) * support_pos + f1(tn, fneg, fp) * support_neg) / n as f64;
    (acc, weighted)
}

/// Pearson correlation; `None` if either vector has zero variance.
pub fn pearson(a: &ArrayView1<f64>, b: &ArrayView1<f64>) -> Option<f64> {
    let n = a.len() as f64;
    let ma = a.sum() / n;
    let mb = b.sum() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b.iter()) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return None;
    }
    Some((sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0))
}

/// All regression metrics of MMSA. `acc2_non0`/`f1_non0` are NaN-free: if every label is 0 they are
/// an error ([`EstimatorError::TooFewSamples`]).
pub fn regression_metrics(
    pred: &ArrayView1<f64>,
    label: &ArrayView1<f64>,
) -> Result<RegressionMetrics> {
    check(pred, label)?;
    let n = pred.len() as f64;
    let r7 = |v: f64| v.clamp(-3.0, 3.0).round_ties_even();
    let acc7 = pred
        .iter()
        .zip(label.iter())
        .filter(|(p, l)| r7(**p) == r7(**l))
        .count() as f64
        / n;
    let ph: Vec<bool> = pred.iter().map(|p| *p >= 0.0).collect();
    let th: Vec<bool> = label.iter().map(|l| *l >= 0.0).collect();
    let (acc2_has0, f1_has0) = binary_acc_f1(&ph, &th);
    let (pn, tn): (Vec<bool>, Vec<bool>) = pred
        .iter()
        .zip(label.iter())
        .filter(|(_, l)| **l != 0.0)
        .map(|(p, l)| (*p > 0.0, *l > 0.0))
        .unzip();
    if pn.is_empty() {
        return Err(EstimatorError::TooFewSamples {
            what: "acc2_non0",
            need: "at least one non-zero label".into(),
            got: 0,
        });
    }
    let (acc2_non0, f1_non0) = binary_acc_f1(&pn, &tn);
    let mae = mae(&pred.to_vec(), &label.to_vec());
    Ok(RegressionMetrics {
        acc7,
        acc2_has0,
        acc2_non0,
        f1_has0,
        f1_non0,
        mae,
        corr: pearson(pred, label),
    })
}

/// Mean absolute error `Σ|pᵢ − yᵢ| / n` of equally long slices (0 for empty ones). The one MAE of
/// the crate: metrics, model selection and the synthetic tier's reference predictors use it.
pub fn mae(pred: &[f64], label: &[f64]) -> f64 {
    debug_assert_eq!(pred.len(), label.len());
    if pred.is_empty() {
        return 0.0;
    }
    pred.iter()
        .zip(label)
        .map(|(p, l)| (p - l).abs())
        .sum::<f64>()
        / pred.len() as f64
}

/// UR-FUNNY binary accuracy: `score ≥ threshold` predicts class 1; labels must be 0 or 1.
pub fn binary_accuracy(
    score: &ArrayView1<f64>,
    label: &ArrayView1<f64>,
    threshold: f64,
) -> Result<f64> {
    check(score, label)?;
    if let Some(bad) = label.iter().find(|l| **l != 0.0 && **l != 1.0) {
        return Err(EstimatorError::InvalidParameter {
            name: "label",
            reason: format!("binary labels must be 0 or 1, found {bad}"),
        });
    }
    let hits = score
        .iter()
        .zip(label.iter())
        .filter(|(s, l)| (**s >= threshold) == (**l == 1.0))
        .count();
    Ok(hits as f64 / score.len() as f64)
}
