//! The generic training loop ([`train_model`]): the optimiser of a variant, one training step, the
//! epochs with early stopping on validation, and the test evaluation of the selected checkpoint.

use super::batch::{labels_f64, predict_with, Batcher};
use super::protocol::{RunConfig, Selection, Variant};
use super::result::{
    binary_metrics, device_label, DroppedEval, RunResult, TestMetrics, DROP_CONDITIONS,
};
use super::robustness;
use super::vars::{build_checked, build_ctx, extra_stage_vars, param_groups, restore, snapshot};
use crate::data::{Dataset, Task};
use crate::metrics::regression_metrics;
use crate::models::{FusionModel, ModelOutput, ModelVisitor, TRAIN_DTYPE};
use crate::params::Checked;
use crate::synergy::iwas::IwasStep;
use crate::synergy::{CNetwork, SynergyConfig, SynergyError, SynergyStep, TaskStep};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub(super) enum Stepper {
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
pub(super) fn batch_order_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0x5EED)
}

/// The optimiser of a run: the plain task step (NLL), Algorithm D's step with a fresh C-network
/// (synergy variants and ablations) or the IWas step.
pub(super) fn make_stepper<M: FusionModel>(
    model: &M,
    vm: &VarMap,
    cfg: &Checked<RunConfig>,
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
            // the run's check covered its synergy settings (the seed has no domain)
            Stepper::Iwas(Box::new(IwasStep::grouped(
                &Checked::part_of_checked(sc),
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
            // RunConfig::validate checked exactly this configuration
            let cnet = CNetwork::from_checked(
                Checked::part_of_checked(sc),
                &dims,
                fused,
                TRAIN_DTYPE,
                device,
            )?;
            Stepper::Synergy(Box::new(SynergyStep::grouped(cnet, groups)?))
        }
    })
}

/// One training step on the training clips `chunk`: forward, task loss (+ the model's auxiliary
/// loss), the stepper's backward and updates.
pub(super) fn train_step<M: FusionModel>(
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

/// Trains one configuration (any registered model) with early stopping on the validation metric;
/// `on_epoch(epoch, valid_score)` reports progress. `Err` only for an invalid configuration.
pub fn train_run(
    ds: &Dataset,
    cfg: &RunConfig,
    on_epoch: impl FnMut(usize, f64),
) -> crate::synergy::Result<RunResult> {
    train_run_on(ds, cfg, &Device::Cpu, on_epoch)
}

/// [`train_run`] on `device` from a plain configuration: checks it once ([`Checked::new`]), then
/// [`train_checked_on`].
pub fn train_run_on(
    ds: &Dataset,
    cfg: &RunConfig,
    device: &Device,
    on_epoch: impl FnMut(usize, f64),
) -> crate::synergy::Result<RunResult> {
    train_checked_on(ds, &Checked::new(cfg.clone())?, device, on_epoch)
}

/// [`train_run`] on `device`: the CPU, or a CUDA GPU in a build with the `cuda` feature (the
/// fused CPU kernels fall back to composed candle ops there; results differ from the CPU's by
/// rounding). The configuration was checked ([`Checked`]): nothing checks it again.
pub fn train_checked_on(
    ds: &Dataset,
    cfg: &Checked<RunConfig>,
    device: &Device,
    on_epoch: impl FnMut(usize, f64),
) -> crate::synergy::Result<RunResult> {
    struct V<'a, F> {
        ds: &'a Dataset,
        cfg: &'a Checked<RunConfig>,
        device: &'a Device,
        on_epoch: F,
    }
    impl<F: FnMut(usize, f64)> ModelVisitor for V<'_, F> {
        type Output = crate::synergy::Result<RunResult>;
        fn visit<M: FusionModel>(self, m: &M::Config) -> Self::Output {
            // the run's check covered its model's configuration
            let m = Checked::part_of_checked(m.clone());
            train_model::<M>(self.ds, self.cfg, &m, self.device, self.on_epoch)
        }
    }
    cfg.model.visit(V {
        ds,
        cfg,
        device,
        on_epoch,
    })
}

/// [`train_run`] for a concrete model type: a short sequence of named steps — the record of the
/// run (`new_record`), the model (`build_model`), the epochs with early stopping on validation
/// (`fit_epochs`; a failure inside them ends the run and is recorded, never returned), and the
/// test evaluation of the selected checkpoint (`test_checkpoint`).
pub fn train_model<M: FusionModel>(
    ds: &Dataset,
    cfg: &Checked<RunConfig>,
    mcfg: &Checked<M::Config>,
    device: &Device,
    on_epoch: impl FnMut(usize, f64),
) -> crate::synergy::Result<RunResult> {
    let start = std::time::Instant::now();
    let mut result = new_record(ds, cfg, device);
    let (model, vm) = build_checked::<M>(mcfg, &build_ctx(ds, cfg), device)?;
    model.prepare(ds)?;
    let batcher = Batcher::new(ds, device);
    // where the run stands, for the failure message
    let mut at = (0usize, 0usize);
    let mut best_snap = None;
    let fitted = fit_epochs(
        &model,
        &vm,
        ds,
        cfg,
        &batcher,
        &mut result,
        &mut best_snap,
        &mut at,
        on_epoch,
    );
    if let Err(e) = fitted {
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
        match test_checkpoint(&model, s, ds, mcfg, cfg, &batcher) {
            Ok(tested) => {
                result.test = Some(tested.metrics);
                result.test_predictions = Some(tested.predictions);
                result.dropped = tested.dropped;
                result.robustness = tested.robustness;
            }
            Err(e) => result.failure = Some(format!("test evaluation: {e}")),
        }
    }
    result.wall_s = start.elapsed().as_secs_f64();
    Ok(result)
}

