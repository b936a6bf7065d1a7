//! MMIM, the paper's "MIM" (Han et al. 2021, "Improving Multimodal Fusion with Hierarchical Mutual
//! Information Maximization"), after MMSA's `models/singleTask/MMIM.py` and
//! `trains/singleTask/MMIM.py` with MMSA's MOSI defaults (`mmim`: d_a = d_v = 16, d_prjh 128,
//! bidirectional encoders, α = β = 0.1, memory 1, lr main 1e-3 / BERT 5e-5 / MMILB 1e-3, weight
//! decay 1e-4).
//!
//! # Structure
//! * Text: `z_t` = BERT's last hidden state at `[CLS]` (`H` wide: 768 for bert-base, 384 for
//!   MiniLM) — [`BertBackbone`] without the pooler.
//! * Audio, vision: `z_m = W_m [h→; h←]` — a bidirectional one-layer LSTM (`d_m → 16`) over each
//!   clip's valid steps, final states of both directions, linear `32 → 16`.
//! * Fusion: `y₁ = tanh(W₁ Drop(z_t; z_a; z_v))`, `f = tanh(W₂ y₁)` (128 wide), `ŷ = W₃ f`.
//! * **MMILB** (text → vision and text → audio): `μ(x)`, `log σ²(x)` are two-layer ReLU MLPs of
//!   `x = z_t`; `lld = mean_b Σ_d −(μ_d − y_d)² / (2 exp(log σ²_d))` (no last activation: MMSA's
//!   `last_activation` is configured but unused).
//! * **Entropy** term: `y' = tanh(W_e y)` (4 wide); rows are split by label sign (`> 0` / `< 0`;
//!   binary tasks: label 1 / 0) and joined with the previous batch's (detached) rows of the same
//!   sign (memory size 1); `H = ¼ (log det Σ₊ + log det Σ₋)` with `Σ = (1/n) Σ_i (y'_i − ȳ)(y'_i − ȳ)ᵀ`
//!   (the biased 4 × 4 covariance), computed by [`logdet_spd`] (a differentiable Cholesky).
//! * **CPC** for `m ∈ {t, a, v}`: `x̂ = Ŵ_m f / ‖Ŵ_m f‖`, `x = z_m / ‖z_m‖`,
//!   `nce_m = −mean_i (⟨x_i, x̂_i⟩ − log Σ_j exp⟨x_i, x̂_j⟩)`; `nce = Σ_m nce_m`.
//!
//! # Training (two stages per epoch, MMSA's `contrast` mode)
//! 1. **MMILB stage** ([`FusionModel::extra_stage`]): over the epoch's batches, AdamW (lr 1e-3,
//!    weight decay 1e-4, clip 1) on the MMILB variables (`mi.*`) only, minimising `−lld`
//!    ([`FusionModel::extra_stage_loss`]). The representations are detached before the MMILB
//!    nets: `−lld`'s gradient for the MMILB parameters is the same, and no backward pass goes
//!    through BERT.
//! 2. **Main stage** (the trainer's ordinary step): `L_task + α·nce − β·lld − β·H`
//!    ([`ModelOutput::aux_loss`]), with `H` from the third batch of the epoch on (MMSA: the memory
//!    fills at batch 1, `H` enters at batch index > 1), on every variable except `mi.*`, in two
//!    parameter groups: `bert.*` at `bert_lr` (5e-5) and the rest at the protocol's learning rate
//!    ([`FusionModel::learning_rate`]).
//!
//! **With the C-network (Algorithm D)**: stage 1 is unchanged (the C-network takes no part in it);
//! stage 2 is Algorithm D's step ([`crate::synergy::SynergyStep`]) with MMIM's `L_task + α·nce −
//! β·lld − β·H` as the task loss: `L_task + β_reg L_reg` on `(Z_t, Z_a, Z_v, Z)` = `(z_t, z_a, z_v,
//! f)`, the C-network and critics updated from the same forward pass, the model in its two
//! parameter groups. The MMILB variables are never moved by the C-network's gradient (they are in
//! neither group), so the MI lower bounds and the synergy regulariser act on the same
//! representations but through separate optimisers.
//!
//! # Deviations from MMSA
//! * Optimisers: AdamW with the protocol's weight decay and clip 5 for the main stage (MMSA: Adam,
//!   weight decay 1e-4, clip 1); no ReduceLROnPlateau (its patience of 20 epochs never triggers
//!   within the protocol's early stopping of 8).
//! * Stage 1 clips the norm of the MMILB gradients only (MMSA clips over all parameters, whose
//!   other gradients stage 1 never applies).
//! * Weight initialisation: the trainer's seeded scheme (MMSA: Xavier-normal for non-BERT
//!   matrices); BERT from the checkpoint.
//! * The entropy projection `W_e` is in the MMILB group (as MMSA's name-based grouping puts it:
//!   `mi_*.entropy_prj`) but `−lld` does not depend on it, so — exactly as in MMSA — it keeps its
//!   initial value; it still shapes the encoders' gradient through `H`.
//! * `Σ₊`, `Σ₋` get a ridge `10⁻⁶ I` and a group with fewer than 5 rows (prev + current) leaves
//!   that pair's `H` out of the batch's loss (MMSA would take the log-determinant of a singular
//!   matrix: −∞/NaN).
//! * Audio/vision are the tier's word-step features with the word lengths (MMSA reads unaligned
//!   COVAREP/Facet sequences with their own lengths).
//! * BERT: attention-probability dropout omitted (see [`super::bert::backbone`]).
//! * Frozen BERT (`finetune: false`) with `feature_cache` (the default): the `[CLS]` vectors are
//!   computed once per token sequence in inference mode and cached ([`super::bert::frozen`]); MMSA's
//!   frozen BERT keeps its dropout. `feature_cache: false` runs BERT (with dropout, output
//!   detached) at every step.

