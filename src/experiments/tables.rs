//! The paper's Tables 2–6 as data: each table is a corpus, a title, and the rows of
//! `paper/expected.toml` (paper model × variant × condition) that define its layout. A run selects
//! tables with `reproduce-paper --tables 2,4`; the plan then trains exactly the (model, variant)
//! pairs those tables contain, for the models this build has; every table renders in the paper's
//! layout with the measured value next to the paper's and "—" with a reason where nothing was
//! measured.

use super::expected::{expected, Expected};
use super::paper_model;
use crate::data::DatasetName;
use crate::models::ModelKind;
use crate::train::Variant;
use std::collections::BTreeSet;

/// One of the paper's result tables.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub number: u8,
    pub dataset: DatasetName,
    pub title: &'static str,
    /// What a row's cells are: regression metrics, the binary accuracy, or Acc2 per condition.
    pub kind: TableKind,
}

/// The layout of a table's cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// Acc7, Acc2, MAE, Corr (Tables 2, 3 and 5).
    Regression,
    /// Accuracy (Table 6).
    Binary,
    /// Acc2 under each test-time corruption (Table 4).
    Corruption,
}

/// Every table of the paper, in order.
pub fn all() -> Vec<TableSpec> {
    vec![
        TableSpec {
            number: 2,
            dataset: DatasetName::Mosi,
            title: "CMU-MOSI: every model, NLL vs the synergy variants",
            kind: TableKind::Regression,
        },
        TableSpec {
            number: 3,
            dataset: DatasetName::Mosei,
            title: "CMU-MOSEI: every model, NLL vs the synergy variants and IWas",
            kind: TableKind::Regression,
        },
        TableSpec {
            number: 4,
            dataset: DatasetName::Mosi,
            title:
                "CMU-MOSI: modality corruption at test time (Acc2; the paper's model is MAGBERT)",
            kind: TableKind::Corruption,
        },
        TableSpec {
            number: 5,
            dataset: DatasetName::Mosei,
            title: "CMU-MOSEI: ablation of the regulariser's terms on MIM (each term alone)",
            kind: TableKind::Regression,
        },
        TableSpec {
            number: 6,
            dataset: DatasetName::UrFunny,
            title: "UR-FUNNY: binary humour detection (accuracy)",
            kind: TableKind::Binary,
        },
    ]
}

/// Why a table number cannot be selected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TableError {
    #[error("the paper has Tables 2-6; there is no Table {0}")]
    Unknown(u8),
    #[error(
        "Tables {0} and {1} are on different corpora ({2} and {3}): run them separately, each with its own --out"
    )]
    MixedCorpora(u8, u8, &'static str, &'static str),
}

/// The specs of the selected table numbers (deduplicated, in order); all on one corpus.
pub fn select(numbers: &[u8]) -> Result<Vec<TableSpec>, TableError> {
    let specs = all();
    let mut out: Vec<TableSpec> = Vec::new();
    let mut seen = BTreeSet::new();
    for &n in numbers {
        let s = specs
            .iter()
            .find(|s| s.number == n)
            .ok_or(TableError::Unknown(n))?;
        if let Some(first) = out.first() {
            if first.dataset != s.dataset {
                return Err(TableError::MixedCorpora(
                    first.number,
                    n,
                    first.dataset.name(),
                    s.dataset.name(),
                ));
            }
        }
        if seen.insert(n) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

/// The variant a table row names (`MLE` = NLL and `+SMMD` = NLL+SMMD in Table 5).
pub fn variant_of(table: u8, name: &str) -> Option<Variant> {
    Variant::TABLE_ORDER
        .into_iter()
        .find(|v| v.name_in_table(table) == name)
}

/// The registered models whose rows are compared with paper model `pm` (TFN and, when it ran,
/// LMF for the paper's "LFN", recorded as TFN).
pub(crate) fn kinds_of(pm: &str) -> Vec<ModelKind> {
    ModelKind::ALL
        .iter()
        .copied()
        .filter(|k| paper_model(*k) == pm)
        .collect()
}

/// The registered model a table's row is planned with: the one named `pm` (the paper's "LFN" is
/// planned as TFN; LMF runs only when asked for with `--models`).
pub(crate) fn kind_of(pm: &str) -> Option<ModelKind> {
    ModelKind::ALL.iter().copied().find(|k| k.name() == pm)
}

/// A table's rows: (paper model, variant name as printed, condition), in the paper's order.
pub fn layout(spec: &TableSpec, expected: &[Expected]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for e in expected.iter().filter(|e| e.table == spec.number) {
        let row = (e.model.clone(), e.variant.clone(), e.condition.clone());
        if !out.contains(&row) {
            out.push(row);
        }
    }
    out
}

/// The (model, variant) pairs the selected tables contain, for the models this build has, and the
/// paper models it lacks.
pub fn pairs(specs: &[TableSpec]) -> (Vec<(ModelKind, Variant)>, Vec<String>) {
    let e = expected();
    let mut pairs = Vec::new();
    let mut missing = Vec::new();
    for spec in specs {
        for (pm, v, _) in layout(spec, &e) {
            let Some(variant) = variant_of(spec.number, &v) else {
                continue;
            };
            match kind_of(&pm) {
                Some(k) => {
                    if !pairs.contains(&(k, variant)) {
                        pairs.push((k, variant));
                    }
                }
                None => {
                    if !missing.contains(&pm) {
                        missing.push(pm.clone());
                    }
                }
            }
        }
    }
    (pairs, missing)
}
