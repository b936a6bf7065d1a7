//! The `synergy` command line (argument parsing and dispatch; the binary only prints).
//!
//! Every command returns one JSON object; with `--json` the binary prints it on one line, otherwise
//! as `key: value` lines.

use crate::estimators::{self as est, Bandwidths, MineParams, MmdVariant, StreamingKurtosisParams};
use crate::io::{read_batches, read_matrix, read_vector};
use crate::metrics::regression_metrics;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Estimators and metrics of the neural-synergy harness on `.npy` files (rows = samples).
#[derive(Debug, Parser)]
#[command(name = "synergy", version, about)]
pub struct Cli {
    /// Print one JSON object on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a reference estimator.
    #[command(subcommand)]
    Estimate(Estimate),
    /// Train a small synthetic fusion model with the C-network (Algorithm D); print the losses
    /// and write a PNG plot.
    TrainDemo {
        #[arg(long, default_value_t = 300)]
        steps: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, value_enum, default_value_t = DivArg::Mmd)]
        divergence: DivArg,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// PNG plot of the loss curves.
        #[arg(long, default_value = "train-demo.png")]
        plot: PathBuf,
        /// Print a table row every this many steps.
        #[arg(long, default_value_t = 25)]
        every: usize,
    },
    /// Parity of the Candle losses on a device against the CPU f64 reference, and timings.
    CheckDevice {
        /// Use CUDA device 0 (needs a build with `--features cuda`).
        #[arg(long)]
        cuda: bool,
        /// Also time forward+backward of the synergy losses at batch 64 and 256, d = 128.
        #[arg(long)]
        bench: bool,
        #[arg(long, default_value_t = 50)]
        iters: usize,
    },
    /// Feature files of the full tier (MMSA pickles, UR-FUNNY folders, CMU-SDK .csd).
    #[command(subcommand)]
    Data(DataCmd),
    /// Encode sentences (one per line on stdin) with a pretrained BERT: token ids, attention
    /// masks, [CLS] and masked-mean vectors (see scripts/fetch-encoder.sh).
    EncodeText(crate::app::encode_text::EncodeTextArgs),
    /// MOSI/MOSEI regression metrics (MMSA conventions) of predictions against labels.
    Metrics {
        /// Predictions, 1-D .npy.
        #[arg(long)]
        pred: PathBuf,
        /// Labels in [-3, 3], 1-D .npy.
        #[arg(long)]
        label: PathBuf,
    },
    /// BROJA partial information decomposition of I(Y; X1, X2), in bits: redundancy, unique
    /// information of each input, synergy (docs/src/pid.md).
    Pid(PidArgs),
    /// The PID of a data tier's label (sign, or UR-FUNNY's 0/1) against (text, audio+vision) and
    /// (audio, vision) clip codes, with a permutation null, on all test clips and on each test
    /// subset (docs/src/synergy-measured.md).
    PidTier(PidTierArgs),
    /// Adds the test clips' text and audio+vision PID codes to a results folder's run.json (for
    /// the PID of the runs' predictions in its report): rebuilds the data run.json describes and
    /// refuses when its test clips or labels differ.
    PidCodes(PidCodesArgs),
}

/// Arguments of `synergy pid-tier`.
#[derive(Debug, Args)]
pub struct PidTierArgs {
    /// The data tier.
    #[arg(long, value_enum)]
    pub tier: crate::data::Tier,
    /// The corpus.
    #[arg(long, value_enum)]
    pub dataset: crate::data::DatasetName,
    /// The folder holding mosi/, mosei/ and glove/ (real-text tier), or the full tier's file or
    /// folder.
    #[arg(long, value_name = "D")]
    pub data_dir: Option<PathBuf>,
    /// k-means clusters per input, fitted on the train split.
    #[arg(long, value_name = "K", default_value_t = crate::experiments::synergy_pid::DEFAULT_CLUSTERS)]
    pub clusters: usize,
    /// Permutations of the label in the null.
    #[arg(long, value_name = "N", default_value_t = crate::experiments::synergy_pid::DEFAULT_DRAWS)]
    pub draws: usize,
    /// Seed of the k-means and of the permutations.
    #[arg(long, default_value_t = crate::experiments::synergy_pid::DEFAULT_SEED)]
    pub seed: u64,
    /// What the real-text tier's audio/vision cues carry.
    #[arg(long, value_enum, default_value_t = crate::data::realtext::CueMode::Label)]
    pub cues: crate::data::realtext::CueMode,
    /// The split measured (valid: for design checks that must not look at test numbers).
    #[arg(long, value_enum, default_value_t = crate::experiments::synergy_pid::EvalSplit::Test)]
    pub split: crate::experiments::synergy_pid::EvalSplit,
}