use super::bert::backbone::{config_for, load_from_ctx, BertBackbone};
use super::bert::frozen::{FrozenText, Pooling};
use super::layers::lstm::{BiLstm, Reversal};
use super::mag_bert::tokens_of;
use super::{
    check_dropout, check_width, BuildCtx, Checked, ExtraStage, FusionModel, ModelOutput,
    ModelParams, SeededDropout, Validate,
};
use crate::data::{Dataset, SeqBatch, Task};
use crate::error::{check_non_negative, check_positive, ParamError};
use candle_core::{DType, IndexOp, Module, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// MMIM hyper-parameters (MMSA's MOSI defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MmimConfig {
    /// Hidden size of the audio and vision LSTMs (MMSA `d_ah`, `d_vh` 16).
    pub av_hidden: usize,
    /// Width of `z_a`, `z_v` (MMSA `d_aout`, `d_vout` 16).
    pub av_out: usize,
    /// Width of the fusion layers `f` (MMSA `d_prjh` 128).
    pub fusion: usize,
    /// Width of the entropy projection `y'` (MMSA `y_size // 4` = 4).
    pub entropy_dim: usize,
    /// Dropout on the fusion input (MMSA `dropout_prj` 0.1).
    pub dropout: f64,
    /// Dropout inside BERT (BERT's `hidden_dropout_prob` 0.1).
    pub bert_dropout: f64,
    /// Weight `α` of the CPC loss (MMSA 0.1).
    pub alpha: f64,
    /// Weight `β` of the MMILB `lld` and entropy terms (MMSA 0.1).
    pub beta: f64,
    /// Learning rate of the BERT variables (MMSA `lr_bert` 5e-5).
    pub bert_lr: f64,
    /// Fine-tune BERT (MMSA `use_finetune` true; `false` freezes it).
    pub finetune: bool,
    /// With a frozen BERT: compute each clip's `[CLS]` vector once and cache it in memory and on
    /// disk ([`super::bert::frozen`]) instead of running BERT at every step (default true;
    /// serialised only when false, so existing configurations keep their JSON).
    #[serde(skip_serializing_if = "is_true")]
    pub feature_cache: bool,
    /// Learning rate of the MMILB stage (MMSA `lr_mmilb` 1e-3).
    pub mmilb_lr: f64,
    /// Weight decay of the MMILB stage (MMSA 1e-4).
    pub mmilb_weight_decay: f64,
    /// Gradient-norm clip of the MMILB stage (MMSA `grad_clip` 1.0).
    pub mmilb_grad_clip: f64,
    /// Share of each epoch's batches the MMILB stage visits (MMSA: 1 for MOSI, 0.5 for MOSEI).
    pub mmilb_batch_fraction: f64,
    /// Run the MMILB stage and the `α·nce − β·lld − β·H` terms (MMSA `contrast` true).
    pub contrast: bool,
}

