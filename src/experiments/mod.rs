//! The paper's experiments as data: expected results (Tables 2–6), profiles, tiers, plans and the
//! resumable run loop behind `reproduce-paper`.

pub(crate) mod bert;
pub(crate) mod compact;
pub mod cost;
mod deadline;
mod error;
pub mod expected;
mod run_context;
pub(crate) mod shard;
pub(crate) mod store;
pub mod synergy_pid;
pub mod tables;

use crate::data::{self, Dataset, DatasetName, Tier};
use crate::models::{ModelConfig, ModelKind};
use crate::params::Checked;
use crate::synergy::SynergyConfig;
use crate::train::{select_best, train_checked_on, RunConfig, RunResult, TaskLoss, Variant};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How much of the protocol to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// < 1 min: a subsample, a few epochs (the test suite runs it).
    Smoke,
    /// Full data, one grid point, one seed, ≤ 10 epochs.
    Quick,
    /// Appendix C: the full grid {32, 64} × {1e-2, 5e-3, 1e-3, 5e-4, 1e-4}, 5 seeds.
    Paper,
}

impl Profile {
    /// Name used in headers and files.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Smoke => "smoke",
            Profile::Quick => "quick",
            Profile::Paper => "paper",
        }
    }

    /// `(batch size, learning rate)` grid.
    pub fn grid(self) -> Vec<(usize, f64)> {
        match self {
            Profile::Smoke => vec![(32, 2e-3)],
            Profile::Quick => vec![(32, 1e-3)],
            Profile::Paper => [32, 64]
                .iter()
                .flat_map(|&b| [1e-2, 5e-3, 1e-3, 5e-4, 1e-4].map(|lr| (b, lr)))
                .collect(),
        }
    }

    /// Default seeds.
    pub fn seeds(self) -> Vec<u64> {
        match self {
            Profile::Paper => (0..5).collect(),
            _ => vec![0],
        }
    }

    /// Epoch cap and early-stopping patience.
    pub fn epochs(self) -> (usize, usize) {
        match self {
            Profile::Smoke => (4, 8),
            Profile::Quick => (10, 8),
            Profile::Paper => (60, 8),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tier: Tier,
    /// The corpus (synthetic and real-text tiers generate/load it; the full tier reads whatever
    /// its file is and checks that it is this corpus when the file says).
    pub dataset: DatasetName,
    pub profile: Profile,
    pub seeds: Vec<u64>,
    /// Models with their hyper-parameters, in table order.
    pub models: Vec<ModelConfig>,
    pub variants: Vec<Variant>,
    pub data_dir: Option<PathBuf>,
    /// The synergy regulariser's settings (validated by [`Plan::runs`]).
    pub synergy: SynergyConfig,
    /// Synergy weights chosen on validation, with the batch size and learning rate (empty: the
    /// weights of `synergy` only).
    pub weight_grid: WeightGrid,
    /// Runs trained in parallel (each on one thread).
    pub jobs: usize,
    /// Where the runs train (`--device`): the CPU, or a CUDA GPU in a build with the `cuda`
    /// feature. A non-CPU device is part of every run's key, so CPU and GPU runs never stand in
    /// for each other on resume.
    pub device: candle_core::Device,
    /// Overrides the profile's epoch cap (e.g. 1 to time one epoch per model).
    pub max_epochs: Option<usize>,
    /// Only this shard's runs (a cluster job array's task; see [`Shard`]).
    pub shard: Option<shard::Shard>,
    /// What the real-text tier's cues carry (ignored by the other tiers).
    pub cues: data::realtext::CueMode,
    /// Only these (model, variant) pairs of the models × variants product (`--tables`: the pairs
    /// the selected tables contain); `None` runs the whole product.
    pub pairs: Option<Vec<(ModelKind, Variant)>>,
    /// The (batch size, learning rate) grid when `--batch-size`/`--lr` replaced the profile's
    /// ([`grid_with`]); `None`: [`Profile::grid`].
    pub grid: Option<Vec<(usize, f64)>>,
    /// Model hyper-parameters set on the command line (`--model-param`), already applied to
    /// `models`; kept to record them in `run.json` and the tables.
    pub model_settings: Vec<crate::models::ModelSetting>,
}

/// The profile's grid with its batch sizes and/or learning rates replaced (`--batch-size`,
/// `--lr`): the product of the given (or the profile's distinct) batch sizes and the given (or
/// the profile's distinct) learning rates, in that order. Each seed's selection on validation
/// chooses among them as among the profile's. Errors on an empty list, a batch size of 0 or a
/// learning rate that is not finite and > 0.
pub fn grid_with(
    profile: Profile,
    batch_sizes: Option<&[usize]>,
    lrs: Option<&[f64]>,
) -> Result<Vec<(usize, f64)>, String> {
    fn distinct<T: PartialEq + Copy>(xs: impl Iterator<Item = T>) -> Vec<T> {
        let mut out: Vec<T> = Vec::new();
        for x in xs {
            if !out.contains(&x) {
                out.push(x);
            }
        }
        out
    }
    let base = profile.grid();
    let bs = match batch_sizes {
        Some(b) => distinct(b.iter().copied()),
        None => distinct(base.iter().map(|g| g.0)),
    };
    let lrs = match lrs {
        Some(l) => distinct(l.iter().copied()),
        None => distinct(base.iter().map(|g| g.1)),
    };
    if bs.is_empty() || lrs.is_empty() {
        return Err("--batch-size/--lr: empty list".into());
    }
    // A batch of one has no batch statistics (the synergy losses need pairs): the same bound as
    // `RunConfig::validate`, checked here so the flag's error names the flag.
    if let Some(b) = bs.iter().find(|&&b| b < 2) {
        return Err(format!("--batch-size must be >= 2, got {b}"));
    }
    if let Some(l) = lrs.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
        return Err(format!("--lr must be finite and > 0, got {l}"));
    }
    Ok(bs
        .iter()
        .flat_map(|&b| lrs.iter().map(move |&l| (b, l)))
        .collect())
}

