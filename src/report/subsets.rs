//! Measuring synergy where it is needed. The paper's title claims the regulariser captures
//! *synergy*, information only the modalities together carry, but it reports only whole-test-set
//! metrics. On the synthetic tiers the harness knows which test clips need two modalities (MOSI- and
//! MOSEI-shaped data: the sarcastic clips, whose sign needs the words and the audio/vision cue) and
//! which do not ([`crate::data::TestSubset`]); this module recomputes each selected run's metrics on
//! each subset from its saved test predictions and asks, with the same paired statistics as the
//! claims ([`super::stats`]), whether a synergy variant beats NLL **on the clips that need synergy**.
//!
//! These are readings of our own question, not the paper's claims: "helps" means the 95 % interval
//! of (variant − NLL) excludes 0 in the better direction (Acc2 up, MAE down), "hurts" the opposite,
//! "unclear" otherwise.

use super::claims::ClaimMetric;
use super::stats::{paired_bootstrap, paired_t_interval, Interval, Verdict};
use crate::data::TestSubset;
use crate::experiments::Selected;
use crate::models::ModelKind;
use crate::train::Variant;
use serde::Serialize;

/// One (model, variant, subset, metric) cell: the mean over seeds and, for synergy variants, the
/// paired delta against NLL with its reading.
#[derive(Debug, Clone, Serialize)]
pub struct SubsetCell {
    pub model: String,
    pub variant: String,
    pub subset: String,
    /// Clips in the subset.
    pub clips: usize,
    pub metric: ClaimMetric,
    /// Mean over the seeds with saved predictions.
    pub value: Option<f64>,
    pub seeds: usize,
    /// Variant − NLL on the subset (None for NLL itself).
    pub delta: Option<Interval>,
    /// "helps", "hurts" or "unclear" (None for NLL or without an interval).
    pub reading: Option<&'static str>,
}

fn pick(v: &[f64], members: &[bool]) -> Vec<f64> {
    v.iter()
        .zip(members)
        .filter(|(_, m)| **m)
        .map(|(x, _)| *x)
        .collect()
}

/// Per-subset metrics and NLL-paired deltas of the selected regression runs. `labels` are the test
/// labels in prediction order; subsets whose length differs from them are skipped.
pub(crate) fn subset_cells(
    selected: &[Selected],
    labels: &[f64],
    subsets: &[TestSubset],
) -> Vec<SubsetCell> {
    let mut out = Vec::new();
    for sub in subsets.iter().filter(|s| s.members.len() == labels.len()) {
        let lab = pick(labels, &sub.members);
        let clips = lab.len();
        if clips == 0 {
            continue;
        }
        for &kind in ModelKind::ALL {
            let of = |v: Variant| -> Vec<(u64, Vec<f64>)> {
                selected
                    .iter()
                    .filter(|s| s.model == kind && s.variant == v)
                    .filter_map(|s| {
                        let p = s.result.test_predictions_f64()?;
                        (p.len() == labels.len()).then(|| (s.seed, pick(&p, &sub.members)))
                    })
                    .collect()
            };
            let base = of(Variant::Nll);
            for v in Variant::TABLE_ORDER {
                let runs = of(v);
                if runs.is_empty() {
                    continue;
                }
                for metric in [ClaimMetric::Acc2, ClaimMetric::Mae] {
                    let vals: Vec<f64> = runs
                        .iter()
                        .filter_map(|(_, p)| metric.compute(p, &lab))
                        .collect();
                    let value =
                        (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64);
                    let pairs: Vec<(&Vec<f64>, &Vec<f64>)> = if v == Variant::Nll {
                        Vec::new()
                    } else {
                        runs.iter()
                            .filter_map(|(seed, p)| {
                                base.iter().find(|(b, _)| b == seed).map(|(_, q)| (p, q))
                            })
                            .collect()
                    };
                    let delta = match pairs.len() {
                        0 => None,
                        1 => paired_bootstrap(
                            pairs[0].0,
                            pairs[0].1,
                            &lab,
                            |a, y| metric.compute(a, y),
                            2000,
                            0.95,
                            0x5B5E7,
                        ),
                        _ => paired_t_interval(
                            &pairs
                                .iter()
                                .filter_map(|(p, q)| {
                                    Some(metric.compute(p, &lab)? - metric.compute(q, &lab)?)
                                })
                                .collect::<Vec<_>>(),
                            0.95,
                        ),
                    };
                    let better = if metric == ClaimMetric::Mae {
                        -1.0
                    } else {
                        1.0
                    };
                    let reading = delta.map(|d| match Verdict::of(better, &d) {
                        Verdict::Supported => "helps",
                        Verdict::Contradicted => "hurts",
                        Verdict::Inconclusive => "unclear",
                    });
                    out.push(SubsetCell {
                        model: kind.name().into(),
                        variant: v.name().into(),
                        subset: sub.name.clone(),
                        clips,
                        metric,
                        value,
                        seeds: vals.len(),
                        delta,
                        reading,
                    });
                }
            }
        }
    }
    out
}

