//! IWas: the Wasserstein dependency measure between two representations (Ozair et al. 2019), as
//! the IWas regulariser of Colombo et al. (2021) uses it — a **reconstruction**: that paper has no
//! public code.
//!
//! `W_dep(X; Y) = sup_{‖T‖_Lip ≤ 1} E_{p(x,y)}[T(x, y)] − E_{p(x)p(y)}[T(x, y)]`
//!
//! The product of marginals is sampled by pairing each `x_j` with `y_{π(j)}` for a permutation
//! `π` of the batch (a derangement-free shuffle drawn from a seeded stream). The critic `T` is an
//! MLP on `[x, y]` whose linear layers are **spectrally normalised** (`W / σ(W)`, `σ` by power
//! iteration, as PyTorch's `spectral_norm`: the singular vectors are constants of each step, the
//! gradient flows through `σ = uᵀWv`) with LeakyReLU activations (slope < 1, so 1-Lipschitz):
//! the composition is 1-Lipschitz in `(x, y)`. Candle has no double backward, so the gradient
//! penalty of WGAN-GP is not available; spectral normalisation enforces the constraint without it.
//! The critic ascends `W_dep`; a task model that uses IWas as a regulariser adds `−λ · W_dep`
//! (dependence between modalities is maximised, as in Colombo et al.).

use super::nets::LEAKY_SLOPE;
use super::Result;
use crate::params::Checked;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarBuilder;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;

/// A linear layer `x ↦ x (W/σ(W))ᵀ + b` with `σ(W)` estimated by power iteration.
#[derive(Debug)]
pub struct SnLinear {
    w: Tensor,
    b: Tensor,
    /// The left singular vector estimate `u` (length `out`), a constant.
    u: Mutex<Tensor>,
}

