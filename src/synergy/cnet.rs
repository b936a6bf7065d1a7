//! The C-network and the synergy regulariser `L_reg = γ_L2 L_L2 + γ_d L_d + γ_κ L_κ`.

use super::losses::{dv_bound, mmd2, BandwidthSpec, KurtosisLoss};
use super::nets::{InvertibleNet, Mlp, RandomProjection};
use super::{Result, SynergyError};
use crate::error::{check_non_negative, check_positive, check_width, EstimatorError, ParamError};
use crate::estimators::{MmdVariant, StreamingKurtosisParams};
use crate::params::{Checked, Validate};
use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use std::cell::Cell;

/// The divergence `d` of `L_d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Divergence {
    /// MMD² between the aligned samples (the paper's SMMD).
    Mmd,
    /// KL estimated by the Donsker–Varadhan bound of a critic trained to maximise it (SKL). The
    /// loss the C-network and the model minimise is `max(DV, 0)` (KL is non-negative; without the
    /// floor the minimisers drive a lagging critic's DV to −∞, measured with `synergy train-demo`).
    Kl,
}

/// Which representations `L_κ` penalises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KurtosisOn {
    /// Every unimodal `Z_i` and the fused `Z` (section 4: "individual unimodal and multimodal
    /// representations should have low kurtosis").
    All,
    /// Only the fused `Z` (Algorithm D's pseudo-code).
    Fused,
}

/// Configuration of the C-network and of Algorithm D's step. [`Default`] gives the documented
/// defaults; its [`Validate::validate`] checks every field.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynergyConfig {
    /// Weight of the cross-modal reconstruction loss `L_L2` (0 disables it).
    pub gamma_l2: f64,
    /// Weight of the alignment loss `L_d` (0 disables it).
    pub gamma_d: f64,
    /// Weight of the kurtosis penalty `L_κ` (0 disables it).
    pub gamma_k: f64,
    /// Weight `β` of `L_reg` in the task model's objective `L_task + β L_reg`.
    pub beta: f64,
    /// `d` of `L_d`.
    pub divergence: Divergence,
    /// MMD² variant of SMMD.
    pub mmd_variant: MmdVariant,
    /// Kernel bandwidths of SMMD.
    pub bandwidth: BandwidthSpec,
    /// Width `k` of the random projections of `g_i`.
    pub proj_dim: usize,
    /// Hidden width of every MLP (`Q_i`, coupling nets, critics).
    pub hidden: usize,
    /// Affine coupling layers per invertible net.
    pub coupling_layers: usize,
    /// Streaming kurtosis: EMA decay α, ridge c, row-norm clip.
    pub kurtosis: StreamingKurtosisParams,
    /// Which representations `L_κ` covers.
    pub kurtosis_on: KurtosisOn,
    /// Divide each κ by its Gaussian value `p(p+2)`, so `L_κ ≈ 1` per representation for Gaussian
    /// features whatever their width.
    pub normalise_kurtosis: bool,
    /// Divide each modality's reconstruction error by the (detached) batch variance of `Z_i`,
    /// `Σ_j Var(Z_ij)`, making `L_L2` a scale-free "unexplained fraction" (1 = no better than the
    /// batch mean). `false` gives the paper's raw `‖Q_i(Z_{−i}) − Z_i‖²`, which a model can shrink
    /// by shrinking its representations (measured with the EF-LSTM: it collapses the early-fusion
    /// projections and costs 0.5 MAE on the smoke profile).
    pub relative_l2: bool,
    /// Learning rate `η_MI` of the C-network (`Q_i`, `g_i`).
    pub lr_mi: f64,
    /// Learning rate of the SKL critics.
    pub lr_critic: f64,
    /// Global gradient-norm clip applied to every parameter group before its update.
    pub grad_clip: f64,
    /// AdamW weight decay (PyTorch's default 0.01).
    pub weight_decay: f64,
    /// Seed of the random projections.
    pub seed: u64,
}

impl Default for SynergyConfig {
    fn default() -> Self {
        Self {
            gamma_l2: 1.0,
            gamma_d: 1.0,
            gamma_k: 0.1,
            beta: 0.01,
            divergence: Divergence::Mmd,
            mmd_variant: MmdVariant::Unbiased,
            bandwidth: BandwidthSpec::Median,
            proj_dim: 16,
            hidden: 64,
            coupling_layers: 4,
            kurtosis: StreamingKurtosisParams {
                alpha: 0.9,
                ridge: 1e-3,
                clip: 10.0,
            },
            kurtosis_on: KurtosisOn::All,
            normalise_kurtosis: true,
            relative_l2: true,
            lr_mi: 1e-3,
            lr_critic: 1e-3,
            grad_clip: 5.0,
            weight_decay: 0.01,
            seed: 0,
        }
    }
}

