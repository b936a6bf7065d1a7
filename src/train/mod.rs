//! Training protocol (Appendix C): AdamW, gradient clip 5, model selection by the best
//! **validation** MAE with early stopping (patience 8 epochs), grid over batch size × learning rate;
//! test metrics are computed once, for the selected checkpoint only.
//!
//! Task loss: L1 (MMSA's regression loss for MOSI/MOSEI; the paper's "NLL" rows are this
//! likelihood-only training). Variants: `NLL` (task loss only), `NLL+SKL` and `NLL+SMMD`
//! (Algorithm D with the C-network, `L_d` = DV-estimated KL or MMD). A NaN/Inf loss stops that run,
//! which is recorded as diverged (epoch and step) and never selected.

use crate::data::{Dataset, Split};
use crate::metrics::{regression_metrics, RegressionMetrics};
use crate::models::ef_lstm::{EfLstm, EfLstmConfig};
use crate::models::TRAIN_DTYPE;
use crate::synergy::{
    CNetwork, Divergence, FusionModel, SynergyConfig, SynergyError, SynergyStep, TaskStep,
};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Training variant (a row of the paper's tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Variant {
    #[serde(rename = "NLL")]
    Nll,
    #[serde(rename = "NLL+SKL")]
    NllSkl,
    #[serde(rename = "NLL+SMMD")]
    NllSmmd,
}

impl Variant {
    /// All variants of the FLSTM rows.
    pub const ALL: [Variant; 3] = [Variant::Nll, Variant::NllSkl, Variant::NllSmmd];

    /// The paper's name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Nll => "NLL",
            Variant::NllSkl => "NLL+SKL",
            Variant::NllSmmd => "NLL+SMMD",
        }
    }
}

/// Weights of the synergy regulariser (defaults: [`SynergyConfig::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegWeights {
    pub beta: f64,
    pub gamma_l2: f64,
    pub gamma_d: f64,
    pub gamma_k: f64,
}

impl Default for RegWeights {
    fn default() -> Self {
        let c = SynergyConfig::default();
        Self {
            beta: c.beta,
            gamma_l2: c.gamma_l2,
            gamma_d: c.gamma_d,
            gamma_k: c.gamma_k,
        }
    }
}

/// One training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub model: String,
    pub variant: Variant,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    pub max_epochs: usize,
    pub patience: usize,
    /// Regulariser weights (unused by `NLL`).
    pub weights: RegWeights,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub config: RunConfig,
    /// Epochs trained (including the patience tail).
    pub epochs: usize,
    /// Epoch (1-based) of the selected checkpoint.
    pub best_epoch: usize,
    /// Validation MAE of the selected checkpoint (what selection uses).
    pub valid_mae: f64,
    /// Test metrics of the selected checkpoint (None if the run diverged before any checkpoint).
    pub test: Option<RegressionMetrics>,
    /// Validation MAE of predicting the training mean (the floor a model must beat).
    pub valid_mae_train_mean: f64,
    /// `"epoch E, step S: message"` when a NaN/Inf stopped the run.
    pub diverged: Option<String>,
    pub wall_s: f64,
}

enum Stepper {
    Task(TaskStep),
    Synergy(Box<SynergyStep>),
}

/// The synergy configuration of a variant (None for `NLL`).
pub fn synergy_config(variant: Variant, seed: u64, w: RegWeights) -> Option<SynergyConfig> {
    let div = match variant {
        Variant::Nll => return None,
        Variant::NllSkl => Divergence::Kl,
        Variant::NllSmmd => Divergence::Mmd,
    };
    Some(SynergyConfig {
        divergence: div,
        seed,
        beta: w.beta,
        gamma_l2: w.gamma_l2,
        gamma_d: w.gamma_d,
        gamma_k: w.gamma_k,
        ..SynergyConfig::default()
    })
}

/// Predictions of `model` on a whole split (inference: no C-network, no dropout).
pub fn predict(
    model: &EfLstm,
    ds: &Dataset,
    split: &Split,
    device: &Device,
) -> crate::synergy::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(split.len());
    let idx: Vec<usize> = (0..split.len()).collect();
    for chunk in idx.chunks(128) {
        let b = ds.batch(split, chunk, &[], TRAIN_DTYPE, device)?;
        let p = model.forward(&b, false)?.prediction;
        out.extend(p.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?);
    }
    Ok(out)
}

fn mae(p: &[f64], l: &[f32]) -> f64 {
    p.iter()
        .zip(l)
        .map(|(a, b)| (a - *b as f64).abs())
        .sum::<f64>()
        / p.len() as f64
}

