//! The paper's Tables 2–6 in the paper's own layout ([`crate::experiments::tables`]): one line per
//! row of the paper (model × variant), the measured mean beside the paper's value, and "—" with the
//! reason where nothing was measured (a model this build lacks, a row that did not run, a table on
//! another corpus). Tables on the results directory's corpus are filled; the others are listed
//! with the command that would fill them.

use super::claims::Claim;
use super::corruption::{CorruptionRow, CONDITIONS};
use super::tables::{BinaryRow, Row, Stat};
use crate::data::DatasetName;
use crate::experiments::expected::{lookup_at, Expected};
use crate::experiments::tables::{all, kinds_of, layout, TableKind, TableSpec};

/// What is known about a paper row that has no measurement.
fn missing_reason(pm: &str, ran_models: &[String], tier: &str) -> String {
    if kinds_of(pm).is_empty() {
        format!("{pm} is not implemented in this build")
    } else if tier != "real-text" && kinds_of(pm).iter().all(|k| k.needs_tokens()) {
        format!("not applicable on the {tier} tier: {pm} reads word pieces, which only the real-text tier has")
    } else if kinds_of(pm)
        .iter()
        .any(|k| ran_models.iter().any(|m| m == k.name()))
    {
        "this variant did not run".into()
    } else {
        "not run: add it with --models or --tables".into()
    }
}

fn cell(st: &Stat, paper: Option<f64>, digits: usize) -> String {
    let m = if !st.mean.is_finite() {
        "—".to_string()
    } else {
        format!("{:.*}", digits, st.mean)
    };
    match paper {
        Some(p) => format!("{m} ({p:.pd$})", pd = digits.min(2)),
        None => m,
    }
}

fn paper_only(e: &[Expected], t: u8, pm: &str, v: &str, metrics: &[&str]) -> Vec<String> {
    metrics
        .iter()
        .map(|m| {
            let d = if m.starts_with("acc") { 1 } else { 2 };
            lookup_at(e, t, pm, v, "none", m).map_or("—".into(), |p| format!("— ({p:.d$})"))
        })
        .collect()
}

fn verdicts(claims: &[Claim], model: &str, variant: &str) -> String {
    let v: Vec<String> = claims
        .iter()
        .filter(|c| c.model == model && c.variant == variant)
        .filter_map(|c| Some(format!("{} {}", c.metric.name(), c.verdict?.name())))
        .collect();
    v.join(", ")
}

