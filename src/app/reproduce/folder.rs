//! The subcommands that train nothing, and the tables `run` ends with: [`render`] (a report
//! written into its folder and printed), `report --from` ([`report_from`]), `scoreboard`,
//! `compact` and `expected` (the paper's Tables 2-6).

use crate::experiments::expected::expected;
use crate::report::{tables, Report};
use anyhow::{bail, Context, Result};

/// `reproduce-paper expected`: the paper's Tables 2-6 as markdown (or JSON).
pub(super) fn print_expected(json: bool) -> Result<()> {
    let e = expected();
    if json {
        println!("{}", serde_json::to_string(&e)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = e
        .iter()
        .map(|r| {
            vec![
                r.table.to_string(),
                r.dataset.clone(),
                r.model.clone(),
                r.variant.clone(),
                r.condition.clone(),
                r.metric.clone(),
                r.value.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::report::markdown_table(
            &[
                "table",
                "dataset",
                "model",
                "variant",
                "condition",
                "metric",
                "value"
            ],
            &rows
        )
    );
    Ok(())
}

/// Builds the report of the runs (`records`; `selected` = their selection), writes it into
/// `out` ([`Report::write`]) and prints the markdown and the summary (or the JSON with `json`).
/// `warnings` (e.g. a merge that misses runs) head the markdown and go into the JSON; `sources`
/// names the results folders of a combined table.
#[allow(clippy::too_many_arguments)]
pub(super) fn render(
    out: &std::path::Path,
    ctx: &tables::RunContext,
    records: &[crate::experiments::RunRecord],
    selected: &[crate::experiments::Selected],
    wall: Option<f64>,
    warnings: &[String],
    sources: &[String],
    json_out: bool,
) -> Result<()> {
    let report = Report::build(ctx, records, selected, wall, warnings, sources)?;
    report.write(out)?;
    if json_out {
        println!("{}", report.json());
    } else {
        print!("{}", report.markdown());
        print!("{}", report.summary(out));
        eprintln!(
            "reproduce-paper: wrote {}/table.{{md,json,csv}}, report.html and the forest plots (forest*.png)",
            out.display()
        );
    }
    Ok(())
}

/// `reproduce-paper report --from DIR`: re-renders the tables of a results directory (its
/// `run.json` and the merge of `results.jsonl` and every shard's `results.shard-K-of-N.jsonl`)
/// without training ([`crate::report::load_folders`]). An unreadable shard file is reported by
/// name and the rest still merge; runs missing from the plan are reported in the table's header.
/// Several `dirs` (one table over folders on the same data, [`tables::RunContext::merge`]) write
/// into `out`; a run found in two folders counts once.
pub(crate) fn report_from(
    dirs: &[std::path::PathBuf],
    out: Option<&std::path::Path>,
    json: bool,
) -> Result<()> {
    let out = match (dirs, out) {
        ([], _) => bail!("report: give --from DIR"),
        (_, Some(o)) => o.to_path_buf(),
        ([one], None) => one.clone(),
        (_, None) => {
            bail!("report: several --from folders need --out DIR for their combined tables")
        }
    };
    render_loaded(&out, crate::report::load_folders(dirs)?, json)
}

/// Renders loaded folders (`report --from`, or a training's folder that holds other commands'
/// runs) into `out`, after printing the merge's warnings.
pub(super) fn render_loaded(
    out: &std::path::Path,
    loaded: crate::report::Loaded,
    json: bool,
) -> Result<()> {
    if loaded.duplicates > 0 {
        eprintln!(
            "reproduce-paper: warning: {} runs appear in more than one results file; kept one copy of each",
            loaded.duplicates
        );
    }
    for w in &loaded.warnings {
        eprintln!("reproduce-paper: warning: {w}");
    }
    let selected = crate::experiments::select(&loaded.records);
    render(
        out,
        &loaded.ctx,
        &loaded.records,
        &selected,
        None,
        &loaded.warnings,
        &loaded.sources,
        json,
    )
}

/// `reproduce-paper scoreboard --from DIR`.
pub(super) fn scoreboard(
    from: &std::path::Path,
    out: Option<&std::path::Path>,
    json: bool,
) -> Result<()> {
    use crate::report::scoreboard as sb;
    let (sources, skipped) = sb::read_sources(from)?;
    let board = sb::scoreboard(&sources, skipped, &expected(), &sb::community());
    let root = from.display().to_string();
    let md = sb::markdown(&board, root.trim_end_matches('/'));
    let path = out.map_or_else(|| from.join("SCOREBOARD.md"), |o| o.to_path_buf());
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string(&board)?);
    } else {
        for c in &board.counts {
            println!(
                "{}: {} of {} claims with a verdict ({} supported, {} contradicted, {} inconclusive; {} survive Holm)",
                c.tier, c.with_verdict, c.claims, c.supported, c.contradicted, c.inconclusive, c.survive_holm
            );
        }
        eprintln!("reproduce-paper: wrote {}", path.display());
    }
    Ok(())
}

/// Bytes per MiB (`compact --max-file-mib`).
pub(super) const MIB: f64 = 1024.0 * 1024.0;

/// `reproduce-paper compact --from DIR [--max-file-mib M]`.
pub(super) fn compact(dir: &std::path::Path, max_file_mib: f64) -> Result<()> {
    if !(max_file_mib.is_finite() && max_file_mib > 0.0) {
        anyhow::bail!("--max-file-mib must be a positive number of MiB, got {max_file_mib}");
    }
    let max_bytes = (max_file_mib * MIB).floor() as u64;
    let done = crate::experiments::compact::compact_dir(dir, max_bytes)?;
    if done.files.is_empty() {
        eprintln!(
            "reproduce-paper: {}: no predictions to drop (no finished seed has unselected runs with predictions)",
            dir.display()
        );
    }
    for (f, bytes) in &done.files {
        eprintln!("reproduce-paper: rewrote {} ({bytes} bytes)", f.display());
    }
    for (f, bytes) in &done.split {
        eprintln!(
            "reproduce-paper: split into {} ({bytes} bytes)",
            f.display()
        );
    }
    for (f, bytes) in &done.oversized {
        eprintln!(
            "reproduce-paper: warning: {} is {bytes} bytes, over --max-file-mib {max_file_mib}: one record alone is larger",
            f.display()
        );
    }
    let s = if done.runs == 1 { "" } else { "s" };
    println!("dropped the saved predictions of {} run{s}", done.runs);
    if done.new_parts > 0 {
        println!(
            "moved runs of oversized results files into {} new archive part(s) of at most {max_bytes} bytes",
            done.new_parts
        );
    }
    Ok(())
}