impl SnLinear {
    /// Variables `weight` (`out × in`, Kaiming-uniform as candle-nn's `linear`) and `bias` under
    /// `vb`; `u` starts as a seeded random unit vector and is refined by `warmup` power iterations.
    pub fn new(
        vb: VarBuilder,
        input: usize,
        output: usize,
        seed: u64,
        warmup: usize,
    ) -> Result<Self> {
        let bound = 1.0 / (input as f64).sqrt();
        let w = vb.get_with_hints(
            (output, input),
            "weight",
            candle_nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        let b = vb.get_with_hints(
            output,
            "bias",
            candle_nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let u0: Vec<f64> = (0..output)
            .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
            .collect();
        let u = Tensor::from_vec(u0, output, w.device())?.to_dtype(w.dtype())?;
        let layer = Self {
            u: Mutex::new(normalize(&u)?),
            w,
            b,
        };
        for _ in 0..warmup {
            layer.power_iteration()?;
        }
        Ok(layer)
    }

    /// One power iteration on the current weights: `v = Wᵀu/‖Wᵀu‖`, `u = Wv/‖Wv‖`; returns `v`.
    pub(crate) fn power_iteration(&self) -> Result<Tensor> {
        let w = self.w.detach();
        let mut u = self.u.lock().expect("sn vector");
        let v = normalize(&w.t()?.matmul(&u.unsqueeze(1)?)?.squeeze(1)?)?;
        *u = normalize(&w.matmul(&v.unsqueeze(1)?)?.squeeze(1)?)?;
        Ok(v)
    }

    /// `σ(W) ≈ uᵀ W v` (differentiable in `W`), after one power iteration when `update`.
    pub fn sigma(&self, update: bool) -> Result<Tensor> {
        let v = if update {
            self.power_iteration()?
        } else {
            let u = self.u.lock().expect("sn vector").clone();
            normalize(&self.w.detach().t()?.matmul(&u.unsqueeze(1)?)?.squeeze(1)?)?
        };
        let u = self.u.lock().expect("sn vector").clone();
        Ok(u.unsqueeze(0)?
            .matmul(&self.w)?
            .matmul(&v.unsqueeze(1)?)?
            .reshape(())?)
    }

    /// The normalised layer applied to `x` (`N × in`).
    pub fn forward(&self, x: &Tensor, update: bool) -> Result<Tensor> {
        let sigma = self.sigma(update)?;
        let w = self.w.broadcast_div(&sigma)?;
        Ok(x.matmul(&w.t()?)?.broadcast_add(&self.b)?)
    }

    /// The raw weight `W` (for tests).
    pub fn weight(&self) -> &Tensor {
        &self.w
    }
}

fn normalize(v: &Tensor) -> Result<Tensor> {
    let n = v.sqr()?.sum_all()?.sqrt()?.affine(1.0, 1e-12)?;
    Ok(v.broadcast_div(&n)?)
}

/// The IWas critic: `[x, y] → h → h → 1`, spectrally normalised linear layers, LeakyReLU.
#[derive(Debug)]
pub struct IwasCritic {
    layers: Vec<SnLinear>,
    perm_rng: Mutex<ChaCha8Rng>,
}

impl IwasCritic {
    /// A critic for `x` of width `dx` and `y` of width `dy` with hidden width `hidden`; its
    /// variables live under `vb`, its power-iteration vectors and shuffles come from `seed`.
    pub fn new(vb: VarBuilder, dx: usize, dy: usize, hidden: usize, seed: u64) -> Result<Self> {
        let widths = [dx + dy, hidden, hidden, 1];
        let layers = (0..3)
            .map(|i| {
                SnLinear::new(
                    vb.pp(format!("l{i}")),
                    widths[i],
                    widths[i + 1],
                    seed.wrapping_add(i as u64),
                    20,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            perm_rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x1a5_7a5)),
        })
    }

    /// `T(x, y)` per row (`N`); one power iteration per layer when `update` (training steps).
    pub fn score(&self, x: &Tensor, y: &Tensor, update: bool) -> Result<Tensor> {
        let mut h = Tensor::cat(&[x, y], D::Minus1)?;
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h, update)?;
            if i + 1 < self.layers.len() {
                h = crate::kernels::leaky_relu(&h, LEAKY_SLOPE)?;
            }
        }
        Ok(h.squeeze(1)?)
    }

    /// The layers (for tests).
    pub fn layers(&self) -> &[SnLinear] {
        &self.layers
    }

    /// A shuffle of `0..n` from the critic's seeded stream.
    pub fn permutation(&self, n: usize, device: &Device) -> Result<Tensor> {
        let mut idx: Vec<u32> = (0..n as u32).collect();
        idx.shuffle(&mut *self.perm_rng.lock().expect("perm rng"));
        Ok(Tensor::from_vec(idx, n, device)?)
    }

    /// The batch estimate `mean_j T(x_j, y_j) − mean_j T(x_j, y_{π(j)})` (differentiable in the
    /// critic and in `x`, `y`), with a fresh shuffle `π`.
    pub fn estimate(&self, x: &Tensor, y: &Tensor, update: bool) -> Result<Tensor> {
        let n = x.dim(0)?;
        if n < 2 || y.dim(0)? != n {
            return Err(super::SynergyError::Shape(format!(
                "IWas needs two batches of the same size >= 2, got {n} and {}",
                y.dim(0)?
            )));
        }
        let perm = self.permutation(n, x.device())?;
        let joint = self.score(x, y, update)?.mean_all()?;
        let product = self
            .score(x, &y.index_select(&perm, 0)?, update)?
            .mean_all()?;
        Ok((joint - product)?)
    }
}

