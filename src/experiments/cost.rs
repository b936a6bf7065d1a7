//! The cost of a plan before running it (`reproduce-paper --plan`): runs per model and variant,
//! times the epoch cap, times seconds per epoch — over the runs not yet in the output folder (a
//! resume skips the finished ones; the plan counts them apart).
//!
//! Seconds per epoch (one pass over the training split plus the validation pass, one thread) come
//! from, in order: finished runs of the same data in the output folder's results files (measured
//! on the user's machine: the same model and variant, else the same model's other variants), else
//! the table [`MOSI_EPOCH_S`] measured here at MOSI's shapes, scaled
//! linearly by the number of training clips (widths and sequence lengths are ignored, so the
//! scaling is rough for MOSEI's wider audio and vision). Projections use the epoch cap: early
//! stopping (patience 8) ends most runs sooner, so they are upper bounds.
//!
//! Runs are costed per device: the CPU column uses only finished CPU runs (a GPU run's seconds
//! would understate a CPU plan), the GPU column only finished runs that trained on a GPU
//! (`"device": "cuda:N"` in the results file). There is no embedded GPU table — nothing has been
//! measured on a GPU here — so the GPU column is empty until GPU runs of the same data are in
//! the output folder.

use super::RunRecord;
use crate::train::{RunConfig, Variant};
use serde::Serialize;

/// Training clips of MOSI (and of the MOSI-shaped synthetic tier) that [`MOSI_EPOCH_S`] was
/// measured on.
pub const MOSI_TRAIN_CLIPS: usize = crate::data::mosi_facts::SPLITS[0];

/// `(model, NLL s/epoch, synergy s/epoch)` at MOSI's shapes (1,284 training and 229 validation
/// clips, 50 steps, widths 300/74/35, batch 32), one thread per run: the wall time of a one-epoch
/// run, which includes validation and the four test passes (clean and Table 4's three
/// corruptions), so it over-counts later epochs. Measured 2026-11-29 on this project's 2-core
/// machine (nothing else running, one run each, commit 1894ba8, 81 s for all 15) with
/// `reproduce-paper --profile quick --models flstm,tfn,lmf,mfn,misa --variants
/// nll,nll-skl,nll-smmd --max-epochs 1 --jobs 1 --out DIR`, read back with `--plan --json --out
/// DIR` (docs/src/cost-plan.md); the synergy column is the mean of NLL+SKL and NLL+SMMD. The
/// previous table (2026-11-28, partly on a loaded machine) had FLSTM 3.0/4.3, TFN 10.6/10.6, LMF
/// 2.4/2.8, MFN 7.9/9.1, MISA 12.3/13.2.
pub const MOSI_EPOCH_S: &[(&str, f64, f64)] = &[
    ("FLSTM", 2.2, 2.2),
    ("TFN", 5.8, 5.8),
    ("LMF", 1.5, 1.7),
    ("MFN", 6.0, 6.2),
    ("MISA", 10.4, 11.0),
];

/// One line of the cost plan.
#[derive(Debug, Clone, Serialize)]
pub struct CostLine {
    pub model: String,
    pub variant: String,
    pub runs: usize,
    /// How many of `runs` are already in the output folder's results files (a resume skips
    /// them; they are not in the hours).
    pub finished: usize,
    /// Largest epoch cap among the runs.
    pub epoch_cap: usize,
    /// Seconds per epoch used for the projection (`None`: no measurement for this model).
    pub epoch_s: Option<f64>,
    /// Where `epoch_s` comes from: `"measured in OUT"` or `"embedded (MOSI shapes, scaled)"`.
    pub source: String,
    /// Σ over the runs not yet finished of epoch cap × seconds per epoch, in hours of one thread.
    pub cpu_hours: Option<f64>,
    /// Seconds per epoch on one GPU, from finished GPU runs of the same data (`None`: none).
    pub gpu_epoch_s: Option<f64>,
    /// How many finished GPU runs `gpu_epoch_s` averages.
    pub gpu_runs_measured: usize,
    /// Σ over the runs not yet finished of epoch cap × GPU seconds per epoch, in hours of one GPU.
    pub gpu_hours: Option<f64>,
}

