//! The context of a results folder (`run.json`): what a report needs to know about the runs
//! besides their results — tier, corpus, profile, seeds, models, test clips and labels, subsets and
//! PID codes. Written by [`crate::experiments`] when a plan starts; read by [`crate::report`] and the
//! `synergy` CLI. It lives here, below the report, so no layer imports upwards.

use crate::data::{Ceiling, Dataset, DatasetName, Task, Tier};
use crate::experiments::{Plan, Profile};
use crate::models::ModelKind;
use serde::Serialize;

/// What a report needs to know about the runs besides their results (saved as `run.json` next to
/// `results.jsonl`, so `reproduce-paper report --from DIR` re-renders without the data).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunContext {
    pub tier: Tier,
    /// The corpus (`None` in a `run.json` written before datasets were recorded: MOSI).
    #[serde(default)]
    pub dataset: Option<DatasetName>,
    /// Regression or binary (absent in older `run.json`: regression).
    #[serde(default)]
    pub task: Task,
    pub profile: Profile,
    pub seeds: Vec<u64>,
    /// Model names in table order.
    pub models: Vec<String>,
    /// The dataset's description.
    pub data: String,
    pub ceilings: Vec<Ceiling>,
    /// Test clip ids and labels, in the order of the saved test predictions.
    pub test_ids: Vec<String>,
    pub test_labels: Vec<f64>,
    /// The epoch cap when `--max-epochs` overrode the profile's.
    #[serde(default)]
    pub max_epochs: Option<usize>,
    /// Runs in the whole plan (all shards), so a merged report can tell what is missing.
    #[serde(default)]
    pub planned_runs: Option<usize>,
    /// Test subsets with a known information structure (synthetic tiers), aligned with `test_ids`.
    #[serde(default)]
    pub test_subsets: Vec<crate::data::TestSubset>,
    /// The (batch size, learning rate) grid when `--batch-size`/`--lr` replaced the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<Vec<(usize, f64)>>,
    /// Each test clip's text and audio+vision codes (k-means fitted on the train split), aligned
    /// with `test_ids`: what the PID of the runs' test predictions needs
    /// ([`crate::report::prediction_pid`]). Absent in a `run.json` written before it existed
    /// (`synergy pid-codes --from DIR` adds it) or when the features could not be coded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_codes: Option<crate::experiments::synergy_pid::PidCodes>,
    /// Model hyper-parameters the command set (`--model-param`, e.g. `magbert.beta_shift=0.1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_settings: Vec<String>,
}

impl RunContext {
    /// The corpus ([`DatasetName::Mosi`] for a `run.json` that predates the field).
    pub(crate) fn dataset_or_mosi(&self) -> DatasetName {
        self.dataset.unwrap_or_default()
    }

    /// The (batch size, learning rate) grid of the runs: the override, else the profile's
    /// (as [`Plan::grid`]).
    pub(crate) fn grid(&self) -> Vec<(usize, f64)> {
        self.grid.clone().unwrap_or_else(|| self.profile.grid())
    }

    /// The contexts of several results folders as one (`report --from A --from B --out C`: one
    /// table over models trained into separate folders). They must agree on everything that makes
    /// their runs comparable — tier, corpus, task, profile, data, test clips and labels, subsets,
    /// epoch cap and grid, and the PID codes where two folders both have them — else the error
    /// names the first field that differs; the result has the union of their seeds (sorted) and
    /// models (in the paper's table order), the sum of their planned runs, and the first folder's
    /// PID codes that are present (the codes are a function of the data, which must agree).
    pub fn merge(contexts: &[RunContext]) -> Result<RunContext, String> {
        let first = contexts.first().ok_or("no run context to merge")?;
        for (i, c) in contexts.iter().enumerate().skip(1) {
            let differs = [
                ("tier", c.tier != first.tier),
                ("dataset", c.dataset_or_mosi() != first.dataset_or_mosi()),
                ("task", c.task != first.task),
                ("profile", c.profile != first.profile),
                ("data", !crate::data::same_data(&c.data, &first.data)),
                ("test clips", c.test_ids != first.test_ids),
                ("test labels", c.test_labels != first.test_labels),
                ("test subsets", c.test_subsets != first.test_subsets),
                ("epoch cap (--max-epochs)", c.max_epochs != first.max_epochs),
                ("grid (--batch-size/--lr)", c.grid() != first.grid()),
                (
                    "model settings (--model-param)",
                    c.model_settings != first.model_settings,
                ),
                (
                    "PID codes (pid_codes)",
                    matches!((&c.pid_codes, &first.pid_codes), (Some(a), Some(b)) if a != b),
                ),
            ];
            if let Some((what, _)) = differs.iter().find(|d| d.1) {
                return Err(format!(
                    "results folder {} differs from the first in its {what}: their runs do not \
                     belong in one table",
                    i + 1
                ));
            }
        }
        let mut merged = first.clone();
        // the description with the BERT token note, where a folder has one (its BERT models'
        // runs carry it; the other models' runs on the same data do not)
        if let Some(c) = contexts
            .iter()
            .find(|c| crate::data::split_token_note(&c.data).1.is_some())
        {
            merged.data = c.data.clone();
        }
        merged.seeds = contexts.iter().flat_map(|c| c.seeds.clone()).collect();
        merged.seeds.sort_unstable();
        merged.seeds.dedup();
        let rank = |name: &str| {
            ModelKind::ALL
                .iter()
                .position(|m| m.name() == name)
                .unwrap_or(usize::MAX)
        };
        let mut models: Vec<String> = contexts.iter().flat_map(|c| c.models.clone()).collect();
        models.sort_by_key(|m| rank(m));
        models.dedup();
        merged.models = models;
        merged.planned_runs = contexts.iter().map(|c| c.planned_runs).sum();
        merged.pid_codes = contexts.iter().find_map(|c| c.pid_codes.clone());
        Ok(merged)
    }

