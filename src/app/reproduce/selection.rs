//! What `run`'s options select: the seeds ([`seeds`]), the synergy weights ([`synergy_weights`])
//! and the corpus, models, variants and `--tables` pairs ([`selection`]), each checked, with
//! notes and warnings on stderr.

use super::RunArgs;
use crate::data::DatasetName;
use crate::experiments::Profile;
use crate::models::ModelKind;
use crate::synergy::SynergyConfig;
use crate::train::Variant;
use anyhow::{bail, Result};

/// `--seeds` (default: the profile's), each once; a note on a repeated seed, a warning on a paper
/// profile with fewer than 5.
pub(super) fn seeds(args: &RunArgs) -> Result<Vec<u64>> {
    let mut seeds = args.seeds.clone().unwrap_or_else(|| args.profile.seeds());
    if seeds.is_empty() {
        bail!("--seeds is empty");
    }
    let given = seeds.len();
    let mut seen = std::collections::BTreeSet::new();
    seeds.retain(|s| seen.insert(*s));
    if seeds.len() < given {
        eprintln!(
            "reproduce-paper: note: --seeds repeats a seed; each runs once ({:?})",
            seeds
        );
    }
    if args.profile == Profile::Paper && seeds.len() < 5 {
        eprintln!(
            "reproduce-paper: warning: the paper profile is meant for >= 5 seeds (got {})",
            seeds.len()
        );
    }
    Ok(seeds)
}

/// The synergy weights: `--beta`, `--gamma-l2`, `--gamma-d`, `--gamma-k` over the defaults,
/// validated.
pub(super) fn synergy_weights(args: &RunArgs) -> Result<SynergyConfig> {
    let d = SynergyConfig::default();
    let synergy = SynergyConfig {
        beta: args.beta.unwrap_or(d.beta),
        gamma_l2: args.gamma_l2.unwrap_or(d.gamma_l2),
        gamma_d: args.gamma_d.unwrap_or(d.gamma_d),
        gamma_k: args.gamma_k.unwrap_or(d.gamma_k),
        ..d
    };
    crate::Validate::validate(&synergy)
        .map_err(|e| anyhow::anyhow!("{e} (from --beta/--gamma-l2/--gamma-d/--gamma-k)"))?;
    Ok(synergy)
}

/// What to train: the corpus, the models and variants (sorted, once each) and, with `--tables`,
/// the exact (model, variant) pairs.
pub(super) struct Selection {
    pub(super) dataset: DatasetName,
    pub(super) kinds: Vec<ModelKind>,
    pub(super) variants: Vec<Variant>,
    pub(super) pairs: Option<Vec<(ModelKind, Variant)>>,
}

/// `--models`, `--variants` and `--dataset`, or `--tables` narrowed by them.
pub(super) fn selection(args: &RunArgs) -> Result<Selection> {
    let mut kinds = args
        .models
        .clone()
        .unwrap_or_else(|| ModelKind::ALL.to_vec());
    let mut variants = args
        .variants
        .clone()
        .unwrap_or_else(|| Variant::ALL.to_vec());
    let mut dataset = args.dataset;
    let mut pairs = None;
    if let Some(numbers) = &args.tables {
        let specs = crate::experiments::tables::select(numbers)?;
        let Some(first) = specs.first() else {
            bail!("--tables is empty");
        };
        if dataset != first.dataset && args.dataset != DatasetName::default() {
            bail!(
                "--tables {} are on {}, not --dataset {}",
                numbers
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                first.dataset.name(),
                dataset.name()
            );
        }
        dataset = first.dataset;
        let (p, missing) = crate::experiments::tables::pairs(&specs);
        if !missing.is_empty() {
            eprintln!(
                "reproduce-paper: note: this build has no {} model: {} rows are rendered as \"—\"",
                missing.join(", "),
                missing.join("/")
            );
        }
        // --models / --variants narrow the tables' pairs
        let p: Vec<_> = p
            .into_iter()
            .filter(|(k, _)| args.models.as_ref().is_none_or(|m| m.contains(k)))
            .collect();
        let mut models: Vec<ModelKind> = p.iter().map(|(k, _)| *k).collect();
        models.sort();
        models.dedup();
        let mut p: Vec<_> = p
            .into_iter()
            .filter(|(_, v)| args.variants.as_ref().is_none_or(|vs| vs.contains(v)))
            .collect();
        // a control (e.g. nll-text-only) asked for with --variants runs beside every model of
        // the tables (no table has a row for it)
        for v in args.variants.iter().flatten().filter(|v| v.is_control()) {
            for k in &models {
                if !p.contains(&(*k, *v)) {
                    p.push((*k, *v));
                }
            }
        }
        if p.is_empty() {
            bail!("--tables with these --models/--variants leaves nothing to run");
        }
        kinds = p.iter().map(|(k, _)| *k).collect();
        variants = p.iter().map(|(_, v)| *v).collect();
        pairs = Some(p);
    }
    kinds.sort();
    kinds.dedup();
    variants.sort();
    variants.dedup();
    Ok(Selection {
        dataset,
        kinds,
        variants,
        pairs,
    })
}
