//! `reproduce-paper run` (and `plan`, `run --plan`): from the options to a plan, its dataset and
//! the folder's `run.json`, then the training and the tables; what a finished shard prints, the
//! cost of a plan without training, and the atomic write of `run.json`.

use super::folder::{print_expected, render, render_loaded};
use super::selection::{seeds, selection, synergy_weights, Selection};
use super::{MisaText, RunArgs};
use crate::data::realtext::CueMode;
use crate::data::Tier;
use crate::experiments::shard::Shard;
use crate::experiments::{load_dataset, run_plan, Deadline, Plan, PlanRun, TimeLimit};
use crate::models::ModelSetting;
use crate::report::tables;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// `reproduce-paper run` (and `plan`): train the plan and report.
pub(super) fn run(args: RunArgs) -> Result<()> {
    // --time-limit counts from here
    let started = std::time::Instant::now();
    // one thread by default: Candle's small per-step LSTM ops run faster without thread
    // hand-offs (measured: smoke profile 43 s with 1 thread, 87 s with 2, same numbers)
    crate::try_init_threads(Some(args.threads.unwrap_or(1)))?;
    crate::single_threaded_blas();
    if args.jobs == 0 {
        bail!("--jobs 0: give at least 1 (runs trained at once)");
    }
    if args.expected {
        return print_expected(args.json);
    }
    let (mut plan, out) = plan_and_out(&args)?;
    let start = std::time::Instant::now();
    let mut ds = load_dataset(&plan)?;
    if ds.task == crate::data::Task::Binary && args.gamma_l2.is_none() {
        // the regression default collapses binary runs (chosen on validation; see the constant)
        plan.synergy.gamma_l2 = crate::experiments::BINARY_TASK_GAMMA_L2;
    }
    for note in crate::experiments::bert::prepare(
        &mut ds,
        &mut plan.models,
        args.models.is_some(),
        args.text_encoder.as_deref(),
    )? {
        eprintln!("reproduce-paper: note: {note}");
    }
    if args.plan {
        return print_plan(&plan, &ds, &out, args.json, args.time_limit);
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating --out {}", out.display()))?;
    let deadline = match args.time_limit {
        None => None,
        Some(limit) => Some(deadline(limit, started, &plan, &ds, &out)?),
    };
    let results = out.join(
        args.shard
            .map_or_else(|| "results.jsonl".to_string(), |s| s.file_name()),
    );
    // one writer per results file: a second training into the same file fails here, naming the
    // first, before it touches anything (Slurm shards each lock their own file)
    let writer = crate::experiments::store::ResultsWriter::open(&results)?;
    // run.json first, so `report --from` works on a folder still training (or killed early)
    let (ctx, widened) = write_run_json(&out, &plan, &ds)?;
    let metric = match ds.task {
        crate::data::Task::Regression => "MAE",
        crate::data::Task::Binary => "accuracy",
    };
    let display = std::sync::Mutex::new(crate::app::progress::Display::new(
        crate::app::progress::Mode::detect(args.quiet),
        metric,
    ));
    let done = run_plan(
        &plan,
        &ds,
        &writer,
        deadline.as_ref(),
        |p| display.lock().expect("display").run(&p),
        |epoch, score| display.lock().expect("display").epoch(epoch, score),
    )?;
    display.lock().expect("display").finish();
    drop(writer);
    if let Some(limit) = args.time_limit {
        print_time_limit(limit, &done);
    }
    if let Some(shard) = args.shard {
        // a shard holds part of the grid: the tables come from the merge of all shards
        let wall = start.elapsed().as_secs_f64();
        print_shard_done(shard, &done, &ctx, &results, &out, wall, args.json);
        return Ok(());
    }
    let (records, selected) = (done.records, done.selected);
    // the folder read once: when it holds runs of earlier commands too (other models, seeds,
    // variants or grid points on the same data), its tables cover all of them, as `report
    // --from` does, so a narrower command never leaves a narrower table behind
    // (a plan left without runs, e.g. BERT models on a tier without words, finds none there)
    let folder = match crate::report::load_folders(std::slice::from_ref(&out)) {
        Err(crate::report::ReportError::NoRuns { .. }) => None,
        other => Some(other?),
    };
    if let Some(folder) = folder.filter(|f| widened || has_other_runs(f, &records)) {
        return render_loaded(&out, folder, args.json);
    }
    render(
        &out,
        &ctx,
        &records,
        &selected,
        Some(start.elapsed().as_secs_f64()),
        &[],
        &[],
        args.json,
    )
}

/// The plan `run`'s options ask for (seeds, synergy weights, `--tune`, the selection, the
/// device and the grid; the notes and warnings of [`seeds`] and [`selection`] go to stderr) and
/// its `--out` folder (default: runs/PROFILE-DATASET-TIER).
fn plan_and_out(args: &RunArgs) -> Result<(Plan, PathBuf)> {
    let (profile, tier) = (args.profile, args.tier);
    let seeds = seeds(args)?;
    let synergy = synergy_weights(args)?;
    let mut weight_grid = crate::experiments::WeightGrid::default();
    for spec in &args.tune {
        weight_grid.add(spec).map_err(|e| anyhow::anyhow!(e))?;
    }
    let Selection {
        dataset,
        kinds,
        variants,
        pairs,
    } = selection(args)?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-{}-{}",
            profile.name(),
            dataset.name(),
            tier.name()
        ))
    });
    if args.cues != CueMode::Label && tier != Tier::RealText {
        anyhow::bail!(
            "--cues {} applies to the real-text tier only (this run is --tier {})",
            args.cues.name(),
            tier.name()
        );
    }
    let mut plan = Plan {
        tier,
        dataset,
        profile,
        seeds,
        models: kinds.iter().map(|k| k.default_config()).collect(),
        variants,
        data_dir: args.data_dir.clone(),
        synergy,
        weight_grid,
        jobs: args.jobs.max(1),
        device: args.device.device()?,
        max_epochs: args.max_epochs,
        shard: args.shard,
        cues: args.cues,
        pairs,
        grid: if args.lr.is_some() || args.batch_size.is_some() {
            Some(
                crate::experiments::grid_with(
                    profile,
                    args.batch_size.as_deref(),
                    args.lr.as_deref(),
                )
                .map_err(|e| anyhow::anyhow!(e))?,
            )
        } else {
            None
        },
        model_settings: Vec::new(),
    };
    for note in crate::experiments::bert::text_options(
        &mut plan.models,
        args.misa_text == MisaText::Bert,
        args.frozen_bert,
    ) {
        eprintln!("reproduce-paper: note: {note}");
    }
    // after the text options: an explicit setting wins (checked before the data loads)
    plan.model_settings = args
        .model_param
        .iter()
        .map(|s| s.parse::<ModelSetting>())
        .collect::<Result<_, _>>()?;
    crate::models::setting::apply_all(&mut plan.models, &plan.model_settings)?;
    Ok((plan, out))
}