/// Arguments of `synergy pid-codes`.
#[derive(Debug, Args)]
pub struct PidCodesArgs {
    /// The results folder (its run.json is rewritten, atomically, with the codes added).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The data folder for the real-text tier (the folder holding mosi/, mosei/ and glove/), or
    /// the full tier's file or folder.
    #[arg(long, value_name = "D")]
    pub data_dir: Option<PathBuf>,
}

/// Arguments of `synergy pid`.
#[derive(Debug, Args)]
pub struct PidArgs {
    /// First input: 1-D integer codes (any integer dtype, or floats holding integers); with
    /// --clusters, a float feature matrix (rows = samples; 1-D is one feature).
    #[arg(long)]
    pub x1: PathBuf,
    /// Second input, like --x1.
    #[arg(long)]
    pub x2: PathBuf,
    /// Target: 1-D integer codes.
    #[arg(long)]
    pub y: PathBuf,
    /// Discretise --x1 and --x2 by k-means with K clusters each, fitted on the given rows (PCA to
    /// 10 components first when wider).
    #[arg(long, value_name = "K")]
    pub clusters: Option<usize>,
    /// Permutation null: shuffle Y N times and report the null synergy's mean, 95th percentile
    /// and the permutation p-value.
    #[arg(long, value_name = "N")]
    pub null: Option<usize>,
    /// Seed of the k-means initialisation and of the permutations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `synergy data …`.
#[derive(Debug, Subcommand)]
pub enum DataCmd {
    /// Load each file as the loaders do and print, per split, the number of samples and each
    /// modality's (and the labels') shape, sum and sum of squares (f64); for a .csd the number of
    /// videos, rows, feature width, sum and sum of squares of all features.
    Inspect {
        /// MMSA pickles (.pkl), UR-FUNNY folders, .csd files, or folders of .csd files with a
        /// label.csv (a dataset, as `reproduce-paper --tier full` reads it).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The format (default: .csd → csd, a folder with .csd files → csd-set, another folder →
        /// urfunny, anything else → mmsa).
        #[arg(long, value_enum)]
        format: Option<DataFormat>,
    },
}

/// Feature-file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    Mmsa,
    Csd,
    CsdSet,
    Urfunny,
}

