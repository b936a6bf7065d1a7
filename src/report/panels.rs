//! Loss curves: a moving average for readable curves ([`smooth`]) and a PNG of one panel per
//! series ([`plot_panels`]; `synergy train`'s plot of the synergy losses).

use super::error::PlotError;
use plotters::prelude::*;
use std::path::Path;

/// Moving average over a centred window of `w` points (NaNs skipped), for readable loss curves.
pub fn smooth(v: &[f64], w: usize) -> Vec<f64> {
    let h = w / 2;
    (0..v.len())
        .map(|i| {
            let lo = i.saturating_sub(h);
            let hi = (i + h + 1).min(v.len());
            let vals: Vec<f64> = v[lo..hi]
                .iter()
                .cloned()
                .filter(|x| x.is_finite())
                .collect();
            if vals.is_empty() {
                f64::NAN
            } else {
                vals.iter().sum::<f64>() / vals.len() as f64
            }
        })
        .collect()
}

/// Line plot of several series against the step index, one panel per series (their scales
/// differ), written as PNG.
pub fn plot_panels(path: &Path, title: &str, series: &[(&str, Vec<f64>)]) -> Result<(), PlotError> {
    let rows = series.len().max(1);
    let root = BitMapBackend::new(path, (900, 220 * rows as u32 + 40)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let panels = root.split_evenly((rows, 1));
    let colours = [BLUE, RED, GREEN, MAGENTA, BLACK, CYAN];
    for (i, ((name, ys), area)) in series.iter().zip(panels.iter()).enumerate() {
        let finite: Vec<f64> = ys.iter().cloned().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            continue;
        }
        let lo = finite.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.05).max(1e-9);
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .caption(*name, ("sans-serif", 16))
            .build_cartesian_2d(0..ys.len(), (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .light_line_style(WHITE)
            .draw()?;
        let c = colours[i % colours.len()];
        chart.draw_series(LineSeries::new(
            ys.iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(x, y)| (x, *y)),
            &c,
        ))?;
    }
    root.present()?;
    Ok(())
}