/// A finished run's wall seconds per epoch (`None`: it trained no epoch, or its wall time is not
/// finite). `--plan` and the scoreboard's projected costs both read runs through it.
pub(crate) fn epoch_s(r: &crate::train::RunResult) -> Option<f64> {
    (r.epochs > 0 && r.wall_s.is_finite()).then(|| r.wall_s / r.epochs as f64)
}

/// Wall seconds per epoch of each finished run of `model` × `variant` (any variant of `model`
/// when `variant` is `None`) in `measured` that trained on a GPU (`gpu`) or on the CPU (`!gpu`).
fn epochs_s<'a>(
    measured: &'a [RunRecord],
    model: &'a str,
    variant: Option<Variant>,
    gpu: bool,
) -> impl Iterator<Item = f64> + 'a {
    measured
        .iter()
        .map(|r| &r.result)
        .filter(move |r| {
            r.config.model.kind().name() == model
                && variant.is_none_or(|v| r.config.variant == v)
                && r.device.is_some() == gpu
        })
        .filter_map(epoch_s)
}

/// Mean wall seconds per epoch of the finished runs of `model` × `variant` (any variant of
/// `model` when `variant` is `None`) in `measured` that trained on a GPU (`gpu`) or on the CPU
/// (`!gpu`), and how many there are.
fn measured_epoch_s(
    measured: &[RunRecord],
    model: &str,
    variant: Option<Variant>,
    gpu: bool,
) -> (Option<f64>, usize) {
    let per_epoch: Vec<f64> = epochs_s(measured, model, variant, gpu).collect();
    let mean =
        (!per_epoch.is_empty()).then(|| per_epoch.iter().sum::<f64>() / per_epoch.len() as f64);
    (mean, per_epoch.len())
}

/// CPU seconds per epoch of `model` × `variant` and where they come from, in order: finished
/// runs of the same model and variant in `measured`; finished runs of the same model with other
/// variants (a regulariser's step costs little beside the model's: MOSI_EPOCH_S's two columns
/// differ by at most 13 %); the embedded [`MOSI_EPOCH_S`] scaled by training clips; none.
fn cpu_epoch_s(
    measured: &[RunRecord],
    model: &str,
    variant: Variant,
    train_clips: usize,
) -> (Option<f64>, String) {
    if let (Some(s), n) = measured_epoch_s(measured, model, Some(variant), false) {
        return (Some(s), format!("measured ({n} finished runs)"));
    }
    if let (Some(s), n) = measured_epoch_s(measured, model, None, false) {
        return (
            Some(s),
            format!("measured, other variants of {model} ({n} finished runs)"),
        );
    }
    (
        embedded_epoch_s(model, variant, train_clips),
        "embedded (MOSI shapes, scaled)".to_string(),
    )
}

/// [`MOSI_EPOCH_S`]'s seconds per epoch of `model` × `variant`, scaled by training clips.
fn embedded_epoch_s(model: &str, variant: Variant, train_clips: usize) -> Option<f64> {
    let scale = train_clips as f64 / MOSI_TRAIN_CLIPS as f64;
    MOSI_EPOCH_S
        .iter()
        .find(|(m, _, _)| *m == model)
        .map(|&(_, nll, syn)| scale * if variant.has_regulariser() { syn } else { nll })
}

