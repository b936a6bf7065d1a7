//! `reproduce-paper`: argument parsing and orchestration (the binary only calls [`main_with`]).

use crate::data::realtext::CueMode;
use crate::data::{DatasetName, Tier};
use crate::experiments::expected::expected;
use crate::experiments::shard::Shard;
use crate::experiments::{load_dataset, run_plan, Plan, Profile};
use crate::models::ModelKind;
use crate::report::{tables, Report};
use crate::synergy::SynergyConfig;
use crate::train::Variant;
use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// MISA's text path (`--misa-text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MisaText {
    /// The tier's word vectors through MISA's BiLSTM–LayerNorm–BiLSTM stack.
    Lstm,
    /// A fine-tunable BERT over the clip's word-pieces, masked mean of its last hidden state.
    Bert,
}

/// The paper's experiments: train, plan, re-render, compact, compare with the paper.
#[derive(Debug, Parser)]
#[command(name = "reproduce-paper", version)]
#[command(
    about = "Train the paper's models with and without the synergy regulariser and report measured vs expected tables",
    long_about = "Train the paper's models with and without the synergy regulariser and report measured vs \
expected tables (paired confidence intervals, verdicts, Holm). Without a subcommand, `run` is meant: \
`reproduce-paper --profile smoke` is `reproduce-paper run --profile smoke`."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReproduceArgs {
    #[command(subcommand)]
    pub command: Option<ReproduceCommand>,
    /// The options of `run` (the default subcommand).
    #[command(flatten)]
    pub run: RunArgs,
}

