//! The table of `reproduce-paper`: measured vs the paper per (model, variant), with gains over
//! NLL — Table 2's columns (Acc7, Acc2, MAE, Corr) for regression corpora (MOSI; MOSEI without
//! paper values for these models), Table 6's (accuracy, F1) for binary UR-FUNNY. Every header
//! names its dataset and tier.

use crate::data::{DatasetName, Task};
use crate::experiments::expected::{lookup, Expected};
use crate::experiments::{paper_model, Selected};
use crate::metrics::RegressionMetrics;
use crate::models::ModelKind;
use crate::train::Variant;
use serde::Serialize;

/// Mean and standard deviation over seeds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

/// Mean, sample standard deviation and count of `v`.
pub(crate) fn stat(v: &[f64]) -> Stat {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    let std = if n > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Stat { mean, std, n }
}

/// One row of the table (all seven metrics kept for JSON).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub table: u8,
    pub model: String,
    /// The paper's row it is compared with (e.g. LMF and TFN with the paper's "LFN").
    pub paper_model: String,
    pub variant: String,
    pub seeds: Vec<u64>,
    /// Metrics in the paper's units: accuracies and F1 in %, MAE and Corr as is.
    pub acc7: Stat,
    pub acc2: Stat,
    pub acc2_has0: Stat,
    pub f1_non0: Stat,
    pub f1_has0: Stat,
    pub mae: Stat,
    pub corr: Stat,
    /// Wall time per training epoch of the selected runs, seconds.
    pub epoch_s: Stat,
    pub paper: PaperCells,
}

/// The paper's values for the row (its corpus's table; all `None` where the paper has none).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PaperCells {
    pub acc7: Option<f64>,
    pub acc2: Option<f64>,
    pub mae: Option<f64>,
    pub corr: Option<f64>,
}

/// Aggregates the selected regression runs per (model, variant), models in registry order, with
/// the paper's values of `dataset`'s table.
pub(crate) fn rows(selected: &[Selected], expected: &[Expected], dataset: DatasetName) -> Vec<Row> {
    let table = dataset.paper_table();
    let mut out = Vec::new();
    for &kind in ModelKind::ALL {
        for v in Variant::TABLE_ORDER {
            let sel: Vec<&Selected> = selected
                .iter()
                .filter(|s| s.variant == v && s.model == kind)
                .collect();
            let m: Vec<RegressionMetrics> = sel
                .iter()
                .filter_map(|s| s.result.test.as_ref().and_then(|t| t.regression().copied()))
                .collect();
            if m.is_empty() {
                continue;
            }
            let col =
                |f: &dyn Fn(&RegressionMetrics) -> f64| stat(&m.iter().map(f).collect::<Vec<_>>());
            let pm = paper_model(kind);
            // Table 5's single-term ablations are compared with Table 5 (MIM on MOSEI)
            let t = if v.is_ablation() { 5 } else { table };
            let p = |metric: &str| lookup(expected, t, pm, v.name_in_table(t), metric);
            out.push(Row {
                table: t,
                model: kind.name().into(),
                paper_model: pm.into(),
                variant: v.name().into(),
                seeds: sel.iter().map(|s| s.seed).collect(),
                acc7: col(&|r| 100.0 * r.acc7),
                acc2: col(&|r| 100.0 * r.acc2_non0),
                acc2_has0: col(&|r| 100.0 * r.acc2_has0),
                f1_non0: col(&|r| 100.0 * r.f1_non0),
                f1_has0: col(&|r| 100.0 * r.f1_has0),
                mae: col(&|r| r.mae),
                corr: col(&|r| r.corr.unwrap_or(f64::NAN)),
                epoch_s: stat(
                    &sel.iter()
                        .map(|s| s.result.wall_s / s.result.epochs.max(1) as f64)
                        .collect::<Vec<_>>(),
                ),
                paper: PaperCells {
                    acc7: p("acc7"),
                    acc2: p("acc2"),
                    mae: p("mae"),
                    corr: p("corr"),
                },
            });
        }
    }
    out
}