/// The projected wall seconds of one run of `c` (what `--time-limit` compares with the time
/// left): its epoch cap × the **largest** wall seconds per epoch among the finished runs in
/// `measured` of the same model and variant on the same kind of device (`gpu`), else among the
/// model's other variants, else (CPU only) the embedded [`MOSI_EPOCH_S`] scaled by training
/// clips. The largest, not the mean `--plan` shows: a run that does not fit is lost when the
/// budget ends. `None`: nothing projects it (e.g. a BERT model with no finished run).
pub(crate) fn run_projection(
    c: &RunConfig,
    train_clips: usize,
    measured: &[RunRecord],
    gpu: bool,
) -> Option<f64> {
    let model = c.model.kind().name();
    let slowest = |variant| epochs_s(measured, model, variant, gpu).reduce(f64::max);
    slowest(Some(c.variant))
        .or_else(|| slowest(None))
        .or_else(|| (!gpu).then(|| embedded_epoch_s(model, c.variant, train_clips))?)
        .map(|s| s * c.max_epochs as f64)
}

/// The cost plan of `runs` on a dataset with `train_clips` training clips; `finished[i]`: run `i`
/// is already in the output folder (counted, not costed); `measured` are finished runs of the
/// same data (their wall time per epoch wins over the embedded table).
pub(crate) fn plan_cost<C: std::borrow::Borrow<RunConfig>>(
    runs: &[C],
    finished: &[bool],
    train_clips: usize,
    measured: &[RunRecord],
) -> Vec<CostLine> {
    let runs: Vec<(&RunConfig, bool)> = runs
        .iter()
        .enumerate()
        .map(|(i, c)| (c.borrow(), finished.get(i).copied().unwrap_or(false)))
        .collect();
    let mut keys: Vec<(String, Variant)> = runs
        .iter()
        .map(|(c, _)| (c.model.kind().name().to_string(), c.variant))
        .collect();
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    keys.into_iter()
        .map(|(model, variant)| {
            let mine: Vec<(&RunConfig, bool)> = runs
                .iter()
                .copied()
                .filter(|(c, _)| c.model.kind().name() == model && c.variant == variant)
                .collect();
            let epoch_cap = mine.iter().map(|(c, _)| c.max_epochs).max().unwrap_or(0);
            // the epochs still to train: finished runs cost nothing more
            let epochs: usize = mine
                .iter()
                .filter(|(_, done)| !done)
                .map(|(c, _)| c.max_epochs)
                .sum();
            let (epoch_s, source) = cpu_epoch_s(measured, &model, variant, train_clips);
            let (gpu_epoch_s, gpu_runs_measured) =
                measured_epoch_s(measured, &model, Some(variant), true);
            let hours = |s: Option<f64>| s.map(|s| s * epochs as f64 / 3600.0);
            CostLine {
                model,
                variant: variant.name().to_string(),
                runs: mine.len(),
                finished: mine.iter().filter(|(_, done)| *done).count(),
                epoch_cap,
                epoch_s,
                source,
                cpu_hours: hours(epoch_s),
                gpu_epoch_s,
                gpu_runs_measured,
                gpu_hours: hours(gpu_epoch_s),
            }
        })
        .collect()
}

/// Hours on one GPU summed over the lines measured on a GPU, and how many lines those are;
/// `None` when no line has a GPU measurement.
pub fn gpu_total(lines: &[CostLine]) -> Option<(f64, usize)> {
    let gpu: Vec<f64> = lines.iter().filter_map(|l| l.gpu_hours).collect();
    (!gpu.is_empty()).then(|| (gpu.iter().sum(), gpu.len()))
}