    /// This plan's context widened by the `run.json` an earlier training left in the same folder
    /// (`prev`), so that a folder trained by several commands (more models, more seeds, other
    /// variants) is described by one context: the union of their seeds and models, as
    /// [`Self::merge`]. The planned-run count stays only when both commands planned the same
    /// models and seeds (a resume); otherwise it is unknown (`None`), since the two plans may
    /// overlap. `Err` when `prev` describes runs that do not belong in one table with these (other
    /// data, tier, profile, grid…): the caller then replaces it.
    pub(crate) fn widened_by(self, prev: &RunContext) -> Result<RunContext, String> {
        let same_plan = prev.models == self.models && prev.seeds == self.seeds;
        let planned = self.planned_runs;
        let mut merged = RunContext::merge(&[self, prev.clone()])?;
        merged.planned_runs = if same_plan { planned } else { None };
        Ok(merged)
    }

    /// The context of a plan on a dataset.
    pub fn new(plan: &Plan, ds: &Dataset) -> Self {
        Self {
            tier: plan.tier,
            // the full tier's file says which corpus it is, when it can
            dataset: Some(ds.corpus().unwrap_or(plan.dataset)),
            task: ds.task,
            profile: plan.profile,
            seeds: plan.seeds.clone(),
            models: plan.models.iter().map(|m| m.kind().name().into()).collect(),
            data: ds.description.clone(),
            ceilings: ds.ceilings.clone(),
            test_ids: ds.test.ids.clone(),
            test_labels: ds.test.labels.iter().map(|v| *v as f64).collect(),
            max_epochs: plan.max_epochs,
            planned_runs: plan.runs(ds).ok().map(|r| r.len()),
            test_subsets: ds.test_subsets.clone(),
            grid: plan.grid.clone(),
            model_settings: plan.model_settings.iter().map(|s| s.to_string()).collect(),
            pid_codes: match crate::experiments::synergy_pid::pid_codes(ds) {
                Ok(codes) => Some(codes),
                Err(e) => {
                    eprintln!(
                        "reproduce-paper: warning: no PID codes in run.json ({e}); the report will \
                         have no PID of the test predictions"
                    );
                    None
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(models: &[&str], seeds: &[u64], data: &str, planned: usize) -> RunContext {
        serde_json::from_value(serde_json::json!({
            "tier": "real-text", "profile": "quick", "seeds": seeds, "models": models,
            "data": data, "ceilings": [], "test_ids": ["a", "b"], "test_labels": [0.5, -1.0],
            "planned_runs": planned,
        }))
        .expect("a run.json")
    }

    #[test]
    fn widening_by_an_earlier_plan_takes_the_union_of_models_and_seeds() {
        let earlier = ctx(&["MIM"], &[0, 1, 2, 3, 4], "d", 20);
        let now = ctx(&["MAGBERT"], &[0, 1, 2], "d", 12);
        let w = now.widened_by(&earlier).unwrap();
        assert_eq!(w.models, ["MAGBERT", "MIM"]);
        assert_eq!(w.seeds, [0, 1, 2, 3, 4]);
        // the two plans may overlap: their total is unknown, so no "incomplete" claim
        assert_eq!(w.planned_runs, None);
    }

    #[test]
    fn a_resume_of_the_same_plan_keeps_its_planned_runs() {
        let w = ctx(&["MIM"], &[0, 1], "d", 8)
            .widened_by(&ctx(&["MIM"], &[0, 1], "d", 8))
            .unwrap();
        assert_eq!(w.planned_runs, Some(8));
    }

    #[test]
    fn an_earlier_run_json_of_other_data_is_refused_by_name() {
        let e = ctx(&["MIM"], &[0], "new data", 4)
            .widened_by(&ctx(&["MIM"], &[0], "old data", 4))
            .unwrap_err();
        assert!(e.contains("data"), "{e}");
    }

    #[test]
    fn a_glove_plan_widens_a_bert_folder_and_keeps_its_token_note() {
        let note = "d; BERT tokens: text_bert max_len 50 from checkpoint k1";
        // either order: the merged description is the one with the note
        for (now, earlier) in [
            (("FLSTM", "d"), ("MIM", note)),
            (("MIM", note), ("FLSTM", "d")),
        ] {
            let w = ctx(&[now.0], &[0], now.1, 4)
                .widened_by(&ctx(&[earlier.0], &[0], earlier.1, 4))
                .unwrap();
            assert_eq!(w.data, note);
            assert_eq!(w.models, ["FLSTM", "MIM"]);
        }
        // two checkpoints' tokens are other data
        let other = "d; BERT tokens: text_bert max_len 50 from checkpoint k2";
        let e = ctx(&["MIM"], &[0], other, 4)
            .widened_by(&ctx(&["MIM"], &[0], note, 4))
            .unwrap_err();
        assert!(e.contains("data"), "{e}");
    }
}