impl Default for MmimConfig {
    fn default() -> Self {
        Self {
            av_hidden: 16,
            av_out: 16,
            fusion: 128,
            entropy_dim: 4,
            dropout: 0.1,
            bert_dropout: 0.1,
            alpha: 0.1,
            beta: 0.1,
            bert_lr: 5e-5,
            finetune: true,
            feature_cache: true,
            mmilb_lr: 1e-3,
            mmilb_weight_decay: 1e-4,
            mmilb_grad_clip: 1.0,
            mmilb_batch_fraction: 1.0,
            contrast: true,
        }
    }
}

impl ModelParams for MmimConfig {}

impl Validate for MmimConfig {
    fn validate(&self) -> Result<(), ParamError> {
        check_width("av_hidden", self.av_hidden)?;
        check_width("av_out", self.av_out)?;
        check_width("fusion", self.fusion)?;
        check_width("entropy_dim", self.entropy_dim)?;
        check_dropout("dropout", self.dropout)?;
        check_dropout("bert_dropout", self.bert_dropout)?;
        check_non_negative("alpha", self.alpha)?;
        check_non_negative("beta", self.beta)?;
        check_non_negative("mmilb_weight_decay", self.mmilb_weight_decay)?;
        check_positive("bert_lr", self.bert_lr)?;
        check_positive("mmilb_lr", self.mmilb_lr)?;
        check_positive("mmilb_grad_clip", self.mmilb_grad_clip)?;
        if !(self.mmilb_batch_fraction > 0.0 && self.mmilb_batch_fraction <= 1.0) {
            return Err(ParamError::new(
                "mmilb_batch_fraction",
                format!("must be in (0, 1], got {}", self.mmilb_batch_fraction),
            ));
        }
        Ok(())
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

/// `ln det A` of a symmetric positive-definite `p × p` matrix (any float dtype), differentiable:
/// the Cholesky factor `A = L Lᵀ` is built column by column from tensor ops,
/// `L_jj = sqrt(A_jj − Σ_{k<j} L_jk²)`, `L_ij = (A_ij − Σ_{k<j} L_ik L_jk) / L_jj` (`i > j`), and
/// `ln det A = 2 Σ_j ln L_jj`. Meant for small matrices (MMIM's 4 × 4): it costs `O(p²)` tensor
/// ops. A pivot `≤ 0` or non-finite (`A` not positive definite) is an error, never a NaN.
pub fn logdet_spd(a: &Tensor) -> candle_core::Result<Tensor> {
    let (p, q) = a.dims2()?;
    if p != q || p == 0 {
        candle_core::bail!("logdet_spd: expected a non-empty square matrix, got {p} x {q}");
    }
    // columns of L as p-vectors (rows below the diagonal filled, zeros above)
    let mut cols: Vec<Tensor> = Vec::with_capacity(p);
    let mut logdet: Option<Tensor> = None;
    for j in 0..p {
        // v = A[:, j] − Σ_{k<j} L[:, k] L[j, k]
        let mut v = a.i((.., j))?;
        for c in &cols {
            v = (v - c.broadcast_mul(&c.i(j)?)?)?;
        }
        let pivot = v.i(j)?;
        let pv = pivot.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !(pv.is_finite() && pv > 0.0) {
            candle_core::bail!("logdet_spd: matrix is not positive definite (pivot {j} = {pv:e})");
        }
        let d = pivot.sqrt()?;
        // zero the entries above the diagonal, scale the rest by 1/L_jj
        let keep: Vec<f64> = (0..p).map(|i| if i >= j { 1.0 } else { 0.0 }).collect();
        let keep = Tensor::from_vec(keep, p, a.device())?.to_dtype(a.dtype())?;
        let col = (v * keep)?.broadcast_div(&d)?;
        let term = d.log()?;
        logdet = Some(match logdet {
            None => term,
            Some(s) => (s + term)?,
        });
        cols.push(col);
    }
    logdet.expect("p >= 1") * 2.0
}

/// Biased covariance `(1/n) Σ_i (x_i − x̄)(x_i − x̄)ᵀ` of the rows of `x` (`n × p`).
fn covariance(x: &Tensor) -> candle_core::Result<Tensor> {
    let n = x.dim(0)? as f64;
    let c = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    c.t()?.matmul(&c)? / n
}

/// An MMILB estimator for one pair `x → y`.
#[derive(Debug)]
struct Mmilb {
    mu1: Linear,
    mu2: Linear,
    lv1: Linear,
    lv2: Linear,
    entropy: Linear,
}

impl Mmilb {
    fn new(dx: usize, dy: usize, de: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            mu1: linear(dx, dy, vb.pp("mu1"))?,
            mu2: linear(dy, dy, vb.pp("mu2"))?,
            lv1: linear(dx, dy, vb.pp("logvar1"))?,
            lv2: linear(dy, dy, vb.pp("logvar2"))?,
            entropy: linear(dy, de, vb.pp("entropy"))?,
        })
    }