impl Plan {
    /// The (batch size, learning rate) grid: the override, else the profile's.
    pub fn grid(&self) -> Vec<(usize, f64)> {
        self.grid.clone().unwrap_or_else(|| self.profile.grid())
    }

    /// Every run of the plan, each checked once, in **seed-major** order: seed × model × variant ×
    /// grid point × weights. Every claim (a variant against its model's NLL at one seed) thus
    /// completes before the next seed starts, so a plan cut short by `--time-limit` (or killed)
    /// leaves whole paired seeds, not five NLL seeds and no variant to compare them with. The
    /// order decides only which runs train first: run keys, shards ([`Shard::select`]) and the
    /// `--plan` table (one line per model × variant, in order of first appearance) do not
    /// depend on it.
    pub fn runs(&self, ds: &Dataset) -> Result<Vec<Checked<RunConfig>>, ExperimentError> {
        let (cap, patience) = self.profile.epochs();
        let max_epochs = self.max_epochs.unwrap_or(cap);
        let mut out = Vec::new();
        for &seed in &self.seeds {
            for model in &self.models {
                for &variant in &self.variants {
                    if let Some(p) = &self.pairs {
                        if !p.contains(&(model.kind(), variant)) {
                            continue;
                        }
                    }
                    for (batch_size, lr) in self.grid() {
                        for synergy in self.weight_grid.configs(&self.synergy, variant) {
                            let c = RunConfig {
                                model: model.clone(),
                                variant,
                                batch_size,
                                lr,
                                seed,
                                max_epochs,
                                patience,
                                loss: TaskLoss::for_task(ds.task),
                                synergy,
                            };
                            out.push(Checked::new(c)?);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Values of the synergy weights to choose among on validation (`--tune WEIGHT=V1,V2,…`): the
/// runs of a synergy variant take every combination of the listed values, each at every
/// (batch size, learning rate) of the profile's grid, and each seed's selection on validation
/// picks the weights with the other hyper-parameters. A weight without a list keeps its
/// configured value; a weight an ablation variant zeroes is not varied for it; the NLL and IWas
/// variants have no synergy weights.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightGrid {
    pub beta: Vec<f64>,
    pub gamma_l2: Vec<f64>,
    pub gamma_d: Vec<f64>,
    pub gamma_k: Vec<f64>,
}

/// γ_L2 of a binary task's runs when `--gamma-l2` is not given (regression keeps
/// [`SynergyConfig::default`]'s 1). Chosen on validation data: on the synthetic UR-FUNNY tier
/// (FLSTM, quick profile, seed 0) the default γ_L2 = 1 collapses NLL+SKL and the `L_L2`-only
/// ablation to one class (validation accuracy 0.500; NLL 0.896), while the `L_d`- and `L_κ`-only
/// ablations train (0.896); validation accuracy of NLL+SKL / NLL+SMMD at γ_L2 = 1, 0.1, 0.01:
/// 0.500 / 0.890, 0.896 / 0.896, 0.896 / 0.898 — 0.01 has the highest mean (docs/src/data-tiers.md).
pub const BINARY_TASK_GAMMA_L2: f64 = 0.01;

/// The weights `--tune` accepts.
pub const TUNABLE_WEIGHTS: [&str; 4] = ["beta", "gamma_l2", "gamma_d", "gamma_k"];

impl WeightGrid {
    /// No weight is tuned.
    pub fn is_empty(&self) -> bool {
        self.beta.is_empty()
            && self.gamma_l2.is_empty()
            && self.gamma_d.is_empty()
            && self.gamma_k.is_empty()
    }

    /// Adds one `WEIGHT=V1,V2,…` specification (`WEIGHT` one of [`TUNABLE_WEIGHTS`], each value
    /// finite and ≥ 0, at least one; repeated values count once).
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let (name, values) = spec.split_once('=').ok_or_else(|| {
            format!("--tune {spec:?}: expected WEIGHT=V1,V2,... (e.g. gamma_l2=1,0.1)")
        })?;
        let name = name.trim().replace('-', "_");
        let list = match name.as_str() {
            "beta" => &mut self.beta,
            "gamma_l2" => &mut self.gamma_l2,
            "gamma_d" => &mut self.gamma_d,
            "gamma_k" => &mut self.gamma_k,
            _ => {
                return Err(format!(
                    "--tune: unknown weight {name:?} (one of {})",
                    TUNABLE_WEIGHTS.join(", ")
                ))
            }
        };
        if !list.is_empty() {
            return Err(format!("--tune: {name} is given twice"));
        }
        for v in values.split(',') {
            let x: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("--tune {name}: {v:?} is not a number"))?;
            if !(x.is_finite() && x >= 0.0) {
                return Err(format!("--tune {name}: {x} must be finite and >= 0"));
            }
            if !list.contains(&x) {
                list.push(x);
            }
        }
        Ok(())
    }

    /// The synergy configurations a run of `variant` tries: `base` with every combination of the
    /// listed values (see [`WeightGrid`]); `[base]` when nothing applies.
    pub fn configs(&self, base: &SynergyConfig, variant: Variant) -> Vec<SynergyConfig> {
        if variant.divergence().is_none() {
            return vec![base.clone()];
        }
        let (l2, d, k) = variant.gammas(1.0, 1.0, 1.0);
        let axis = |list: &[f64], base: f64, used: bool| -> Vec<f64> {
            if list.is_empty() || !used {
                vec![base]
            } else {
                list.to_vec()
            }
        };
        let mut out = Vec::new();
        for &beta in &axis(&self.beta, base.beta, true) {
            for &gamma_l2 in &axis(&self.gamma_l2, base.gamma_l2, l2 > 0.0) {
                for &gamma_d in &axis(&self.gamma_d, base.gamma_d, d > 0.0) {
                    for &gamma_k in &axis(&self.gamma_k, base.gamma_k, k > 0.0) {
                        out.push(SynergyConfig {
                            beta,
                            gamma_l2,
                            gamma_d,
                            gamma_k,
                            ..base.clone()
                        });
                    }
                }
            }
        }
        out
    }
}

/// The model of the paper's tables that a model's rows are compared with: the paper's "LFN" rows
/// (recorded as TFN in `paper/expected.toml`) for both TFN and LMF; `None` for a model the paper
/// does not report on this table.
pub(crate) fn paper_model(kind: ModelKind) -> &'static str {
    match kind.name() {
        "LMF" => "TFN",
        name => name,
    }
}

/// Loads the dataset of a plan (the smoke profile subsamples it).
pub fn load_dataset(plan: &Plan) -> Result<Dataset, ExperimentError> {
    let mut ds = match plan.tier {
        Tier::Synthetic => data::synthetic::generate_for(plan.dataset, 0),
        Tier::RealText => {
            let dir = plan
                .data_dir
                .as_ref()
                .ok_or_else(|| ExperimentError::MissingDataDir {
                    tier: "real-text",
                    need: format!("the folder holding {}/ and glove/", plan.dataset.name()),
                })?;
            data::realtext::load_with(dir, plan.dataset, 0, plan.cues)?
        }
        Tier::Full => {
            let path = plan
                .data_dir
                .as_ref()
                .ok_or_else(|| ExperimentError::MissingDataDir {
                    tier: "full",
                    need: "an MMSA pickle (aligned_50.pkl), a UR-FUNNY folder or a folder of \
                           .csd files"
                        .into(),
                })?;
            let ds = data::load_full(path)?;
            if let Some(c) = ds.corpus().filter(|c| *c != plan.dataset) {
                eprintln!(
                    "reproduce-paper: note: {} holds {} data; it is reported as {} (not --dataset {})",
                    path.display(),
                    c.name(),
                    c.name(),
                    plan.dataset.name()
                );
            }
            ds
        }
    };
    if plan.profile == Profile::Smoke {
        for (s, n) in [
            (&mut ds.train, 384usize),
            (&mut ds.valid, 128),
            (&mut ds.test, 256),
        ] {
            truncate(s, n, ds.t_max, ds.dims);
        }
        let n_test = ds.test.len();
        for sub in &mut ds.test_subsets {
            sub.members.truncate(n_test);
        }
        ds.description += "; smoke profile: first 384/128/256 clips";
        for c in &mut ds.ceilings {
            c.name += " (on the whole test split)";
        }
    }
    Ok(ds)
}

fn truncate(s: &mut data::Split, n: usize, t: usize, dims: [usize; 3]) {
    let n = n.min(s.len());
    s.ids.truncate(n);
    s.lengths.truncate(n);
    s.labels.truncate(n);
    s.text.truncate(n * t * dims[0]);
    s.audio.truncate(n * t * dims[1]);
    s.vision.truncate(n * t * dims[2]);
    s.words.truncate(n);
    if let Some(tk) = &mut s.tokens {
        tk.truncate(n);
    }
    for v in [&mut s.text, &mut s.audio, &mut s.vision] {
        v.shrink_to_fit();
    }
}

/// One line of the results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Identifies the run: a hash of its serialised configuration with tier, profile and data
    /// (`run_key`).
    pub key: String,
    pub tier: Tier,
    pub profile: Profile,
    pub data: String,
    pub result: RunResult,
}

/// The key of a run (what "already finished" means on resume): [`RunConfig::key`] of the run in
/// the context of its tier, profile and data.
pub(crate) fn run_key(tier: Tier, profile: Profile, data: &str, c: &RunConfig) -> String {
    c.key(&format!("{}|{}|{}", tier.name(), profile.name(), data))
}

/// The resume keys of `configs` (runs of `plan` on `ds`), in their order.
pub(crate) fn plan_keys(plan: &Plan, ds: &Dataset, configs: &[Checked<RunConfig>]) -> Vec<String> {
    configs
        .iter()
        .map(|c| {
            // a model that reads no BERT tokens runs on the data without the token note
            let data = ds.description_for(c.model.needs_tokens());
            let data = match crate::train::device_label(&plan.device) {
                None => data,
                Some(d) => format!("{data}|{d}"),
            };
            run_key(plan.tier, plan.profile, &data, c)
        })
        .collect()
}

pub(crate) use deadline::{schedule, Admission, Deadline};
pub use deadline::{NotStarted, TimeLimit, TimeLimitError};
pub use error::ExperimentError;
pub use run_context::RunContext;
pub use shard::{read_dir as read_results_dir, Merged, Shard, ShardError};
pub use store::{read_results, StoreError};

/// Selected result per (model, variant, seed): the grid point with the best validation score.
#[derive(Debug, Clone, Serialize)]
pub struct Selected {
    pub model: ModelKind,
    pub variant: Variant,
    pub seed: u64,
    pub result: RunResult,
}

/// What one run's progress callback sees.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Progress<'a> {
    pub config: &'a RunConfig,
    /// Runs finished (including ones found in the results file).
    pub done: usize,
    pub total: usize,
    /// Whether this run was already in the results file.
    pub resumed: bool,
    /// The run's record when this call reports its end (`None`: it starts, or was resumed).
    pub finished: Option<&'a RunRecord>,
}

/// What [`run_plan`] did.
#[derive(Debug)]
pub(crate) struct PlanRun {
    /// The records of this plan (shard): found in the results file or trained now.
    pub records: Vec<RunRecord>,
    /// The selected run per (model, variant, seed) among them.
    pub selected: Vec<Selected>,
    /// Runs the deadline did not start (projected to end after it), in plan order.
    pub not_started: Vec<NotStarted>,
    /// Runs that started without a projection under a deadline (nothing measured them).
    pub unprojected: usize,
}

/// Runs (or resumes) every run of the plan — only its shard's runs when [`Plan::shard`] is set —
/// appending each finished run to the results file that `results` holds locked; returns all
/// records of this plan (shard) and the selected run per (model, variant, seed). A run that fails
/// inside (see [`crate::train`]) is recorded with its cause and the plan goes on. Under a
/// `deadline` (`--time-limit`), a run projected to end after it is not started (the next command
/// resumes it); the runs after it in the plan still start if they fit.
pub(crate) fn run_plan(
    plan: &Plan,
    ds: &Dataset,
    results: &store::ResultsWriter,
    deadline: Option<&Deadline>,
    progress: impl FnMut(Progress<'_>) + Send,
    on_epoch: impl FnMut(usize, f64) + Send,
) -> Result<PlanRun, ExperimentError> {
    let mut configs = plan.runs(ds)?;
    let mut keys = plan_keys(plan, ds, &configs);
    if let Some(s) = plan.shard {
        let mine = s.select(&configs, &keys);
        configs = mine.iter().map(|&i| configs[i].clone()).collect();
        keys = mine.iter().map(|&i| keys[i].clone()).collect();
    }
    // the writer holds the file's lock: nothing is rewritten, finished runs are appended
    let existing = results.records()?;
    let done: std::collections::HashMap<&str, &RunRecord> =
        existing.iter().map(|r| (r.key.as_str(), r)).collect();
    let total = configs.len();
    let mut slots: Vec<Option<RunRecord>> = keys
        .iter()
        .map(|k| done.get(k.as_str()).map(|r| (*r).clone()))
        .collect();
    let todo: Vec<usize> = (0..total).filter(|&i| slots[i].is_none()).collect();
    let resumed = total - todo.len();
    let progress = std::sync::Mutex::new(progress);
    let on_epoch = std::sync::Mutex::new(on_epoch);
    let finished = std::sync::atomic::AtomicUsize::new(resumed);
    for (i, c) in configs.iter().enumerate() {
        if slots[i].is_some() {
            (progress.lock().expect("progress"))(Progress {
                config: c,
                done: resumed,
                total,
                resumed: true,
                finished: None,
            });
        }
    }
    // `jobs` workers take runs in plan order; each run is a pure function of its configuration,
    // so the results do not depend on the number of workers (only the file's line order does)
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(Vec::<(usize, RunRecord)>::new());
    let file = std::sync::Mutex::new(());
    let error = std::sync::Mutex::new(None::<ExperimentError>);
    let not_started = std::sync::Mutex::new(Vec::<(usize, NotStarted)>::new());
    let unprojected = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.clamp(1, todo.len().max(1)) {
            scope.spawn(|| loop {
                if error.lock().expect("error").is_some() {
                    return;
                }
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&i) = todo.get(n) else { return };
                let c = &configs[i];
                match deadline.map(|d| d.admit(c, std::time::Instant::now())) {
                    Some(Admission::TooLong(left)) => {
                        not_started.lock().expect("not started").push((i, left));
                        continue;
                    }
                    Some(Admission::Unprojected) => {
                        unprojected.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Some(Admission::Fits) | None => {}
                }
                (progress.lock().expect("progress"))(Progress {
                    config: c,
                    done: finished.load(std::sync::atomic::Ordering::SeqCst),
                    total,
                    resumed: false,
                    finished: None,
                });
                let r = train_checked_on(ds, c, &plan.device, |e, v| {
                    (on_epoch.lock().expect("epoch"))(e, v)
                });
                let result = match r {
                    Ok(r) => r,
                    Err(e) => {
                        *error.lock().expect("error") = Some(e.into());
                        return;
                    }
                };
                if let Some(f) = &result.failure {
                    eprintln!(
                        "reproduce-paper: warning: {} {} seed {} b{} lr{:e} failed ({f}); recorded, going on",
                        c.model.kind().name(),
                        c.variant.name(),
                        c.seed,
                        c.batch_size,
                        c.lr
                    );
                }
                let rec = RunRecord {
                    key: keys[i].clone(),
                    tier: plan.tier,
                    profile: plan.profile,
                    data: ds.description_for(c.model.needs_tokens()),
                    result,
                };
                {
                    let _guard = file.lock().expect("file");
                    if let Err(e) = results.append(&rec) {
                        *error.lock().expect("error") = Some(e.into());
                        return;
                    }
                }
                if let Some(deadline) = deadline {
                    deadline.learn(&rec);
                }
                let d = finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                (progress.lock().expect("progress"))(Progress {
                    config: c,
                    done: d,
                    total,
                    resumed: false,
                    finished: Some(&rec),
                });
                out.lock().expect("out").push((i, rec));
            });
        }
    });
    if let Some(e) = error.into_inner().expect("error") {
        return Err(e);
    }
    for (i, rec) in out.into_inner().expect("out") {
        slots[i] = Some(rec);
    }
    let mine: Vec<RunRecord> = slots.into_iter().flatten().collect();
    let selected = select(&mine);
    let mut not_started = not_started.into_inner().expect("not started");
    not_started.sort_by_key(|(i, _)| *i);
    Ok(PlanRun {
        records: mine,
        selected,
        not_started: not_started.into_iter().map(|(_, n)| n).collect(),
        unprojected: unprojected.into_inner(),
    })
}