/// Writes `out`'s run.json: a folder an earlier command trained other models or seeds into
/// keeps them in its context. Returns the context and whether it was widened that way.
fn write_run_json(
    out: &std::path::Path,
    plan: &Plan,
    ds: &crate::data::Dataset,
) -> Result<(tables::RunContext, bool)> {
    let mut ctx = tables::RunContext::new(plan, ds);
    let mut widened = false;
    let run_json = out.join("run.json");
    if let Some(prev) = std::fs::read_to_string(&run_json)
        .ok()
        .and_then(|t| serde_json::from_str::<tables::RunContext>(&t).ok())
    {
        match ctx.clone().widened_by(&prev) {
            Ok(wide) => {
                widened = wide.models != ctx.models || wide.seeds != ctx.seeds;
                ctx = wide;
            }
            Err(e) => eprintln!(
                "reproduce-paper: note: {} described other runs ({e}); it now describes this plan",
                run_json.display()
            ),
        }
    }
    write_atomically(&run_json, serde_json::to_string_pretty(&ctx)?.as_bytes())?;
    Ok((ctx, widened))
}

/// Whether the loaded folder holds finished runs (on its tier, profile and data) that are not
/// among `records` (this command's plan): runs an earlier command trained into it.
fn has_other_runs(
    folder: &crate::report::Loaded,
    records: &[crate::experiments::RunRecord],
) -> bool {
    let mine: std::collections::HashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
    // the loaded records are those on the folder's tier, profile and data already
    folder
        .records
        .iter()
        .any(|r| !mine.contains(r.key.as_str()))
}