/// One row of a binary task's table (UR-FUNNY: Table 6 reports accuracy).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BinaryRow {
    pub table: u8,
    pub model: String,
    pub paper_model: String,
    pub variant: String,
    pub seeds: Vec<u64>,
    /// Test accuracy and support-weighted F1, in %.
    pub accuracy: Stat,
    pub f1: Stat,
    pub epoch_s: Stat,
    /// The paper's accuracy for the row (%).
    pub paper_accuracy: Option<f64>,
}

/// Aggregates the selected binary runs per (model, variant), with the paper's accuracy from
/// `dataset`'s table.
pub(crate) fn binary_rows(
    selected: &[Selected],
    expected: &[Expected],
    dataset: DatasetName,
) -> Vec<BinaryRow> {
    let table = dataset.paper_table();
    let mut out = Vec::new();
    for &kind in ModelKind::ALL {
        for v in Variant::TABLE_ORDER {
            let sel: Vec<&Selected> = selected
                .iter()
                .filter(|s| s.variant == v && s.model == kind)
                .filter(|s| s.result.test.as_ref().and_then(|t| t.binary()).is_some())
                .collect();
            if sel.is_empty() {
                continue;
            }
            let m: Vec<_> = sel
                .iter()
                .filter_map(|s| s.result.test.as_ref().and_then(|t| t.binary().copied()))
                .collect();
            let pm = paper_model(kind);
            out.push(BinaryRow {
                table,
                model: kind.name().into(),
                paper_model: pm.into(),
                variant: v.name().into(),
                seeds: sel.iter().map(|s| s.seed).collect(),
                accuracy: stat(&m.iter().map(|r| 100.0 * r.accuracy).collect::<Vec<_>>()),
                f1: stat(&m.iter().map(|r| 100.0 * r.f1).collect::<Vec<_>>()),
                epoch_s: stat(
                    &sel.iter()
                        .map(|s| s.result.wall_s / s.result.epochs.max(1) as f64)
                        .collect::<Vec<_>>(),
                ),
                paper_accuracy: lookup(expected, table, pm, v.name(), "acc"),
            });
        }
    }
    out
}

/// Mean absolute difference between measured and paper values over a model's rows, per metric
/// (Acc2 in points, MAE): how close a reading of the paper's "LFN" comes, measured.
pub(crate) fn paper_distance(rows: &[Row], model: &str) -> Option<(f64, f64)> {
    let r: Vec<&Row> = rows.iter().filter(|r| r.model == model).collect();
    let acc: Vec<f64> = r
        .iter()
        .filter_map(|r| r.paper.acc2.map(|p| (r.acc2.mean - p).abs()))
        .collect();
    let mae: Vec<f64> = r
        .iter()
        .filter_map(|r| r.paper.mae.map(|p| (r.mae.mean - p).abs()))
        .collect();
    if acc.is_empty() || mae.is_empty() {
        return None;
    }
    Some((
        acc.iter().sum::<f64>() / acc.len() as f64,
        mae.iter().sum::<f64>() / mae.len() as f64,
    ))
}