/// Convenience: a fresh critic on its own `VarMap` (f64 or f32 per `dtype`).
pub fn critic(
    dx: usize,
    dy: usize,
    hidden: usize,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<(IwasCritic, candle_nn::VarMap)> {
    let map = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&map, dtype, device);
    let c = IwasCritic::new(vb, dx, dy, hidden, seed)?;
    super::nets::seed_varmap(&map, seed)?;
    // converge the power iterations on the reseeded weights (cheap: the layers are small)
    for l in &c.layers {
        for _ in 0..500 {
            l.power_iteration()?;
        }
    }
    Ok((c, map))
}

/// One training step of the `NLL+IWas` variant: per step, (1) every critic ascends its estimate on
/// the detached unimodal representations (its own AdamW, learning rate `lr_critic`, clipped at
/// `grad_clip`); (2) the task model descends `L_task − β Σ_{i<j} Ŵ_dep(Z_i; Z_j)` over the three
/// pairs of unimodal representations (text–audio, text–vision, audio–vision), the critics held
/// fixed. `β`, `hidden`, `lr_critic`, `grad_clip` and `seed` come from `SynergyConfig`; its
/// C-network fields are unused.
pub struct IwasStep {
    critics: Vec<(usize, usize, IwasCritic)>,
    critic_step: super::TaskStep,
    task: super::TaskStep,
    weight: f64,
    _maps: Vec<candle_nn::VarMap>,
}

impl std::fmt::Debug for IwasStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IwasStep")
            .field("pairs", &self.critics.len())
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

impl IwasStep {
    /// Critics for every pair of the unimodal widths `dims`, and the task model's optimiser over
    /// `task_vars` at `lr`; the settings are checked first ([`Checked::new`]).
    pub fn new(
        cfg: &super::SynergyConfig,
        dims: &[usize],
        task_vars: Vec<Var>,
        lr: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let cfg = Checked::new(cfg.clone())?;
        Self::grouped(&cfg, dims, vec![(task_vars, lr)], dtype, device)
    }

    /// [`Self::new`] from checked settings with the task model's variables in parameter groups
    /// `(vars, lr)`.
    pub fn grouped(
        cfg: &Checked<super::SynergyConfig>,
        dims: &[usize],
        task_groups: super::step::ParamGroups,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let mut critics = Vec::new();
        let mut maps = Vec::new();
        let mut vars = Vec::new();
        for i in 0..dims.len() {
            for j in i + 1..dims.len() {
                let seed = cfg.seed.wrapping_mul(31).wrapping_add((i * 8 + j) as u64);
                let (c, map) = critic(dims[i], dims[j], cfg.hidden, seed, dtype, device)?;
                vars.extend(map.all_vars());
                critics.push((i, j, c));
                maps.push(map);
            }
        }
        Ok(Self {
            critics,
            critic_step: super::TaskStep::new(vars, cfg.lr_critic, 0.0, cfg.grad_clip)?,
            task: super::TaskStep::grouped(task_groups, cfg.weight_decay, cfg.grad_clip)?,
            weight: cfg.beta,
            _maps: maps,
        })
    }

    /// One critic update and one task update; returns the summed dependency estimate of the task
    /// step (before its update).
    pub fn step(&mut self, out: &super::ModelOutput, loss: &Tensor) -> Result<f64> {
        let z = &out.unimodal;
        let mut critic_obj: Option<Tensor> = None;
        for (i, j, c) in &self.critics {
            let e = c.estimate(&z[*i].detach(), &z[*j].detach(), true)?;
            critic_obj = super::accumulate(critic_obj, e)?;
        }
        if let Some(obj) = critic_obj {
            self.critic_step.step(&obj.neg()?)?;
        }
        let mut dep: Option<Tensor> = None;
        for (i, j, c) in &self.critics {
            dep = super::accumulate(dep, c.estimate(&z[*i], &z[*j], false)?)?;
        }
        let Some(dep) = dep else {
            self.task.step(loss)?;
            return Ok(0.0);
        };
        let value = super::losses::scalar(&dep)?;
        self.task.step(&(loss - dep.affine(self.weight, 0.0)?)?)?;
        Ok(value)
    }
}