/// The `--time-limit` budget from `started`, projecting runs from the finished runs of the same
/// data in `out` (every results file there, shards included).
fn deadline(
    limit: TimeLimit,
    started: std::time::Instant,
    plan: &Plan,
    ds: &crate::data::Dataset,
    out: &std::path::Path,
) -> Result<Deadline> {
    let measured = on_same_data(folder_records(out)?, ds);
    let gpu = !plan.device.is_cpu();
    Ok(Deadline::new(limit, started, measured, ds.train.len(), gpu))
}

/// The finished runs in every results file of `out` (shards and archive parts included); none
/// when `out` does not exist yet.
fn folder_records(out: &std::path::Path) -> Result<Vec<crate::experiments::RunRecord>> {
    Ok(if out.is_dir() {
        crate::experiments::shard::read_dir(out)?.records
    } else {
        Vec::new()
    })
}

/// The runs among `records` on `ds`'s data: the ones whose seconds per epoch project `ds`'s runs.
fn on_same_data(
    records: Vec<crate::experiments::RunRecord>,
    ds: &crate::data::Dataset,
) -> Vec<crate::experiments::RunRecord> {
    records
        .into_iter()
        .filter(|r| crate::data::same_data(&r.data, &ds.description))
        .collect()
}

/// What `--time-limit` left out (stderr): the runs not started, with their projections, and the
/// runs that started without one.
fn print_time_limit(limit: TimeLimit, done: &PlanRun) {
    if done.unprojected > 0 {
        eprintln!(
            "reproduce-paper: note: --time-limit {limit}: {} runs started without a projection \
             (no finished run of their model on this data in --out, and no embedded time)",
            done.unprojected
        );
    }
    let Some(first) = done.not_started.first() else {
        return;
    };
    eprintln!(
        "reproduce-paper: --time-limit {limit}: {} runs not started, each projected to end after \
         the limit (first: {} {} seed {}, {:.0} min projected, {:.0} min left); the same command \
         resumes them",
        done.not_started.len(),
        first.model,
        first.variant,
        first.seed,
        first.projected_s / 60.0,
        first.left_s / 60.0
    );
}

/// What a finished shard prints (it renders no table: `report --from` merges the shards).
fn print_shard_done(
    shard: Shard,
    done: &PlanRun,
    ctx: &tables::RunContext,
    results: &std::path::Path,
    out: &std::path::Path,
    wall: f64,
    json: bool,
) {
    let (records, not_started) = (&done.records, done.not_started.len());
    let failed = records
        .iter()
        .filter(|r| r.result.failure.is_some())
        .count();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "shard": shard.to_string(),
                "runs": records.len(),
                "failed": failed,
                "not_started": not_started,
                "planned_runs": ctx.planned_runs,
                "results": results,
                "wall_s": wall,
            })
        );
    } else {
        let left = if not_started > 0 {
            format!(", {not_started} not started (--time-limit)")
        } else {
            String::new()
        };
        println!(
            "shard {shard}: {} runs finished ({failed} failed inside){left} of {} planned in all; results in {}",
            records.len(),
            ctx.planned_runs.unwrap_or(0),
            results.display()
        );
        eprintln!(
            "reproduce-paper: when every shard has finished: reproduce-paper report --from {}",
            out.display()
        );
    }
}

