//! Graded robustness curves in the report (issue 27 §3): each selected run's curves
//! ([`crate::train::robustness`]: the headline test score with one modality under Gaussian noise or
//! dropped time steps at levels 0, 0.1, …, 0.9), averaged over seeds per (model, variant,
//! modality, corruption), their normalised areas, and the synergy variants' area minus NLL's,
//! paired by seed (95 % t-interval over ≥ 2 seeds; one seed gives the difference without an
//! interval: the curves keep metrics, not predictions, so there is nothing to bootstrap over).
//!
//! Readings, as for the per-subset deltas: "more robust" when the interval excludes 0 upwards,
//! "less robust" when it excludes 0 downwards, "unclear" otherwise. Folders whose records predate
//! the curves have none and get no section.

use super::error::PlotError;
use super::stats::{paired_t_interval, Interval, Verdict};
use crate::experiments::Selected;
use crate::models::ModelKind;
use crate::train::robustness::{Corruption, RobustnessCurve, MODALITY_NAMES, ROBUSTNESS_LEVELS};
use crate::train::Variant;
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;

/// One (model, variant, modality, corruption): the seed-mean curve and area.
#[derive(Debug, Clone, Serialize)]
pub struct RobustnessRow {
    pub model: String,
    pub variant: String,
    pub modality: String,
    pub corruption: Corruption,
    /// `"Acc2"` (regression: without zero labels) or `"accuracy"` (binary), in percent.
    pub metric: &'static str,
    pub seeds: usize,
    pub levels: Vec<f64>,
    /// The mean over seeds of the score at each level.
    pub scores: Vec<f64>,
    /// The mean over seeds of the normalised area, and its sd over seeds (≥ 2 seeds).
    pub area: f64,
    pub area_sd: Option<f64>,
}

/// A synergy variant's area minus NLL's, paired by seed.
#[derive(Debug, Clone, Serialize)]
pub struct RobustnessDelta {
    pub model: String,
    pub variant: String,
    pub modality: String,
    pub corruption: Corruption,
    /// Seeds with both curves.
    pub pairs: usize,
    /// Mean of the per-seed differences of the areas (percentage points).
    pub delta: f64,
    /// The 95 % paired t-interval (≥ 2 pairs).
    pub interval: Option<Interval>,
    /// `"more robust"`, `"less robust"` or `"unclear"` (with an interval).
    pub reading: Option<&'static str>,
}

fn curve<'a>(s: &'a Selected, modality: &str, c: Corruption) -> Option<&'a RobustnessCurve> {
    s.result
        .robustness
        .iter()
        .find(|r| r.modality == modality && r.corruption == c)
}

