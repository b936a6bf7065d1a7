//! The paper's expected results, transcribed once into `paper/expected.toml` (embedded at compile
//! time) with a note on every reading decision.

use serde::{Deserialize, Serialize};

/// The transcription, as shipped.
pub(crate) const EXPECTED_TOML: &str = include_str!("../../paper/expected.toml");

#[derive(Debug, Deserialize)]
struct File {
    row: Vec<Row>,
}

#[derive(Debug, Deserialize)]
struct Row {
    table: u8,
    dataset: String,
    model: String,
    variant: String,
    condition: String,
    acc7: Option<f64>,
    acc2: Option<f64>,
    mae: Option<f64>,
    corr: Option<f64>,
    acc: Option<f64>,
}

/// One expected value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expected {
    pub table: u8,
    pub dataset: String,
    pub model: String,
    pub variant: String,
    pub condition: String,
    pub metric: String,
    pub value: f64,
}

/// Every value of Tables 2–6 as flat records.
pub fn expected() -> Vec<Expected> {
    let f: File = toml::from_str(EXPECTED_TOML).expect("paper/expected.toml is valid (tested)");
    let mut out = Vec::new();
    for r in f.row {
        for (metric, v) in [
            ("acc7", r.acc7),
            ("acc2", r.acc2),
            ("mae", r.mae),
            ("corr", r.corr),
            ("acc", r.acc),
        ] {
            if let Some(value) = v {
                out.push(Expected {
                    table: r.table,
                    dataset: r.dataset.clone(),
                    model: r.model.clone(),
                    variant: r.variant.clone(),
                    condition: r.condition.clone(),
                    metric: metric.into(),
                    value,
                });
            }
        }
    }
    out
}

/// The expected value of one cell (condition "none"), if the paper has it.
pub(crate) fn lookup(
    all: &[Expected],
    table: u8,
    model: &str,
    variant: &str,
    metric: &str,
) -> Option<f64> {
    lookup_at(all, table, model, variant, "none", metric)
}

/// The expected value of one cell under a condition (Table 4's dropped modalities), if any.
pub(crate) fn lookup_at(
    all: &[Expected],
    table: u8,
    model: &str,
    variant: &str,
    condition: &str,
    metric: &str,
) -> Option<f64> {
    all.iter()
        .find(|e| {
            e.table == table
                && e.model == model
                && e.variant == variant
                && e.metric == metric
                && e.condition == condition
        })
        .map(|e| e.value)
}