/// `--plan`: the cost of the plan without training (see [`crate::experiments::cost`]).
fn print_plan(
    plan: &Plan,
    ds: &crate::data::Dataset,
    out: &std::path::Path,
    json: bool,
    time_limit: Option<TimeLimit>,
) -> Result<()> {
    use crate::experiments::cost;
    let runs = plan.runs(ds)?;
    // per-epoch times of finished runs of the same data in --out, when there are any
    let records = folder_records(out)?;
    // runs already in --out (a resume skips them): counted apart, not costed
    let finished: Vec<bool> = {
        let have: std::collections::HashSet<&str> =
            records.iter().map(|r| r.key.as_str()).collect();
        crate::experiments::plan_keys(plan, ds, &runs)
            .iter()
            .map(|k| have.contains(k.as_str()))
            .collect()
    };
    let measured = on_same_data(records, ds);
    let lines = cost::plan_cost(&runs, &finished, ds.train.len(), &measured);
    let budget = time_limit.map(|limit| {
        let todo: Vec<&crate::train::RunConfig> = runs
            .iter()
            .zip(&finished)
            .filter(|(_, &done)| !done)
            .map(|(c, _)| &**c)
            .collect();
        budget_fit(limit, &todo, plan, ds, &measured)
    });
    // hours on one GPU over the lines measured on a GPU (null: none measured)
    let gpu_hours = cost::gpu_total(&lines).map(|(hours, _)| hours);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "tier": plan.tier.name(),
                "dataset": plan.dataset.name(),
                "profile": plan.profile.name(),
                "seeds": plan.seeds,
                "train_clips": ds.train.len(),
                "jobs": plan.jobs,
                "lines": lines,
                "runs": runs.len(),
                "finished": finished.iter().filter(|&&f| f).count(),
                "cpu_hours": lines.iter().filter_map(|l| l.cpu_hours).sum::<f64>(),
                "gpu_hours": gpu_hours,
                "time_limit": budget.as_ref().map(|b| &b.json),
            })
        );
    } else {
        let header = format!(
            "Cost plan: profile `{}`, tier `{}`, {} seeds, {} grid points, {} training clips ({}).",
            plan.profile.name(),
            plan.tier.name(),
            plan.seeds.len(),
            plan.grid().len(),
            ds.train.len(),
            ds.name
        );
        print!("{}", cost::markdown(&lines, &header, plan.jobs));
        if let Some(b) = &budget {
            println!("\n{}", b.text);
        }
    }
    Ok(())
}

/// What `plan --time-limit` says: the schedule `run` would follow under the budget.
struct BudgetFit {
    text: String,
    json: serde_json::Value,
}

/// Simulates `run --time-limit limit` on the runs still to train (`todo`, plan order), each taking
/// its projection ([`crate::experiments::cost::run_projection`], as `run` projects it).
fn budget_fit(
    limit: TimeLimit,
    todo: &[&crate::train::RunConfig],
    plan: &Plan,
    ds: &crate::data::Dataset,
    measured: &[crate::experiments::RunRecord],
) -> BudgetFit {
    let gpu = !plan.device.is_cpu();
    let projected: Vec<Option<f64>> = todo
        .iter()
        .map(|c| crate::experiments::cost::run_projection(c, ds.train.len(), measured, gpu))
        .collect();
    let limit_s = limit.duration().as_secs_f64();
    let s = crate::experiments::schedule(&projected, plan.jobs, limit_s);
    let would = s.starts.iter().filter(|&&x| x).count();
    let first_left = s.starts.iter().position(|&x| !x).map(|i| {
        let c = todo[i];
        (
            format!(
                "{} {} seed {}",
                c.model.kind().name(),
                c.variant.name(),
                c.seed
            ),
            projected[i].unwrap_or(f64::NAN),
        )
    });
    let mut text = format!(
        "Under `--time-limit {limit}` with `--jobs {}` (each run at its epoch cap × the slowest \
         measured seconds per epoch, as `run` projects it): {would} of the {} runs not yet in \
         --out would start, the last projected to end {:.1} h into the budget",
        plan.jobs,
        todo.len(),
        s.end_s / 3600.0
    );
    match &first_left {
        Some((run, p)) => {
            text += &format!(
                "; {} would not (first: {run}, {:.0} min projected).",
                todo.len() - would,
                p / 60.0
            )
        }
        None => text += ".",
    }
    if s.unprojected > 0 {
        text += &format!(
            " {} of them nothing projects (no finished run of their model): counted as taking \
             no time.",
            s.unprojected
        );
    }
    let json = serde_json::json!({
        "limit_s": limit_s,
        "jobs": plan.jobs,
        "to_train": todo.len(),
        "would_start": would,
        "not_started": todo.len() - would,
        "end_s": s.end_s,
        "unprojected": s.unprojected,
        "first_not_started": first_left.map(|(run, p)| serde_json::json!({"run": run, "projected_s": p})),
    });
    BudgetFit { text, json }
}

/// Writes `bytes` to `path` through a temporary file named after this process and a rename, so
/// concurrent shards writing the same `run.json` never interleave.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
