//! Table 4: test-time modality corruption. Every selected checkpoint is evaluated with the text
//! alone (T), text and vision (T+V), text and audio (T+A) zeroed ([`crate::train::DROP_CONDITIONS`],
//! after Colombo et al. 2021, whom section 5.5 follows); the table shows Acc2 per condition, and
//! the claim of section 5.5 — models trained with the synergy regulariser are "more resistant to
//! modality errors" — gets a verdict per (model, variant, condition) from the paired Acc2 delta
//! against NLL under that corruption.
//!
//! **Which model.** The paper's Table 4 does not name its model; its "None" column equals MAGBERT's
//! MOSI Acc2 in Table 2 on all three variants, so `paper/expected.toml` records it as MAGBERT. The
//! harness evaluates the corruption for **every** model it trains (it costs three test passes), so
//! the table has a row per model that ran; the paper's values sit next to MAGBERT's rows only. For
//! the other models the claim's direction is section 5.5's general statement (synergy variant ≥ NLL
//! under corruption), and the paper Δ column says "— (§5.5: direction only)".

use super::claims::{ClaimMetric, Labels};
use super::stats::{paired_bootstrap, paired_t_interval, Interval, Verdict};
use crate::data::DatasetName;
use crate::experiments::expected::{lookup_at, Expected};
use crate::experiments::{paper_model, Selected};
use crate::models::ModelKind;
use crate::train::{Variant, DROP_CONDITIONS};
use serde::Serialize;

/// The corruption table's conditions, the clean one first (the paper's column labels).
pub(crate) const CONDITIONS: [&str; 4] = ["none", "T", "T+V", "T+A"];

/// Acc2 of one (model, variant) under each condition, over seeds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CorruptionRow {
    pub model: String,
    pub paper_model: String,
    pub variant: String,
    pub seeds: Vec<u64>,
    /// Mean and standard deviation of Acc2 (%) per [`CONDITIONS`] entry (`None`: no run recorded
    /// it, e.g. records written before the corruption evaluation existed).
    pub acc2: Vec<Option<super::tables::Stat>>,
    /// The paper's Table 4 value per condition (MAGBERT on MOSI only).
    pub paper: Vec<Option<f64>>,
}

/// A section-5.5 claim: variant − NLL in Acc2 under one corruption.
#[derive(Debug, Clone, Serialize)]
pub struct CorruptionClaim {
    pub model: String,
    pub variant: String,
    pub condition: String,
    /// The paper's Table 4 delta (MAGBERT only).
    pub paper_delta: Option<f64>,
    pub measured: Option<Interval>,
    pub verdict: Option<Verdict>,
    pub note: Option<String>,
    /// Whether a directional verdict survives Holm's correction over Table 4's family (every
    /// claim with an interval and a direction: §5.5 states one even without numbers); `None`
    /// outside it ([`super::stats::holm_flags`]).
    pub survives_holm: Option<bool>,
}

/// A claim's place in Table 4's Holm family: `(verdict, p)` unless the paper's delta is 0.
fn holm_member(c: &CorruptionClaim) -> Option<(Verdict, f64)> {
    if c.paper_delta == Some(0.0) {
        None
    } else {
        Some((c.verdict?, c.measured?.p))
    }
}

/// Whether a run collapsed to a constant: its clean test predictions have a standard deviation
/// below 0.01 label units (MOSI's labels have a standard deviation of 1.5).
fn is_constant(s: &Selected) -> bool {
    match &s.result.test_predictions {
        Some(p) if p.len() > 1 => {
            let n = p.len() as f64;
            let mean = p.iter().map(|x| *x as f64).sum::<f64>() / n;
            let var = p.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
            var.sqrt() < 0.01
        }
        _ => false,
    }
}

fn acc2_under(s: &Selected, cond: &str) -> Option<f64> {
    Some(100.0 * s.result.test_under(cond)?.regression()?.acc2_non0)
}

