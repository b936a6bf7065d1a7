//! The board: every claim measured on every tier, Holm's correction within each table and tier,
//! the counts per tier, the folders' text-only controls, the claim that the C-network raises the
//! synergy the model uses, and the paper's NLL baselines beside the community's.

use super::collect::paper_claims;
use super::measure::measure;
use super::{
    BaselineRow, CommunityRow, ControlRow, ScoreRow, Scoreboard, Source, SynergyUseRow, TierCell,
    TierCounts, TIERS,
};
use crate::experiments::expected::Expected;
use crate::report::stats::Verdict;

/// The scoreboard of `sources` against the paper's claims, with the community baselines.
pub(crate) fn scoreboard(
    sources: &[Source],
    skipped: Vec<String>,
    expected: &[Expected],
    community: &[CommunityRow],
) -> Scoreboard {
    let claims = paper_claims(expected);
    let mut rows: Vec<ScoreRow> = claims
        .into_iter()
        .map(|c| {
            let tiers = TIERS.iter().map(|&t| measure(&c, t, sources)).collect();
            ScoreRow { claim: c, tiers }
        })
        .collect();
    // Holm within each (table, tier)
    for table in [2u8, 3, 4, 5, 6] {
        for ti in 0..TIERS.len() {
            let idx: Vec<usize> = (0..rows.len())
                .filter(|&i| rows[i].claim.table == table)
                .collect();
            let members: Vec<Option<(Verdict, f64)>> = idx
                .iter()
                .map(|&i| {
                    let cell = &rows[i].tiers[ti];
                    (rows[i].claim.paper_delta != 0.0)
                        .then_some(())
                        .and_then(|_| Some((cell.verdict?, cell.measured?.p)))
                })
                .collect();
            for (&i, f) in idx.iter().zip(crate::report::stats::holm_flags(&members)) {
                rows[i].tiers[ti].survives_holm = f;
            }
        }
    }
    let counts = TIERS
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let cells: Vec<&TierCell> = rows.iter().map(|r| &r.tiers[ti]).collect();
            let n = |v: Verdict| cells.iter().filter(|c| c.verdict == Some(v)).count();
            TierCounts {
                tier: t.name().into(),
                claims: cells.len(),
                with_verdict: cells.iter().filter(|c| c.verdict.is_some()).count(),
                supported: n(Verdict::Supported),
                contradicted: n(Verdict::Contradicted),
                inconclusive: n(Verdict::Inconclusive),
                survive_holm: cells
                    .iter()
                    .filter(|c| c.survives_holm == Some(true))
                    .count(),
            }
        })
        .collect();
    let mut controls = Vec::new();
    for s in sources {
        for c in crate::report::claims::text_only_controls(&s.selected, Some(&s.test_labels)) {
            controls.push(ControlRow {
                folder: s.name.clone(),
                tier: s.tier.name().into(),
                dataset: s.dataset.name().into(),
                reading: crate::report::claims::control_reading(&c).into(),
                control: c,
            });
        }
    }
    let mut synergy_use = Vec::new();
    for s in sources {
        let Some(codes) = &s.pid_codes else { continue };
        // no nulls: the claim needs one decomposition per run
        for r in crate::report::prediction_pid::prediction_pid_with(&s.selected, codes, s.task, 0) {
            if !r.claim {
                continue;
            }
            synergy_use.push(SynergyUseRow {
                folder: s.name.clone(),
                tier: s.tier.name().into(),
                dataset: s.dataset.name().into(),
                model: r.model,
                variant: r.variant,
                vs_nll: r.vs_nll,
                verdict: r.verdict,
                survives_holm: r.survives_holm,
                note: r.note,
            });
        }
    }
    Scoreboard {
        counts,
        rows,
        baselines: baselines(expected, community),
        controls,
        synergy_use,
        folders: sources.iter().map(|s| s.name.clone()).collect(),
        skipped,
    }
}

fn baselines(expected: &[Expected], community: &[CommunityRow]) -> Vec<BaselineRow> {
    let mut out = Vec::new();
    for table in [2u8, 3] {
        for e in expected
            .iter()
            .filter(|e| e.table == table && e.variant == "NLL" && e.condition == "none")
        {
            let c = community
                .iter()
                .find(|c| c.dataset == e.dataset && c.model == e.model)
                .map(|c| match e.metric.as_str() {
                    "acc7" => c.acc7,
                    "acc2" => c.acc2,
                    "mae" => c.mae,
                    _ => c.corr,
                });
            let sign = if e.metric == "mae" { -1.0 } else { 1.0 };
            out.push(BaselineRow {
                dataset: e.dataset.clone(),
                model: e.model.clone(),
                metric: e.metric.clone(),
                paper: e.value,
                community: c,
                paper_stronger_by: c.map(|c| sign * (e.value - c)),
            });
        }
    }
    out
}