fn fmt(s: &Stat, digits: usize) -> String {
    if !s.mean.is_finite() {
        "—".into()
    } else if s.n > 1 {
        format!("{:.*} ± {:.*}", digits, s.mean, digits, s.std)
    } else {
        format!("{:.*}", digits, s.mean)
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".into(), |x| format!("{x:.digits$}"))
}

fn signed(v: f64, digits: usize) -> String {
    format!("{v:+.digits$}")
}

pub(crate) use crate::experiments::RunContext;

/// The markdown report: header (tier, profile, seeds, data, the runs behind each cell), ceilings,
/// the table, the claims with verdicts and the timing.
pub(crate) fn markdown(
    ctx: &RunContext,
    rows: &[Row],
    binary: &[BinaryRow],
    claims: &[super::claims::Claim],
    cells: &[CellRuns],
) -> String {
    let mut s = String::new();
    let ds = ctx.dataset_or_mosi();
    s += &format!(
        "## Table {} ({}): {} — dataset `{}`, tier `{}`, profile `{}`, seeds {:?}\n\n",
        ds.paper_table(),
        ds.label(),
        ctx.models.join(", "),
        ds.name(),
        ctx.tier.name(),
        ctx.profile.name(),
        ctx.seeds
    );
    s += &format!("Data: {}.\n\n", ctx.data);
    match ctx.tier {
        crate::data::Tier::Synthetic => {
            s += "**These numbers come from synthetic data. They are not a reproduction of the paper's values**: \
                  the paper's column is shown for orientation only; compare the *gains* over NLL, on data whose \
                  information structure is known.\n\n";
        }
        crate::data::Tier::RealText => {
            s += "**Real transcripts and labels, synthetic audio/vision cues.** Text-side numbers are real; \
                  anything the model gains from audio/vision here comes from synthetic cues, so this is not a \
                  reproduction of the paper's multimodal values.\n\n";
        }
        crate::data::Tier::Full => {
            s += "**Researchers' own feature files (full tier).**\n\n";
        }
    }
    let binary_task = ctx.task == Task::Binary;
    s += &format!(
        "Protocol: grid (batch, lr) = {:?}, AdamW, clip 5, ≤ {} epochs, early stopping on validation {} \
         (patience {}), test metrics of the selected checkpoint only. {}\n\n",
        ctx.grid(),
        ctx.max_epochs.unwrap_or(ctx.profile.epochs().0),
        if binary_task { "accuracy" } else { "MAE" },
        ctx.profile.epochs().1,
        if binary_task {
            "Binary task (BCE on the logit; accuracy and weighted F1 of logit ≥ 0)."
        } else {
            "Acc2 = acc2_non0 (Rahman et al.)."
        },
    );
    if !ctx.model_settings.is_empty() {
        s += &format!(
            "Model hyper-parameters set (`--model-param`, every run of the model, baseline included): {}.\n\n",
            ctx.model_settings
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s += &cell_runs_markdown(cells);
    if !ctx.ceilings.is_empty() {
        s += match ctx.tier {
            crate::data::Tier::RealText => {
                "Reference predictors on the test split (from the known construction of the synthetic cues; \
                 the text side has no reference, it is real):\n\n"
            }
            _ => "Reference predictors on the test split (from the generator's latents):\n\n",
        };
        let r: Vec<Vec<String>> = ctx
            .ceilings
            .iter()
            .map(|c| {
                let acc = format!("{:.1}", 100.0 * c.acc2);
                if binary_task {
                    vec![c.name.clone(), acc]
                } else {
                    vec![
                        c.name.clone(),
                        c.mae.map_or("—".into(), |m| format!("{m:.3}")),
                        acc,
                    ]
                }
            })
            .collect();
        s += &if binary_task {
            super::markdown_table(&["predictor", "Accuracy (%)"], &r)
        } else {
            super::markdown_table(&["predictor", "MAE", "Acc2 (%)"], &r)
        };
        s += "\n";
    }
    if binary_task {
        s += &binary_markdown(binary);
        s += &super::claims::markdown(claims, ctx.tier.name());
        s += &timing_table(
            binary
                .iter()
                .map(|r| (r.model.as_str(), r.variant.as_str(), r.epoch_s.mean)),
        );
        return s;
    }
    let marked = std::cell::Cell::new(false);
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let base = rows
                .iter()
                .find(|b| b.variant == "NLL" && b.model == r.model);
            let (g_acc2, g_mae, pg_acc2, pg_mae) = match (base, r.variant.as_str()) {
                (Some(b), v) if v != "NLL" => (
                    signed(r.acc2.mean - b.acc2.mean, 1) + seed_mark(&r.seeds, &b.seeds, &marked),
                    signed(r.mae.mean - b.mae.mean, 3) + seed_mark(&r.seeds, &b.seeds, &marked),
                    match (r.paper.acc2, b.paper.acc2) {
                        (Some(a), Some(c)) => signed(a - c, 1),
                        _ => "—".into(),
                    },
                    match (r.paper.mae, b.paper.mae) {
                        (Some(a), Some(c)) => signed(a - c, 2),
                        _ => "—".into(),
                    },
                ),
                _ => ("".into(), "".into(), "".into(), "".into()),
            };
            let model = if r.paper_model != r.model {
                format!("{} (paper: {})", r.model, paper_label(&r.paper_model))
            } else {
                r.model.clone()
            };
            vec![
                model,
                r.variant.clone(),
                fmt(&r.acc7, 1),
                opt(r.paper.acc7, 1),
                fmt(&r.acc2, 1),
                opt(r.paper.acc2, 1),
                fmt(&r.mae, 3),
                opt(r.paper.mae, 2),
                fmt(&r.corr, 3),
                opt(r.paper.corr, 2),
                format!("{g_acc2} ({pg_acc2})"),
                format!("{g_mae} ({pg_mae})"),
            ]
        })
        .collect();
    s += &super::markdown_table(
        &[
            "Model",
            "Variant",
            "Acc7",
            "paper",
            "Acc2",
            "paper",
            "MAE",
            "paper",
            "Corr",
            "paper",
            "ΔAcc2 vs NLL (paper)",
            "ΔMAE vs NLL (paper)",
        ],
        &table,
    );
    s += "\n";
    if marked.get() {
        s += SEED_FOOTNOTE;
    }
    if let Some(l) = lfn_reading(rows) {
        s += &l;
    }
    s += &super::claims::markdown(claims, ctx.tier.name());
    s += &timing_table(
        rows.iter()
            .map(|r| (r.model.as_str(), r.variant.as_str(), r.epoch_s.mean)),
    );
    s
}

/// The footnote of a "†" delta (printed under a table that has one).
const SEED_FOOTNOTE: &str =
    "† the two cells' means rest on different seed sets (a variant's seeds \
     still running or left out); the claims table below pairs by seed.\n\n";

/// "†" when a delta subtracts means over different seed sets (and then `marked` is set, so the
/// table gets [`SEED_FOOTNOTE`]).
fn seed_mark(a: &[u64], b: &[u64], marked: &std::cell::Cell<bool>) -> &'static str {
    let sorted = |x: &[u64]| {
        let mut v = x.to_vec();
        v.sort_unstable();
        v
    };
    if sorted(a) == sorted(b) {
        ""
    } else {
        marked.set(true);
        " †"
    }
}

