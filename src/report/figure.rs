//! The PNG figures of a report as data: each [`Figure`] holds what it plots and its title, knows
//! its file name and its markdown reference, and draws itself ([`Figure::draw`]).
//! [`super::Report::write`] draws them before it makes `report.html`, which inlines them.

use super::claims::Claim;
use super::corruption::CorruptionClaim;
use super::error::PlotError;
use super::robustness::RobustnessRow;
use super::subsets::SubsetCell;
use super::tuning::BudgetCurve;
use std::path::Path;

/// One figure of a report.
#[derive(Debug, Clone)]
pub enum Figure {
    /// The forest plot of the table's claims (`forest.png`, `super::claims::forest_plot`).
    Claims { title: String, claims: Vec<Claim> },
    /// Table 4's forest plot, the claims under modality corruption (`forest-table4.png`,
    /// `corruption::forest_plot`).
    Table4 {
        title: String,
        claims: Vec<CorruptionClaim>,
    },
    /// The per-subset deltas (`forest-subsets.png`, `subsets::forest_plot`).
    Subsets {
        title: String,
        cells: Vec<SubsetCell>,
    },
    /// The expected best score per tuning budget (`tuning-budget.png`, [`super::tuning::plot`]).
    TuningBudget {
        title: String,
        curves: Vec<BudgetCurve>,
    },
    /// The graded robustness curves (`robustness.png`, [`super::robustness::plot`]).
    Robustness {
        title: String,
        rows: Vec<RobustnessRow>,
    },
}

impl Figure {
    /// The PNG's file name in the results folder.
    pub fn file_name(&self) -> &'static str {
        self.names().0
    }

    /// The image's alternative text in `table.md` (and `report.html`).
    pub fn alt(&self) -> &'static str {
        self.names().1
    }

    /// (file name, alternative text).
    fn names(&self) -> (&'static str, &'static str) {
        match self {
            Figure::Claims { .. } => ("forest.png", "forest plot of the claims"),
            Figure::Table4 { .. } => ("forest-table4.png", "forest plot of the corruption claims"),
            Figure::Subsets { .. } => {
                ("forest-subsets.png", "forest plot of the per-subset deltas")
            }
            Figure::TuningBudget { .. } => (
                "tuning-budget.png",
                "expected best validation score per tuning budget",
            ),
            Figure::Robustness { .. } => ("robustness.png", "robustness curves per modality"),
        }
    }

    /// The markdown image reference, `![alt](file)`.
    pub fn markdown(&self) -> String {
        format!("![{}]({})", self.alt(), self.file_name())
    }

    /// Draws the figure as a PNG at `path`.
    pub fn draw(&self, path: &Path) -> Result<(), PlotError> {
        match self {
            Figure::Claims { title, claims } => super::claims::forest_plot(path, title, claims),
            Figure::Table4 { title, claims } => super::corruption::forest_plot(path, title, claims),
            Figure::Subsets { title, cells } => super::subsets::forest_plot(path, title, cells),
            Figure::TuningBudget { title, curves } => super::tuning::plot(path, title, curves),
            Figure::Robustness { title, rows } => super::robustness::plot(path, title, rows),
        }
    }
}