    /// `lld = mean_b Σ_d −(μ − y)² / (2 exp(log σ²))`.
    fn lld(&self, x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
        let mu = self.mu2.forward(&self.mu1.forward(x)?.relu()?)?;
        let lv = self.lv2.forward(&self.lv1.forward(x)?.relu()?)?;
        let pos = ((mu - y)?.sqr()? / (lv.exp()? * 2.0)?)?.neg()?;
        pos.sum(1)?.mean_all()
    }

    fn project(&self, y: &Tensor) -> candle_core::Result<Tensor> {
        self.entropy.forward(y)?.tanh()
    }
}

/// `(pos, neg)` entropy-projected rows of one pair, detached (the memory).
type Groups = [Option<Tensor>; 2];

#[derive(Debug, Default)]
struct Memory {
    /// Training batches seen since the epoch started.
    batches: usize,
    /// The previous batch's rows per pair (tv, ta).
    prev: Option<[Groups; 2]>,
}

/// MMIM (see the module docs).
pub struct Mmim {
    cfg: MmimConfig,
    bert: BertBackbone,
    audio: BiLstm,
    audio_out: Linear,
    vision: BiLstm,
    vision_out: Linear,
    f1: Linear,
    f2: Linear,
    f3: Linear,
    cpc: [Linear; 3],
    mi_tv: Mmilb,
    mi_ta: Mmilb,
    drop: SeededDropout,
    task: Task,
    memory: RefCell<Memory>,
    /// `Some` when BERT is frozen and its outputs are cached.
    frozen: Option<FrozenText>,
}

impl std::fmt::Debug for Mmim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mmim")
            .field("cfg", &self.cfg)
            .field("hidden", &self.bert.hidden())
            .finish_non_exhaustive()
    }
}

/// Internal representations of one forward pass.
struct Reps {
    zt: Tensor,
    za: Tensor,
    zv: Tensor,
}

/// The rows of `x` whose `keep` flag is set (`None` when there are none).
fn rows(x: &Tensor, keep: &[bool]) -> candle_core::Result<Option<Tensor>> {
    let idx: Vec<u32> = keep
        .iter()
        .enumerate()
        .filter(|(_, k)| **k)
        .map(|(i, _)| i as u32)
        .collect();
    if idx.is_empty() {
        return Ok(None);
    }
    let n = idx.len();
    Ok(Some(
        x.index_select(&Tensor::from_vec(idx, n, x.device())?, 0)?,
    ))
}

impl Mmim {
    fn reps(&self, b: &SeqBatch, train: bool) -> candle_core::Result<Reps> {
        let tk = tokens_of(b, Self::NAME)?;
        let zt = if let Some(c) = &self.frozen {
            c.pooled(&self.bert, tk)?
        } else {
            let e = self
                .bert
                .embed_dropout(&self.bert.embed(&tk.ids, &tk.segment)?, train)?;
            let zt = self.bert.encode(&e, &tk.mask, train)?.i((.., 0, ..))?;
            if self.cfg.finetune {
                zt
            } else {
                zt.detach()
            }
        };
        let p = Reversal::new(b)?;
        let (_, af, ab) = self.audio.forward(&b.inputs[1], &p)?;
        let (_, vf, vb) = self.vision.forward(&b.inputs[2], &p)?;
        Ok(Reps {
            zt,
            za: self.audio_out.forward(&Tensor::cat(&[af, ab], 1)?)?,
            zv: self.vision_out.forward(&Tensor::cat(&[vf, vb], 1)?)?,
        })
    }