fn timing_table<'a>(rows: impl Iterator<Item = (&'a str, &'a str, f64)>) -> String {
    let timing: Vec<Vec<String>> = rows
        .map(|(m, v, e)| vec![m.to_string(), v.to_string(), format!("{e:.1}")])
        .collect();
    let mut s = String::from(
        "Training time of the selected runs (wall seconds per epoch, including validation):\n\n",
    );
    s += &super::markdown_table(&["Model", "Variant", "s / epoch"], &timing);
    s
}

/// The binary table: accuracy and F1 (no MAE, Acc7 or Corr), the paper's accuracy and the gain
/// over NLL, measured vs the paper's.
fn binary_markdown(rows: &[BinaryRow]) -> String {
    let marked = std::cell::Cell::new(false);
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let base = rows
                .iter()
                .find(|b| b.variant == "NLL" && b.model == r.model);
            let gain = match (base, r.variant.as_str()) {
                (Some(b), v) if v != "NLL" => format!(
                    "{}{} ({})",
                    signed(r.accuracy.mean - b.accuracy.mean, 1),
                    seed_mark(&r.seeds, &b.seeds, &marked),
                    match (r.paper_accuracy, b.paper_accuracy) {
                        (Some(a), Some(c)) => signed(a - c, 1),
                        _ => "—".into(),
                    }
                ),
                _ => String::new(),
            };
            let model = if r.paper_model != r.model {
                format!("{} (paper: {})", r.model, paper_label(&r.paper_model))
            } else {
                r.model.clone()
            };
            vec![
                model,
                r.variant.clone(),
                fmt(&r.accuracy, 1),
                opt(r.paper_accuracy, 1),
                fmt(&r.f1, 1),
                gain,
            ]
        })
        .collect();
    let mut s = super::markdown_table(
        &[
            "Model",
            "Variant",
            "Accuracy",
            "paper",
            "F1",
            "ΔAccuracy vs NLL (paper)",
        ],
        &table,
    );
    s += "\n";
    if marked.get() {
        s += SEED_FOOTNOTE;
    }
    s
}

