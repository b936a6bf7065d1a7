//! The tuning budget behind each claim: expected validation performance (Dodge et al. 2019,
//! "Show Your Work: Improved Reporting of Experimental Results") of each model × variant after
//! `n` of the grid's configurations, and the expected test score of the configuration that
//! validation would select among them.
//!
//! # The estimator
//!
//! A seed's grid search tried `N` configurations (batch size × learning rate, and synergy weights
//! under `--tune`) with validation scores `v_1, …, v_N` (each the selected checkpoint's). Draw `n`
//! of them uniformly at random **with replacement** and keep the best on validation. Order the
//! configurations from worst to best on validation, `v_(1) ≼ … ≼ v_(N)` (ascending for a metric
//! where higher is better, descending for MAE). When the scores are distinct, the best of `n`
//! draws is `v_(i)` with probability `(i/N)^n − ((i−1)/N)^n` (all draws among the `i` worst,
//! not all among the `i − 1` worst), so
//!
//! ```text
//! E[best validation of n draws] = Σ_{i=1..N} v_(i) · [ (i/N)^n − ((i−1)/N)^n ]
//! ```
//!
//! — the expected maximum (minimum for MAE) over the empirical distribution of the grid's scores.
//! Tied scores need nothing special here (a tie group contributes its common value times the
//! probability that the best lies in the group, which is what the telescoping sum gives).
//!
//! # The test score it would select
//!
//! The configuration with the best validation among the `n` draws is evaluated on test. Group
//! equal validation scores into tie groups `G_1 ≺ … ≺ G_K` (worst to best) with cumulative sizes
//! `c_0 = 0 < c_1 < … < c_K = N`. The best validation of `n` draws lies in `G_k` with probability
//! `(c_k/N)^n − (c_{k−1}/N)^n`. Ties are broken uniformly at random: given that the best lies in
//! `G_k`, the draws are exchangeable under relabelling the members of `G_k`, so each member is the
//! selected one with probability `1/|G_k|`, and
//!
//! ```text
//! E[test of the selected configuration] = Σ_{k=1..K} [ (c_k/N)^n − (c_{k−1}/N)^n ] · mean_{j ∈ G_k} t_j
//! ```
//!
//! which is `Σ_i t_(i) · [ (i/N)^n − ((i−1)/N)^n ]` when the validation scores are distinct. (The
//! harness's own selection breaks a tie by the smallest run key; the uniform rule keeps the
//! estimator a function of the multiset of `(validation, test)` pairs — invariant under
//! reordering the configurations — and the two differ only for exactly equal validation scores.)
//!
//! As `n → ∞` both estimates tend to the whole grid's: the best validation score and the mean test
//! score of its tie group (the protocol's selected run when the best is unique). At `n = N` they
//! are still below it — draws with replacement miss the best configuration with probability
//! `(1 − 1/N)^N ≈ 0.35` for `N = 10` — so the tables add the whole grid as a last row.
//!
//! # Pooling over seeds
//!
//! Each seed has its own grid search (same configurations, another initialisation and batch
//! order). The curves are computed **per seed** on that seed's `N` configurations and then averaged
//! over seeds, with their standard deviation over seeds. Pooling all `seeds × N` runs into one
//! empirical distribution would mix seed luck into the hyper-parameter draws and, for large `n`,
//! tend to the best run over all seeds — an optimistic number no single grid search delivers. The
//! per-seed curves also pair: at each `n`, the variant's expected test score minus NLL's on the
//! same seed gives a paired delta with a 95 % t-interval over seeds ([`super::stats`]), the same
//! comparison the claims make at the whole grid.

use super::error::PlotError;
use super::improvement::Better;
use super::stats::{paired_t_interval, Interval};
use crate::experiments::{incomplete_seeds, RunRecord};
use crate::models::ModelKind;
use crate::train::{RunResult, Selection, TestMetrics, Variant};
use plotters::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

