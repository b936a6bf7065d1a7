//! The PIDs of a data tier: `synergy pid-tier` (the label against the clips' modality codes, with
//! a permutation null) and `synergy pid-codes` (the test clips' codes added to a results folder's
//! `run.json`, after checking the rebuilt data against it).

use super::{PidCodesArgs, PidTierArgs};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// `synergy pid-tier`: loads the tier's dataset as `reproduce-paper` does and prints its PIDs
/// (a markdown table and the settings; with `--json`, everything as one object).
pub(super) fn pid_tier(a: &PidTierArgs, json_out: bool) -> Result<Value> {
    use crate::experiments::synergy_pid::{loading_plan, tier_pid, TierPidOptions};
    if a.draws == 0 {
        bail!("--draws needs at least 1 permutation (100 or more recommended)");
    }
    if a.clusters == 0 {
        bail!("--clusters needs at least 1 cluster");
    }
    let start = std::time::Instant::now();
    let plan = loading_plan(
        a.tier,
        a.dataset,
        crate::experiments::Profile::Quick,
        a.data_dir.clone(),
        a.cues,
    );
    let ds = crate::experiments::load_dataset(&plan)?;
    let t = tier_pid(
        &ds,
        &TierPidOptions {
            clusters: a.clusters,
            draws: a.draws,
            seed: a.seed,
            split: a.split,
        },
    )?;
    let wall_s = start.elapsed().as_secs_f64();
    let mut v = serde_json::to_value(&t)?;
    v["wall_s"] = json!(wall_s);
    v["units"] = json!("bits");
    if json_out {
        return Ok(v);
    }
    println!(
        "PID of the {} label, tier {}, dataset {}, {} split (bits; k = {}, {} null draws, seed {}):\n",
        match ds.task {
            crate::data::Task::Regression => "sign of the",
            crate::data::Task::Binary => "binary",
        },
        t.tier,
        t.dataset,
        t.split.name(),
        t.clusters,
        t.draws,
        t.seed
    );
    println!("{}", t.markdown());
    Ok(json!({
        "label": t.label,
        "data": t.data,
        "wall_s": wall_s,
    }))
}

/// `synergy pid-codes --from DIR`: rebuilds the dataset `DIR/run.json` describes (tier, corpus,
/// profile, the real-text cue mode that reproduces its data description), checks its test clips
/// and labels against run.json, and rewrites run.json with `pid_codes` added (a temporary file
/// renamed over it).
pub(super) fn pid_codes_cmd(a: &PidCodesArgs) -> Result<Value> {
    use crate::data::realtext::CueMode;
    use crate::experiments::synergy_pid::{check_rebuilt, loading_plan, pid_codes};
    let path = a.from.join("run.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut ctx: crate::report::tables::RunContext = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a run context", path.display()))?;
    let modes: &[CueMode] = if ctx.tier == crate::data::Tier::RealText {
        &[CueMode::Label, CueMode::Intensity]
    } else {
        &[CueMode::Label]
    };
    let mut rebuilt = None;
    for &cues in modes {
        let plan = loading_plan(
            ctx.tier,
            ctx.dataset_or_mosi(),
            ctx.profile,
            a.data_dir.clone(),
            cues,
        );
        let ds = crate::experiments::load_dataset(&plan)
            .with_context(|| format!("rebuilding the data of {}", path.display()))?;
        let matches = crate::data::same_data(&ds.description, &ctx.data);
        rebuilt = Some(ds);
        if matches {
            break;
        }
    }
    let ds = rebuilt.expect("at least one cue mode");
    check_rebuilt(&ctx, &ds)
        .with_context(|| format!("{}: refusing to add codes", path.display()))?;
    let codes =
        pid_codes(&ds).with_context(|| format!("coding the test clips of {}", path.display()))?;
    codes.check_len(ctx.test_ids.len())?;
    let had = ctx.pid_codes.replace(codes.clone());
    let changed = had.as_ref() != Some(&codes);
    let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_string_pretty(&ctx)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(json!({
        "run_json": path.display().to_string(),
        "tier": ctx.tier.name(),
        "dataset": ctx.dataset_or_mosi().name(),
        "test_clips": codes.len(),
        "clusters": codes.clusters,
        "had_codes": had.is_some(),
        "changed": changed,
    }))
}
