//! `reproduce-paper`: argument parsing and orchestration (the binary only calls [`main_with`]).
//!
//! The rooms: `args.rs` holds the arguments (clap's derive types: [`ReproduceArgs`],
//! [`ReproduceCommand`], [`RunArgs`], [`MisaText`], [`DeviceArg`]); `selection.rs` turns `run`'s
//! options into the seeds, the synergy weights and the models, variants and corpus to train;
//! `run.rs` is `run` and `plan` (the plan, `run.json`, the training, a shard's summary, the cost
//! of a plan); `folder.rs` holds the commands that train nothing — `report --from`, `scoreboard`,
//! `compact`, `expected` — and the rendering of a folder's tables that `run` ends with; this file
//! dispatches a parsed command.

use anyhow::Result;

mod args;
mod folder;
mod run;
mod selection;

pub use args::{DeviceArg, ReproduceArgs};
pub(crate) use args::{MisaText, ReproduceCommand, RunArgs};

pub(crate) use folder::report_from;
use folder::{compact, print_expected, scoreboard};
use run::run;

/// Entry point of the binary.
pub fn main_with(args: ReproduceArgs) -> Result<()> {
    match args.command {
        None => run(args.run),
        Some(ReproduceCommand::Run(r)) => run(r),
        Some(ReproduceCommand::Plan(mut r)) => {
            r.plan = true;
            run(r)
        }
        Some(ReproduceCommand::Expected { json }) => {
            crate::try_init_threads(Some(1))?;
            print_expected(json)
        }
        Some(ReproduceCommand::Report { from, out, json }) => {
            crate::try_init_threads(Some(1))?;
            report_from(&from, out.as_deref(), json)
        }
        Some(ReproduceCommand::Compact { from, max_file_mib }) => compact(&from, max_file_mib),
        Some(ReproduceCommand::Scoreboard { from, out, json }) => {
            crate::try_init_threads(Some(1))?;
            scoreboard(&from, out.as_deref(), json)
        }
    }
}