fn paper_label(m: &str) -> &str {
    if m == "TFN" {
        "LFN"
    } else {
        m
    }
}

/// The measured answer to "is the paper's LFN TFN or LMF?" (None unless both ran).
pub(crate) fn lfn_reading(rows: &[Row]) -> Option<String> {
    let t = paper_distance(rows, "TFN")?;
    let l = paper_distance(rows, "LMF")?;
    let closer = if t.0 + t.1 * 10.0 <= l.0 + l.1 * 10.0 {
        "TFN"
    } else {
        "LMF"
    };
    Some(format!(
        "Which model is the paper's \"LFN\"? Mean |measured − paper| over the three variants: TFN {:.1} Acc2 points, {:.3} MAE; LMF {:.1} Acc2 points, {:.3} MAE — closer: **{closer}** (score = Acc2 points + 10 × MAE). On a tier without the paper's features this compares levels that the features dominate, so it is weak evidence either way.\n\n",
        t.0, t.1, l.0, l.1
    ))
}

/// CSV of the rows (one line per variant), with the dataset in the first column: Table 2's
/// columns for a regression task, accuracy and F1 for a binary one.
pub(crate) fn csv(ctx: &RunContext, rows: &[Row], binary: &[BinaryRow]) -> String {
    let o = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    let ds = ctx.dataset_or_mosi().name();
    let (tier, profile) = (ctx.tier.name(), ctx.profile.name());
    if ctx.task == Task::Binary {
        let mut s = String::from(
            "dataset,tier,profile,model,variant,n_seeds,accuracy,accuracy_std,f1,f1_std,paper_accuracy\n",
        );
        for r in binary {
            s += &format!(
                "{ds},{tier},{profile},{},{},{},{},{},{},{},{}\n",
                r.model,
                r.variant,
                r.accuracy.n,
                r.accuracy.mean,
                r.accuracy.std,
                r.f1.mean,
                r.f1.std,
                o(r.paper_accuracy)
            );
        }
        return s;
    }
    let mut s = String::from(
        "dataset,tier,profile,model,variant,n_seeds,acc7,acc7_std,acc2,acc2_std,mae,mae_std,corr,corr_std,paper_acc7,paper_acc2,paper_mae,paper_corr\n",
    );
    for r in rows {
        s += &format!(
            "{ds},{tier},{profile},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.model,
            r.variant,
            r.acc7.n,
            r.acc7.mean,
            r.acc7.std,
            r.acc2.mean,
            r.acc2.std,
            r.mae.mean,
            r.mae.std,
            r.corr.mean,
            r.corr.std,
            o(r.paper.acc7),
            o(r.paper.acc2),
            o(r.paper.mae),
            o(r.paper.corr)
        );
    }
    s
}

