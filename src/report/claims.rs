//! The paper's claims ("+SKL / +SMMD beats NLL" for each model) against the measurement: paired
//! deltas with confidence intervals ([`super::stats`]), a verdict per claim, a summary line, and a
//! forest plot.

use super::error::PlotError;
use super::forest::{Line, Panel, Tone};
use super::stats::{paired_bootstrap, paired_t_interval, Interval, Verdict};
use crate::data::DatasetName;
use crate::experiments::expected::{lookup, Expected};
use crate::experiments::{paper_model, Selected};
use crate::models::ModelKind;
use crate::train::Variant;
use serde::Serialize;
use std::path::Path;

/// A metric a claim is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimMetric {
    /// Binary accuracy without zero labels, in points (higher is better).
    Acc2,
    /// Mean absolute error (lower is better).
    Mae,
    /// Binary-task accuracy in points (logit ≥ 0 vs label ≥ 0.5; higher is better).
    Accuracy,
}

impl ClaimMetric {
    /// Name in tables.
    pub fn name(self) -> &'static str {
        match self {
            ClaimMetric::Acc2 => "Acc2",
            ClaimMetric::Mae => "MAE",
            ClaimMetric::Accuracy => "Accuracy",
        }
    }

    fn key(self) -> &'static str {
        match self {
            ClaimMetric::Acc2 => "acc2",
            ClaimMetric::Mae => "mae",
            ClaimMetric::Accuracy => "acc",
        }
    }

    /// The metric from predictions and labels (None when undefined, e.g. no non-zero label).
    pub fn compute(self, pred: &[f64], label: &[f64]) -> Option<f64> {
        match self {
            ClaimMetric::Acc2 => {
                let nz: Vec<(f64, f64)> = pred
                    .iter()
                    .zip(label)
                    .filter(|(_, l)| **l != 0.0)
                    .map(|(p, l)| (*p, *l))
                    .collect();
                if nz.is_empty() {
                    return None;
                }
                let ok = nz.iter().filter(|(p, l)| (*p > 0.0) == (*l > 0.0)).count();
                Some(100.0 * ok as f64 / nz.len() as f64)
            }
            ClaimMetric::Mae => Some(crate::metrics::mae(pred, label)),
            ClaimMetric::Accuracy => (!label.is_empty())
                .then(|| 100.0 * crate::train::binary_metrics(pred, label).accuracy),
        }
    }
}

/// The `(NLL run, variant run)` pairs of the same seed, in the variant's order (a seed without an
/// NLL run is left out). Shared by the main claims and Table 4's.
pub(crate) fn pair_by_seed<'a>(
    base: &[&'a Selected],
    var: &[&'a Selected],
) -> Vec<(&'a Selected, &'a Selected)> {
    var.iter()
        .filter_map(|v| base.iter().find(|b| b.seed == v.seed).map(|b| (*b, *v)))
        .collect()
}

/// One claim with its measured delta and verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub model: String,
    pub variant: String,
    pub metric: ClaimMetric,
    /// The paper's delta (variant − NLL) for the compared row, if the paper has both values.
    pub paper_delta: Option<f64>,
    /// Measured delta (variant − NLL) with its 95 % interval.
    pub measured: Option<Interval>,
    pub verdict: Option<Verdict>,
    /// Why there is no verdict, when there is none.
    pub note: Option<String>,
    /// Whether a directional verdict survives Holm's correction over the table's family of
    /// claims (those whose paper delta is nonzero and that have an interval); `None` outside the
    /// family ([`super::stats::holm_flags`]).
    pub survives_holm: Option<bool>,
    /// Seeds a paired t-test would need to detect the paper's delta with 80 % power at the
    /// measured seed-to-seed spread ([`super::stats::seeds_for_power`], at most
    /// [`SEEDS_CAP`]); `None` without a paired-t interval, without a paper direction, or above
    /// the cap.
    pub seeds_needed: Option<usize>,
    /// The probability that the variant beats NLL on a seed (ties ½) over the same seed pairs as
    /// the paired delta, with a 95 % percentile bootstrap interval over the pairs
    /// ([`super::improvement`]); `None` with fewer than two seed pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_improve: Option<super::improvement::Improvement>,
}

/// The most seeds [`Claim::seeds_needed`] reports.
pub const SEEDS_CAP: usize = 1000;

/// The "seeds needed" cell: the number, `> 1000`, or `—` where it does not apply.
fn seeds_cell(c: &Claim) -> String {
    match (c.seeds_needed, c.measured.and_then(|m| m.sd), c.paper_delta) {
        (Some(n), _, _) => n.to_string(),
        (None, Some(sd), Some(d)) if super::stats::power_plan_applies(sd, d) => {
            format!("> {SEEDS_CAP}")
        }
        _ => "—".into(),
    }
}