    /// `H = ¼ (log det Σ₊ + log det Σ₋)` of a pair from the current rows and the memory's (see
    /// the module docs); `None` when a group has fewer than `entropy_dim + 1` rows.
    fn entropy(&self, cur: &Groups, prev: &Groups) -> candle_core::Result<Option<Tensor>> {
        let p = self.cfg.entropy_dim;
        let mut total: Option<Tensor> = None;
        for (c, m) in cur.iter().zip(prev) {
            let all: Vec<Tensor> = [m, c].into_iter().flatten().cloned().collect();
            if all.is_empty() {
                return Ok(None);
            }
            let all = Tensor::cat(&all, 0)?;
            if all.dim(0)? < p + 1 {
                return Ok(None);
            }
            let cov = covariance(&all)?;
            let ridge = (Tensor::eye(p, cov.dtype(), cov.device())? * 1e-6)?;
            let ld = logdet_spd(&(cov + ridge)?)?;
            total = Some(match total {
                None => ld,
                Some(t) => (t + ld)?,
            });
        }
        total.map(|t| t * 0.25).transpose()
    }

    /// MMIM's loss terms `(lld, nce, H)` on a batch (what the main stage weights).
    fn aux_terms(
        &self,
        b: &SeqBatch,
        r: &Reps,
        f: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, Option<Tensor>)> {
        let lld = (self.mi_tv.lld(&r.zt, &r.zv)? + self.mi_ta.lld(&r.zt, &r.za)?)?;
        let mut nce: Option<Tensor> = None;
        for (z, w) in [&r.zt, &r.za, &r.zv].into_iter().zip(&self.cpc) {
            let xh = w.forward(f)?;
            let xh = xh.broadcast_div(&super::mag_bert::safe_norm(&xh)?)?;
            let x = z.broadcast_div(&super::mag_bert::safe_norm(z)?)?;
            let pos = (&x * &xh)?.sum(1)?;
            let neg = log_sum_exp_rows(&x.matmul(&xh.t()?)?)?;
            let n = (pos - neg)?.mean_all()?.neg()?;
            nce = Some(match nce {
                None => n,
                Some(t) => (t + n)?,
            });
        }
        // the entropy term over label-sign groups with the previous batch's rows
        let labels: Vec<f64> = b.label.to_dtype(DType::F64)?.to_vec1()?;
        let (pos, neg): (Vec<bool>, Vec<bool>) = match self.task {
            Task::Regression => (
                labels.iter().map(|y| *y > 0.0).collect(),
                labels.iter().map(|y| *y < 0.0).collect(),
            ),
            Task::Binary => (
                labels.iter().map(|y| *y >= 0.5).collect(),
                labels.iter().map(|y| *y < 0.5).collect(),
            ),
        };
        let mut cur: Vec<Groups> = Vec::with_capacity(2);
        for (mi, y) in [(&self.mi_tv, &r.zv), (&self.mi_ta, &r.za)] {
            let yp = mi.project(y)?;
            cur.push([rows(&yp, &pos)?, rows(&yp, &neg)?]);
        }
        let mut mem = self.memory.borrow_mut();
        let mut h: Option<Tensor> = None;
        if mem.batches > 1 {
            if let Some(prev) = &mem.prev {
                for (c, p) in cur.iter().zip(prev.iter()) {
                    if let Some(e) = self.entropy(c, p)? {
                        h = Some(match h {
                            None => e,
                            Some(t) => (t + e)?,
                        });
                    }
                }
            }
        }
        let detach = |g: &Groups| -> Groups { [0, 1].map(|k| g[k].as_ref().map(Tensor::detach)) };
        mem.prev = Some([detach(&cur[0]), detach(&cur[1])]);
        mem.batches += 1;
        Ok((lld, nce.expect("three modalities"), h))
    }
}

/// `log Σ_j exp(s_ij)` per row of `s` (stable: the row maximum is subtracted first, detached).
fn log_sum_exp_rows(s: &Tensor) -> candle_core::Result<Tensor> {
    let m = s.max_keepdim(D::Minus1)?.detach();
    let e = s.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()?;
    (e + m)?.squeeze(D::Minus1)
}

impl FusionModel for Mmim {
    type Config = MmimConfig;
    const NAME: &'static str = "MIM";

    fn needs_tokens(_cfg: &Self::Config) -> bool {
        true
    }