/// What a (model, variant) cell of the tables rests on: every run recorded for it, the runs that
/// failed inside (diverged: a non-finite loss, a degenerate batch, a failed factorisation — never
/// selected), the grid points that were tried and the seeds with a selectable run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CellRuns {
    pub model: String,
    pub variant: String,
    pub runs: usize,
    pub diverged: usize,
    /// Distinct (batch size, learning rate) points among the cell's runs.
    pub grid_points: usize,
    /// Seeds with a complete grid search and at least one usable run (the seeds the cell's
    /// statistics average over).
    pub seeds_finished: Vec<u64>,
    /// Seeds that have not yet tried every grid point of the cell (left out of the statistics).
    pub seeds_incomplete: Vec<u64>,
    /// The first failure's cause, when a run diverged (`"epoch E, step S: cause"`).
    pub first_failure: Option<String>,
    /// The cell's training cost: the sum of its runs' wall seconds (each run timed on its own;
    /// runs trained in parallel overlap on the clock).
    pub wall_s: f64,
}

/// The [`CellRuns`] of every (model, variant) among `records`, in the tables' order.
pub(crate) fn cell_runs(records: &[crate::experiments::RunRecord]) -> Vec<CellRuns> {
    let mut out = Vec::new();
    for &kind in crate::models::ModelKind::ALL {
        for v in crate::train::Variant::TABLE_ORDER {
            let rs: Vec<&crate::train::RunResult> = records
                .iter()
                .map(|r| &r.result)
                .filter(|r| r.config.model.kind() == kind && r.config.variant == v)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let grid = crate::experiments::grid_points(rs.iter().copied());
            let incomplete = crate::experiments::incomplete_seeds(records, kind, v);
            let mut seeds: Vec<u64> = rs
                .iter()
                .filter(|r| r.is_usable() && !incomplete.contains(&r.config.seed))
                .map(|r| r.config.seed)
                .collect();
            seeds.sort_unstable();
            seeds.dedup();
            out.push(CellRuns {
                model: kind.name().into(),
                variant: v.name().into(),
                runs: rs.len(),
                diverged: rs.iter().filter(|r| r.failure.is_some()).count(),
                grid_points: grid.len(),
                seeds_finished: seeds,
                seeds_incomplete: incomplete,
                first_failure: rs.iter().find_map(|r| r.failure.clone()),
                wall_s: rs.iter().map(|r| r.wall_s).sum(),
            });
        }
    }
    out
}

/// The cells' run counts as a markdown table (empty without cells).
pub(crate) fn cell_runs_markdown(cells: &[CellRuns]) -> String {
    if cells.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = cells
        .iter()
        .map(|c| {
            vec![
                c.model.clone(),
                c.variant.clone(),
                c.runs.to_string(),
                c.grid_points.to_string(),
                if c.seeds_incomplete.is_empty() {
                    format!("{} {:?}", c.seeds_finished.len(), c.seeds_finished)
                } else {
                    format!(
                        "{} {:?} (grid incomplete, left out: {:?})",
                        c.seeds_finished.len(),
                        c.seeds_finished,
                        c.seeds_incomplete
                    )
                },
                match &c.first_failure {
                    Some(f) => format!("{} (first: {f})", c.diverged),
                    None => c.diverged.to_string(),
                },
                format!("{:.2}", c.wall_s / 3600.0),
            ]
        })
        .collect();
    let mut s = String::from(
        "Runs behind each cell (a diverged run failed inside and is never selected; each seed's \
         grid point is selected on validation; a seed enters the statistics once it has tried \
         every grid point):\n\n",
    );
    s += &super::markdown_table(
        &[
            "Model",
            "Variant",
            "runs",
            "grid points",
            "seeds finished",
            "diverged",
            "run-hours",
        ],
        &rows,
    );
    let (runs, wall) = cells
        .iter()
        .fold((0, 0.0), |(n, w), c| (n + c.runs, w + c.wall_s));
    s + &format!(
        "\nTraining cost: {:.2} run-hours in {runs} runs (each run's own wall time, summed, \
         whichever session trained it; runs trained in parallel overlap on the clock, and runs \
         sharing the machine with other work take longer).\n\n",
        wall / 3600.0
    )
}