/// A claim's place in its table's Holm family: `(verdict, p)` when the paper states a direction
/// (a nonzero delta) and there is an interval.
fn holm_member(c: &Claim) -> Option<(Verdict, f64)> {
    if c.paper_delta.is_some_and(|d| d != 0.0) {
        Some((c.verdict?, c.measured?.p))
    } else {
        None
    }
}

/// Test labels of the runs (for the single-seed bootstrap), in the order of the predictions.
pub(crate) type Labels<'a> = Option<&'a [f64]>;

/// Every claim of `dataset`'s table that the selected runs can speak to: for each model and
/// synergy variant, Acc2 and MAE deltas against NLL (regression runs) or the accuracy delta
/// (binary runs: selected on validation accuracy), paired by seed.
pub fn claims(
    selected: &[Selected],
    expected: &[Expected],
    labels: Labels<'_>,
    dataset: DatasetName,
) -> Vec<Claim> {
    let table = dataset.paper_table();
    let binary = selected
        .iter()
        .any(|s| s.result.selection == crate::train::Selection::Accuracy);
    let metrics: &[ClaimMetric] = if binary {
        &[ClaimMetric::Accuracy]
    } else {
        &[ClaimMetric::Acc2, ClaimMetric::Mae]
    };
    let mut out = Vec::new();
    for &kind in ModelKind::ALL {
        let base: Vec<&Selected> = selected
            .iter()
            .filter(|s| s.model == kind && s.variant == Variant::Nll)
            .collect();
        if base.is_empty() {
            continue;
        }
        for variant in Variant::TABLE_ORDER
            .into_iter()
            .filter(|v| *v != Variant::Nll && !v.is_control())
        {
            let var: Vec<&Selected> = selected
                .iter()
                .filter(|s| s.model == kind && s.variant == variant)
                .collect();
            if var.is_empty() {
                continue;
            }
            for &metric in metrics {
                let pm = paper_model(kind);
                // an ablation row's claim is Table 5's: the term alone vs MLE
                let t = if variant.is_ablation() { 5 } else { table };
                let paper_delta = match (
                    lookup(expected, t, pm, variant.name_in_table(t), metric.key()),
                    lookup(expected, t, pm, Variant::Nll.name_in_table(t), metric.key()),
                ) {
                    (Some(a), Some(b)) => Some(a - b),
                    _ => None,
                };
                out.push(claim(
                    kind,
                    variant,
                    metric,
                    &base,
                    &var,
                    paper_delta,
                    labels,
                ));
            }
        }
    }
    let members: Vec<_> = out.iter().map(holm_member).collect();
    for (c, f) in out.iter_mut().zip(super::stats::holm_flags(&members)) {
        c.survives_holm = f;
    }
    out
}

fn metric_of(s: &Selected, metric: ClaimMetric) -> Option<f64> {
    let t = s.result.test.as_ref()?;
    Some(match metric {
        ClaimMetric::Acc2 => 100.0 * t.regression()?.acc2_non0,
        ClaimMetric::Mae => t.regression()?.mae,
        ClaimMetric::Accuracy => 100.0 * t.binary()?.accuracy,
    })
}

fn claim(
    kind: ModelKind,
    variant: Variant,
    metric: ClaimMetric,
    base: &[&Selected],
    var: &[&Selected],
    paper_delta: Option<f64>,
    labels: Labels<'_>,
) -> Claim {
    let pairs = pair_by_seed(base, var);
    let mut note = None;
    let mut p_improve = None;
    let measured = if pairs.len() >= 2 {
        let values: Vec<(f64, f64)> = pairs
            .iter()
            .filter_map(|(b, v)| Some((metric_of(b, metric)?, metric_of(v, metric)?)))
            .collect();
        let deltas: Vec<f64> = values.iter().map(|(b, v)| v - b).collect();
        if values.len() >= 2 {
            let better = if metric == ClaimMetric::Mae {
                super::improvement::Better::Lower
            } else {
                super::improvement::Better::Higher
            };
            p_improve = super::improvement::paired(
                &values,
                better,
                super::improvement::RESAMPLES,
                0.95,
                super::improvement::SEED,
            )
            .ok();
        }
        paired_t_interval(&deltas, 0.95)
    } else if let (Some((b, v)), Some(l)) = (pairs.first(), labels) {
        match (
            v.result.test_predictions_f64(),
            b.result.test_predictions_f64(),
        ) {
            (Some(pv), Some(pb)) => paired_bootstrap(
                &pv,
                &pb,
                l,
                |a, y| metric.compute(a, y),
                2000,
                0.95,
                0xB007 ^ v.seed,
            ),
            _ => {
                note = Some("no saved test predictions".into());
                None
            }
        }
    } else {
        note = Some(if pairs.is_empty() {
            "no seed has both NLL and this variant".into()
        } else {
            "one seed and no test labels for a bootstrap".into()
        });
        None
    };
    let verdict = match (paper_delta, &measured) {
        (Some(d), Some(ci)) => {
            // for MAE, lower is better: the claim's direction is the sign of the paper's delta
            Some(Verdict::of(d, ci))
        }
        (None, _) => {
            note.get_or_insert_with(|| {
                if variant.is_ablation() {
                    "the paper's ablation (Table 5) is MIM on MOSEI only".into()
                } else {
                    "the paper reports no value for this row".into()
                }
            });
            None
        }
        _ => None,
    };
    Claim {
        model: kind.name().into(),
        variant: variant.name().into(),
        metric,
        paper_delta,
        measured,
        verdict,
        note,
        survives_holm: None,
        seeds_needed: match (measured.and_then(|m| m.sd), paper_delta) {
            (Some(sd), Some(d)) => super::stats::seeds_for_power(sd, d, 0.8, SEEDS_CAP),
            _ => None,
        },
        p_improve,
    }
}