/// The per-subset table as markdown (empty without subsets).
pub(crate) fn markdown(cells: &[SubsetCell], subsets: &[TestSubset]) -> String {
    if cells.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "### Where synergy is needed: metrics per test subset\n\n\
         The generator knows which test clips need two modalities. Each selected run's saved test \
         predictions are scored on each subset; Δ is variant − NLL on that subset, paired by seed \
         (95 % t-interval over seeds, or a paired bootstrap over the subset's clips for one seed). \
         \"helps\": the interval excludes 0 in the better direction (Acc2 up, MAE down).\n\n",
    );
    for sub in subsets {
        s += &format!("- **{}**: {}\n", sub.name, sub.why);
    }
    s += "\n";
    let rows: Vec<Vec<String>> = cells
        .iter()
        .map(|c| {
            let digits = if c.metric == ClaimMetric::Mae { 3 } else { 1 };
            vec![
                c.model.clone(),
                c.variant.clone(),
                format!("{} ({} clips)", c.subset, c.clips),
                c.metric.name().into(),
                c.value
                    .map_or("—".into(), |v| format!("{v:.digits$} (n = {})", c.seeds)),
                c.delta
                    .map_or(if c.variant == "NLL" { "" } else { "—" }.into(), |d| {
                        format!(
                            "{:+.*} [{:+.*}, {:+.*}] ({})",
                            digits, d.mean, digits, d.lo, digits, d.hi, d.method
                        )
                    }),
                c.reading.unwrap_or("").into(),
            ]
        })
        .collect();
    s += &super::markdown_table(
        &[
            "Model",
            "Variant",
            "subset",
            "metric",
            "value",
            "Δ vs NLL [95 % CI]",
            "reading",
        ],
        &rows,
    );
    s + "\n"
}

/// The per-subset forest plot: one panel per metric, one line per (model, synergy variant, subset)
/// — the delta against NLL on that subset with its interval, green where it "helps", red where it
/// "hurts" ([`super::forest`]; there is no paper value: the paper reports no subsets).
pub(crate) fn forest_plot(
    path: &std::path::Path,
    title: &str,
    cells: &[SubsetCell],
) -> Result<(), super::PlotError> {
    use super::forest::{Line, Panel, Tone};
    let panels: Vec<Panel> = [ClaimMetric::Acc2, ClaimMetric::Mae]
        .iter()
        .map(|m| Panel {
            caption: format!("{} on each subset (variant − NLL)", m.name()),
            lines: cells
                .iter()
                .filter(|c| c.metric == *m && c.delta.is_some())
                .map(|c| {
                    let tone = match c.reading {
                        Some("helps") => Tone::Good,
                        Some("hurts") => Tone::Bad,
                        _ => Tone::Neutral,
                    };
                    let subset = format!(" · {}", c.subset);
                    Line::comparison(&c.model, &c.variant, &subset, c.delta, None, tone)
                })
                .collect(),
        })
        .collect();
    super::forest::plot(path, title, &panels)
}