/// The corruption rows and claims of the selected regression runs (any regression corpus; the
/// paper's values exist for MOSI only). A claim pairs seeds (95 % t-interval over ≥ 2 seeds); with
/// one seed it bootstraps over test clips (`labels`, in the order of the saved predictions) from
/// the saved corrupted-test predictions, as the main claims do.
pub(crate) fn corruption(
    selected: &[Selected],
    expected: &[Expected],
    dataset: DatasetName,
    labels: Labels<'_>,
) -> (Vec<CorruptionRow>, Vec<CorruptionClaim>) {
    let mut rows = Vec::new();
    let mut claims = Vec::new();
    let on_mosi = dataset == DatasetName::Mosi;
    for &kind in ModelKind::ALL {
        let pm = paper_model(kind);
        let of = |v: Variant| -> Vec<&Selected> {
            selected
                .iter()
                .filter(|s| s.model == kind && s.variant == v)
                .collect()
        };
        for v in Variant::TABLE_ORDER {
            let sel = of(v);
            // regression runs that recorded the corruption (binary tasks have no Acc2)
            if !sel
                .iter()
                .any(|s| !s.result.dropped.is_empty() && acc2_under(s, "none").is_some())
            {
                continue;
            }
            let acc2 = CONDITIONS
                .iter()
                .map(|c| {
                    let xs: Vec<f64> = sel.iter().filter_map(|s| acc2_under(s, c)).collect();
                    (!xs.is_empty()).then(|| super::tables::stat(&xs))
                })
                .collect();
            let paper = CONDITIONS
                .iter()
                .map(|c| {
                    on_mosi
                        .then(|| lookup_at(expected, 4, pm, v.name(), c, "acc2"))
                        .flatten()
                })
                .collect();
            rows.push(CorruptionRow {
                model: kind.name().into(),
                paper_model: pm.into(),
                variant: v.name().into(),
                seeds: sel.iter().map(|s| s.seed).collect(),
                acc2,
                paper,
            });
        }
        let base = of(Variant::Nll);
        if base.is_empty() {
            continue;
        }
        for v in [Variant::NllSkl, Variant::NllSmmd, Variant::NllIwas] {
            let var = of(v);
            if var.is_empty() || !var.iter().any(|s| !s.result.dropped.is_empty()) {
                continue;
            }
            let pairs = super::claims::pair_by_seed(&base, &var);
            for (cond, _) in DROP_CONDITIONS {
                let deltas: Vec<f64> = pairs
                    .iter()
                    .filter_map(|(b, x)| Some(acc2_under(x, cond)? - acc2_under(b, cond)?))
                    .collect();
                let paper_delta = on_mosi
                    .then(|| {
                        Some(
                            lookup_at(expected, 4, pm, v.name(), cond, "acc2")?
                                - lookup_at(expected, 4, pm, "NLL", cond, "acc2")?,
                        )
                    })
                    .flatten();
                let mut note = None;
                let measured = match (deltas.len(), pairs.as_slice(), labels) {
                    (0 | 1, [(b, x)], Some(l)) => {
                        match (
                            x.result.predictions_under(cond),
                            b.result.predictions_under(cond),
                        ) {
                            (Some(px), Some(pb)) => paired_bootstrap(
                                &px,
                                &pb,
                                l,
                                |a, y| ClaimMetric::Acc2.compute(a, y),
                                2000,
                                0.95,
                                0xB007 ^ x.seed ^ (cond.bytes().map(u64::from).sum::<u64>() << 8),
                            ),
                            _ => {
                                note = Some(
                                    "one paired seed, and its runs did not save corrupted-test predictions (recorded before they were saved): no bootstrap"
                                        .into(),
                                );
                                None
                            }
                        }
                    }
                    _ => paired_t_interval(&deltas, 0.95),
                };
                // a variant that predicts a constant is trivially "resistant" to corruption
                let collapsed = var.iter().filter(|x| is_constant(x)).count() * 2 > var.len();
                if collapsed {
                    claims.push(CorruptionClaim {
                        model: kind.name().into(),
                        variant: v.name().into(),
                        condition: cond.into(),
                        paper_delta: None,
                        measured,
                        verdict: None,
                        note: Some(
                            "the variant collapsed to a constant prediction on most seeds: \
                             insensitivity to corruption says nothing"
                                .into(),
                        ),
                        survives_holm: None,
                    });
                    continue;
                }
                if measured.is_none() && note.is_none() {
                    note = Some(match deltas.len() {
                        0 => "no seed has both NLL and this variant under the corruption".into(),
                        1 if labels.is_none() => {
                            "one paired seed and no test labels for a bootstrap".into()
                        }
                        1 => "one paired seed: the bootstrap found no finite Acc2 delta".into(),
                        _ => "non-finite delta".into(),
                    });
                }
                // direction: the paper's delta where it has one, else §5.5's general claim (+)
                let verdict = measured.map(|ci| Verdict::of(paper_delta.unwrap_or(1.0), &ci));
                claims.push(CorruptionClaim {
                    model: kind.name().into(),
                    variant: v.name().into(),
                    condition: cond.into(),
                    paper_delta,
                    measured,
                    verdict,
                    note,
                    survives_holm: None,
                });
            }
        }
    }
    let members: Vec<_> = claims.iter().map(holm_member).collect();
    for (c, f) in claims.iter_mut().zip(super::stats::holm_flags(&members)) {
        c.survives_holm = f;
    }
    (rows, claims)
}

