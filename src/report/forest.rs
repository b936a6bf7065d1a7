//! Forest plots: one line per comparison — the measured delta as a dot with its interval as a bar,
//! the paper's delta as a cross where there is one, a vertical line at 0 — in panels side by side
//! (one per metric or condition). The claims of Tables 2/3/5/6, Table 4's corruption claims and the
//! per-subset readings all draw through [`plot`], so they read the same way.

use super::error::PlotError;
use super::stats::{Interval, Verdict};
use plotters::prelude::*;
use std::path::Path;

/// How a line is coloured: the reading of its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    /// The interval excludes 0 on the expected (paper's or better) side: green.
    Good,
    /// The interval excludes 0 on the other side: red.
    Bad,
    /// Neither, or no reading: blue.
    Neutral,
}

impl Tone {
    /// The tone of a verdict (`None`: neutral).
    pub(crate) fn of(v: Option<Verdict>) -> Tone {
        match v {
            Some(Verdict::Supported) => Tone::Good,
            Some(Verdict::Contradicted) => Tone::Bad,
            _ => Tone::Neutral,
        }
    }

    fn colour(self) -> RGBColor {
        match self {
            Tone::Good => GREEN,
            Tone::Bad => RED,
            Tone::Neutral => BLUE,
        }
    }
}

/// One line of a panel.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub label: String,
    pub measured: Option<Interval>,
    pub paper: Option<f64>,
    pub tone: Tone,
}

impl Line {
    /// The line of `model variant` (plus `suffix`, e.g. a subset) with its measured interval, the
    /// paper's delta and tone.
    pub(crate) fn comparison(
        model: &str,
        variant: &str,
        suffix: &str,
        measured: Option<Interval>,
        paper: Option<f64>,
        tone: Tone,
    ) -> Line {
        Line {
            label: format!("{model} {variant}{suffix}"),
            measured,
            paper,
            tone,
        }
    }
}

/// One panel: a caption (metric, condition) and its lines, top to bottom.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    pub caption: String,
    pub lines: Vec<Line>,
}

/// Pixel size of a plot of `panels`: 520 px per non-empty panel (at least 1000) wide, 120 + 40 px
/// per line of the longest panel high.
pub(crate) fn size(panels: &[Panel]) -> (u32, u32) {
    let drawn = panels.iter().filter(|p| !p.lines.is_empty()).count() as u32;
    let lines = panels
        .iter()
        .map(|p| p.lines.len())
        .max()
        .unwrap_or(0)
        .max(1);
    ((520 * drawn).max(1000), 120 + 40 * lines as u32)
}

/// Writes the forest plot of `panels` (empty panels are skipped) as a PNG at `path`.
pub(crate) fn plot(path: &Path, title: &str, panels: &[Panel]) -> Result<(), PlotError> {
    let dims = size(panels);
    let panels: Vec<&Panel> = panels.iter().filter(|p| !p.lines.is_empty()).collect();
    if panels.is_empty() {
        return Err(PlotError::Empty("a forest plot needs at least one line"));
    }
    let root = BitMapBackend::new(path, dims).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let areas = root.split_evenly((1, panels.len()));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let mut lo: f64 = 0.0;
        let mut hi: f64 = 0.0;
        for l in &panel.lines {
            for x in l
                .measured
                .iter()
                .flat_map(|m| [m.lo, m.hi])
                .chain(l.paper)
                .filter(|x| x.is_finite())
            {
                lo = lo.min(x);
                hi = hi.max(x);
            }
        }
        let pad = ((hi - lo) * 0.1).max(1e-3);
        let n = panel.lines.len();
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .caption(&panel.caption, ("sans-serif", 15))
            .x_label_area_size(30)
            .y_label_area_size(10)
            .build_cartesian_2d((lo - pad)..(hi + pad), 0.0..n as f64)?;
        chart.configure_mesh().disable_y_mesh().y_labels(0).draw()?;
        chart.draw_series(LineSeries::new(
            [(0.0, 0.0), (0.0, n as f64)],
            BLACK.mix(0.6),
        ))?;
        for (i, l) in panel.lines.iter().enumerate() {
            let y = (n - i) as f64 - 0.5;
            chart.draw_series([Text::new(
                l.label.clone(),
                (lo - pad * 0.9, y + 0.42),
                ("sans-serif", 12),
            )])?;
            if let Some(m) = l.measured.filter(|m| m.lo.is_finite() && m.hi.is_finite()) {
                let colour = l.tone.colour();
                chart.draw_series(LineSeries::new(
                    [(m.lo, y), (m.hi, y)],
                    colour.stroke_width(2),
                ))?;
                chart.draw_series([Circle::new((m.mean, y), 4, colour.filled())])?;
            }
            if let Some(d) = l.paper.filter(|d| d.is_finite()) {
                chart.draw_series([Cross::new((d, y), 5, BLACK.stroke_width(2))])?;
            }
        }
    }
    root.present()?;
    Ok(())
}
