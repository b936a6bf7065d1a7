//! The few lines `reproduce-paper run` prints after its tables for a newcomer: per model, what
//! the C-network did to the table's headline metric (the paired delta with its interval, the
//! paper's delta, the verdict), one line of caveats, and where the full report is.

use super::claims::{Claim, ClaimMetric};
use super::tables::RunContext;
use crate::data::{Task, Tier};
use crate::experiments::Profile;
use std::path::Path;

/// The headline metric of a report: Acc2 for regression, accuracy for a binary task.
pub(crate) fn headline(task: Task) -> ClaimMetric {
    match task {
        Task::Regression => ClaimMetric::Acc2,
        Task::Binary => ClaimMetric::Accuracy,
    }
}

/// `+1.2 [-0.5, +2.9]`, or `—` without an interval.
fn delta_text(c: &Claim) -> String {
    match c.measured {
        Some(m) => format!("{:+.1} [{:+.1}, {:+.1}]", m.mean, m.lo, m.hi),
        None => "—".into(),
    }
}

fn verdict_text(c: &Claim) -> String {
    match (c.verdict, &c.note) {
        (Some(v), _) => v.name().to_string(),
        (None, Some(n)) => format!("no verdict ({n})"),
        (None, None) => "no verdict".into(),
    }
}

/// The caveats that apply to every line: seeds, profile and tier.
pub(crate) fn caveat(ctx: &RunContext) -> String {
    let mut parts = Vec::new();
    if ctx.seeds.len() < 2 {
        parts.push(
            "one seed, so each interval is a bootstrap over test clips and says nothing about \
             seed-to-seed variation (use --seeds 0,1,2,3,4)"
                .to_string(),
        );
    } else {
        parts.push(format!(
            "{} seeds, paired t-intervals over seeds",
            ctx.seeds.len()
        ));
    }
    match ctx.profile {
        Profile::Smoke => {
            parts.push("the smoke profile trains a subsample for a few epochs".into())
        }
        Profile::Quick => parts.push(
            "the quick profile trains one grid point for at most 10 epochs, not the paper's tuning"
                .into(),
        ),
        Profile::Paper => parts.push("the paper profile's full grid".into()),
    }
    parts.push(match ctx.tier {
        Tier::Synthetic => "synthetic features with a known structure, not the paper's: no number \
                            here reproduces the paper's"
            .into(),
        Tier::RealText => "real transcripts and labels with synthetic audio/vision cues, not the \
                           paper's features"
            .into(),
        Tier::Full => "your own feature files".into(),
    });
    parts.join("; ")
}

/// The summary: a heading, one line per model (each synergy variant's headline delta, the
/// paper's delta and the verdict) and the caveat line; [`where_line`] follows it once the report
/// is written.
pub(crate) fn summary(ctx: &RunContext, claims: &[Claim], controls: &[Claim]) -> String {
    let metric = headline(ctx.task);
    let seeds: Vec<String> = ctx.seeds.iter().map(|s| s.to_string()).collect();
    let mut s = format!(
        "\nSummary: what the C-network did to {} ({} tier, {} profile, seed{} {})\n",
        metric.name(),
        ctx.tier.name(),
        ctx.profile.name(),
        if seeds.len() == 1 { "" } else { "s" },
        seeds.join(",")
    );
    let mut models: Vec<&str> = Vec::new();
    for c in claims.iter().filter(|c| c.metric == metric) {
        if !models.contains(&c.model.as_str()) {
            models.push(&c.model);
        }
    }
    let width = models.iter().map(|m| m.len()).max().unwrap_or(0);
    for m in &models {
        let parts: Vec<String> = claims
            .iter()
            .filter(|c| c.metric == metric && c.model == *m)
            .map(|c| {
                let paper = c
                    .paper_delta
                    .map_or_else(String::new, |d| format!(", paper {d:+.1}"));
                format!(
                    "{} {}{paper}: {}",
                    c.variant,
                    delta_text(c),
                    verdict_text(c)
                )
            })
            .collect();
        s += &format!("  {m:<width$}  {}\n", parts.join("; "));
    }
    if models.is_empty() {
        s += "  no claim could be measured (a variant needs its NLL run of the same seed)\n";
    }
    for c in controls.iter().filter(|c| c.metric == metric) {
        s += &format!(
            "  {:<width$}  multimodal NLL − text-only {}: {}\n",
            c.model,
            delta_text(c),
            super::claims::control_reading(c)
        );
    }
    s += &format!("Caveat: {}.\n", caveat(ctx));
    s
}

/// The summary's last line: where the report is (`out`, the results folder).
pub(crate) fn where_line(out: &Path) -> String {
    format!(
        "Full report: {} (open it in a browser); table.md, table.json and table.csv beside it.\n",
        out.join("report.html").display()
    )
}