/// The corruption table and its claims as markdown (empty when no run recorded a corruption).
pub(crate) fn markdown(rows: &[CorruptionRow], claims: &[CorruptionClaim], tier: &str) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "### Table 4: modality corruption at test time (Acc2 %, selected checkpoints; paper in parentheses)\n\n\
         The paper's Table 4 does not name its model; its clean column equals MAGBERT's MOSI Table 2 \
         values, so the paper's numbers sit next to MAGBERT only. Every model trained here is evaluated \
         under the same corruptions (text, text+vision, text+audio zeroed).\n\n",
    );
    let cell = |st: &Option<super::tables::Stat>, p: &Option<f64>| {
        let m = match st {
            Some(st) if st.n > 1 => format!("{:.1} ± {:.1}", st.mean, st.std),
            Some(st) => format!("{:.1}", st.mean),
            None => "—".into(),
        };
        match p {
            Some(p) => format!("{m} ({p:.1})"),
            None => m,
        }
    };
    let r: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut v = vec![r.model.clone(), r.variant.clone()];
            v.extend(r.acc2.iter().zip(&r.paper).map(|(a, p)| cell(a, p)));
            v
        })
        .collect();
    s += &super::markdown_table(
        &[
            "Model",
            "Variant",
            "none",
            "T dropped",
            "T+V dropped",
            "T+A dropped",
        ],
        &r,
    );
    let c: Vec<Vec<String>> = claims
        .iter()
        .map(|c| {
            vec![
                c.model.clone(),
                c.variant.clone(),
                c.condition.clone(),
                c.paper_delta
                    .map_or("— (§5.5: direction only)".into(), |d| format!("{d:+.1}")),
                c.measured.map_or("—".into(), |m| {
                    format!(
                        "{:+.1} [{:+.1}, {:+.1}] ({}, n = {}, {})",
                        m.mean,
                        m.lo,
                        m.hi,
                        m.method,
                        m.n,
                        super::stats::p_text(m.p)
                    )
                }),
                super::stats::verdict_cell(c.verdict, c.note.as_deref(), c.survives_holm, tier),
            ]
        })
        .collect();
    if !c.is_empty() {
        s += "\nClaims of §5.5 (variant − NLL in Acc2 under the corruption; paired by seed: 95 % t-interval over seeds, or a paired bootstrap over test clips for one seed):\n\n";
        s += &super::markdown_table(
            &[
                "Model",
                "Variant",
                "dropped",
                "paper Δ",
                "measured Δ [95 % CI]",
                "verdict",
            ],
            &c,
        );
        let count = |v: Verdict| claims.iter().filter(|c| c.verdict == Some(v)).count();
        s += &format!(
            "\nVerdicts ({tier} tier): {} supported, {} contradicted, {} inconclusive, {} without a verdict.\n",
            count(Verdict::Supported),
            count(Verdict::Contradicted),
            count(Verdict::Inconclusive),
            claims.iter().filter(|c| c.verdict.is_none()).count()
        );
        let family: Vec<(Verdict, f64)> = claims.iter().filter_map(holm_member).collect();
        if !family.is_empty() {
            s += "\n";
            s += &super::stats::holm_summary(&family);
            s += "\n";
        }
    }
    s + "\n"
}

/// Table 4's forest plot: one panel per corruption, one line per (model, synergy variant) claim —
/// the measured Acc2 delta against NLL under that corruption with its interval, the paper's delta
/// (MAGBERT on MOSI) as a cross ([`super::forest`]).
pub(crate) fn forest_plot(
    path: &std::path::Path,
    title: &str,
    claims: &[CorruptionClaim],
) -> Result<(), super::PlotError> {
    use super::forest::{Line, Panel, Tone};
    let panels: Vec<Panel> = DROP_CONDITIONS
        .iter()
        .map(|(cond, _)| Panel {
            caption: format!("Acc2 with {cond} dropped (variant − NLL; (Holm): survives Holm)"),
            lines: claims
                .iter()
                .filter(|c| c.condition == *cond)
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