impl Validate for SynergyConfig {
    /// Checks every field's domain; the error names the field and why.
    fn validate(&self) -> std::result::Result<(), ParamError> {
        check_non_negative("gamma_l2", self.gamma_l2)?;
        check_non_negative("gamma_d", self.gamma_d)?;
        check_non_negative("gamma_k", self.gamma_k)?;
        check_non_negative("beta", self.beta)?;
        check_non_negative("weight_decay", self.weight_decay)?;
        check_positive("lr_mi", self.lr_mi)?;
        check_positive("lr_critic", self.lr_critic)?;
        check_positive("grad_clip", self.grad_clip)?;
        if self.proj_dim < 2 {
            return Err(ParamError::new(
                "proj_dim",
                format!("must be >= 2, got {}", self.proj_dim),
            ));
        }
        check_width("hidden", self.hidden)?;
        check_width("coupling_layers", self.coupling_layers)?;
        match self.kurtosis.init() {
            Ok(_) => Ok(()),
            Err(EstimatorError::InvalidParameter { name, reason }) => {
                Err(ParamError::new(format!("kurtosis.{name}"), reason))
            }
            Err(e) => Err(ParamError::new("kurtosis", e.to_string())),
        }
    }
}

/// The components of `L_reg` for one batch (tensors: differentiable).
#[derive(Debug, Clone)]
pub struct RegLosses {
    /// `L_L2 = Σᵢ mean_batch ‖Qᵢ(Z₋ᵢ) − Zᵢ‖²` (divided per modality by the detached batch
    /// variance of `Zᵢ` when `relative_l2`; None when `γ_L2 = 0`).
    pub l2: Option<Tensor>,
    /// `L_d = Σᵢ d(p(gᵢ(Zᵢ)), p(gᵢ(Z)))` (None when `γ_d = 0`).
    pub ld: Option<Tensor>,
    /// `L_κ`, summed over the covered representations (None when `γ_κ = 0`).
    pub lk: Option<Tensor>,
    /// `γ_L2 L_L2 + γ_d L_d + γ_κ L_κ`.
    pub total: Tensor,
    /// `Σᵢ DV_i` on detached `g` outputs, the SKL critics' objective (to be maximised), when
    /// `d = KL`.
    pub critic_objective: Option<Tensor>,
}

/// The C-network: reconstruction nets `Q_i`, alignment maps `g_i` (fixed random projection then an
/// invertible net), the SKL critics and the kurtosis buffers. Training-time only: models never call
/// it, so inference is unchanged by its presence ([`CNetwork::calls`] counts its uses).
///
/// `g_i` must map `Z_i` (width `d_i`) and the fused `Z` (width `d_f`) into one space: each has its
/// own fixed projection to `k` dimensions (`R_i: d_i → k`, `F_i: d_f → k`), followed by the same
/// trained invertible net `h_i`, so `g_i(Z_i) = h_i(Z_i R_i)` and `g_i(Z) = h_i(Z F_i)`. Because
/// `h_i` is invertible it cannot discard its input, and with median-heuristic bandwidths (scale
/// invariant) shrinking its output does not lower the MMD either.
pub struct CNetwork {
    cfg: SynergyConfig,
    vars: VarMap,
    critic_vars: VarMap,
    q: Vec<Mlp>,
    proj_uni: Vec<RandomProjection>,
    proj_fused: Vec<RandomProjection>,
    inv: Vec<InvertibleNet>,
    critics: Vec<Mlp>,
    kurt: Vec<KurtosisLoss>,
    dims: Vec<usize>,
    fused_dim: usize,
    calls: Cell<usize>,
}

impl std::fmt::Debug for CNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CNetwork")
            .field("dims", &self.dims)
            .field("fused_dim", &self.fused_dim)
            .field("config", &self.cfg)
            .field("calls", &self.calls.get())
            .finish_non_exhaustive()
    }
}

impl CNetwork {
    /// Builds the C-network for unimodal widths `dims` (at least two modalities) and fused width
    /// `fused_dim`; the settings are checked first ([`Checked::new`]).
    pub fn new(
        cfg: SynergyConfig,
        dims: &[usize],
        fused_dim: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::from_checked(Checked::new(cfg)?, dims, fused_dim, dtype, device)
    }

