//! Timing of training epochs alone (no validation, no test), for benchmarks and `--plan`.

use super::batch::Batcher;
use super::fit::{batch_order_rng, make_stepper, train_step};
use super::protocol::RunConfig;
use super::vars::{build_checked, build_ctx};
use crate::data::Dataset;
use crate::models::{FusionModel, ModelVisitor};
use crate::params::Checked;
use candle_core::Device;
use rand::seq::SliceRandom;

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
pub(crate) fn process_cpu_seconds() -> Option<f64> {
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
/// optimiser step(s) of every batch, exactly the steps `train_run` takes (the model's extra
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
    let cfg = &Checked::new(cfg.clone())?;
    struct V<'a> {
        ds: &'a Dataset,
        cfg: &'a Checked<RunConfig>,
        warmup: usize,
        device: &'a Device,
    }
    impl ModelVisitor for V<'_> {
        type Output = crate::synergy::Result<EpochTiming>;
        fn visit<M: FusionModel>(self, m: &M::Config) -> Self::Output {
            let (ds, cfg) = (self.ds, self.cfg);
            let device = self.device.clone();
            // the run's check covered its model's configuration
            let m = Checked::part_of_checked(m.clone());
            let (model, vm) = build_checked::<M>(&m, &build_ctx(ds, cfg), &device)?;
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