/// Why an expected-maximum estimate refused its input.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TuningError {
    /// No configuration.
    #[error("tuning budget: no configuration")]
    Empty,
    /// `n = 0` draws.
    #[error("tuning budget: n must be at least 1")]
    ZeroDraws,
    /// Validation and test scores of different lengths.
    #[error("tuning budget: {valid} validation scores but {test} test scores")]
    LengthMismatch { valid: usize, test: usize },
    /// A score is NaN or ±Inf.
    #[error("tuning budget: configuration {index} has a non-finite {what} score ({value})")]
    NonFinite {
        index: usize,
        what: &'static str,
        value: f64,
    },
}

fn check(valid: &[f64], test: Option<&[f64]>, n: usize) -> Result<(), TuningError> {
    if valid.is_empty() {
        return Err(TuningError::Empty);
    }
    if n == 0 {
        return Err(TuningError::ZeroDraws);
    }
    if let Some(t) = test {
        if t.len() != valid.len() {
            return Err(TuningError::LengthMismatch {
                valid: valid.len(),
                test: t.len(),
            });
        }
    }
    let lists = [("validation", Some(valid)), ("test", test)];
    for (what, list) in lists {
        if let Some((index, &value)) = list
            .into_iter()
            .flatten()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
        {
            return Err(TuningError::NonFinite { index, what, value });
        }
    }
    Ok(())
}

/// The tie groups of `valid` from worst to best under `better`: for each group, its cumulative
/// size `c_k` and the indices of its members.
fn tie_groups(valid: &[f64], better: Better) -> Vec<(usize, Vec<usize>)> {
    let mut order: Vec<usize> = (0..valid.len()).collect();
    // worst first: ascending for higher-is-better, descending for lower-is-better
    order.sort_by(|&a, &b| match better {
        Better::Higher => valid[a].total_cmp(&valid[b]),
        Better::Lower => valid[b].total_cmp(&valid[a]),
    });
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (rank, &i) in order.iter().enumerate() {
        match groups.last_mut() {
            Some((c, members)) if valid[members[0]] == valid[i] => {
                *c = rank + 1;
                members.push(i);
            }
            _ => groups.push((rank + 1, vec![i])),
        }
    }
    groups
}

/// `(c/N)^n − (c_prev/N)^n`: the probability that the best of `n` draws lies in a tie group.
fn group_weight(c_prev: usize, c: usize, total: usize, n: usize) -> f64 {
    let pw = |c: usize| (c as f64 / total as f64).powf(n as f64);
    pw(c) - pw(c_prev)
}

/// Dodge et al.'s expected best validation score after `n` configurations drawn with replacement
/// from `valid`: `Σ_i v_(i) [(i/N)^n − ((i−1)/N)^n]` over the scores sorted worst to best (see
/// the module doc); the expected maximum for [`Better::Higher`], the expected minimum for
/// [`Better::Lower`].
pub fn expected_best(valid: &[f64], n: usize, better: Better) -> Result<f64, TuningError> {
    check(valid, None, n)?;
    let mut prev = 0;
    let mut e = 0.0;
    for (c, members) in tie_groups(valid, better) {
        e += group_weight(prev, c, valid.len(), n) * valid[members[0]];
        prev = c;
    }
    Ok(e)
}

/// The expected test score of the configuration that validation selects among `n` drawn with
/// replacement: `Σ_k [(c_k/N)^n − (c_{k−1}/N)^n] · mean_{j ∈ G_k} t_j` over the tie groups of the
/// validation scores, ties broken uniformly (see the module doc). `valid[i]` and `test[i]` are one
/// configuration's scores; `better` is the direction of the validation metric.
pub fn expected_selected(
    valid: &[f64],
    test: &[f64],
    n: usize,
    better: Better,
) -> Result<f64, TuningError> {
    check(valid, Some(test), n)?;
    let mut prev = 0;
    let mut e = 0.0;
    for (c, members) in tie_groups(valid, better) {
        let mean = members.iter().map(|&j| test[j]).sum::<f64>() / members.len() as f64;
        e += group_weight(prev, c, valid.len(), n) * mean;
        prev = c;
    }
    Ok(e)
}