    /// [`Self::new`] from checked settings (a run's, checked with the run).
    pub fn from_checked(
        cfg: Checked<SynergyConfig>,
        dims: &[usize],
        fused_dim: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let cfg = cfg.into_inner();
        if dims.len() < 2 {
            return Err(SynergyError::Mismatch(format!(
                "the C-network needs at least two modalities, got {}",
                dims.len()
            )));
        }
        if dims.contains(&0) || fused_dim == 0 {
            return Err(SynergyError::Mismatch(format!(
                "representation widths must be >= 1, got {dims:?} and fused {fused_dim}"
            )));
        }
        let vars = VarMap::new();
        let critic_vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, dtype, device);
        let vbc = VarBuilder::from_varmap(&critic_vars, dtype, device);
        let k = cfg.proj_dim;
        let total: usize = dims.iter().sum();
        let mut q = Vec::new();
        let mut proj_uni = Vec::new();
        let mut proj_fused = Vec::new();
        let mut inv = Vec::new();
        let mut critics = Vec::new();
        for (i, &d) in dims.iter().enumerate() {
            q.push(Mlp::new(vb.pp(format!("q{i}")), total - d, cfg.hidden, d)?);
            let seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(2 * i as u64);
            proj_uni.push(RandomProjection::new(d, k, seed, dtype, device)?);
            proj_fused.push(RandomProjection::new(
                fused_dim,
                k,
                seed + 1,
                dtype,
                device,
            )?);
            inv.push(InvertibleNet::new(
                vb.pp(format!("g{i}")),
                k,
                cfg.hidden,
                cfg.coupling_layers,
            )?);
            if cfg.divergence == Divergence::Kl {
                critics.push(Mlp::new(vbc.pp(format!("t{i}")), k, cfg.hidden, 1)?);
            }
        }
        super::nets::seed_varmap(&vars, cfg.seed)?;
        super::nets::seed_varmap(&critic_vars, cfg.seed.wrapping_add(1))?;
        let n_kurt = match cfg.kurtosis_on {
            KurtosisOn::All => dims.len() + 1,
            KurtosisOn::Fused => 1,
        };
        let kurt = (0..n_kurt)
            .map(|_| KurtosisLoss::new(cfg.kurtosis))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg,
            vars,
            critic_vars,
            q,
            proj_uni,
            proj_fused,
            inv,
            critics,
            kurt,
            dims: dims.to_vec(),
            fused_dim,
            calls: Cell::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SynergyConfig {
        &self.cfg
    }

    /// Trainable variables of `Q_i` and `g_i` (updated at `η_MI` on `L_reg`).
    pub fn vars(&self) -> Vec<Var> {
        self.vars.all_vars()
    }

    /// Variables of the SKL critics (updated to maximise DV).
    pub(crate) fn critic_vars(&self) -> Vec<Var> {
        self.critic_vars.all_vars()
    }

    /// How many times the regulariser has been evaluated.
    pub fn calls(&self) -> usize {
        self.calls.get()
    }

    /// `g_i` on a unimodal representation.
    pub fn g_unimodal(&self, i: usize, z: &Tensor) -> Result<Tensor> {
        Ok(self.inv[i].forward(&self.proj_uni[i].forward(z)?)?)
    }

    /// `g_i` on the fused representation.
    pub fn g_fused(&self, i: usize, z: &Tensor) -> Result<Tensor> {
        Ok(self.inv[i].forward(&self.proj_fused[i].forward(z)?)?)
    }

    /// `(g_i(Z_i), g_i(Z))` in one pass of the invertible net over the stacked projections (the
    /// net is row-wise, so this equals [`Self::g_unimodal`] and [`Self::g_fused`] and halves the
    /// number of ops — which dominate the C-network's cost at these small widths).
    pub(crate) fn g_pair(&self, i: usize, zi: &Tensor, fused: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = zi.dim(0)?;
        let both = Tensor::cat(
            &[
                &self.proj_uni[i].forward(zi)?,
                &self.proj_fused[i].forward(fused)?,
            ],
            0,
        )?;
        let g = self.inv[i].forward(&both)?;
        Ok((g.narrow(0, 0, n)?, g.narrow(0, n, fused.dim(0)?)?))
    }

    /// The invertible part `h_i` of `g_i` (for tests of invertibility).
    pub fn invertible(&self, i: usize) -> &InvertibleNet {
        &self.inv[i]
    }