/// The options of `run` and `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// smoke (a subsample, ≤ 4 epochs), quick (full data, one grid point, ≤ 10 epochs), paper
    /// (full grid, ≥ 5 seeds).
    #[arg(long, value_enum, default_value_t = Profile::Quick)]
    pub profile: Profile,
    /// synthetic (embedded generator), real-text (real MOSI transcripts + GloVe; needs --data-dir)
    /// or full (your own feature file; needs --data).
    #[arg(long, value_enum, default_value_t = Tier::Synthetic)]
    pub tier: Tier,
    /// mosi, mosei or urfunny (binary): which corpus the synthetic tier imitates and the
    /// real-text tier reads (MOSI, MOSEI); the full tier reads whatever its file is.
    #[arg(long, value_enum, default_value_t = DatasetName::Mosi)]
    pub dataset: DatasetName,
    /// Comma-separated models (default: all registered, in table order).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub models: Option<Vec<ModelKind>>,
    /// real-text: the folder holding mosi/ (or mosei/) label.csv and glove/ (e.g.
    /// ../shared/data); full: an MMSA pickle (aligned_50.pkl), a UR-FUNNY folder, or a folder of
    /// .csd files with a label.csv (`--data` is the same flag).
    #[arg(long, visible_alias = "data")]
    pub data_dir: Option<PathBuf>,
    /// Comma-separated variants (default: Table 2's nll,nll-skl,nll-smmd; nll-iwas adds the IWas
    /// baseline of Table 3).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub variants: Option<Vec<Variant>>,
    /// Comma-separated seeds (default: 0 for smoke/quick, 0..4 for paper).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Output folder: table.md, table.json, table.csv, report.html and the resumable
    /// results.jsonl (default: runs/PROFILE-DATASET-TIER, e.g. runs/quick-mosi-synthetic; a
    /// second run with the same options resumes there).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads for Candle's CPU kernels (default: 1, measured fastest for these models).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Cap on training epochs per run (default: the profile's; 1 times one epoch per model).
    #[arg(long)]
    pub max_epochs: Option<usize>,
    /// Independent runs of the grid trained in parallel, each on one thread (results identical to
    /// a sequential run; only the order of lines in results.jsonl differs).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Comma-separated learning rates replacing the profile's (the grid is the batch sizes ×
    /// these; each seed's selection on validation chooses among them), e.g. `--lr 5e-4,1e-4`
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub lr: Option<Vec<f64>>,
    /// Comma-separated batch sizes replacing the profile's (the grid is these × the learning
    /// rates)
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub batch_size: Option<Vec<usize>>,
    /// Run only shard K of N of the grid (0 <= K < N; e.g. a Slurm array task:
    /// `--shard $SLURM_ARRAY_TASK_ID/N`). Each shard appends to its own
    /// results.shard-K-of-N.jsonl in --out; `reproduce-paper report --from OUT` merges them.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// real-text tier: what the synthetic audio/vision cues carry — `label` (the signed label:
    /// redundant with the words; their readout alone reaches ~70 Acc2 on MOSI) or `intensity`
    /// (|label| only: polarity needs the words).
    #[arg(long, value_enum, default_value_t = CueMode::Label)]
    pub cues: CueMode,
    /// Comma-separated paper tables to run (2-6, all on one corpus: 2,4 on MOSI; 3,5 on MOSEI; 6 on
    /// UR-FUNNY): trains exactly the (model, variant) pairs those tables contain, for the models
    /// this build has, on their corpus; --models / --variants narrow it further.
    #[arg(long, value_delimiter = ',')]
    pub tables: Option<Vec<u8>>,
    /// BERT checkpoint folder (config.json, model.safetensors, tokenizer.json) for MAGBERT and
    /// MIM (default: $NEURAL_SYNERGY_TEXT_ENCODER, else scripts/fetch-encoder.sh's cache).
    #[arg(long, value_name = "DIR")]
    pub text_encoder: Option<PathBuf>,
    /// MISA's text path: `lstm` (the tier's word vectors through MISA's BiLSTM stack) or `bert`
    /// (MMSA's MISA: the --text-encoder checkpoint, fine-tuned, masked mean of its last hidden
    /// state; reads word-pieces, so the real-text tier only). Use a separate --out per path: both
    /// are the "MISA" row.
    #[arg(long, value_enum, default_value_t = MisaText::Lstm)]
    pub misa_text: MisaText,
    /// Freeze BERT in MIM, BERT-MISA and MAGBERT (default: fine-tuned, as MMSA). MIM and BERT-MISA
    /// then compute each clip's BERT vector once and cache it on disk
    /// (~/.cache/neural-synergy/features, or $NEURAL_SYNERGY_CACHE/features); MAGBERT still runs
    /// BERT at every step (its gate acts inside BERT).
    #[arg(long)]
    pub frozen_bert: bool,
    /// Same as the `plan` subcommand (kept for old scripts).
    #[arg(long, hide = true)]
    pub plan: bool,
    /// Same as the `expected` subcommand (kept for old scripts).
    #[arg(long, hide = true)]
    pub expected: bool,
    /// JSON on stdout instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// No progress display (neither the live one on a terminal nor the plain lines otherwise).
    #[arg(long)]
    pub quiet: bool,
    /// Weight β of L_reg in the task model's objective (default 0.01).
    #[arg(long)]
    pub beta: Option<f64>,
    /// γ_L2 of the reconstruction loss (default 1; 0.01 on a binary task such as UR-FUNNY; 0 disables it).
    #[arg(long)]
    pub gamma_l2: Option<f64>,
    /// γ_d of the alignment loss (default 1; 0 disables it).
    #[arg(long)]
    pub gamma_d: Option<f64>,
    /// γ_κ of the kurtosis penalty (default 0.1; 0 disables it).
    #[arg(long)]
    pub gamma_k: Option<f64>,
    /// Choose a synergy weight on validation: `WEIGHT=V1,V2,...` (beta, gamma_l2, gamma_d,
    /// gamma_k; repeat the flag for several). The synergy variants' runs take every combination,
    /// at every grid point, and each seed's selection on validation picks the weights together
    /// with the batch size and learning rate. Multiplies those variants' runs.
    #[arg(long, value_name = "WEIGHT=VALUES")]
    pub tune: Vec<String>,
    /// Where to train: cpu (default) or cuda (GPU 0; needs a build with `--features cuda`). GPU
    /// runs get their own run keys (a CPU run in --out never stands in for a GPU run).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// The CPU (Candle's CPU backend; `--threads` per run, `--jobs` runs at once).
    Cpu,
    /// CUDA GPU 0 (a build with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    /// The candle device; a clear error when CUDA is not available.
    pub fn device(self) -> Result<candle_core::Device> {
        match self {
            DeviceArg::Cpu => Ok(candle_core::Device::Cpu),
            DeviceArg::Cuda => candle_core::Device::new_cuda(0).map_err(|e| {
                anyhow::anyhow!(
                    "--device cuda: no CUDA device ({}); it needs a build with --features cuda on a GPU machine",
                    e.to_string().lines().next().unwrap_or("unknown error")
                )
            }),
        }
    }
}