/// A point of the hyper-parameter grid: batch size, then the bits of the learning rate and of the
/// synergy weights `β, γ_L2, γ_d, γ_κ` (constant unless `--tune` varies them).
pub(crate) type GridPoint = (usize, [u64; 5]);

/// The grid point of a run.
pub(crate) fn grid_point(r: &RunResult) -> GridPoint {
    let (c, s) = (&r.config, &r.config.synergy);
    (
        c.batch_size,
        [c.lr, s.beta, s.gamma_l2, s.gamma_d, s.gamma_k].map(f64::to_bits),
    )
}

/// The grid points tried among `runs`, sorted and distinct.
pub(crate) fn grid_points<'a>(runs: impl IntoIterator<Item = &'a RunResult>) -> Vec<GridPoint> {
    let mut grid: Vec<GridPoint> = runs.into_iter().map(grid_point).collect();
    grid.sort_unstable();
    grid.dedup();
    grid
}

/// The seeds of a (model, variant) cell whose grid search is incomplete: they have not tried
/// every grid point that some other seed of the cell tried (a run still in progress, an
/// interrupted shard). Such a seed is not selected: a grid point chosen among a subset of the grid
/// is not the protocol's selection.
pub(crate) fn incomplete_seeds(
    records: &[RunRecord],
    model: ModelKind,
    variant: Variant,
) -> Vec<u64> {
    let runs: Vec<&RunResult> = records
        .iter()
        .map(|r| &r.result)
        .filter(|r| r.config.model.kind() == model && r.config.variant == variant)
        .collect();
    let full = grid_points(runs.iter().copied());
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.config.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    seeds.retain(|&s| grid_points(runs.iter().copied().filter(|r| r.config.seed == s)) != full);
    seeds
}