    /// `Q_i(Z_{−i})`.
    pub fn reconstruct(&self, i: usize, unimodal: &[Tensor]) -> Result<Tensor> {
        let others: Vec<&Tensor> = unimodal
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, t)| t)
            .collect();
        Ok(self.q[i].forward(&Tensor::cat(&others, 1)?)?)
    }

    fn check_widths(&self, unimodal: &[Tensor], fused: &Tensor) -> Result<()> {
        let got: Vec<usize> = unimodal
            .iter()
            .map(|t| t.dim(1))
            .collect::<candle_core::Result<_>>()?;
        if got != self.dims || fused.dim(1)? != self.fused_dim {
            return Err(SynergyError::Mismatch(format!(
                "representation widths {got:?} + fused {} do not match the C-network's {:?} + {}",
                fused.dim(1)?,
                self.dims,
                self.fused_dim
            )));
        }
        Ok(())
    }

    /// Evaluates `L_reg` on one batch of representations; advances the kurtosis buffers.
    pub fn losses(&mut self, unimodal: &[Tensor], fused: &Tensor) -> Result<RegLosses> {
        self.check_widths(unimodal, fused)?;
        self.calls.set(self.calls.get() + 1);
        let cfg = self.cfg.clone();
        let mut total = fused.zeros_like()?.sum_all()?;
        let mut l2 = None;
        if cfg.gamma_l2 > 0.0 {
            let mut acc: Option<Tensor> = None;
            for (i, zi) in unimodal.iter().enumerate() {
                let mut e = (self.reconstruct(i, unimodal)? - zi)?
                    .sqr()?
                    .sum(1)?
                    .mean_all()?;
                if cfg.relative_l2 {
                    let zd = zi.detach();
                    let var = zd
                        .broadcast_sub(&zd.mean_keepdim(0)?)?
                        .sqr()?
                        .sum(1)?
                        .mean_all()?;
                    e = e.broadcast_div(&(var + 1e-8)?)?;
                }
                acc = super::accumulate(acc, e)?;
            }
            let v = acc.expect("two or more modalities");
            total = (total + (&v * cfg.gamma_l2)?)?;
            l2 = Some(v);
        }
        let mut ld = None;
        let mut critic_objective = None;
        if cfg.gamma_d > 0.0 {
            let mut acc: Option<Tensor> = None;
            let mut dv_acc: Option<Tensor> = None;
            for (i, zi) in unimodal.iter().enumerate() {
                let (gi, gf) = self.g_pair(i, zi, fused)?;
                let d = match cfg.divergence {
                    Divergence::Mmd => mmd2(&gi, &gf, cfg.mmd_variant, &cfg.bandwidth)?,
                    Divergence::Kl => {
                        let critic = &self.critics[i];
                        // one critic pass over both samples (the critic is row-wise)
                        let pair = |a: &Tensor, b: &Tensor| -> Result<Tensor> {
                            let t = critic.forward(&Tensor::cat(&[a, b], 0)?)?;
                            dv_bound(
                                &t.narrow(0, 0, a.dim(0)?)?,
                                &t.narrow(0, a.dim(0)?, b.dim(0)?)?,
                            )
                        };
                        let dv = pair(&gi, &gf)?;
                        // the critics' objective on detached inputs: its backward stays in the critic
                        let dv_c = pair(&gi.detach(), &gf.detach())?;
                        dv_acc = super::accumulate(dv_acc, dv_c)?;
                        // KL ≥ 0: a negative DV value only says the critic is behind; the
                        // minimisers see max(DV, 0), the critic maximises the raw DV
                        dv.relu()?
                    }
                };
                acc = super::accumulate(acc, d)?;
            }
            let v = acc.expect("two or more modalities");
            total = (total + (&v * cfg.gamma_d)?)?;
            critic_objective = dv_acc;
            ld = Some(v);
        }
        let mut lk = None;
        if cfg.gamma_k > 0.0 {
            let reps: Vec<&Tensor> = match cfg.kurtosis_on {
                KurtosisOn::All => unimodal.iter().chain(std::iter::once(fused)).collect(),
                KurtosisOn::Fused => vec![fused],
            };
            let mut acc: Option<Tensor> = None;
            for (buf, z) in self.kurt.iter_mut().zip(reps) {
                let mut k = buf.forward(z)?;
                if cfg.normalise_kurtosis {
                    let p = z.dim(1)? as f64;
                    k = (k / (p * (p + 2.0)))?;
                }
                acc = super::accumulate(acc, k)?;
            }
            let v = acc.expect("at least the fused representation");
            total = (total + (&v * cfg.gamma_k)?)?;
            lk = Some(v);
        }
        Ok(RegLosses {
            l2,
            ld,
            lk,
            total,
            critic_objective,
        })
    }
}
