//! Algorithm D: the training step with the C-network, and the plain task step it is compared with.

use super::adamw::AdamW;
use super::cnet::CNetwork;
use super::losses::scalar;
use super::{Result, SynergyError};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::ParamsAdamW;

/// What a fusion model returns: one representation per modality, the fused representation and
/// the prediction. Any model returning this can be trained with [`SynergyStep`].
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// `Z_i`, each `batch × d_i`.
    pub unimodal: Vec<Tensor>,
    /// `Z`, `batch × d_f`.
    pub fused: Tensor,
    /// `Ŷ` (`batch`): the prediction, or the logit of a binary task.
    pub prediction: Tensor,
    /// A model's own auxiliary training loss (e.g. MISA's similarity/difference/reconstruction
    /// terms), already weighted; the trainer adds it to the task loss. `None` at inference.
    pub aux_loss: Option<Tensor>,
}

/// Scales the gradients of `vars` in `grads` so that their global L2 norm is at most `max_norm`
/// (PyTorch's `clip_grad_norm_`); returns the norm before clipping.
///
/// The per-variable sums of squares stay on the gradients' device and are added there in f64,
/// in `vars`' order, so a step reads back one scalar per parameter group instead of one per
/// variable (on a GPU each read is a synchronising copy). On the CPU that is the same f64 sum in
/// the same order as adding the read-back scalars on the host, so the norm is bit for bit the
/// one of earlier builds.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let sums = vars
        .iter()
        .filter_map(|v| grads.get(v.as_tensor()))
        .map(|g| g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let sq = if sums.is_empty() {
        0.0
    } else {
        Tensor::stack(&sums, 0)?.sum_all()?.to_scalar::<f64>()?
    };
    let norm = sq.sqrt();
    if !norm.is_finite() {
        return Err(SynergyError::NonFinite {
            what: "gradient norm",
            value: norm,
            step: 0,
        });
    }
    if norm > max_norm {
        let f = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let scaled = (g * f)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}

fn adamw(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<AdamW> {
    Ok(AdamW::new(
        vars,
        ParamsAdamW {
            lr,
            weight_decay,
            ..ParamsAdamW::default()
        },
    )?)
}

/// Parameter groups: variables with their learning rate (e.g. a pretrained encoder at a small
/// rate and the rest at the protocol's).
pub type ParamGroups = Vec<(Vec<Var>, f64)>;

/// The NLL baseline: AdamW on the task loss with gradient-norm clipping, one AdamW per parameter
/// group (same weight decay), the clip applied to the global norm over all groups (PyTorch's
/// `clip_grad_norm_` over the model's parameters).
#[derive(Debug)]
pub struct TaskStep {
    opts: Vec<AdamW>,
    vars: Vec<Var>,
    grad_clip: f64,
    steps: usize,
}

impl TaskStep {
    /// AdamW over `vars` at `lr`.
    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64, grad_clip: f64) -> Result<Self> {
        Self::grouped(vec![(vars, lr)], weight_decay, grad_clip)
    }

    /// One AdamW per group `(vars, lr)`; empty groups are skipped.
    pub fn grouped(groups: ParamGroups, weight_decay: f64, grad_clip: f64) -> Result<Self> {
        let mut opts = Vec::new();
        let mut all = Vec::new();
        for (vars, lr) in groups {
            if vars.is_empty() {
                continue;
            }
            all.extend(vars.iter().cloned());
            opts.push(adamw(vars, lr, weight_decay)?);
        }
        Ok(Self {
            opts,
            vars: all,
            grad_clip,
            steps: 0,
        })
    }

    /// One update on `loss`; returns the gradient norm before clipping. A non-finite loss is an
    /// error and nothing is updated.
    pub fn step(&mut self, loss: &Tensor) -> Result<f64> {
        let v = scalar(loss)?;
        if !v.is_finite() {
            return Err(SynergyError::NonFinite {
                what: "task loss",
                value: v,
                step: self.steps,
            });
        }
        let mut grads = loss.backward()?;
        self.apply(&mut grads)
    }

    /// Clips this group's gradients in `grads` and updates; returns the norm before clipping.
    pub fn apply(&mut self, grads: &mut GradStore) -> Result<f64> {
        let norm = clip_grad_norm(grads, &self.vars, self.grad_clip)?;
        for opt in &mut self.opts {
            opt.step(grads)?;
        }
        self.steps += 1;
        Ok(norm)
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }
}

/// Loss values of one [`SynergyStep::step`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StepStats {
    pub task: f64,
    pub l2: Option<f64>,
    pub ld: Option<f64>,
    pub lk: Option<f64>,
    pub reg: f64,
    /// Gradient norm of the task model's parameters before clipping.
    pub grad_norm_task: f64,
    /// Gradient norm of the C-network's parameters before clipping.
    pub grad_norm_c: f64,
}