/// Which synergy weights the runs used and how they were chosen: one sentence when every
/// synergy run of `records` used the same weights; otherwise the values tried and, per
/// (model, variant), the weights each seed's selection on validation picked.
pub(crate) fn weights_markdown(
    records: &[crate::experiments::RunRecord],
    selected: &[crate::experiments::Selected],
) -> String {
    use crate::synergy::SynergyConfig;
    let w = |c: &SynergyConfig| [c.beta, c.gamma_l2, c.gamma_d, c.gamma_k];
    let names = ["β", "γ_L2", "γ_d", "γ_κ"];
    let synergy_runs: Vec<&SynergyConfig> = records
        .iter()
        .filter(|r| r.result.config.variant.divergence().is_some())
        .map(|r| &r.result.config.synergy)
        .collect();
    let Some(first) = synergy_runs.first() else {
        return String::new();
    };
    let mut tried: [Vec<f64>; 4] = Default::default();
    for c in &synergy_runs {
        for (list, v) in tried.iter_mut().zip(w(c)) {
            if !list.iter().any(|x| x.to_bits() == v.to_bits()) {
                list.push(v);
            }
        }
    }
    if tried.iter().all(|l| l.len() == 1) {
        let c = w(first);
        // the binary default's provenance, when the runs use it
        let binary = c[1] == crate::experiments::BINARY_TASK_GAMMA_L2
            && records
                .iter()
                .any(|r| r.result.config.loss == crate::train::TaskLoss::Bce);
        return format!(
            "\nSynergy weights of these runs: β = {}, γ_L2 = {}, γ_d = {}, γ_κ = {} (an ablation keeps \
             only its own γ). Defaults chosen on MOSI-shaped synthetic validation data{}, never on test \
             numbers; `--beta/--gamma-*` override them, `--tune` chooses them on validation.\n",
            c[0],
            c[1],
            c[2],
            c[3],
            if binary {
                format!(
                    " (a binary task's γ_L2 = {} on UR-FUNNY-shaped synthetic validation data: at \
                     the regression default 1, NLL+SKL and the L_L2-only ablation collapse to one class)",
                    crate::experiments::BINARY_TASK_GAMMA_L2
                )
            } else {
                String::new()
            }
        );
    }
    let varied: Vec<usize> = (0..4).filter(|&i| tried[i].len() > 1).collect();
    let fixed: Vec<String> = (0..4)
        .filter(|i| !varied.contains(i))
        .map(|i| format!("{} = {}", names[i], tried[i][0]))
        .collect();
    let mut s =
        format!(
        "\nSynergy weights chosen on validation (`--tune`), per seed together with the batch size \
         and learning rate, among {}{} (an ablation varies only its own γ):\n\n",
        varied
            .iter()
            .map(|&i| {
                let mut v = tried[i].clone();
                v.sort_by(f64::total_cmp);
                format!(
                    "{} ∈ {{{}}}",
                    names[i],
                    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        if fixed.is_empty() {
            String::new()
        } else {
            format!("; fixed {}", fixed.join(", "))
        }
    );
    let mut rows = Vec::new();
    for &kind in crate::models::ModelKind::ALL {
        for v in crate::train::Variant::TABLE_ORDER {
            let picks: Vec<String> = selected
                .iter()
                .filter(|x| x.model == kind && x.variant == v && v.divergence().is_some())
                .map(|x| {
                    let c = w(&x.result.config.synergy);
                    let vals: Vec<String> = varied
                        .iter()
                        .map(|&i| format!("{} = {}", names[i], c[i]))
                        .collect();
                    format!("seed {}: {}", x.seed, vals.join(", "))
                })
                .collect();
            if !picks.is_empty() {
                rows.push(vec![
                    kind.name().to_string(),
                    v.name().to_string(),
                    picks.join("; "),
                ]);
            }
        }
    }
    s += &super::markdown_table(&["Model", "Variant", "selected weights"], &rows);
    s
}