/// The text-only control of every model that ran both NLL and [`Variant::NllTextOnly`]: the
/// multimodal − text-only delta (NLL with every modality minus NLL with audio and vision zeroed at
/// training and test) on the table's metrics, paired by seed like the claims. Not a paper claim
/// (no verdict, outside Holm's family): it says whether audio and vision carry anything the
/// model uses on this tier. The interval says "multimodal better" when it excludes 0 on the good
/// side of the metric (above for Acc2/accuracy, below for MAE).
pub(crate) fn text_only_controls(selected: &[Selected], labels: Labels<'_>) -> Vec<Claim> {
    let binary = selected
        .iter()
        .any(|s| s.result.selection == crate::train::Selection::Accuracy);
    let metrics: &[ClaimMetric] = if binary {
        &[ClaimMetric::Accuracy]
    } else {
        &[ClaimMetric::Acc2, ClaimMetric::Mae]
    };
    let mut out = Vec::new();
    for &kind in ModelKind::ALL {
        let of = |v: Variant| -> Vec<&Selected> {
            selected
                .iter()
                .filter(|s| s.model == kind && s.variant == v)
                .collect()
        };
        let (text_only, multimodal) = (of(Variant::NllTextOnly), of(Variant::Nll));
        if text_only.is_empty() || multimodal.is_empty() {
            continue;
        }
        for &metric in metrics {
            let mut c = claim(
                kind,
                Variant::Nll,
                metric,
                &text_only,
                &multimodal,
                None,
                labels,
            );
            c.variant = "NLL − NLL text-only".into();
            if c.measured.is_some() {
                c.note = None;
            }
            out.push(c);
        }
    }
    out
}

/// How a control's interval reads: which side of 0 it excludes, for a metric.
pub(crate) fn control_reading(c: &Claim) -> &'static str {
    let Some(m) = c.measured else {
        return "—";
    };
    let better = if c.metric == ClaimMetric::Mae {
        m.hi < 0.0
    } else {
        m.lo > 0.0
    };
    let worse = if c.metric == ClaimMetric::Mae {
        m.lo > 0.0
    } else {
        m.hi < 0.0
    };
    match (better, worse) {
        (true, _) => "multimodal better",
        (_, true) => "text-only better",
        _ => "no difference shown",
    }
}

/// The text-only controls as a markdown section (empty without any).
pub(crate) fn controls_markdown(controls: &[Claim]) -> String {
    if controls.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = controls
        .iter()
        .map(|c| {
            let digits = if c.metric == ClaimMetric::Mae { 3 } else { 1 };
            vec![
                c.model.clone(),
                c.metric.name().into(),
                c.measured.map_or_else(
                    || c.note.clone().unwrap_or_else(|| "—".into()),
                    |m| {
                        format!(
                            "{:+.*} [{:+.*}, {:+.*}] ({}, n = {}, {})",
                            digits,
                            m.mean,
                            digits,
                            m.lo,
                            digits,
                            m.hi,
                            m.method,
                            m.n,
                            super::stats::p_text(m.p)
                        )
                    },
                ),
                control_reading(c).into(),
            ]
        })
        .collect();
    let mut s = String::from(
        "Text-only control (NLL − NLL text-only: the same model and protocol with audio and vision \
         zeroed at training, validation and test; paired by seed; not a paper claim):\n\n",
    );
    s += &super::markdown_table(
        &[
            "Model",
            "Metric",
            "multimodal − text-only [95 % CI]",
            "reading",
        ],
        &rows,
    );
    s += "\n";
    s
}