fn data_inspect(paths: &[PathBuf], format: Option<DataFormat>) -> Result<Value> {
    use crate::data::{csd, inspect, mmsa, urfunny};
    let mut files = Vec::new();
    for path in paths {
        let f = format.unwrap_or_else(|| {
            if path.is_dir() && csd::is_set(path) {
                DataFormat::CsdSet
            } else if path.is_dir() {
                DataFormat::Urfunny
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csd"))
            {
                DataFormat::Csd
            } else {
                DataFormat::Mmsa
            }
        });
        let mut v = match f {
            DataFormat::Mmsa => {
                inspect::dataset(&mmsa::load(path, mmsa::TextFeatures::Text)?, "mmsa")
            }
            DataFormat::Urfunny => inspect::dataset(&urfunny::load(path)?, "urfunny"),
            DataFormat::Csd => inspect::csd(&csd::read(path)?),
            DataFormat::CsdSet => inspect::dataset(&csd::load_set(path)?, "csd-set"),
        };
        v["path"] = json!(path.display().to_string());
        files.push(v);
    }
    Ok(json!({ "files": files }))
}

/// The estimators.
#[derive(Debug, Subcommand)]
pub enum Estimate {
    /// MMD² under the (mean) Gaussian kernel.
    Mmd(MmdArgs),
    /// KL(P‖Q) from samples x ~ P, y ~ Q.
    Kl {
        #[arg(long)]
        x: PathBuf,
        #[arg(long)]
        y: PathBuf,
        /// gauss: Gaussian plug-in; knn: Wang–Kulkarni–Verdú.
        #[arg(long, value_enum)]
        method: KlMethod,
        /// Neighbour order of the kNN estimator.
        #[arg(long, default_value_t = 1)]
        k: usize,
    },
    /// Donsker–Varadhan and NWJ bounds from critic values.
    Dv {
        /// Critic values on samples of P, 1-D .npy.
        #[arg(long)]
        tp: PathBuf,
        /// Critic values on samples of Q, 1-D .npy.
        #[arg(long)]
        tq: PathBuf,
    },
    /// MINE: KL(P‖Q) by maximising the DV bound over an MLP critic (held-out bound reported).
    Mine {
        #[arg(long)]
        x: PathBuf,
        #[arg(long)]
        y: PathBuf,
        #[arg(long, default_value_t = MineParams::default().steps)]
        steps: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = MineParams::default().hidden)]
        hidden: usize,
        #[arg(long, default_value_t = MineParams::default().batch)]
        batch: usize,
        #[arg(long, default_value_t = MineParams::default().lr)]
        lr: f64,
    },
    /// Mardia's multivariate kurtosis b2,p and its z statistic.
    Kurtosis {
        #[arg(long)]
        x: PathBuf,
    },
    /// Streaming regularised kurtosis (the paper's L_kappa) over K batches of a K x N x p array.
    KurtosisEma {
        #[arg(long)]
        batches: PathBuf,
        #[arg(long)]
        alpha: f64,
        #[arg(long)]
        ridge: f64,
        /// Row-norm clip of the covariance update (default: no clipping).
        #[arg(long, default_value_t = f64::INFINITY)]
        clip: f64,
    },
}

/// Arguments of `estimate mmd`.
#[derive(Debug, Args)]
pub struct MmdArgs {
    #[arg(long)]
    pub x: PathBuf,
    #[arg(long)]
    pub y: PathBuf,
    #[arg(long, value_enum, default_value_t = VariantArg::Unbiased)]
    pub variant: VariantArg,
    /// Kernel bandwidth sigma (repeat for a mean over several kernels).
    #[arg(
        long = "bandwidth",
        allow_negative_numbers = true,
        required_unless_present = "median",
        conflicts_with = "median"
    )]
    pub bandwidth: Vec<f64>,
    /// Median heuristic: sigma_med x {0.25, 0.5, 1, 2, 4}.
    #[arg(long)]
    pub median: bool,
}

/// MMD variants on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VariantArg {
    Biased,
    Unbiased,
    Linear,
}

impl From<VariantArg> for MmdVariant {
    fn from(v: VariantArg) -> Self {
        match v {
            VariantArg::Biased => MmdVariant::Biased,
            VariantArg::Unbiased => MmdVariant::Unbiased,
            VariantArg::Linear => MmdVariant::Linear,
        }
    }
}

/// Divergences of `L_d` on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DivArg {
    Mmd,
    Kl,
}

/// KL methods on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KlMethod {
    Gauss,
    Knn,
}

/// Runs a parsed command and returns its JSON result.
pub fn run(cli: &Cli) -> Result<Value> {
    match &cli.command {
        Command::Estimate(e) => estimate(e),
        Command::TrainDemo {
            steps,
            batch,
            divergence,
            seed,
            plot,
            every,
        } => train_demo(*steps, *batch, *divergence, *seed, plot, *every, cli.json),
        Command::CheckDevice { cuda, bench, iters } => {
            let device = if *cuda {
                candle_core::Device::new_cuda(0).context(
                    "no CUDA device (is this a build with --features cuda, on a GPU machine?)",
                )?
            } else {
                candle_core::Device::Cpu
            };
            let r = crate::app::check::check_device(&device, *bench, *iters)?;
            if !r.all_within_tolerance {
                eprintln!("synergy: warning: a device result is outside its tolerance");
            }
            Ok(serde_json::to_value(r)?)
        }
        Command::Data(DataCmd::Inspect { paths, format }) => data_inspect(paths, *format),
        Command::EncodeText(a) => crate::app::encode_text::encode_lines(a, std::io::stdin().lock()),
        Command::Metrics { pred, label } => {
            let p = read_vector(pred)?;
            let l = read_vector(label)?;
            let m = regression_metrics(&p.view(), &l.view())?;
            Ok(serde_json::to_value(m)?)
        }
        Command::Pid(a) => pid(a),
        Command::PidTier(a) => pid_tier(a, cli.json),
        Command::PidCodes(a) => pid_codes_cmd(a),
    }
}

