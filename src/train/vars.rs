//! A run's variables: building a model from a seed, the trainable variables and their learning-rate
//! groups, and snapshots of the selected checkpoint.

use super::protocol::RunConfig;
use crate::data::Dataset;
use crate::models::{is_buffer, BuildCtx, FusionModel, TRAIN_DTYPE};
use crate::params::Checked;
use crate::synergy::nets::seed_varmap;
use crate::synergy::ParamGroups;
use candle_core::{Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

/// The trainable variables of a model's `VarMap` (without buffers), sorted by name.
pub fn trainable_vars(vm: &VarMap) -> Vec<Var> {
    let data = vm.data().lock().expect("VarMap lock");
    let mut named: Vec<(&String, &Var)> = data.iter().filter(|(n, _)| !is_buffer(n)).collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named.into_iter().map(|(_, v)| v.clone()).collect()
}

/// The trainable variables of `model`'s `VarMap` grouped by learning rate
/// ([`FusionModel::learning_rate`] of each name at the protocol's `base` rate), in name order;
/// variables the model keeps out of the main optimiser (frozen, or an extra stage's) are left out.
pub fn param_groups<M: FusionModel>(model: &M, vm: &VarMap, base: f64) -> ParamGroups {
    let data = vm.data().lock().expect("VarMap lock");
    let mut named: Vec<(&String, &Var)> = data.iter().filter(|(n, _)| !is_buffer(n)).collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let mut groups: ParamGroups = Vec::new();
    for (name, var) in named {
        let Some(lr) = model.learning_rate(name, base) else {
            continue;
        };
        match groups.iter_mut().find(|(_, l)| l.to_bits() == lr.to_bits()) {
            Some((vars, _)) => vars.push(var.clone()),
            None => groups.push((vec![var.clone()], lr)),
        }
    }
    groups
}

/// The variables of `model`'s extra optimisation stage ([`FusionModel::in_extra_stage`]), in
/// name order.
pub fn extra_stage_vars<M: FusionModel>(model: &M, vm: &VarMap) -> Vec<Var> {
    let data = vm.data().lock().expect("VarMap lock");
    let mut named: Vec<(&String, &Var)> = data
        .iter()
        .filter(|(n, _)| !is_buffer(n) && model.in_extra_stage(n))
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named.into_iter().map(|(_, v)| v.clone()).collect()
}

/// Builds model `M` with fresh variables initialised from `seed`, then loads its pretrained
/// weights ([`FusionModel::load_pretrained`], after the seeding so they are kept); returns it with
/// its `VarMap`. The configuration is checked first ([`Checked::new`]).
pub fn build_model<M: FusionModel>(
    cfg: &M::Config,
    ctx: &BuildCtx,
    device: &Device,
) -> crate::synergy::Result<(M, VarMap)> {
    build_checked(&Checked::new(cfg.clone())?, ctx, device)
}

/// [`build_model`] from a checked configuration (a run's, checked with the run), so a run checks
/// its settings once.
pub(super) fn build_checked<M: FusionModel>(
    cfg: &Checked<M::Config>,
    ctx: &BuildCtx,
    device: &Device,
) -> crate::synergy::Result<(M, VarMap)> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, TRAIN_DTYPE, device);
    let model = M::new(cfg, ctx, vb)?;
    seed_varmap(&vm, ctx.seed)?;
    model.load_pretrained(&vm, ctx)?;
    Ok((model, vm))
}

/// A copy of every variable (weights and buffers).
pub(crate) fn snapshot(vm: &VarMap) -> candle_core::Result<Vec<(Var, Tensor)>> {
    let data = vm.data().lock().expect("VarMap lock");
    data.values()
        .map(|v| Ok((v.clone(), v.as_tensor().copy()?)))
        .collect()
}

/// Restores a [`snapshot`].
pub(crate) fn restore(s: &[(Var, Tensor)]) -> candle_core::Result<()> {
    for (v, t) in s {
        v.set(t)?;
    }
    Ok(())
}

/// What a model is built from for a run of `cfg` on `ds`.
pub(super) fn build_ctx(ds: &Dataset, cfg: &RunConfig) -> BuildCtx {
    BuildCtx {
        dims: ds.dims,
        seed: cfg.seed,
        task: ds.task,
        text_encoder: ds.train.tokens.as_ref().map(|t| t.source.dir.clone()),
    }
}