/// The selected run per (model, variant, seed) among `records`: the best validation score, ties
/// going to the smallest run key, so the selection does not depend on the order of the records
/// (a merged sharded run selects exactly what the unsharded one does). Seeds whose grid search is
/// incomplete (`incomplete_seeds`) are left out until their remaining grid points have run.
pub fn select(records: &[RunRecord]) -> Vec<Selected> {
    select_records(records)
        .into_iter()
        .map(|r| {
            let c = &r.result.config;
            Selected {
                model: c.model.kind(),
                variant: c.variant,
                seed: c.seed,
                result: r.result.clone(),
            }
        })
        .collect()
}

/// The records [`select`] selects, in its order (what needs their stored keys: compaction).
pub(crate) fn select_records(records: &[RunRecord]) -> Vec<&RunRecord> {
    let mut sorted: Vec<&RunRecord> = records.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut keys: Vec<(ModelKind, Variant, u64)> = records
        .iter()
        .map(|r| {
            let c = &r.result.config;
            (c.model.kind(), c.variant, c.seed)
        })
        .collect();
    keys.sort();
    keys.dedup();
    let mut incomplete: std::collections::BTreeMap<(ModelKind, Variant), Vec<u64>> =
        std::collections::BTreeMap::new();
    keys.into_iter()
        .filter(|&(model, variant, seed)| {
            !incomplete
                .entry((model, variant))
                .or_insert_with(|| incomplete_seeds(records, model, variant))
                .contains(&seed)
        })
        .filter_map(|(model, variant, seed)| {
            let cell: Vec<&RunRecord> = sorted
                .iter()
                .copied()
                .filter(|r| {
                    let c = &r.result.config;
                    c.model.kind() == model && c.variant == variant && c.seed == seed
                })
                .collect();
            let best = select_best(cell.iter().map(|r| &r.result))?;
            cell.into_iter().find(|r| std::ptr::eq(&r.result, best))
        })
        .collect()
}