/// `synergy pid-tier`: loads the tier's dataset as `reproduce-paper` does and prints its PIDs
/// (a markdown table and the settings; with `--json`, everything as one object).
fn pid_tier(a: &PidTierArgs, json_out: bool) -> Result<Value> {
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
fn pid_codes_cmd(a: &PidCodesArgs) -> Result<Value> {
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

/// `synergy pid`: codes (or k-means codes of features) → the BROJA PID, optionally with its
/// permutation null.
fn pid(a: &PidArgs) -> Result<Value> {
    let codes = |path: &PathBuf| -> Result<Vec<usize>> {
        match a.clusters {
            Some(k) => pid_features_codes(path, k, a.seed),
            None => pid_codes(path),
        }
    };
    let x1 = codes(&a.x1)?;
    let x2 = codes(&a.x2)?;
    let y = pid_codes(&a.y)?;
    let mut v = match a.null {
        None => {
            let p = est::pid_discrete(&x1, &x2, &y)?;
            serde_json::to_value(p)?
        }
        Some(draws) => {
            if draws == 0 {
                bail!("--null needs at least 1 permutation (100 or more recommended)");
            }
            let s = est::synergy_null(&x1, &x2, &y, draws, a.seed)?;
            let mut v = serde_json::to_value(s.observed)?;
            v["null_draws"] = json!(draws);
            v["null_mean"] = json!(s.mean);
            v["null_p95"] = json!(s.p95);
            v["p_value"] = json!(s.p_value);
            v
        }
    };
    v["estimator"] = json!("pid");
    v["units"] = json!("bits");
    v["n"] = json!(y.len());
    if let Some(k) = a.clusters {
        v["clusters"] = json!(k);
    }
    if a.clusters.is_some() || a.null.is_some() {
        v["seed"] = json!(a.seed);
    }
    Ok(v)
}

/// An `.npy` of any integer, bool or float dtype: integers exactly (as i128), floats as f64.
enum NpyValues {
    Int(ndarray::ArrayD<i128>),
    Float(ndarray::ArrayD<f64>),
}

fn read_npy_any(path: &std::path::Path) -> Result<NpyValues> {
    use ndarray::ArrayD;
    use ndarray_npy::{read_npy, ReadNpyError};
    // the header's shape must fit in the file before any reader allocates for it
    crate::io::read_npy_header(path)?;
    macro_rules! try_int {
        ($($t:ty),*) => {$(
            match read_npy::<_, ArrayD<$t>>(path) {
                Ok(a) => return Ok(NpyValues::Int(a.mapv(|v| v as i128))),
                Err(ReadNpyError::WrongDescriptor(_)) => {}
                Err(e) => bail!("{}: cannot read .npy ({e})", path.display()),
            }
        )*};
    }
    try_int!(i64, i32, i16, i8, u8, u16, u32, u64);
    match read_npy::<_, ArrayD<bool>>(path) {
        Ok(a) => return Ok(NpyValues::Int(a.mapv(i128::from))),
        Err(ReadNpyError::WrongDescriptor(_)) => {}
        Err(e) => bail!("{}: cannot read .npy ({e})", path.display()),
    }
    match read_npy::<_, ArrayD<f64>>(path) {
        Ok(a) => return Ok(NpyValues::Float(a)),
        Err(ReadNpyError::WrongDescriptor(_)) => {}
        Err(e) => bail!("{}: cannot read .npy ({e})", path.display()),
    }
    match read_npy::<_, ArrayD<f32>>(path) {
        Ok(a) => Ok(NpyValues::Float(a.mapv(f64::from))),
        Err(ReadNpyError::WrongDescriptor(d)) => bail!(
            "{}: unsupported dtype {d} (integer, bool, float32 or float64 expected)",
            path.display()
        ),
        Err(e) => bail!("{}: cannot read .npy ({e})", path.display()),
    }
}

/// Integer codes from a 1-D (or n × 1) `.npy`, renumbered `0..k` in increasing order; floats must
/// hold integers.
fn pid_codes(path: &std::path::Path) -> Result<Vec<usize>> {
    let vals = read_npy_any(path)?;
    let shape = match &vals {
        NpyValues::Int(a) => a.shape().to_vec(),
        NpyValues::Float(a) => a.shape().to_vec(),
    };
    if !(shape.len() == 1 || (shape.len() == 2 && shape[1] == 1)) {
        bail!(
            "{}: expected 1-D integer codes, found shape {shape:?} (use --clusters K for a feature matrix)",
            path.display()
        );
    }
    let ints: Vec<i128> = match vals {
        NpyValues::Int(a) => a.iter().copied().collect(),
        NpyValues::Float(a) => {
            let mut v = Vec::with_capacity(a.len());
            for (i, &x) in a.iter().enumerate() {
                if !x.is_finite() {
                    bail!("{}: non-finite value {x} at index {i}", path.display());
                }
                if x.fract() != 0.0 || x.abs() > 9.007_199_254_740_992e15 {
                    bail!(
                        "{}: non-integral value {x} at index {i} (integer codes expected; use --clusters K for continuous features)",
                        path.display()
                    );
                }
                v.push(x as i128);
            }
            v
        }
    };
    if ints.is_empty() {
        bail!("{}: empty (no samples)", path.display());
    }
    let mut labels = ints.clone();
    labels.sort_unstable();
    labels.dedup();
    Ok(ints
        .iter()
        .map(|v| labels.binary_search(v).expect("label present"))
        .collect())
}

/// k-means codes (K clusters, fitted on these rows) of a 1-D or 2-D feature `.npy`.
fn pid_features_codes(path: &std::path::Path, k: usize, seed: u64) -> Result<Vec<usize>> {
    let a = match read_npy_any(path)? {
        NpyValues::Float(a) => a,
        NpyValues::Int(a) => a.mapv(|v| v as f64),
    };
    let shape = a.shape().to_vec();
    let x = match shape.len() {
        1 => a.into_shape_with_order((shape[0], 1)).expect("same size"),
        2 => a
            .into_dimensionality::<ndarray::Ix2>()
            .expect("rank checked"),
        _ => bail!(
            "{}: expected a 1-D or 2-D feature array, found shape {shape:?}",
            path.display()
        ),
    };
    if x.nrows() == 0 || x.ncols() == 0 {
        bail!("{}: empty (no samples)", path.display());
    }
    let km = est::KMeans::fit(&x.view(), k, seed)
        .with_context(|| format!("k-means of {}", path.display()))?;
    km.predict(&x.view())
        .with_context(|| format!("k-means of {}", path.display()))
}

fn estimate(e: &Estimate) -> Result<Value> {
    Ok(match e {
        Estimate::Mmd(a) => {
            let x = read_matrix(&a.x)?;
            let y = read_matrix(&a.y)?;
            let bw = if a.median {
                est::median_bandwidths(&x.view(), &y.view())?
            } else {
                Bandwidths::new(a.bandwidth.clone())?
            };
            let variant: MmdVariant = a.variant.into();
            let v = est::mmd2(&x.view(), &y.view(), variant, &bw)?;
            json!({"estimator": "mmd", "variant": variant.name(), "bandwidths": bw.as_slice(), "value": v})
        }
        Estimate::Kl { x, y, method, k } => {
            let x = read_matrix(x)?;
            let y = read_matrix(y)?;
            let v = match method {
                KlMethod::Gauss => est::gaussian_kl(&x.view(), &y.view())?,
                KlMethod::Knn => est::knn_kl(&x.view(), &y.view(), *k)?,
            };
            json!({"estimator": "kl", "value": v})
        }
        Estimate::Dv { tp, tq } => {
            let tp = read_vector(tp)?;
            let tq = read_vector(tq)?;
            let b = est::dv_nwj(&tp.view(), &tq.view())?;
            json!({"estimator": "dv", "dv": b.dv, "nwj": b.nwj})
        }
        Estimate::Mine {
            x,
            y,
            steps,
            seed,
            hidden,
            batch,
            lr,
        } => {
            let x = read_matrix(x)?;
            let y = read_matrix(y)?;
            let p = MineParams {
                steps: *steps,
                seed: *seed,
                hidden: *hidden,
                batch: *batch,
                lr: *lr,
                ..MineParams::default()
            };
            let r = est::mine_kl(&x.view(), &y.view(), &p)?;
            json!({"estimator": "mine", "value": r.value, "train_value": r.train_value, "steps": r.steps})
        }
        Estimate::Kurtosis { x } => {
            let x = read_matrix(x)?;
            let m = est::mardia(&x.view())?;
            json!({"estimator": "kurtosis", "value": m.b2, "z": m.z})
        }
        Estimate::KurtosisEma {
            batches,
            alpha,
            ridge,
            clip,
        } => {
            let b = read_batches(batches)?;
            if b.shape()[0] == 0 {
                bail!("{}: no batches (K = 0)", batches.display());
            }
            let mut s = StreamingKurtosisParams {
                alpha: *alpha,
                ridge: *ridge,
                clip: *clip,
            }
            .init()?;
            let mut values = Vec::with_capacity(b.shape()[0]);
            for (t, batch) in b.outer_iter().enumerate() {
                values.push(s.update(&batch).with_context(|| format!("batch {t}"))?);
            }
            json!({"estimator": "kurtosis-ema", "values": values})
        }
    })
}

fn train_demo(
    steps: usize,
    batch: usize,
    divergence: DivArg,
    seed: u64,
    plot: &std::path::Path,
    every: usize,
    quiet: bool,
) -> Result<Value> {
    use crate::app::demo::{run_demo, DemoConfig};
    if steps == 0 || batch < 4 || every == 0 {
        bail!("--steps and --every must be >= 1 and --batch >= 4");
    }
    let mut cfg = DemoConfig {
        steps,
        batch,
        seed,
        ..DemoConfig::default()
    };
    cfg.synergy.divergence = match divergence {
        DivArg::Mmd => crate::synergy::Divergence::Mmd,
        DivArg::Kl => crate::synergy::Divergence::Kl,
    };
    let tr = run_demo(&cfg)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    if !quiet {
        let mut rows = Vec::new();
        for s in (0..steps).step_by(every) {
            let e = (s + every).min(steps);
            let f = |v: &Vec<f64>| format!("{:.4}", mean(&v[s..e]));
            rows.push(vec![
                format!("{s}-{}", e - 1),
                f(&tr.task),
                f(&tr.l2),
                f(&tr.ld),
                f(&tr.lk),
                f(&tr.reg),
            ]);
        }
        println!(
            "train-demo: synthetic 3-modality stream, batch {batch}, seed {seed}, L_d = {:?} (means over each window)\n",
            cfg.synergy.divergence
        );
        println!(
            "{}",
            crate::report::markdown_table(
                &["steps", "L_task", "L_L2", "L_d", "L_κ", "L_reg"],
                &rows
            )
        );
    }
    let w = (steps / 30).max(1);
    crate::report::plot_panels(
        plot,
        &format!(
            "synergy train-demo ({:?}, seed {seed})",
            cfg.synergy.divergence
        ),
        &[
            ("L_task (MSE)", crate::report::smooth(&tr.task, w)),
            ("L_L2", crate::report::smooth(&tr.l2, w)),
            ("L_d", crate::report::smooth(&tr.ld, w)),
            ("L_kappa", crate::report::smooth(&tr.lk, w)),
            ("L_reg", crate::report::smooth(&tr.reg, w)),
        ],
    )
    .with_context(|| format!("writing {}", plot.display()))?;
    if !quiet {
        println!("plot: {}", plot.display());
    }
    let q = (steps / 10).max(1);
    Ok(json!({
        "plot": plot.display().to_string(),
        "reg_first": mean(&tr.reg[..q]),
        "reg_last": mean(&tr.reg[steps - q..]),
        "task_first": mean(&tr.task[..q]),
        "task_last": mean(&tr.task[steps - q..]),
        "trace": tr,
    }))
}

/// Renders a result as `key: value` lines for humans.
pub fn human(v: &Value) -> String {
    match v.as_object() {
        Some(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        None => v.to_string(),
    }
}

/// clap's error message without its usage block, folded onto one line (both binaries print bad
/// arguments as one line on stderr).
pub fn one_line(e: &clap::Error) -> String {
    let msg = e.to_string();
    let text: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty())
        .collect();
    text.join(" ")
}