fn snapshot(model: &EfLstm) -> candle_core::Result<Vec<(candle_core::Var, Tensor)>> {
    let data = model.varmap().data().lock().expect("VarMap lock");
    data.values()
        .map(|v| Ok((v.clone(), v.as_tensor().copy()?)))
        .collect()
}

fn restore(s: &[(candle_core::Var, Tensor)]) -> candle_core::Result<()> {
    for (v, t) in s {
        v.set(t)?;
    }
    Ok(())
}

/// Trains one configuration with early stopping on validation MAE; `on_epoch(epoch, valid_mae)`
/// reports progress.
pub fn train_run(
    ds: &Dataset,
    cfg: &RunConfig,
    mut on_epoch: impl FnMut(usize, f64),
) -> crate::synergy::Result<RunResult> {
    let start = std::time::Instant::now();
    let device = Device::Cpu;
    let model = EfLstm::new(
        EfLstmConfig::default(),
        ds.dims,
        cfg.seed,
        TRAIN_DTYPE,
        &device,
    )?;
    let mut stepper = match synergy_config(cfg.variant, cfg.seed, cfg.weights) {
        None => Stepper::Task(TaskStep::new(model.varmap().all_vars(), cfg.lr, 0.01, 5.0)?),
        Some(sc) => {
            let (dims, fused) = model.rep_dims();
            let cnet = CNetwork::new(sc, &dims, fused, TRAIN_DTYPE, &device)?;
            Stepper::Synergy(Box::new(SynergyStep::new(
                cnet,
                model.varmap().all_vars(),
                cfg.lr,
            )?))
        }
    };
    let train_mean = ds.train.labels.iter().map(|v| *v as f64).sum::<f64>() / ds.train.len() as f64;
    let valid_mae_train_mean = ds
        .valid
        .labels
        .iter()
        .map(|l| (train_mean - *l as f64).abs())
        .sum::<f64>()
        / ds.valid.len() as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5EED);
    let mut order: Vec<usize> = (0..ds.train.len()).collect();
    let (mut best, mut best_epoch, mut best_snap) = (f64::INFINITY, 0usize, None);
    let mut epochs = 0;
    let mut diverged = None;
    'epochs: for epoch in 1..=cfg.max_epochs {
        epochs = epoch;
        order.shuffle(&mut rng);
        for (step, chunk) in order.chunks(cfg.batch_size).enumerate() {
            if chunk.len() < 2 {
                continue; // a batch of one has no batch statistics (MMD, kurtosis)
            }
            let b = ds.batch(&ds.train, chunk, &[], TRAIN_DTYPE, &device)?;
            let out = model.forward(&b, true)?;
            let loss = (&out.prediction - &b.label)?.abs()?.mean_all()?;
            let r = match &mut stepper {
                Stepper::Task(t) => t.step(&loss).map(|_| ()),
                Stepper::Synergy(s) => s.step(&out, &loss).map(|_| ()),
            };
            match r {
                Ok(()) => {}
                Err(SynergyError::NonFinite { what, value, .. }) => {
                    diverged = Some(format!(
                        "epoch {epoch}, step {step}: non-finite {what} ({value})"
                    ));
                    break 'epochs;
                }
                Err(e) => return Err(e),
            }
        }
        let v = mae(&predict(&model, ds, &ds.valid, &device)?, &ds.valid.labels);
        on_epoch(epoch, v);
        if !v.is_finite() {
            diverged = Some(format!("epoch {epoch}: non-finite validation MAE"));
            break;
        }
        if v < best {
            best = v;
            best_epoch = epoch;
            best_snap = Some(snapshot(&model)?);
        } else if epoch - best_epoch >= cfg.patience {
            break;
        }
    }
    let test = match &best_snap {
        Some(s) => {
            restore(s)?;
            let p = predict(&model, ds, &ds.test, &device)?;
            let l: Vec<f64> = ds.test.labels.iter().map(|v| *v as f64).collect();
            Some(regression_metrics(
                &ndarray::ArrayView1::from(&p),
                &ndarray::ArrayView1::from(&l),
            )?)
        }
        None => None,
    };
    Ok(RunResult {
        config: cfg.clone(),
        epochs,
        best_epoch,
        valid_mae: best,
        test,
        valid_mae_train_mean,
        diverged,
        wall_s: start.elapsed().as_secs_f64(),
    })
}

/// Model selection: among finished, non-diverged runs, the one with the lowest validation MAE.
pub fn select_best<'a>(runs: impl IntoIterator<Item = &'a RunResult>) -> Option<&'a RunResult> {
    runs.into_iter()
        .filter(|r| r.diverged.is_none() && r.test.is_some() && r.valid_mae.is_finite())
        .min_by(|a, b| a.valid_mae.total_cmp(&b.valid_mae))
}