/// The claims as a markdown table with a summary line counting verdicts.
pub fn markdown(claims: &[Claim], tier: &str) -> String {
    if claims.is_empty() {
        return String::new();
    }
    // the probability-of-improvement column only where some claim has one (several seeds)
    let with_p = claims.iter().any(|c| c.p_improve.is_some());
    let rows: Vec<Vec<String>> = claims
        .iter()
        .map(|c| {
            let digits = if c.metric == ClaimMetric::Mae { 3 } else { 1 };
            let mut row = vec![
                c.model.clone(),
                c.variant.clone(),
                c.metric.name().into(),
                c.paper_delta
                    .map_or("—".into(), |d| format!("{d:+.*}", digits.min(2))),
                c.measured.map_or("—".into(), |m| {
                    format!(
                        "{:+.*} [{:+.*}, {:+.*}] ({}, n = {}, {})",
                        digits,
                        m.mean,
                        digits,
                        m.lo,
                        digits,
                        m.hi,
                        m.method,
                        m.n,
                        super::stats::p_text(m.p)
                    )
                }),
                super::stats::verdict_cell(c.verdict, c.note.as_deref(), c.survives_holm, tier),
                seeds_cell(c),
            ];
            if with_p {
                row.insert(
                    5,
                    c.p_improve
                        .as_ref()
                        .map_or("—".into(), super::improvement::cell),
                );
            }
            row
        })
        .collect();
    let count = |v: Verdict| claims.iter().filter(|c| c.verdict == Some(v)).count();
    let mut s = String::from(
        "Claims (variant − NLL; paired by seed: 95 % t-interval over seeds, or a paired bootstrap over test clips for one seed):\n\n",
    );
    let mut header = vec![
        "Model",
        "Variant",
        "Metric",
        "paper Δ",
        "measured Δ [95 % CI]",
        "verdict",
        "seeds needed",
    ];
    if with_p {
        header.insert(5, "P(variant better) [95 % CI]");
    }
    s += &super::markdown_table(&header, &rows);
    if with_p {
        s += "\n*P(variant better)*: the fraction of seeds on which the variant beats NLL on the \
              metric (lower MAE, higher Acc2/accuracy; a tie counts ½), over the seed pairs of the \
              Δ, with a 95 % percentile bootstrap interval over the pairs (Agarwal et al. 2021; \
              fixed resampling seed; a percentile bootstrap stays within the observed range, so \
              when every seed goes one way the interval collapses to 0 or 1).\n";
    }
    if claims.iter().any(|c| seeds_cell(c) != "—") {
        s += "\n*Seeds needed*: how many seeds a paired t-test (5 %, two-sided) would need to detect the \
              paper's Δ with 80 % power at the seed-to-seed spread measured here (t approximation; \
              fewer than the seeds run means the paper's Δ, were it true, would most likely have \
              shown; the spread is itself estimated from few seeds, so read it to a factor of \
              about 3).\n";
    }
    s += &format!(
        "\nVerdicts ({tier} tier): {} supported, {} contradicted, {} inconclusive, {} without a verdict.\n\n",
        count(Verdict::Supported),
        count(Verdict::Contradicted),
        count(Verdict::Inconclusive),
        claims.iter().filter(|c| c.verdict.is_none()).count()
    );
    let family: Vec<(Verdict, f64)> = claims.iter().filter_map(holm_member).collect();
    if !family.is_empty() {
        s += &super::stats::holm_summary(&family);
        s += "\n\n";
    }
    s
}

/// A forest plot: one line per claim, the measured delta with its interval (dot and bar) and the
/// paper's delta (cross), a vertical line at 0; one panel per metric ([`super::forest`]).
pub(crate) fn forest_plot(path: &Path, title: &str, claims: &[Claim]) -> Result<(), PlotError> {
    let metrics: &[ClaimMetric] = if claims.iter().any(|c| c.metric == ClaimMetric::Accuracy) {
        &[ClaimMetric::Accuracy]
    } else {
        &[ClaimMetric::Acc2, ClaimMetric::Mae]
    };
    let panels: Vec<Panel> = metrics
        .iter()
        .map(|m| Panel {
            caption: format!(
                "{} (variant − NLL): ● measured 95% CI, ✕ paper; (Holm): survives Holm",
                m.name()
            ),
            lines: claims
                .iter()
                .filter(|c| c.metric == *m)
                .map(|c| {
                    Line::comparison(
                        &c.model,
                        &c.variant,
                        if c.survives_holm == Some(true) {
                            " (Holm)"
                        } else {
                            ""
                        },
                        c.measured,
                        c.paper_delta,
                        Tone::of(c.verdict),
                    )
                })
                .collect(),
        })
        .collect();
    super::forest::plot(path, title, &panels)
}