/// The `n → ∞` limits of [`expected_best`] and [`expected_selected`]: the best validation score
/// and the mean test score of its tie group (what the whole grid selects).
pub fn grid_limit(valid: &[f64], test: &[f64], better: Better) -> Result<(f64, f64), TuningError> {
    check(valid, Some(test), 1)?;
    let groups = tie_groups(valid, better);
    let (_, top) = groups.last().ok_or(TuningError::Empty)?;
    let mean = top.iter().map(|&j| test[j]).sum::<f64>() / top.len() as f64;
    Ok((valid[top[0]], mean))
}

/// A mean over seeds with its spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    /// Standard deviation over seeds (`n − 1` denominator); `None` for one seed.
    pub sd: Option<f64>,
    /// Seeds behind it.
    pub seeds: usize,
}

impl Spread {
    fn of(v: &[f64]) -> Option<Spread> {
        if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.len() >= 2)
            .then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
        Some(Spread {
            mean,
            sd,
            seeds: v.len(),
        })
    }
}

/// One budget of a curve (or the whole grid).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BudgetPoint {
    /// Configurations drawn; `None`: the whole grid (the protocol's selection, `n → ∞`).
    pub n: Option<usize>,
    /// Expected best validation score (the selection metric; accuracy in points).
    pub valid: Spread,
    /// Expected test score of the selected configuration, on the selection metric.
    pub test: Spread,
    /// Expected test Acc2 (non-zero labels, points) of the selected configuration (regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_acc2: Option<Spread>,
    /// Variant − NLL of `test`, paired by seed (95 % t-interval; absent for NLL, without NLL or
    /// with fewer than two common seeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_test: Option<Interval>,
    /// Variant − NLL of `test_acc2`, paired by seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_test_acc2: Option<Interval>,
}

/// The budget curve of one model × variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetCurve {
    pub model: String,
    pub variant: String,
    /// The selection metric: `"MAE"` (lower is better) or `"accuracy"` (points, higher is better).
    pub metric: &'static str,
    pub better: Better,
    /// Configurations of the grid (the most any seed tried).
    pub configurations: usize,
    /// Seeds whose complete grid search enters the curve.
    pub seeds: Vec<u64>,
    /// Runs left out: failed inside (never selectable), or a non-finite score.
    pub excluded_runs: usize,
    /// `n = 1 … N`.
    pub points: Vec<BudgetPoint>,
    /// The whole grid (`n → ∞`): the claims' numbers.
    pub grid: BudgetPoint,
}

/// One seed's configurations: validation, test (selection metric) and test Acc2.
#[derive(Debug, Default, Clone)]
struct SeedGrid {
    valid: Vec<f64>,
    test: Vec<f64>,
    acc2: Vec<f64>,
}

/// One seed's expected (valid, test, Acc2) at one budget.
type SeedPoint = (f64, f64, Option<f64>);

/// Picks one score of a [`SeedPoint`].
type Pick<'a> = &'a dyn Fn(&SeedPoint) -> Option<f64>;

/// Per seed: expected (valid, test, Acc2) at `n = 1 … N` and the grid's limit (last).
type SeedCurve = Vec<SeedPoint>;

struct Cell {
    selection: Selection,
    excluded: usize,
    seeds: BTreeMap<u64, SeedGrid>,
}

fn scores(r: &RunResult) -> Option<(f64, f64, Option<f64>)> {
    if !r.is_usable() {
        return None;
    }
    let (v, t, a) = match (r.selection, r.test.as_ref()?) {
        (Selection::Mae, TestMetrics::Regression(m)) => {
            (r.valid_score, m.mae, Some(100.0 * m.acc2_non0))
        }
        (Selection::Accuracy, TestMetrics::Binary(m)) => {
            (100.0 * r.valid_score, 100.0 * m.accuracy, None)
        }
        _ => return None,
    };
    (v.is_finite() && t.is_finite()).then_some((v, t, a.filter(|x| x.is_finite())))
}

fn better_of(s: Selection) -> Better {
    match s {
        Selection::Mae => Better::Lower,
        Selection::Accuracy => Better::Higher,
    }
}