/// The rows and paired deltas of the selected runs (empty when no run has curves).
pub fn robustness(selected: &[Selected]) -> (Vec<RobustnessRow>, Vec<RobustnessDelta>) {
    let mut rows = Vec::new();
    let mut deltas = Vec::new();
    if selected.iter().all(|s| s.result.robustness.is_empty()) {
        return (rows, deltas);
    }
    for &kind in ModelKind::ALL {
        for modality in MODALITY_NAMES {
            for c in Corruption::ALL {
                // (seed, scores, area) of every selected run of a variant with this curve
                let of = |v: Variant| -> Vec<(u64, Vec<f64>, f64)> {
                    selected
                        .iter()
                        .filter(|s| s.model == kind && s.variant == v)
                        .filter_map(|s| {
                            let cv = curve(s, modality, c)?;
                            Some((s.seed, cv.scores(), cv.area()?))
                        })
                        .collect()
                };
                let base = of(Variant::Nll);
                for v in Variant::TABLE_ORDER {
                    let runs = of(v);
                    if runs.is_empty() {
                        continue;
                    }
                    let k = runs[0].1.len();
                    if runs.iter().any(|r| r.1.len() != k) {
                        continue; // curves of different lengths do not average
                    }
                    let n = runs.len() as f64;
                    let scores: Vec<f64> = (0..k)
                        .map(|i| runs.iter().map(|r| r.1[i]).sum::<f64>() / n)
                        .collect();
                    let area = runs.iter().map(|r| r.2).sum::<f64>() / n;
                    let area_sd = (runs.len() >= 2).then(|| {
                        (runs.iter().map(|r| (r.2 - area).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
                    });
                    let levels = selected
                        .iter()
                        .filter(|s| s.model == kind && s.variant == v)
                        .find_map(|s| curve(s, modality, c))
                        .map_or_else(|| ROBUSTNESS_LEVELS.to_vec(), |cv| cv.levels.clone());
                    rows.push(RobustnessRow {
                        model: kind.name().into(),
                        variant: v.name().into(),
                        modality: modality.into(),
                        corruption: c,
                        metric: metric_name(selected),
                        seeds: runs.len(),
                        levels,
                        scores,
                        area,
                        area_sd,
                    });
                    if v == Variant::Nll || v.is_control() {
                        continue;
                    }
                    let diffs: Vec<f64> = runs
                        .iter()
                        .filter_map(|(seed, _, a)| {
                            base.iter().find(|b| b.0 == *seed).map(|b| a - b.2)
                        })
                        .collect();
                    if diffs.is_empty() {
                        continue;
                    }
                    let interval = paired_t_interval(&diffs, 0.95);
                    let reading = interval.map(|i| match Verdict::of(1.0, &i) {
                        Verdict::Supported => "more robust",
                        Verdict::Contradicted => "less robust",
                        Verdict::Inconclusive => "unclear",
                    });
                    deltas.push(RobustnessDelta {
                        model: kind.name().into(),
                        variant: v.name().into(),
                        modality: modality.into(),
                        corruption: c,
                        pairs: diffs.len(),
                        delta: diffs.iter().sum::<f64>() / diffs.len() as f64,
                        interval,
                        reading,
                    });
                }
            }
        }
    }
    (rows, deltas)
}

fn metric_name(selected: &[Selected]) -> &'static str {
    let binary = selected
        .iter()
        .filter_map(|s| s.result.test.as_ref())
        .any(|t| t.binary().is_some());
    if binary {
        "accuracy"
    } else {
        "Acc2"
    }
}

/// The markdown section (empty when there are no rows).
pub fn markdown(rows: &[RobustnessRow], deltas: &[RobustnessDelta]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let metric = first.metric;
    let mut s = String::from("## Graded robustness: one modality noisy or with dropped steps\n\n");
    s += &format!(
        "The selected checkpoint of every run on the test split with one modality corrupted at \
         levels 0, 0.1, …, 0.9: **noise** adds Gaussian noise of level × each feature's training \
         sd; **drop** zeroes each valid time step with probability level (same draws for every \
         variant of a seed). Scores are test {metric} (%), means over seeds; the area is the \
         curve's mean height (trapezoid over the levels ÷ their range). A modality a variant \
         zeroes anyway, and the text of a model reading BERT word-pieces, have no curve.\n\n"
    );
    s += &format!(
        "| Model | Variant | Modality | Corruption | Seeds | {metric} at 0 | at 0.3 | at 0.6 | at 0.9 | Area |\n"
    );
    s += "|---|---|---|---|---|---|---|---|---|---|\n";
    for r in rows {
        let at = |level: f64| -> String {
            r.levels
                .iter()
                .position(|l| (l - level).abs() < 1e-9)
                .and_then(|i| r.scores.get(i))
                .map_or("—".into(), |v| format!("{v:.1}"))
        };
        let area = match r.area_sd {
            Some(sd) => format!("{:.1} ± {sd:.1}", r.area),
            None => format!("{:.1}", r.area),
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {area} |\n",
            r.model,
            r.variant,
            r.modality,
            r.corruption.name(),
            r.seeds,
            at(0.0),
            at(0.3),
            at(0.6),
            at(0.9)
        );
    }
    if !deltas.is_empty() {
        s += "\nArea of each synergy variant minus NLL's (percentage points), paired by seed: \
              \"more robust\" / \"less robust\" when the 95 % t-interval excludes 0, \"unclear\" \
              otherwise; one seed gives the difference alone.\n\n";
        s += "| Model | Variant | Modality | Corruption | Seeds | Δ area | 95 % CI | Reading |\n";
        s += "|---|---|---|---|---|---|---|---|\n";
        for d in deltas {
            let (ci, reading) = match (&d.interval, d.reading) {
                (Some(i), Some(r)) => (format!("[{:+.2}, {:+.2}]", i.lo, i.hi), r),
                _ => ("— (one seed)".to_string(), "—"),
            };
            s += &format!(
                "| {} | {} | {} | {} | {} | {:+.2} | {ci} | {reading} |\n",
                d.model,
                d.variant,
                d.modality,
                d.corruption.name(),
                d.pairs,
                d.delta
            );
        }
    }
    s += "\n";
    s
}

/// The curves as a PNG: per model a row of panels, one per (modality, corruption) that has
/// curves, one line per variant (the seed mean).
pub fn plot(path: &Path, title: &str, rows: &[RobustnessRow]) -> Result<(), PlotError> {
    if rows.is_empty() {
        return Err(PlotError::Empty(
            "a robustness plot needs at least one curve",
        ));
    }
    let mut models: Vec<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    models.dedup();
    let mut panels: Vec<(&str, Corruption)> = Vec::new();
    for m in MODALITY_NAMES {
        for c in Corruption::ALL {
            if rows.iter().any(|r| r.modality == m && r.corruption == c) {
                panels.push((m, c));
            }
        }
    }
    let width = 300 * panels.len() as u32 + 40;
    let root = BitMapBackend::new(path, (width.max(700), 300 * models.len() as u32 + 50))
        .into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let areas = root.split_evenly((models.len(), panels.len()));
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
    let metric = rows[0].metric;
    for (i, model) in models.iter().enumerate() {
        for (j, (modality, c)) in panels.iter().enumerate() {
            let area = &areas[i * panels.len() + j];
            let mine: Vec<&RobustnessRow> = rows
                .iter()
                .filter(|r| r.model == *model && r.modality == *modality && r.corruption == *c)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for r in &mine {
                for v in &r.scores {
                    lo = lo.min(*v);
                    hi = hi.max(*v);
                }
            }
            if !(lo.is_finite() && hi.is_finite()) {
                continue;
            }
            let pad = ((hi - lo) * 0.08).max(0.5);
            let mut chart = ChartBuilder::on(area)
                .margin(8)
                .caption(
                    format!("{model}: {modality}, {}", c.name()),
                    ("sans-serif", 14),
                )
                .x_label_area_size(28)
                .y_label_area_size(45)
                .build_cartesian_2d(-0.02..0.92, (lo - pad)..(hi + pad))?;
            chart
                .configure_mesh()
                .x_desc("level")
                .y_desc(metric)
                .light_line_style(WHITE)
                .draw()?;
            for (k, r) in mine.iter().enumerate() {
                let colour = colours[k % colours.len()];
                chart
                    .draw_series(LineSeries::new(
                        r.levels.iter().copied().zip(r.scores.iter().copied()),
                        colour.stroke_width(2),
                    ))?
                    .label(r.variant.clone())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}