/// Subcommands (without one, `reproduce-paper` runs `run`).
#[derive(Debug, clap::Subcommand)]
pub enum ReproduceCommand {
    /// Train the plan (resuming the runs already in --out) and write the tables, plots and
    /// report.html; the default subcommand.
    Run(RunArgs),
    /// Print the cost of a plan (runs per model and variant, projected hours from measured
    /// per-epoch times) without training; takes the options of `run`.
    Plan(RunArgs),
    /// Print the paper's Tables 2-6 (the expected values the reports compare with).
    Expected {
        /// JSON on stdout instead of markdown.
        #[arg(long)]
        json: bool,
    },
    /// Re-render the tables (with CIs and verdicts) of a results directory without training.
    Report {
        /// The folder of an earlier run: run.json and results.jsonl and/or the shards'
        /// results.shard-K-of-N.jsonl files, which are merged. Repeat it to render one table
        /// from folders on the same data (e.g. one model per folder; needs --out).
        #[arg(long, required = true)]
        from: Vec<PathBuf>,
        /// Where the tables of several --from folders go (default with one: that folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// JSON on stdout instead of markdown.
        #[arg(long)]
        json: bool,
    },
    /// Drop the saved predictions of the runs no table uses (the unselected grid points of every
    /// finished seed) from a results directory, to keep it small enough to commit; the tables
    /// re-render identically. Run it when no training writes into the folder.
    Compact {
        /// The results folder (results.jsonl and/or results.shard-K-of-N.jsonl).
        #[arg(long)]
        from: PathBuf,
        /// Then split every results file larger than this many MiB into archive parts
        /// (results.part-NNN.jsonl) of whole records, each at most this size; readers and a
        /// resume merge them.
        #[arg(long, default_value_t = crate::experiments::compact::DEFAULT_MAX_FILE_BYTES as f64 / MIB)]
        max_file_mib: f64,
    },
    /// One page of every claim of the paper (Tables 2-6) against the best measurement of it in
    /// the results folders under a root, per tier, with counts, the text-only controls and the
    /// paper's NLL baselines beside the community's; no training.
    Scoreboard {
        /// The folder holding the results folders (each with a run.json), e.g. results.
        #[arg(long)]
        from: PathBuf,
        /// Where the page goes (default: FROM/SCOREBOARD.md).
        #[arg(long)]
        out: Option<PathBuf>,
        /// JSON on stdout (the page is still written).
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the binary.
pub fn main_with(args: ReproduceArgs) -> Result<()> {
    match args.command {
        None => run(args.run),
        Some(ReproduceCommand::Run(r)) => run(r),
        Some(ReproduceCommand::Plan(mut r)) => {
            r.plan = true;
            run(r)
        }
        Some(ReproduceCommand::Expected { json }) => {
            crate::try_init_threads(Some(1))?;
            print_expected(json)
        }
        Some(ReproduceCommand::Report { from, out, json }) => {
            crate::try_init_threads(Some(1))?;
            report_from(&from, out.as_deref(), json)
        }
        Some(ReproduceCommand::Compact { from, max_file_mib }) => compact(&from, max_file_mib),
        Some(ReproduceCommand::Scoreboard { from, out, json }) => {
            crate::try_init_threads(Some(1))?;
            scoreboard(&from, out.as_deref(), json)
        }
    }
}

/// `reproduce-paper expected`: the paper's Tables 2-6 as markdown (or JSON).
fn print_expected(json: bool) -> Result<()> {
    let e = expected();
    if json {
        println!("{}", serde_json::to_string(&e)?);
        return Ok(());
    }
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
    Ok(())
}

/// `reproduce-paper run` (and `plan`): train the plan and report.
fn run(args: RunArgs) -> Result<()> {
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
    let (profile, tier) = (args.profile, args.tier);
    let seeds = seeds(&args)?;
    let synergy = synergy_weights(&args)?;
    let mut weight_grid = crate::experiments::WeightGrid::default();
    for spec in &args.tune {
        weight_grid.add(spec).map_err(|e| anyhow::anyhow!(e))?;
    }
    let Selection {
        dataset,
        kinds,
        variants,
        pairs,
    } = selection(&args)?;
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
    };
    let start = std::time::Instant::now();
    let mut ds = load_dataset(&plan)?;
    if ds.task == crate::data::Task::Binary && args.gamma_l2.is_none() {
        // the regression default collapses binary runs (chosen on validation; see the constant)
        plan.synergy.gamma_l2 = crate::experiments::BINARY_TASK_GAMMA_L2;
    }
    for note in crate::experiments::bert::text_options(
        &mut plan.models,
        args.misa_text == MisaText::Bert,
        args.frozen_bert,
    ) {
        eprintln!("reproduce-paper: note: {note}");
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
        return print_plan(&plan, &ds, &out, args.json);
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating --out {}", out.display()))?;
    let results = out.join(
        args.shard
            .map_or_else(|| "results.jsonl".to_string(), |s| s.file_name()),
    );
    // one writer per results file: a second training into the same file fails here, naming the
    // first, before it touches anything (Slurm shards each lock their own file)
    let writer = crate::experiments::store::ResultsWriter::open(&results)?;
    // run.json first, so `report --from` works on a folder still training (or killed early); a
    // folder an earlier command trained other models or seeds into keeps them in its context
    let mut ctx = tables::RunContext::new(&plan, &ds);
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
    write_atomically(
        &out.join("run.json"),
        serde_json::to_string_pretty(&ctx)?.as_bytes(),
    )?;
    let metric = match ds.task {
        crate::data::Task::Regression => "MAE",
        crate::data::Task::Binary => "accuracy",
    };
    let display = std::sync::Mutex::new(super::progress::Display::new(
        super::progress::Mode::detect(args.quiet),
        metric,
    ));
    let (records, selected) = run_plan(
        &plan,
        &ds,
        &writer,
        |p| display.lock().expect("display").run(&p),
        |epoch, score| display.lock().expect("display").epoch(epoch, score),
    )?;
    display.lock().expect("display").finish();
    drop(writer);
    if let Some(shard) = args.shard {
        // a shard holds part of the grid: the tables come from the merge of all shards
        let wall = start.elapsed().as_secs_f64();
        print_shard_done(shard, &records, &ctx, &results, &out, wall, args.json);
        return Ok(());
    }
    if widened || folder_has_other_runs(&out, &ctx, &records)? {
        // the folder holds runs of earlier commands too (other models, seeds, variants or grid
        // points on the same data): its tables cover all of them, as `report --from` does, so a
        // narrower command never leaves a narrower table behind
        return report_from(std::slice::from_ref(&out), None, args.json);
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

/// Whether `out` holds finished runs on `ctx`'s tier, profile and data that are not among
/// `records` (this command's plan): runs an earlier command trained into the folder.
fn folder_has_other_runs(
    out: &std::path::Path,
    ctx: &tables::RunContext,
    records: &[crate::experiments::RunRecord],
) -> Result<bool> {
    let mine: std::collections::HashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
    Ok(crate::experiments::shard::read_dir(out)?
        .records
        .iter()
        .any(|r| {
            r.tier == ctx.tier
                && r.profile == ctx.profile
                && crate::data::same_data(&r.data, &ctx.data)
                && !mine.contains(r.key.as_str())
        }))
}

/// What a finished shard prints (it renders no table: `report --from` merges the shards).
fn print_shard_done(
    shard: Shard,
    records: &[crate::experiments::RunRecord],
    ctx: &tables::RunContext,
    results: &std::path::Path,
    out: &std::path::Path,
    wall: f64,
    json: bool,
) {
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
                "planned_runs": ctx.planned_runs,
                "results": results,
                "wall_s": wall,
            })
        );
    } else {
        println!(
            "shard {shard}: {} runs finished ({failed} failed inside) of {} planned in all; results in {}",
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

/// `--seeds` (default: the profile's), each once; a note on a repeated seed, a warning on a paper
/// profile with fewer than 5.
fn seeds(args: &RunArgs) -> Result<Vec<u64>> {
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
fn synergy_weights(args: &RunArgs) -> Result<SynergyConfig> {
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
struct Selection {
    dataset: DatasetName,
    kinds: Vec<ModelKind>,
    variants: Vec<Variant>,
    pairs: Option<Vec<(ModelKind, Variant)>>,
}

/// `--models`, `--variants` and `--dataset`, or `--tables` narrowed by them.
fn selection(args: &RunArgs) -> Result<Selection> {
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

/// `--plan`: the cost of the plan without training (see [`crate::experiments::cost`]).
fn print_plan(
    plan: &Plan,
    ds: &crate::data::Dataset,
    out: &std::path::Path,
    json: bool,
) -> Result<()> {
    use crate::experiments::cost;
    let runs = plan.runs(ds)?;
    // per-epoch times of finished runs of the same data in --out, when there are any
    let measured: Vec<_> = if out.is_dir() {
        crate::experiments::shard::read_dir(out)?
            .records
            .into_iter()
            .filter(|r| crate::data::same_data(&r.data, &ds.description))
            .collect()
    } else {
        Vec::new()
    };
    let lines = cost::plan_cost(&runs, ds.train.len(), &measured);
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
                "cpu_hours": lines.iter().filter_map(|l| l.cpu_hours).sum::<f64>(),
                "gpu_hours": gpu_hours,
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
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file named after this process and a rename, so
/// concurrent shards writing the same `run.json` never interleave.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Builds the report of the runs (`records`; `selected` = their selection), writes it into
/// `out` ([`Report::write`]) and prints the markdown and the summary (or the JSON with `json`).
/// `warnings` (e.g. a merge that misses runs) head the markdown and go into the JSON; `sources`
/// names the results folders of a combined table.
#[allow(clippy::too_many_arguments)]
fn render(
    out: &std::path::Path,
    ctx: &tables::RunContext,
    records: &[crate::experiments::RunRecord],
    selected: &[crate::experiments::Selected],
    wall: Option<f64>,
    warnings: &[String],
    sources: &[String],
    json_out: bool,
) -> Result<()> {
    let report = Report::build(ctx, records, selected, wall, warnings, sources)?;
    report.write(out)?;
    if json_out {
        println!("{}", report.json());
    } else {
        print!("{}", report.markdown());
        print!("{}", report.summary(out));
        eprintln!(
            "reproduce-paper: wrote {}/table.{{md,json,csv}}, report.html and the forest plots (forest*.png)",
            out.display()
        );
    }
    Ok(())
}

/// `reproduce-paper report --from DIR`: re-renders the tables of a results directory (its
/// `run.json` and the merge of `results.jsonl` and every shard's `results.shard-K-of-N.jsonl`)
/// without training ([`crate::report::load_folders`]). An unreadable shard file is reported by
/// name and the rest still merge; runs missing from the plan are reported in the table's header.
/// Several `dirs` (one table over folders on the same data, [`tables::RunContext::merge`]) write
/// into `out`; a run found in two folders counts once.
pub(crate) fn report_from(
    dirs: &[std::path::PathBuf],
    out: Option<&std::path::Path>,
    json: bool,
) -> Result<()> {
    let out = match (dirs, out) {
        ([], _) => bail!("report: give --from DIR"),
        (_, Some(o)) => o.to_path_buf(),
        ([one], None) => one.clone(),
        (_, None) => {
            bail!("report: several --from folders need --out DIR for their combined tables")
        }
    };
    let loaded = crate::report::load_folders(dirs)?;
    if loaded.duplicates > 0 {
        eprintln!(
            "reproduce-paper: warning: {} runs appear in more than one results file; kept one copy of each",
            loaded.duplicates
        );
    }
    for w in &loaded.warnings {
        eprintln!("reproduce-paper: warning: {w}");
    }
    let selected = crate::experiments::select(&loaded.records);
    render(
        &out,
        &loaded.ctx,
        &loaded.records,
        &selected,
        None,
        &loaded.warnings,
        &loaded.sources,
        json,
    )
}

/// `reproduce-paper scoreboard --from DIR`.
fn scoreboard(from: &std::path::Path, out: Option<&std::path::Path>, json: bool) -> Result<()> {
    use crate::report::scoreboard as sb;
    let (sources, skipped) = sb::read_sources(from)?;
    let board = sb::scoreboard(&sources, skipped, &expected(), &sb::community());
    let root = from.display().to_string();
    let md = sb::markdown(&board, root.trim_end_matches('/'));
    let path = out.map_or_else(|| from.join("SCOREBOARD.md"), |o| o.to_path_buf());
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string(&board)?);
    } else {
        for c in &board.counts {
            println!(
                "{}: {} of {} claims with a verdict ({} supported, {} contradicted, {} inconclusive; {} survive Holm)",
                c.tier, c.with_verdict, c.claims, c.supported, c.contradicted, c.inconclusive, c.survive_holm
            );
        }
        eprintln!("reproduce-paper: wrote {}", path.display());
    }
    Ok(())
}

/// Bytes per MiB (`compact --max-file-mib`).
const MIB: f64 = 1024.0 * 1024.0;

/// `reproduce-paper compact --from DIR [--max-file-mib M]`.
fn compact(dir: &std::path::Path, max_file_mib: f64) -> Result<()> {
    if !(max_file_mib.is_finite() && max_file_mib > 0.0) {
        anyhow::bail!("--max-file-mib must be a positive number of MiB, got {max_file_mib}");
    }
    let max_bytes = (max_file_mib * MIB).floor() as u64;
    let done = crate::experiments::compact::compact_dir(dir, max_bytes)?;
    if done.files.is_empty() {
        eprintln!(
            "reproduce-paper: {}: no predictions to drop (no finished seed has unselected runs with predictions)",
            dir.display()
        );
    }
    for (f, bytes) in &done.files {
        eprintln!("reproduce-paper: rewrote {} ({bytes} bytes)", f.display());
    }
    for (f, bytes) in &done.split {
        eprintln!(
            "reproduce-paper: split into {} ({bytes} bytes)",
            f.display()
        );
    }
    for (f, bytes) in &done.oversized {
        eprintln!(
            "reproduce-paper: warning: {} is {bytes} bytes, over --max-file-mib {max_file_mib}: one record alone is larger",
            f.display()
        );
    }
    let s = if done.runs == 1 { "" } else { "s" };
    println!("dropped the saved predictions of {} run{s}", done.runs);
    if done.new_parts > 0 {
        println!(
            "moved runs of oversized results files into {} new archive part(s) of at most {max_bytes} bytes",
            done.new_parts
        );
    }
    Ok(())
}