fn seed_curve(g: &SeedGrid, upto: usize, better: Better) -> Option<SeedCurve> {
    let acc2 = (g.acc2.len() == g.valid.len()).then_some(g.acc2.as_slice());
    let mut out = Vec::with_capacity(upto + 1);
    for n in 1..=upto {
        out.push((
            expected_best(&g.valid, n, better).ok()?,
            expected_selected(&g.valid, &g.test, n, better).ok()?,
            acc2.and_then(|a| expected_selected(&g.valid, a, n, better).ok()),
        ));
    }
    let (v, t) = grid_limit(&g.valid, &g.test, better).ok()?;
    let a = acc2.and_then(|a| grid_limit(&g.valid, a, better).ok().map(|x| x.1));
    out.push((v, t, a));
    Some(out)
}

/// The tuning-budget curves of every model × variant among `records` whose grid has at least two
/// configurations (a quick- or smoke-profile folder, one configuration, gets none), in table
/// order. Records are de-duplicated by run key; runs that failed inside or have a non-finite
/// score are left out (and counted); seeds whose grid search is incomplete
/// (`incomplete_seeds`) are left out, as the selection leaves them out.
pub fn budget(records: &[RunRecord]) -> Vec<BudgetCurve> {
    let mut seen = std::collections::HashSet::new();
    let mut cells: BTreeMap<(ModelKind, Variant), Cell> = BTreeMap::new();
    let mut skip: BTreeMap<(ModelKind, Variant), Vec<u64>> = BTreeMap::new();
    for rec in records {
        if !seen.insert(rec.key.as_str()) {
            continue;
        }
        let r = &rec.result;
        let key = (r.config.model.kind(), r.config.variant);
        let incomplete = skip
            .entry(key)
            .or_insert_with(|| incomplete_seeds(records, key.0, key.1));
        if incomplete.contains(&r.config.seed) {
            continue;
        }
        let cell = cells.entry(key).or_insert_with(|| Cell {
            selection: r.selection,
            excluded: 0,
            seeds: BTreeMap::new(),
        });
        match scores(r).filter(|_| r.selection == cell.selection) {
            Some((v, t, a)) => {
                let g = cell.seeds.entry(r.config.seed).or_default();
                g.valid.push(v);
                g.test.push(t);
                if let Some(a) = a {
                    g.acc2.push(a);
                }
            }
            None => cell.excluded += 1,
        }
    }
    let grid_size = |c: &Cell| c.seeds.values().map(|g| g.valid.len()).max().unwrap_or(0);
    let upto = cells.values().map(grid_size).max().unwrap_or(0);
    if upto < 2 {
        return Vec::new();
    }
    // per-seed curves of every cell
    let mut per_seed: BTreeMap<(ModelKind, Variant), BTreeMap<u64, SeedCurve>> = BTreeMap::new();
    for (key, cell) in &cells {
        let better = better_of(cell.selection);
        let curves: BTreeMap<u64, SeedCurve> = cell
            .seeds
            .iter()
            .filter_map(|(s, g)| Some((*s, seed_curve(g, upto, better)?)))
            .collect();
        per_seed.insert(*key, curves);
    }
    let mut out = Vec::new();
    for &model in ModelKind::ALL {
        for variant in Variant::TABLE_ORDER {
            let Some(cell) = cells.get(&(model, variant)) else {
                continue;
            };
            let mine = &per_seed[&(model, variant)];
            if mine.is_empty() || grid_size(cell) < 2 {
                continue;
            }
            let base = (variant != Variant::Nll)
                .then(|| per_seed.get(&(model, Variant::Nll)))
                .flatten()
                .filter(|_| cells[&(model, Variant::Nll)].selection == cell.selection);
            let point = |k: usize| -> Option<BudgetPoint> {
                let col =
                    |f: Pick<'_>| -> Vec<f64> { mine.values().filter_map(|c| f(&c[k])).collect() };
                let acc2 = col(&|p| p.2);
                let delta = |f: Pick<'_>| {
                    let b = base?;
                    let d: Vec<f64> = mine
                        .iter()
                        .filter_map(|(s, c)| Some(f(&c[k])? - f(&b.get(s)?[k])?))
                        .collect();
                    paired_t_interval(&d, 0.95)
                };
                Some(BudgetPoint {
                    n: (k < upto).then_some(k + 1),
                    valid: Spread::of(&col(&|p| Some(p.0)))?,
                    test: Spread::of(&col(&|p| Some(p.1)))?,
                    test_acc2: (acc2.len() == mine.len())
                        .then(|| Spread::of(&acc2))
                        .flatten(),
                    delta_test: delta(&|p| Some(p.1)),
                    delta_test_acc2: delta(&|p| p.2),
                })
            };
            let (Some(points), Some(grid)) = (
                (0..upto).map(point).collect::<Option<Vec<_>>>(),
                point(upto),
            ) else {
                continue;
            };
            out.push(BudgetCurve {
                model: model.name().into(),
                variant: variant.name().into(),
                metric: match cell.selection {
                    Selection::Mae => "MAE",
                    Selection::Accuracy => "accuracy",
                },
                better: better_of(cell.selection),
                configurations: grid_size(cell),
                seeds: mine.keys().copied().collect(),
                excluded_runs: cell.excluded,
                points,
                grid,
            });
        }
    }
    out
}