/// The plan as markdown: one line per model × variant, the total, and the wall time with `jobs`
/// runs in parallel.
pub fn markdown(lines: &[CostLine], header: &str, jobs: usize) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.model.clone(),
                l.variant.clone(),
                l.runs.to_string(),
                l.finished.to_string(),
                l.epoch_cap.to_string(),
                l.epoch_s.map_or("—".into(), |s| format!("{s:.1}")),
                l.source.clone(),
                l.cpu_hours.map_or("—".into(), |h| format!("{h:.2}")),
                l.gpu_epoch_s.map_or("—".into(), |s| {
                    format!("{s:.2} ({} runs)", l.gpu_runs_measured)
                }),
                l.gpu_hours.map_or("—".into(), |h| format!("{h:.2}")),
            ]
        })
        .collect();
    let mut md = format!("{header}\n\n");
    md += &crate::markdown::table(
        &[
            "Model",
            "Variant",
            "runs",
            "finished",
            "epoch cap",
            "s / epoch",
            "source",
            "CPU-hours (≤)",
            "GPU s / epoch (measured)",
            "GPU-hours (≤)",
        ],
        &rows,
    );
    let runs: usize = lines.iter().map(|l| l.runs).sum();
    let finished: usize = lines.iter().map(|l| l.finished).sum();
    let left = if finished == 0 {
        String::new()
    } else {
        format!(
            " for the {} not yet in --out ({finished} finished)",
            runs - finished
        )
    };
    // `+ 0.0`: an empty f64 sum is −0.0, which would print as "-0.0"
    let hours: f64 = lines.iter().filter_map(|l| l.cpu_hours).sum::<f64>() + 0.0;
    let unknown = lines.iter().filter(|l| l.cpu_hours.is_none()).count();
    md += &if unknown == lines.len() {
        format!(
            "\nTotal: {runs} runs; no line has a per-epoch time, so there is no CPU projection \
             (train one seed into the same --out, e.g. `--seeds 0`, and plan again).\n"
        )
    } else {
        format!(
            "\nTotal: {runs} runs, ≤ {hours:.1} hours of one thread{left}; with --jobs {jobs} on a machine \
             with ≥ {jobs} cores: ≤ {:.1} h wall (split over N such nodes with --shard K/N: divide by \
             N). Upper bounds: every run is costed at its epoch cap, early stopping ends most \
             sooner.\n",
            hours / jobs.max(1) as f64
        )
    };
    md += &match gpu_total(lines) {
        None => "GPU: no run of this data has trained on a GPU in this folder, so there is no GPU \
                 projection (train some with `--device cuda` into the same --out, e.g. one seed, \
                 and plan again).\n"
            .to_string(),
        Some((hours, measured)) => format!(
            "GPU: ≤ {hours:.1} h on one GPU for the {measured} of {} lines measured on a GPU (one \
             run at a time).\n",
            lines.len()
        ),
    };
    if unknown > 0 {
        md += &format!("{unknown} lines have no per-epoch time (—) and are not in the total.\n");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(cpu_hours: Option<f64>) -> CostLine {
        CostLine {
            model: "MIM".into(),
            variant: "NLL".into(),
            runs: 5,
            finished: 0,
            epoch_cap: 10,
            epoch_s: cpu_hours.map(|h| h * 3600.0 / 50.0),
            source: "test".into(),
            cpu_hours,
            gpu_epoch_s: None,
            gpu_runs_measured: 0,
            gpu_hours: None,
        }
    }

    #[test]
    fn a_plan_without_any_time_says_so_instead_of_a_negative_zero() {
        let md = markdown(&[line(None), line(None)], "", 1);
        assert!(!md.contains("-0.0"), "{md}");
        assert!(md.contains("10 runs; no line has a per-epoch time"), "{md}");
    }

    #[test]
    fn finished_runs_are_counted_apart_in_the_total() {
        let mut l = line(Some(1.0));
        l.finished = 2;
        let md = markdown(&[l], "", 1);
        assert!(md.contains("| 5 | 2 | 10 |"), "{md}");
        assert!(
            md.contains("≤ 1.0 hours of one thread for the 3 not yet in --out (2 finished)"),
            "{md}"
        );
        assert!(!markdown(&[line(Some(1.0))], "", 1).contains("not yet in --out"));
    }

    #[test]
    fn the_total_sums_the_timed_lines_and_divides_by_the_jobs() {
        let md = markdown(&[line(Some(1.5)), line(Some(2.5)), line(None)], "", 2);
        assert!(md.contains("≤ 4.0 hours of one thread"), "{md}");
        assert!(md.contains("≤ 2.0 h wall"), "{md}");
        assert!(md.contains("1 lines have no per-epoch time"), "{md}");
    }
}