    fn new(cfg: &Checked<MmimConfig>, ctx: &BuildCtx, vb: VarBuilder) -> candle_core::Result<Self> {
        let bc = config_for(ctx, Self::NAME)?;
        let h = bc.hidden_size;
        let [_, da, dv] = ctx.dims;
        let (ah, ao, fw) = (cfg.av_hidden, cfg.av_out, cfg.fusion);
        let mi = vb.pp("mi");
        Ok(Self {
            bert: BertBackbone::new(&bc, false, cfg.bert_dropout, ctx.seed ^ 0xB1, vb.pp("bert"))?
                .frozen(!cfg.finetune),
            audio: BiLstm::new(da, ah, vb.pp("audio"))?,
            audio_out: linear(2 * ah, ao, vb.pp("audio_out"))?,
            vision: BiLstm::new(dv, ah, vb.pp("vision"))?,
            vision_out: linear(2 * ah, ao, vb.pp("vision_out"))?,
            f1: linear(h + 2 * ao, fw, vb.pp("fusion1"))?,
            f2: linear(fw, fw, vb.pp("fusion2"))?,
            f3: linear(fw, 1, vb.pp("fusion3"))?,
            cpc: [
                linear(fw, h, vb.pp("cpc_t"))?,
                linear(fw, ao, vb.pp("cpc_a"))?,
                linear(fw, ao, vb.pp("cpc_v"))?,
            ],
            mi_tv: Mmilb::new(h, ao, cfg.entropy_dim, mi.pp("tv"))?,
            mi_ta: Mmilb::new(h, ao, cfg.entropy_dim, mi.pp("ta"))?,
            drop: SeededDropout::new(cfg.dropout, ctx.seed ^ 0x3313),
            task: ctx.task,
            memory: RefCell::new(Memory::default()),
            frozen: (!cfg.finetune && cfg.feature_cache)
                .then(|| FrozenText::new(Pooling::Cls, h, FrozenText::default_dir())),
            cfg: **cfg,
        })
    }

    fn forward(&self, b: &SeqBatch, train: bool) -> candle_core::Result<ModelOutput> {
        let r = self.reps(b, train)?;
        let x = Tensor::cat(&[&r.zt, &r.za, &r.zv], 1)?;
        let y1 = self.f1.forward(&self.drop.forward(&x, train)?)?.tanh()?;
        let f = self.f2.forward(&y1)?.tanh()?;
        let prediction = self.f3.forward(&f)?.squeeze(1)?;
        let aux_loss = if train && self.cfg.contrast {
            let (lld, nce, h) = self.aux_terms(b, &r, &f)?;
            let mut aux = ((nce * self.cfg.alpha)? - (lld * self.cfg.beta)?)?;
            if let Some(h) = h {
                aux = (aux - (h * self.cfg.beta)?)?;
            }
            Some(aux)
        } else {
            None
        };
        Ok(ModelOutput {
            unimodal: vec![r.zt, r.za, r.zv],
            fused: f,
            prediction,
            aux_loss,
        })
    }

    fn rep_dims(&self) -> (Vec<usize>, usize) {
        let h = self.bert.hidden();
        (vec![h, self.cfg.av_out, self.cfg.av_out], self.cfg.fusion)
    }

    fn load_pretrained(&self, vm: &VarMap, ctx: &BuildCtx) -> candle_core::Result<()> {
        load_from_ctx(vm, ctx)
    }

    fn learning_rate(&self, name: &str, base: f64) -> Option<f64> {
        if name.starts_with("mi.") {
            None
        } else if name.starts_with("bert.") {
            self.cfg.finetune.then_some(self.cfg.bert_lr)
        } else {
            Some(base)
        }
    }

    fn prepare(&self, ds: &Dataset) -> candle_core::Result<()> {
        match &self.frozen {
            Some(c) => c
                .prepare_dataset(&self.bert, ds)
                .map_err(|e| candle_core::Error::Msg(format!("MIM: {e}"))),
            None => Ok(()),
        }
    }

    fn on_epoch_start(&self) {
        *self.memory.borrow_mut() = Memory::default();
    }

    fn extra_stage(&self) -> Option<ExtraStage> {
        self.cfg.contrast.then_some(ExtraStage {
            lr: self.cfg.mmilb_lr,
            weight_decay: self.cfg.mmilb_weight_decay,
            grad_clip: self.cfg.mmilb_grad_clip,
            batch_fraction: self.cfg.mmilb_batch_fraction,
        })
    }

    fn in_extra_stage(&self, name: &str) -> bool {
        name.starts_with("mi.")
    }

    fn extra_stage_loss(&self, b: &SeqBatch) -> candle_core::Result<Tensor> {
        let r = self.reps(b, true)?;
        let (zt, za, zv) = (r.zt.detach(), r.za.detach(), r.zv.detach());
        (self.mi_tv.lld(&zt, &zv)? + self.mi_ta.lld(&zt, &za)?)?.neg()
    }
}
