//! The paper's experiments as data: expected results (Tables 2–6), profiles, tiers, and the
//! resumable run loop behind `reproduce-paper`.

pub mod expected;
pub mod reproduce;

use crate::data::{self, Dataset, Tier};
use crate::train::{select_best, train_run, RegWeights, RunConfig, RunResult, Variant};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// How much of the protocol to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// < 1 min: a subsample, a few epochs (the test suite runs it).
    Smoke,
    /// ≤ 10 min on 2 cores: full data, one grid point, one seed.
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
    pub profile: Profile,
    pub seeds: Vec<u64>,
    pub variants: Vec<Variant>,
    pub data_dir: Option<PathBuf>,
    pub weights: RegWeights,
}

/// Loads the dataset of a plan (the smoke profile subsamples it).
pub fn load_dataset(plan: &Plan) -> anyhow::Result<Dataset> {
    let mut ds = match plan.tier {
        Tier::Synthetic => data::synthetic::generate(0),
        Tier::RealText => {
            let dir = plan.data_dir.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "--tier real-text needs --data-dir (the folder holding mosi/ and glove/)"
                )
            })?;
            data::realtext::load_mosi(dir, 0)?
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
        ds.description += "; smoke profile: first 384/128/256 clips";
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
}

/// One line of the results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Identifies the run: tier, profile, data, model, variant, batch, lr, seed, epochs.
    pub key: String,
    pub tier: Tier,
    pub profile: Profile,
    pub data: String,
    pub result: RunResult,
}

/// The key of a run (what "already finished" means on resume).
pub fn run_key(tier: Tier, profile: Profile, data: &str, c: &RunConfig) -> String {
    let w = &c.weights;
    format!(
        "{}|{}|{}|{}|{}|b{}|lr{:e}|s{}|e{}p{}|beta{}|l2{}|d{}|k{}",
        tier.name(),
        profile.name(),
        data,
        c.model,
        c.variant.name(),
        c.batch_size,
        c.lr,
        c.seed,
        c.max_epochs,
        c.patience,
        w.beta,
        w.gamma_l2,
        w.gamma_d,
        w.gamma_k
    )
}

/// Reads a results file (JSON lines). A truncated or corrupt **last** line (a run killed while
/// writing) is dropped with a warning on stderr; a corrupt line elsewhere is an error.
pub fn read_results(path: &Path) -> anyhow::Result<Vec<RunRecord>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let f = std::fs::File::open(path)?;
    let lines: Vec<String> = std::io::BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RunRecord>(l) {
            Ok(r) => out.push(r),
            Err(e) if i + 1 == lines.len() => {
                eprintln!(
                    "reproduce-paper: warning: {}: discarding the truncated last line {} ({e}); that run will be redone",
                    path.display(),
                    i + 1
                );
            }
            Err(e) => anyhow::bail!(
                "{}: line {} is not a run record: {e}",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(out)
}

/// Rewrites the results file without a truncated tail, so appends start on a fresh line.
fn rewrite(path: &Path, recs: &[RunRecord]) -> anyhow::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        for r in recs {
            writeln!(f, "{}", serde_json::to_string(r)?)?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Appends one record and flushes it to disk.
fn append(path: &Path, rec: &RunRecord) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{}", serde_json::to_string(rec)?)?;
    f.sync_data()?;
    Ok(())
}

/// Selected result per (variant, seed): the grid point with the best validation MAE.
#[derive(Debug, Clone, Serialize)]
pub struct Selected {
    pub variant: Variant,
    pub seed: u64,
    pub result: RunResult,
}

/// Runs (or resumes) every run of the plan, appending each finished run to `results`; returns all
/// records of this plan and the selected run per (variant, seed).
pub fn run_plan(
    plan: &Plan,
    ds: &Dataset,
    results: &Path,
    mut progress: impl FnMut(&str, usize, usize),
    mut on_epoch: impl FnMut(usize, f64),
) -> anyhow::Result<(Vec<RunRecord>, Vec<Selected>)> {
    let existing = read_results(results)?;
    rewrite(results, &existing)?;
    let done: HashSet<String> = existing.iter().map(|r| r.key.clone()).collect();
    let (max_epochs, patience) = plan.profile.epochs();
    let mut configs = Vec::new();
    for &variant in &plan.variants {
        for &seed in &plan.seeds {
            for (batch_size, lr) in plan.profile.grid() {
                configs.push(RunConfig {
                    model: "FLSTM".into(),
                    variant,
                    batch_size,
                    lr,
                    seed,
                    max_epochs,
                    patience,
                    weights: plan.weights,
                });
            }
        }
    }
    let total = configs.len();
    let mut mine: Vec<RunRecord> = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let key = run_key(plan.tier, plan.profile, &ds.description, c);
        if done.contains(&key) {
            mine.push(
                existing
                    .iter()
                    .find(|r| r.key == key)
                    .expect("in set")
                    .clone(),
            );
            progress(
                &format!(
                    "{} seed {} b{} lr{:e} (done)",
                    c.variant.name(),
                    c.seed,
                    c.batch_size,
                    c.lr
                ),
                i + 1,
                total,
            );
            continue;
        }
        progress(
            &format!(
                "{} seed {} b{} lr{:e}",
                c.variant.name(),
                c.seed,
                c.batch_size,
                c.lr
            ),
            i,
            total,
        );
        let result = train_run(ds, c, &mut on_epoch)?;
        let rec = RunRecord {
            key,
            tier: plan.tier,
            profile: plan.profile,
            data: ds.description.clone(),
            result,
        };
        append(results, &rec)?;
        mine.push(rec);
        progress("", i + 1, total);
    }
    let mut selected = Vec::new();
    for &variant in &plan.variants {
        for &seed in &plan.seeds {
            let runs = mine
                .iter()
                .filter(|r| r.result.config.variant == variant && r.result.config.seed == seed)
                .map(|r| &r.result);
            if let Some(best) = select_best(runs) {
                selected.push(Selected {
                    variant,
                    seed,
                    result: best.clone(),
                });
            }
        }
    }
    Ok((mine, selected))
}
