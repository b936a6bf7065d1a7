//! A small synthetic fusion model and batch stream for `synergy train-demo` and the tests.
//!
//! Data: per sample a latent sentiment `s ~ N(0,1)` and a cue `u ~ N(0,1)`; text `= s·a_t + noise`,
//! audio `= (s, u)·A_a + noise`, vision `= u·a_v + noise`, label `y = s + 0.5·s·sign(u)` — the
//! second term needs audio and vision together. Model: per-modality `Linear + tanh` encoders
//! (`Z_i`), a `Linear + tanh` fusion of their concatenation (`Z`) and a linear head.

use crate::synergy::ModelOutput;
use crate::synergy::Result;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Input widths of the demo modalities (text, audio, vision).
pub(crate) const DEMO_DIMS: [usize; 3] = [24, 12, 8];

/// One batch: three modality matrices and the labels.
#[derive(Debug, Clone)]
pub struct DemoBatch {
    pub inputs: Vec<Tensor>,
    pub label: Tensor,
}

/// Seeded generator of demo batches.
#[derive(Debug)]
pub struct DemoStream {
    rng: ChaCha8Rng,
    mix: Vec<Vec<f64>>,
    dtype: DType,
    device: Device,
}

impl DemoStream {
    /// A stream from `seed`.
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mix = DEMO_DIMS
            .iter()
            .map(|&d| {
                (0..2 * d)
                    .map(|_| StandardNormal.sample(&mut rng))
                    .collect()
            })
            .collect();
        Self {
            rng,
            mix,
            dtype,
            device: device.clone(),
        }
    }

    /// The next batch of `n` samples.
    pub fn batch(&mut self, n: usize) -> Result<DemoBatch> {
        let mut cols: Vec<Vec<f64>> = DEMO_DIMS
            .iter()
            .map(|d| Vec::with_capacity(n * d))
            .collect();
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let s: f64 = StandardNormal.sample(&mut self.rng);
            let u: f64 = StandardNormal.sample(&mut self.rng);
            y.push(s + 0.5 * s * u.signum());
            for (m, &d) in DEMO_DIMS.iter().enumerate() {
                let (ws, wu) = match m {
                    0 => (1.0, 0.0),
                    1 => (0.5, 1.0),
                    _ => (0.0, 1.0),
                };
                for j in 0..d {
                    let e: f64 = StandardNormal.sample(&mut self.rng);
                    cols[m].push(ws * s * self.mix[m][j] + wu * u * self.mix[m][d + j] + 0.3 * e);
                }
            }
        }
        let inputs = cols
            .into_iter()
            .zip(DEMO_DIMS)
            .map(|(v, d)| Ok(Tensor::from_vec(v, (n, d), &self.device)?.to_dtype(self.dtype)?))
            .collect::<Result<Vec<_>>>()?;
        let label = Tensor::from_vec(y, n, &self.device)?.to_dtype(self.dtype)?;
        Ok(DemoBatch { inputs, label })
    }
}

/// The demo fusion model.
pub struct DemoFusion {
    vars: VarMap,
    enc: Vec<Linear>,
    fuse: Linear,
    head: Linear,
}

impl std::fmt::Debug for DemoFusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoFusion").finish_non_exhaustive()
    }
}

impl DemoFusion {
    /// Width of each `Z_i` and of `Z`.
    pub const HIDDEN: usize = 16;

    /// A model with its own variables, initialised from `seed`.
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, dtype, device);
        let h = Self::HIDDEN;
        let enc = DEMO_DIMS
            .iter()
            .enumerate()
            .map(|(i, &d)| linear(d, h, vb.pp(format!("enc{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let model = Self {
            fuse: linear(3 * h, h, vb.pp("fuse"))?,
            head: linear(h, 1, vb.pp("head"))?,
            enc,
            vars,
        };
        crate::synergy::nets::seed_varmap(&model.vars, seed)?;
        Ok(model)
    }
}

impl DemoFusion {
    /// The model's variables.
    pub fn varmap(&self) -> &VarMap {
        &self.vars
    }

    /// Forward pass (the demo model has no dropout).
    pub fn forward(&self, b: &DemoBatch, _train: bool) -> candle_core::Result<ModelOutput> {
        let unimodal = self
            .enc
            .iter()
            .zip(&b.inputs)
            .map(|(l, x)| l.forward(x)?.tanh())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let fused = self.fuse.forward(&Tensor::cat(&unimodal, 1)?)?.tanh()?;
        let prediction = self.head.forward(&fused)?.squeeze(1)?;
        Ok(ModelOutput {
            unimodal,
            fused,
            prediction,
            aux_loss: None,
        })
    }
}

/// Settings of [`run_demo`].
#[derive(Debug, Clone)]
pub(crate) struct DemoConfig {
    pub steps: usize,
    pub batch: usize,
    pub lr_task: f64,
    pub seed: u64,
    pub synergy: crate::synergy::SynergyConfig,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            steps: 300,
            batch: 64,
            lr_task: 3e-3,
            seed: 0,
            synergy: crate::synergy::SynergyConfig {
                lr_mi: 3e-3,
                ..crate::synergy::SynergyConfig::default()
            },
        }
    }
}

/// Per-step losses of a demo run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct DemoTrace {
    pub task: Vec<f64>,
    pub l2: Vec<f64>,
    pub ld: Vec<f64>,
    pub lk: Vec<f64>,
    pub reg: Vec<f64>,
}

/// Trains [`DemoFusion`] with [`crate::synergy::SynergyStep`] on a [`DemoStream`] (CPU, f32) and records every
/// step's losses.
pub(crate) fn run_demo(cfg: &DemoConfig) -> Result<DemoTrace> {
    let dev = Device::Cpu;
    let model = DemoFusion::new(cfg.seed, DType::F32, &dev)?;
    let h = DemoFusion::HIDDEN;
    let cnet = crate::synergy::CNetwork::new(cfg.synergy.clone(), &[h, h, h], h, DType::F32, &dev)?;
    let mut step = crate::synergy::SynergyStep::new(cnet, model.varmap().all_vars(), cfg.lr_task)?;
    let mut stream = DemoStream::new(cfg.seed, DType::F32, &dev);
    let mut tr = DemoTrace::default();
    for _ in 0..cfg.steps {
        let b = stream.batch(cfg.batch)?;
        let out = model.forward(&b, true)?;
        let loss = (&out.prediction - &b.label)?.sqr()?.mean_all()?;
        let s = step.step(&out, &loss)?;
        tr.task.push(s.task);
        tr.l2.push(s.l2.unwrap_or(f64::NAN));
        tr.ld.push(s.ld.unwrap_or(f64::NAN));
        tr.lk.push(s.lk.unwrap_or(f64::NAN));
        tr.reg.push(s.reg);
    }
    Ok(tr)
}