/// Every paper table: filled for `dataset` (the results directory's corpus), listed otherwise.
#[allow(clippy::too_many_arguments)]
pub(crate) fn markdown(
    dataset: DatasetName,
    tier: &str,
    ran_models: &[String],
    rows: &[Row],
    binary: &[BinaryRow],
    corruption: &[CorruptionRow],
    claims: &[Claim],
    expected: &[Expected],
) -> String {
    let mut s = format!(
        "## The paper's tables in its layout (tier `{tier}`; measured mean, the paper's value in parentheses)\n\n"
    );
    let mut elsewhere = Vec::new();
    for spec in all() {
        if spec.dataset != dataset {
            elsewhere.push(spec);
            continue;
        }
        s += &one_table(
            &spec, tier, ran_models, rows, binary, corruption, claims, expected,
        );
    }
    for spec in elsewhere {
        s += &format!(
            "### Table {}: {}\n\n— (not in this results directory, which is {}: run `reproduce-paper --tables {}` on {})\n\n",
            spec.number,
            spec.title,
            dataset.name(),
            spec.number,
            spec.dataset.name()
        );
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn one_table(
    spec: &TableSpec,
    tier: &str,
    ran_models: &[String],
    rows: &[Row],
    binary: &[BinaryRow],
    corruption: &[CorruptionRow],
    claims: &[Claim],
    e: &[Expected],
) -> String {
    let t = spec.number;
    let mut s = format!("### Table {t}: {}\n\n", spec.title);
    let mut out: Vec<Vec<String>> = Vec::new();
    let header: Vec<&str> = match spec.kind {
        TableKind::Regression => vec![
            "Model", "Variant", "Acc7", "Acc2", "MAE", "Corr", "verdicts",
        ],
        TableKind::Binary => vec!["Model", "Variant", "Accuracy", "verdicts"],
        TableKind::Corruption => vec![
            "Model",
            "Variant",
            "none",
            "T dropped",
            "T+V dropped",
            "T+A dropped",
        ],
    };
    let mut seen = Vec::new();
    for (pm, vname, _) in layout(spec, e) {
        if seen.contains(&(pm.clone(), vname.clone())) {
            continue;
        }
        seen.push((pm.clone(), vname.clone()));
        let label = if pm == "TFN" { "LFN" } else { pm.as_str() };
        let mut any = false;
        for kind in kinds_of(&pm) {
            let model = kind.name();
            let shown = if model == label {
                model.to_string()
            } else {
                format!("{model} (paper: {label})")
            };
            match spec.kind {
                TableKind::Regression => {
                    if let Some(r) = rows.iter().find(|r| {
                        r.model == model
                            && crate::experiments::tables::variant_of(t, &vname)
                                .is_some_and(|v| v.name() == r.variant)
                    }) {
                        any = true;
                        let p = |m: &str| lookup_at(e, t, &pm, &vname, "none", m);
                        out.push(vec![
                            shown,
                            vname.clone(),
                            cell(&r.acc7, p("acc7"), 1),
                            cell(&r.acc2, p("acc2"), 1),
                            cell(&r.mae, p("mae"), 3),
                            cell(&r.corr, p("corr"), 3),
                            verdicts(claims, model, &r.variant),
                        ]);
                    }
                }
                TableKind::Binary => {
                    if let Some(r) = binary
                        .iter()
                        .find(|r| r.model == model && r.variant == vname)
                    {
                        any = true;
                        out.push(vec![
                            shown,
                            vname.clone(),
                            cell(&r.accuracy, lookup_at(e, t, &pm, &vname, "none", "acc"), 1),
                            verdicts(claims, model, &r.variant),
                        ]);
                    }
                }
                TableKind::Corruption => {
                    if let Some(r) = corruption
                        .iter()
                        .find(|r| r.model == model && r.variant == vname)
                    {
                        any = true;
                        let mut v = vec![shown, vname.clone()];
                        for (i, c) in CONDITIONS.iter().enumerate() {
                            let p = lookup_at(e, t, &pm, &vname, c, "acc2");
                            v.push(match &r.acc2[i] {
                                Some(st) => cell(st, p, 1),
                                None => "—".into(),
                            });
                        }
                        out.push(v);
                    }
                }
            }
        }
        if !any {
            let why = missing_reason(&pm, ran_models, tier);
            let mut v = vec![format!("{label} — ({why})"), vname.clone()];
            match spec.kind {
                TableKind::Regression => {
                    v.extend(paper_only(
                        e,
                        t,
                        &pm,
                        &vname,
                        &["acc7", "acc2", "mae", "corr"],
                    ));
                    v.push(String::new());
                }
                TableKind::Binary => {
                    v.extend(paper_only(e, t, &pm, &vname, &["acc"]));
                    v.push(String::new());
                }
                TableKind::Corruption => {
                    for c in CONDITIONS {
                        v.push(
                            lookup_at(e, t, &pm, &vname, c, "acc2")
                                .map_or("—".into(), |p| format!("— ({p:.1})")),
                        );
                    }
                }
            }
            out.push(v);
        }
    }
    if spec.kind == TableKind::Corruption {
        // the models that ran but have no row in the paper's Table 4
        let rows_of_paper = layout(spec, e);
        for r in corruption {
            if rows_of_paper
                .iter()
                .any(|(pm, _, _)| kinds_of(pm).iter().any(|k| k.name() == r.model))
            {
                continue;
            }
            let mut v = vec![
                format!("{} (no row in the paper's table)", r.model),
                r.variant.clone(),
            ];
            v.extend(r.acc2.iter().map(|a| match a {
                Some(st) => cell(st, None, 1),
                None => "—".into(),
            }));
            out.push(v);
        }
    }
    s += &super::markdown_table(&header, &out);
    s + "\n"
}