/// `1–3, 7, 9–10` for a sorted list of budgets (`none` when empty).
fn ranges(ns: &[usize]) -> String {
    if ns.is_empty() {
        return "none".into();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ns.len() {
        let mut j = i;
        while j + 1 < ns.len() && ns[j + 1] == ns[j] + 1 {
            j += 1;
        }
        parts.push(if j == i {
            ns[i].to_string()
        } else {
            format!("{}–{}", ns[i], ns[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}

/// The one-line reading of a variant's deltas at every budget: where its expected test score is
/// better / worse than NLL's, where the interval excludes 0, and the whole grid's delta.
fn reading(
    c: &BudgetCurve,
    metric: &str,
    digits: usize,
    better: Better,
    delta: impl Fn(&BudgetPoint) -> Option<Interval>,
) -> Option<String> {
    let grid = delta(&c.grid)?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut good_ci = Vec::new();
    let mut bad_ci = Vec::new();
    for p in &c.points {
        let (Some(n), Some(d)) = (p.n, delta(p)) else {
            continue;
        };
        if better.better(d.mean, 0.0) {
            good.push(n);
        } else if better.better(0.0, d.mean) {
            bad.push(n);
        }
        let excl_good = match better {
            Better::Higher => d.lo > 0.0,
            Better::Lower => d.hi < 0.0,
        };
        let excl_bad = match better {
            Better::Higher => d.hi < 0.0,
            Better::Lower => d.lo > 0.0,
        };
        if excl_good {
            good_ci.push(n);
        }
        if excl_bad {
            bad_ci.push(n);
        }
    }
    let total = c.points.len();
    let verdict = if good.len() == total {
        "better than NLL at every budget".to_string()
    } else if bad.len() == total {
        "worse than NLL at every budget".to_string()
    } else {
        format!(
            "better at n = {}, worse at n = {}",
            ranges(&good),
            ranges(&bad)
        )
    };
    let ci = match (good_ci.is_empty(), bad_ci.is_empty()) {
        (true, true) => "the 95 % interval contains 0 at every n".to_string(),
        (false, true) => format!(
            "the 95 % interval excludes 0 (better) at n = {}",
            ranges(&good_ci)
        ),
        (true, false) => format!(
            "the 95 % interval excludes 0 (worse) at n = {}",
            ranges(&bad_ci)
        ),
        (false, false) => format!(
            "the 95 % interval excludes 0 (better) at n = {}, (worse) at n = {}",
            ranges(&good_ci),
            ranges(&bad_ci)
        ),
    };
    Some(format!(
        "- {} {} − NLL, expected test {metric}: {verdict}; {ci}; whole grid {:+.*} [{:+.*}, {:+.*}] (n = {} seeds).",
        c.model, c.variant, digits, grid.mean, digits, grid.lo, digits, grid.hi, grid.n
    ))
}

fn spread_cell(s: &Spread, digits: usize) -> String {
    match s.sd {
        Some(sd) => format!("{:.*} ± {:.*}", digits, s.mean, digits, sd),
        None => format!("{:.*}", digits, s.mean),
    }
}

/// The tuning-budget section as markdown: per model a table of `n = 1 … N` and the whole grid,
/// with each variant's expected best validation score (mean ± sd over seeds) and the expected
/// test score of its selection (and Acc2 for regression), then one reading line per variant
/// comparing it with NLL at equal budgets. Empty without curves.
pub fn markdown(curves: &[BudgetCurve]) -> String {
    let Some(first) = curves.first() else {
        return String::new();
    };
    let regression = first.metric == "MAE";
    let digits = if regression { 3 } else { 1 };
    let seeds = curves.iter().map(|c| c.seeds.len()).max().unwrap_or(0);
    let configs = curves.iter().map(|c| c.configurations).max().unwrap_or(0);
    let mut s = format!(
        "### Tuning budget: expected performance after n of the grid's {configs} configurations \
         (Dodge et al. 2019)\n\n\
         Per seed, n configurations are drawn at random with replacement from the seed's grid \
         search and the best on validation is kept: *valid* is the expected best validation {m} \
         (E[{ext} of n] = Σ_i v_(i) [(i/N)^n − ((i−1)/N)^n] over the N scores sorted worst to \
         best), *test* the expected test {m}{acc2} of that configuration (ties on validation \
         broken uniformly); mean ± sd over the seeds ({seeds} at most). *grid* is the whole grid \
         (n → ∞), the protocol's selection behind the claims. A gain that holds only at the grid \
         and not at small n is bought by tuning; one that holds at every n survives an equal \
         tuning budget.\n\n",
        m = if regression { "MAE" } else { "accuracy (%)" },
        ext = if regression { "min" } else { "max" },
        acc2 = if regression { " · Acc2 (%)" } else { "" },
    );
    let mut models: Vec<&str> = curves.iter().map(|c| c.model.as_str()).collect();
    models.dedup();
    for model in models {
        let mine: Vec<&BudgetCurve> = curves.iter().filter(|c| c.model == model).collect();
        let mut header = vec!["n".to_string()];
        for c in &mine {
            header.push(format!("{} valid", c.variant));
            header.push(format!("{} test", c.variant));
        }
        let n_rows = mine.iter().map(|c| c.points.len()).max().unwrap_or(0);
        let row = |label: String, pick: &dyn Fn(&BudgetCurve) -> Option<BudgetPoint>| {
            let mut r = vec![label];
            for c in &mine {
                match pick(c) {
                    Some(p) => {
                        r.push(spread_cell(&p.valid, digits));
                        r.push(match p.test_acc2 {
                            Some(a) => format!("{:.*} · {:.1}", digits, p.test.mean, a.mean),
                            None => format!("{:.*}", digits, p.test.mean),
                        });
                    }
                    None => r.extend(["—".to_string(), "—".to_string()]),
                }
            }
            r
        };
        let mut rows: Vec<Vec<String>> = (0..n_rows)
            .map(|k| row((k + 1).to_string(), &|c| c.points.get(k).copied()))
            .collect();
        rows.push(row("grid".into(), &|c| Some(c.grid)));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        s += &format!("{model}:\n\n");
        s += &super::markdown_table(&header, &rows);
        s += "\n";
        let lines: Vec<String> = mine
            .iter()
            .flat_map(|c| {
                let main = reading(c, c.metric, digits, c.better, |p| p.delta_test);
                let acc2 = reading(c, "Acc2", 1, Better::Higher, |p| p.delta_test_acc2);
                [main, acc2]
            })
            .flatten()
            .collect();
        let excluded: usize = mine.iter().map(|c| c.excluded_runs).sum();
        if excluded > 0 {
            s += &format!(
                "{excluded} runs left out of {model}'s curves (failed inside, never selectable, or \
                 a non-finite score).\n\n"
            );
        }
        if !lines.is_empty() {
            s += "Variant − NLL of the expected test score at equal n (paired by seed, 95 % t-interval):\n\n";
            s += &lines.join("\n");
            s += "\n\n";
        }
    }
    s
}

/// The budget curves as a PNG: one row of panels per model, the expected best validation score
/// (left) and the expected test score of the selection (right) against `n`, one line per variant
/// with a band of ± one sd over seeds; the whole grid's values as a dashed line at the right edge.
pub fn plot(path: &Path, title: &str, curves: &[BudgetCurve]) -> Result<(), PlotError> {
    if curves.is_empty() {
        return Err(PlotError::Empty(
            "a tuning-budget plot needs at least one curve",
        ));
    }
    let mut models: Vec<&str> = curves.iter().map(|c| c.model.as_str()).collect();
    models.dedup();
    let root = BitMapBackend::new(path, (1100, 340 * models.len() as u32 + 50)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let areas = root.split_evenly((models.len(), 2));
    let colours = [
        BLACK,
        BLUE,
        RED,
        GREEN,
        MAGENTA,
        CYAN,
        RGBColor(255, 140, 0),
        RGBColor(120, 60, 0),
    ];
    for (row, model) in models.iter().enumerate() {
        let mine: Vec<&BudgetCurve> = curves.iter().filter(|c| c.model == *model).collect();
        for (col, valid) in [(0usize, true), (1, false)] {
            let area = &areas[row * 2 + col];
            let pick = |p: &BudgetPoint| if valid { p.valid } else { p.test };
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            let mut nmax = 1usize;
            for c in &mine {
                nmax = nmax.max(c.points.len());
                for p in c.points.iter().chain([&c.grid]) {
                    let s = pick(p);
                    let sd = s.sd.unwrap_or(0.0);
                    lo = lo.min(s.mean - sd);
                    hi = hi.max(s.mean + sd);
                }
            }
            if !(lo.is_finite() && hi.is_finite()) {
                continue;
            }
            let pad = ((hi - lo) * 0.05).max(1e-6);
            let metric = mine[0].metric;
            let caption = if valid {
                format!("{model}: expected best validation {metric} after n configurations")
            } else {
                format!("{model}: expected test {metric} of the selected configuration")
            };
            let mut chart = ChartBuilder::on(area)
                .margin(10)
                .caption(caption, ("sans-serif", 14))
                .x_label_area_size(30)
                .y_label_area_size(55)
                .build_cartesian_2d(0.5..(nmax as f64 + 0.5), (lo - pad)..(hi + pad))?;
            chart
                .configure_mesh()
                .x_labels(nmax)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .x_desc("n (configurations drawn; dashed: the whole grid)")
                .light_line_style(WHITE)
                .draw()?;
            for (i, c) in mine.iter().enumerate() {
                let colour = colours[i % colours.len()];
                let xs: Vec<(f64, Spread)> = c
                    .points
                    .iter()
                    .filter_map(|p| Some((p.n? as f64, pick(p))))
                    .collect();
                if xs.iter().any(|(_, s)| s.sd.is_some()) {
                    let mut band: Vec<(f64, f64)> = xs
                        .iter()
                        .map(|(x, s)| (*x, s.mean + s.sd.unwrap_or(0.0)))
                        .collect();
                    band.extend(
                        xs.iter()
                            .rev()
                            .map(|(x, s)| (*x, s.mean - s.sd.unwrap_or(0.0))),
                    );
                    chart.draw_series([Polygon::new(band, colour.mix(0.12).filled())])?;
                }
                chart
                    .draw_series(LineSeries::new(
                        xs.iter().map(|(x, s)| (*x, s.mean)),
                        colour.stroke_width(2),
                    ))?
                    .label(c.variant.clone())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                chart.draw_series(
                    xs.iter()
                        .map(|(x, s)| Circle::new((*x, s.mean), 3, colour.filled())),
                )?;
                let g = pick(&c.grid).mean;
                chart.draw_series(DashedLineSeries::new(
                    [(0.5, g), (nmax as f64 + 0.5, g)],
                    4,
                    4,
                    colour.mix(0.5).stroke_width(1),
                ))?;
            }
            chart
                .configure_series_labels()
                .position(match mine[0].better {
                    // the curves fall for MAE and rise for accuracy: the legend goes where they end
                    // farthest from
                    Better::Lower => SeriesLabelPosition::UpperRight,
                    Better::Higher => SeriesLabelPosition::LowerRight,
                })
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}
