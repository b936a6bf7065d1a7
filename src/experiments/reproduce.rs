//! `reproduce-paper`: argument parsing and orchestration (the binary only calls [`main_with`]).

use super::expected::expected;
use super::{load_dataset, run_plan, Plan, Profile};
use crate::data::Tier;
use crate::report::tables;
use crate::train::Variant;
use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Runs the paper's experiments and prints measured vs expected tables.
#[derive(Debug, Parser)]
#[command(name = "reproduce-paper", version, about)]
pub struct ReproduceArgs {
    /// smoke (< 1 min), quick (≤ 10 min on 2 cores), paper (full grid, ≥ 5 seeds).
    #[arg(long, value_enum, default_value_t = ProfileArg::Quick)]
    pub profile: ProfileArg,
    /// synthetic (embedded generator) or real-text (real MOSI transcripts + GloVe; needs --data-dir).
    #[arg(long, value_enum, default_value_t = TierArg::Synthetic)]
    pub tier: TierArg,
    /// Folder holding mosi/label.csv and glove/ (e.g. ../shared/data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Comma-separated seeds (default: 0 for smoke/quick, 0..4 for paper).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Output folder: table.md, table.json, table.csv and the resumable results.jsonl.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Worker threads (default: all cores).
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

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProfileArg {
    Smoke,
    Quick,
    Paper,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TierArg {
    Synthetic,
    RealText,
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
    let profile = match args.profile {
        ProfileArg::Smoke => Profile::Smoke,
        ProfileArg::Quick => Profile::Quick,
        ProfileArg::Paper => Profile::Paper,
    };
    let tier = match args.tier {
        TierArg::Synthetic => Tier::Synthetic,
        TierArg::RealText => Tier::RealText,
    };
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
    let d = crate::train::RegWeights::default();
    let weights = crate::train::RegWeights {
        beta: args.beta.unwrap_or(d.beta),
        gamma_l2: args.gamma_l2.unwrap_or(d.gamma_l2),
        gamma_d: args.gamma_d.unwrap_or(d.gamma_d),
        gamma_k: args.gamma_k.unwrap_or(d.gamma_k),
    };
    for (name, v) in [
        ("beta", weights.beta),
        ("gamma-l2", weights.gamma_l2),
        ("gamma-d", weights.gamma_d),
        ("gamma-k", weights.gamma_k),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("--{name} must be finite and >= 0, got {v}");
        }
    }
    let plan = Plan {
        tier,
        profile,
        seeds,
        variants: Variant::ALL.to_vec(),
        data_dir: args.data_dir.clone(),
        weights,
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
        |msg, pos, len| {
            grid_bar.set_length(len as u64);
            grid_bar.set_position(pos as u64);
            if !msg.is_empty() {
                grid_bar.set_message(msg.to_string());
            }
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
