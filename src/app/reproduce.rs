//! `reproduce-paper`: argument parsing and orchestration (the binary only calls [`main_with`]).

use crate::data::Tier;
use crate::experiments::expected::expected;
use crate::experiments::{load_dataset, run_plan, Plan, Profile};
use crate::models::ModelKind;
use crate::report::tables;
use crate::synergy::SynergyConfig;
use crate::train::Variant;
use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Runs the paper's experiments and prints measured vs expected tables.
#[derive(Debug, Parser)]
#[command(name = "reproduce-paper", version, about)]
pub struct ReproduceArgs {
    /// smoke (a subsample, ≤ 4 epochs), quick (full data, one grid point, ≤ 10 epochs), paper
    /// (full grid, ≥ 5 seeds).
    #[arg(long, value_enum, default_value_t = Profile::Quick)]
    pub profile: Profile,
    /// synthetic (embedded generator) or real-text (real MOSI transcripts + GloVe; needs --data-dir).
    #[arg(long, value_enum, default_value_t = Tier::Synthetic)]
    pub tier: Tier,
    /// Comma-separated models (default: all registered, in table order).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub models: Option<Vec<ModelKind>>,
    /// Folder holding mosi/label.csv and glove/ (e.g. ../shared/data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Comma-separated seeds (default: 0 for smoke/quick, 0..4 for paper).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Output folder: table.md, table.json, table.csv and the resumable results.jsonl.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Worker threads for Candle's CPU kernels (default: 1, measured fastest for these models).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the paper's Tables 2–6 (expected values) instead of running anything.
    #[arg(long)]
    pub expected: bool,
    /// JSON on stdout instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Weight β of L_reg in the task model's objective (default 0.01).
    #[arg(long)]
    pub beta: Option<f64>,
    /// γ_L2 of the reconstruction loss (default 1; 0 disables it).
    #[arg(long)]
    pub gamma_l2: Option<f64>,
    /// γ_d of the alignment loss (default 1; 0 disables it).
    #[arg(long)]
    pub gamma_d: Option<f64>,
    /// γ_κ of the kurtosis penalty (default 0.1; 0 disables it).
    #[arg(long)]
    pub gamma_k: Option<f64>,
}

/// Entry point of the binary.
pub fn main_with(args: ReproduceArgs) -> Result<()> {
    // one thread by default: Candle's small per-step LSTM ops run faster without thread
    // hand-offs (measured: smoke profile 43 s with 1 thread, 87 s with 2, same numbers)
    crate::init_threads(Some(args.threads.unwrap_or(1)));
    if args.expected {
        let e = expected();
        if args.json {
            println!("{}", serde_json::to_string(&e)?);
        } else {
            let rows: Vec<Vec<String>> = e
                .iter()
                .map(|r| {
                    vec![
                        r.table.to_string(),
                        r.dataset.clone(),
                        r.model.clone(),
                        r.variant.clone(),
                        r.condition.clone(),
                        r.metric.clone(),
                        r.value.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                crate::report::markdown_table(
                    &[
                        "table",
                        "dataset",
                        "model",
                        "variant",
                        "condition",
                        "metric",
                        "value"
                    ],
                    &rows
                )
            );
        }
        return Ok(());
    }
    let (profile, tier) = (args.profile, args.tier);
    let seeds = args.seeds.clone().unwrap_or_else(|| profile.seeds());
    if seeds.is_empty() {
        bail!("--seeds is empty");
    }
    if profile == Profile::Paper && seeds.len() < 5 {
        eprintln!(
            "reproduce-paper: warning: the paper profile is meant for >= 5 seeds (got {})",
            seeds.len()
        );
    }
    let d = SynergyConfig::default();
    let synergy = SynergyConfig {
        beta: args.beta.unwrap_or(d.beta),
        gamma_l2: args.gamma_l2.unwrap_or(d.gamma_l2),
        gamma_d: args.gamma_d.unwrap_or(d.gamma_d),
        gamma_k: args.gamma_k.unwrap_or(d.gamma_k),
        ..d
    };
    synergy
        .validate()
        .map_err(|e| anyhow::anyhow!("{e} (from --beta/--gamma-l2/--gamma-d/--gamma-k)"))?;
    let mut kinds = args
        .models
        .clone()
        .unwrap_or_else(|| ModelKind::ALL.to_vec());
    kinds.sort();
    kinds.dedup();
    let plan = Plan {
        tier,
        profile,
        seeds,
        models: kinds.iter().map(|k| k.default_config()).collect(),
        variants: Variant::ALL.to_vec(),
        data_dir: args.data_dir.clone(),
        synergy,
    };
    let start = std::time::Instant::now();
    let ds = load_dataset(&plan)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let results = args.out.join("results.jsonl");
    let hidden = args.quiet || !console_is_tty();
    let grid_bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    grid_bar.set_style(
        ProgressStyle::with_template("{prefix:>5} [{bar:30}] {pos}/{len} runs {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    grid_bar.set_prefix("grid");
    let epoch_bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    let (_, selected) = run_plan(
        &plan,
        &ds,
        &results,
        |p| {
            grid_bar.set_length(p.total as u64);
            grid_bar.set_position(p.done as u64);
            let c = p.config;
            grid_bar.set_message(format!(
                "{} {} seed {} b{} lr{:e}{}",
                c.model.kind().name(),
                c.variant.name(),
                c.seed,
                c.batch_size,
                c.lr,
                if p.resumed { " (done)" } else { "" }
            ));
        },
        |epoch, mae| {
            epoch_bar.set_message(format!("epoch {epoch}: valid MAE {mae:.4}"));
            epoch_bar.tick();
        },
    )?;
    grid_bar.finish_and_clear();
    epoch_bar.finish_and_clear();
    let e = expected();
    let rows = tables::rows(&selected, &e);
    let wall = start.elapsed().as_secs_f64();
    let md = tables::markdown(&plan, &ds, &rows, wall);
    let json = serde_json::json!({
        "tier": tier.name(),
        "profile": profile.name(),
        "seeds": plan.seeds,
        "data": ds.description,
        "ceilings": ds.ceilings,
        "rows": rows,
        "selected_runs": selected,
        "wall_s": wall,
    });
    std::fs::write(args.out.join("table.md"), &md)?;
    std::fs::write(
        args.out.join("table.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    std::fs::write(args.out.join("table.csv"), tables::csv(&plan, &rows))?;
    if args.json {
        println!("{json}");
    } else {
        print!("{md}");
        eprintln!(
            "reproduce-paper: wrote {}/table.{{md,json,csv}}; runs in {}",
            args.out.display(),
            results.display()
        );
    }
    Ok(())
}

fn console_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
