//! [`Report`]: a results folder's report, built once from its runs ([`Report::build`]) and then
//! written ([`Report::write`]: `table.md`, `table.json`, `table.csv`, the PNG figures and
//! `report.html`) or printed (the markdown or the JSON, then [`Report::summary`]).

use super::error::ReportError;
use super::figure::Figure;
use super::tables::{self, RunContext};
use super::{
    claims, corruption, paper_tables, prediction_pid, robustness, subsets, summary, tuning,
};
use crate::experiments::expected::expected;
use crate::experiments::{RunRecord, Selected};
use std::path::Path;

/// A report: the markdown of `table.md` (its figures referenced by file name), the JSON of
/// `table.json`, the CSV of `table.csv`, the newcomer's summary and the figures as data.
#[derive(Debug, Clone)]
pub struct Report {
    markdown: String,
    json: serde_json::Value,
    csv: String,
    summary: String,
    figures: Vec<Figure>,
    title: String,
}

impl Report {
    /// The report of the runs `records` (`selected`: their selection on validation) on the data
    /// of `ctx`. `wall`: the training's wall time in seconds (a fresh run; `None` re-rendered);
    /// `warnings` (e.g. a merge that misses runs) head the markdown and go into the JSON;
    /// `sources` names the results folders of a combined table. Errors: a value that does not
    /// serialise ([`ReportError::Json`]).
    pub fn build(
        ctx: &RunContext,
        records: &[RunRecord],
        selected: &[Selected],
        wall: Option<f64>,
        warnings: &[String],
        sources: &[String],
    ) -> Result<Report, ReportError> {
        let e = expected();
        let dataset = ctx.dataset_or_mosi();
        let rows = tables::rows(selected, &e, dataset);
        let binary = tables::binary_rows(selected, &e, dataset);
        let claims = claims::claims(selected, &e, Some(&ctx.test_labels), dataset);
        let mut warnings = warnings.to_vec();
        let bare = selected
            .iter()
            .filter(|s| s.result.test_predictions.is_none())
            .count();
        if bare > 0 {
            warnings.push(format!(
                "{bare} selected runs have no saved test predictions (a compacted folder rendered \
                 with fewer runs than it was compacted with?): their bootstrap and subset cells \
                 are missing"
            ));
        }
        let mut md: String = warnings
            .iter()
            .map(|w| format!("> **warning:** {w}\n\n"))
            .collect();
        if !sources.is_empty() {
            md += &format!(
                "> Combined from {} results folders (`reproduce-paper report --from … --out …`): \
                 {}. The claims of all of them form one table and one Holm family.\n\n",
                sources.len(),
                sources
                    .iter()
                    .map(|d| format!("`{d}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let cells = tables::cell_runs(records);
        md += &tables::markdown(ctx, &rows, &binary, &claims, &cells);
        md += &tables::weights_markdown(records, selected);
        let controls = claims::text_only_controls(selected, Some(&ctx.test_labels));
        if !controls.is_empty() {
            md += "\n";
            md += &claims::controls_markdown(&controls);
        }
        // the synergy the models' predictions use (issue 27 §2; needs the PID codes in run.json)
        let pid_rows = prediction_pid::prediction_pid(selected, ctx);
        md += "\n";
        md += &prediction_pid::markdown(&pid_rows, ctx);
        md += &devices_note(records);
        let (corr_rows, corr_claims) =
            corruption::corruption(selected, &e, dataset, Some(&ctx.test_labels));
        md += "\n";
        md += &corruption::markdown(&corr_rows, &corr_claims, ctx.tier.name());
        let plot_title = |what: &str| {
            format!(
                "{what} ({}), tier {} (profile {})",
                dataset.label(),
                ctx.tier.name(),
                ctx.profile.name()
            )
        };
        let mut figures = Vec::new();
        let mut figure = |md: &mut String, f: Figure, before: &str, after: &str| {
            *md += &format!("{before}{}{after}", f.markdown());
            figures.push(f);
        };
        if corr_claims.iter().any(|c| c.measured.is_some()) {
            let f = Figure::Table4 {
                title: plot_title("Table 4 claims: Acc2 under modality corruption"),
                claims: corr_claims.clone(),
            };
            figure(&mut md, f, "", "\n\n");
        }
        // graded robustness curves (issue 27 §3; records written before them have none)
        let (rob_rows, rob_deltas) = robustness::robustness(selected);
        if !rob_rows.is_empty() {
            md += &robustness::markdown(&rob_rows, &rob_deltas);
            let f = Figure::Robustness {
                title: plot_title("Graded robustness per modality"),
                rows: rob_rows.clone(),
            };
            figure(&mut md, f, "", "\n\n");
        }
        let subset_cells = subsets::subset_cells(selected, &ctx.test_labels, &ctx.test_subsets);
        md += &subsets::markdown(&subset_cells, &ctx.test_subsets);
        if subset_cells.iter().any(|c| c.delta.is_some()) {
            let f = Figure::Subsets {
                title: plot_title("Synergy variants per test subset"),
                cells: subset_cells.clone(),
            };
            figure(&mut md, f, "", "\n\n");
        }
        // the tuning budget (Dodge et al. 2019): only folders with a grid of configurations
        let budget = tuning::budget(records);
        if !budget.is_empty() {
            md += "\n";
            md += &tuning::markdown(&budget);
            let f = Figure::TuningBudget {
                title: plot_title("Tuning budget"),
                curves: budget.clone(),
            };
            figure(&mut md, f, "", "\n\n");
        }
        md += &paper_tables::markdown(
            dataset,
            ctx.tier.name(),
            &ctx.models,
            &rows,
            &binary,
            &corr_rows,
            &claims,
            &e,
        );
        if !claims.is_empty() {
            let f = Figure::Claims {
                title: plot_title(&format!("Table {} claims", dataset.paper_table())),
                claims: claims.clone(),
            };
            figure(&mut md, f, "\n", "\n");
        }
        let mut json = serde_json::json!({
            "dataset": dataset.name(),
            "tier": ctx.tier.name(),
            "profile": ctx.profile.name(),
            "seeds": ctx.seeds,
            "data": ctx.data,
            "ceilings": ctx.ceilings,
            "rows": if ctx.task == crate::data::Task::Binary {
                serde_json::to_value(&binary)?
            } else {
                serde_json::to_value(&rows)?
            },
            "claims": claims,
            "runs_per_cell": cells,
            "corruption": {"rows": corr_rows, "claims": corr_claims},
            "subsets": subset_cells,
            "selected_runs": selected,
            "wall_s": wall,
        });
        if !warnings.is_empty() {
            json["warnings"] = serde_json::json!(warnings);
        }
        if !sources.is_empty() {
            json["sources"] = serde_json::json!(sources);
        }
        if !controls.is_empty() {
            json["text_only_control"] = serde_json::json!(controls);
        }
        if !pid_rows.is_empty() {
            json["prediction_pid"] = serde_json::to_value(&pid_rows)?;
        }
        if !budget.is_empty() {
            json["tuning_budget"] = serde_json::to_value(&budget)?;
        }
        if !rob_rows.is_empty() {
            json["robustness"] = serde_json::json!({"rows": rob_rows, "deltas": rob_deltas});
        }
        Ok(Report {
            csv: tables::csv(ctx, &rows, &binary),
            summary: summary::summary(ctx, &claims, &controls),
            title: plot_title(&format!("Table {}", dataset.paper_table())),
            markdown: md,
            json,
            figures,
        })
    }

    /// Writes the report into `out_dir` (created if missing): the figures' PNGs first, then
    /// `table.md`, `table.json`, `table.csv`, and `report.html`, which inlines the PNGs.
    pub fn write(&self, out_dir: &Path) -> Result<(), ReportError> {
        std::fs::create_dir_all(out_dir).map_err(ReportError::io("creating", out_dir))?;
        for f in &self.figures {
            let path = out_dir.join(f.file_name());
            f.draw(&path)
                .map_err(|source| ReportError::Plot { path, source })?;
        }
        let write = |name: &str, bytes: &[u8]| {
            let path = out_dir.join(name);
            std::fs::write(&path, bytes).map_err(ReportError::io("writing", path))
        };
        write("table.md", self.markdown.as_bytes())?;
        write(
            "table.json",
            serde_json::to_string_pretty(&self.json)?.as_bytes(),
        )?;
        write("table.csv", self.csv.as_bytes())?;
        let page = super::html::from_markdown(&self.markdown, out_dir, &self.title)?;
        write("report.html", page.as_bytes())
    }

    /// The markdown of `table.md`.
    pub fn markdown(&self) -> &str {
        &self.markdown
    }

    /// The JSON of `table.json`.
    pub fn json(&self) -> &serde_json::Value {
        &self.json
    }

    /// The CSV of `table.csv`.
    pub fn csv(&self) -> &str {
        &self.csv
    }

    /// The figures, in the order `table.md` references them.
    pub fn figures(&self) -> &[Figure] {
        &self.figures
    }

    /// The few lines for a newcomer printed after the tables: per model what the C-network did to
    /// the headline metric, the caveats, and where the report is (`out_dir`, where it was
    /// written).
    pub fn summary(&self, out_dir: &Path) -> String {
        format!("{}{}", self.summary, summary::where_line(out_dir))
    }
}

/// The note on GPU-trained runs (empty when every run trained on the CPU).
fn devices_note(records: &[RunRecord]) -> String {
    let mut devices: Vec<&str> = records
        .iter()
        .filter_map(|r| r.result.device.as_deref())
        .collect();
    devices.sort_unstable();
    devices.dedup();
    if devices.is_empty() {
        return String::new();
    }
    let on_gpu = records.iter().filter(|r| r.result.device.is_some()).count();
    format!(
        "\nTrained on {} ({on_gpu} of {} runs; the rest on the CPU): GPU numbers differ from CPU \
         numbers by float32 rounding (the tolerance: docs/src/gpu.md).\n",
        devices.join(", "),
        records.len()
    )
}