/// The record of a run before training: its configuration, the selection metric at its worst,
/// and the validation score of predicting the training mean (regression) or majority class.
fn new_record(ds: &Dataset, cfg: &RunConfig, device: &Device) -> RunResult {
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
    RunResult {
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
        device: device_label(device),
        robustness: Vec::new(),
    }
}

/// The epochs: the model's extra stage (MMIM's MMILB step, its own optimiser over its own
/// variables) then the training steps on the shuffled clips, validation after each epoch, the
/// best checkpoint kept in `best_snap`, early stopping after `cfg.patience` epochs without
/// improvement. `at` tracks (epoch, step) for the failure message (`step == usize::MAX`: the
/// validation). The modalities the variant zeroes (the text-only control) stay zeroed.
#[allow(clippy::too_many_arguments)]
fn fit_epochs<M: FusionModel>(
    model: &M,
    vm: &VarMap,
    ds: &Dataset,
    cfg: &Checked<RunConfig>,
    batcher: &Batcher<'_>,
    result: &mut RunResult,
    best_snap: &mut Option<Vec<(candle_core::Var, Tensor)>>,
    at: &mut (usize, usize),
    mut on_epoch: impl FnMut(usize, f64),
) -> crate::synergy::Result<()> {
    let zeroed = cfg.variant.zeroed_modalities();
    let valid_labels = labels_f64(&ds.valid);
    let selection = result.selection;
    let device = batcher.device();
    let mut stepper = make_stepper(model, vm, cfg, device)?;
    let mut extra = match model.extra_stage() {
        Some(st) => Some((
            st,
            TaskStep::new(
                extra_stage_vars(model, vm),
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
                *at = (epoch, step);
                if chunk.len() < 2 {
                    continue;
                }
                let b = batcher.batch(&ds.train, chunk, zeroed)?;
                step_x.step(&model.extra_stage_loss(&b)?)?;
            }
        }
        for (step, chunk) in order.chunks(cfg.batch_size).enumerate() {
            *at = (epoch, step);
            if chunk.len() < 2 {
                continue; // a batch of one has no batch statistics (MMD, kurtosis, BatchNorm)
            }
            train_step(model, &mut stepper, batcher, chunk, cfg)?;
        }
        *at = (epoch, usize::MAX);
        let v = selection.score(
            &predict_with(model, &ds.valid, zeroed, batcher)?,
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
            *best_snap = Some(snapshot(vm)?);
        } else if epoch - result.best_epoch >= cfg.patience {
            break;
        }
    }
    Ok(())
}

/// What the selected checkpoint scores on the test split.
struct Tested {
    metrics: TestMetrics,
    predictions: Vec<f32>,
    dropped: Vec<DroppedEval>,
    robustness: Vec<robustness::RobustnessCurve>,
}

/// Restores the selected checkpoint `snap` and evaluates it on the test split: clean, under
/// Table 4's corruptions ([`DROP_CONDITIONS`]; the variant's own zeroed modalities stay zeroed
/// under each) and along the graded robustness curves ([`robustness`]).
fn test_checkpoint<M: FusionModel>(
    model: &M,
    snap: &[(candle_core::Var, Tensor)],
    ds: &Dataset,
    mcfg: &M::Config,
    cfg: &RunConfig,
    batcher: &Batcher<'_>,
) -> crate::synergy::Result<Tested> {
    let zeroed = cfg.variant.zeroed_modalities();
    restore(snap)?;
    let (m, p) = evaluate(model, ds, zeroed, batcher)?;
    let mut dropped = Vec::with_capacity(DROP_CONDITIONS.len());
    for (condition, drop) in DROP_CONDITIONS {
        let mut drop = drop.to_vec();
        drop.extend_from_slice(zeroed);
        drop.sort_unstable();
        drop.dedup();
        let (test, p) = evaluate(model, ds, &drop, batcher)?;
        dropped.push(DroppedEval {
            condition: condition.into(),
            test,
            predictions: Some(p.iter().map(|v| *v as f32).collect()),
        });
    }
    let curves = robustness::curves(
        model,
        ds,
        zeroed,
        M::needs_tokens(mcfg),
        cfg.seed,
        &m,
        batcher,
    )?;
    Ok(Tested {
        metrics: m,
        predictions: p.iter().map(|v| *v as f32).collect(),
        dropped,
        robustness: curves,
    })
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
pub(crate) fn metrics_of(task: Task, p: &[f64], l: &[f64]) -> crate::synergy::Result<TestMetrics> {
    Ok(match task {
        Task::Regression => TestMetrics::Regression(regression_metrics(
            &ndarray::ArrayView1::from(p),
            &ndarray::ArrayView1::from(l),
        )?),
        Task::Binary => TestMetrics::Binary(binary_metrics(p, l)),
    })
}