/// Algorithm D's step. Per minibatch, from the model's `(Z_i, Z, Ŷ)`:
/// 1. `L_reg = γ_L2 L_L2 + γ_d L_d + γ_κ L_κ` (C-network);
/// 2. the C-network (`Q_i`, `g_i`) takes an AdamW step at `η_MI` on `∇L_reg`;
/// 3. with SKL, the critics take an AdamW step that **maximises** `Σ DV_i`;
/// 4. the task model (everything but the C-network) takes an AdamW step at `η_task` on
///    `∇(L_task + β L_reg)`.
///
/// All gradients come from the same forward pass (the prediction does not depend on the
/// C-network, so updating it first, as the paper's pseudo-code does, changes nothing). One
/// backward pass of `J = L_task + β L_reg` serves steps 2 and 4: `L_task` does not depend on the
/// C-network, so `∇_C J = β ∇_C L_reg` and the C-network's gradient is that divided by `β` (a
/// separate backward of `L_reg` when `β = 0`). The critics' objective is evaluated on detached
/// inputs, so its backward touches only the critics. Each group's gradient is clipped to global
/// norm `grad_clip` (5) before its update.
#[derive(Debug)]
pub struct SynergyStep {
    /// The C-network (owned: it lives only as long as training).
    pub cnet: CNetwork,
    task: TaskStep,
    c_opt: AdamW,
    c_vars: Vec<Var>,
    critic: Option<(AdamW, Vec<Var>)>,
}

impl SynergyStep {
    /// A step for a model with variables `task_vars` trained at `lr_task`.
    pub fn new(cnet: CNetwork, task_vars: Vec<Var>, lr_task: f64) -> Result<Self> {
        Self::grouped(cnet, vec![(task_vars, lr_task)])
    }

    /// A step for a model whose variables come in parameter groups `(vars, lr)`.
    pub fn grouped(cnet: CNetwork, task_groups: ParamGroups) -> Result<Self> {
        let cfg = cnet.config().clone();
        let c_vars = cnet.vars();
        let critic_vars = cnet.critic_vars();
        let critic = if critic_vars.is_empty() {
            None
        } else {
            Some((
                adamw(critic_vars.clone(), cfg.lr_critic, cfg.weight_decay)?,
                critic_vars,
            ))
        };
        Ok(Self {
            task: TaskStep::grouped(task_groups, cfg.weight_decay, cfg.grad_clip)?,
            c_opt: adamw(c_vars.clone(), cfg.lr_mi, cfg.weight_decay)?,
            c_vars,
            critic,
            cnet,
        })
    }

    /// One step of Algorithm D on a batch's model output and task loss. A non-finite loss is an
    /// error ([`SynergyError::NonFinite`]) and no parameter is updated.
    pub fn step(&mut self, out: &ModelOutput, task_loss: &Tensor) -> Result<StepStats> {
        let step = self.task.steps();
        let reg = self.cnet.losses(&out.unimodal, &out.fused)?;
        let cfg = self.cnet.config().clone();
        let task_v = scalar(task_loss)?;
        let reg_v = scalar(&reg.total)?;
        for (what, value) in [("task loss", task_v), ("synergy regulariser", reg_v)] {
            if !value.is_finite() {
                return Err(SynergyError::NonFinite { what, value, step });
            }
        }
        let opt = |t: &Option<Tensor>| t.as_ref().map(scalar).transpose();
        let (l2, ld, lk) = (opt(&reg.l2)?, opt(&reg.ld)?, opt(&reg.lk)?);
        let total = (task_loss + (&reg.total * cfg.beta)?)?;
        let mut grads = total.backward()?;
        let grad_norm_c = if cfg.beta > 0.0 {
            for v in &self.c_vars {
                if let Some(g) = grads.get(v.as_tensor()) {
                    let g = (g / cfg.beta)?;
                    grads.insert(v.as_tensor(), g);
                }
            }
            clip_grad_norm(&mut grads, &self.c_vars, cfg.grad_clip)?
        } else {
            let mut g = reg.total.backward()?;
            let n = clip_grad_norm(&mut g, &self.c_vars, cfg.grad_clip)?;
            for v in &self.c_vars {
                if let Some(t) = g.get(v.as_tensor()) {
                    grads.insert(v.as_tensor(), t.clone());
                }
            }
            n
        };
        let critic_grads = match (&self.critic, &reg.critic_objective) {
            (Some((_, vars)), Some(obj)) => {
                let mut g = obj.neg()?.backward()?;
                clip_grad_norm(&mut g, vars, cfg.grad_clip)?;
                Some(g)
            }
            _ => None,
        };
        let grad_norm_task = self.task.apply(&mut grads)?;
        self.c_opt.step(&grads)?;
        if let (Some((opt, _)), Some(g)) = (&mut self.critic, critic_grads) {
            opt.step(&g)?;
        }
        Ok(StepStats {
            task: task_v,
            l2,
            ld,
            lk,
            reg: reg_v,
            grad_norm_task,
            grad_norm_c,
        })
    }
}
