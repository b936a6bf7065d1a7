//! The `synergy` command line (argument parsing and dispatch; the binary only prints).
//!
//! Every command returns one JSON object; with `--json` the binary prints it on one line, otherwise
//! as `key: value` lines.
//!
//! The rooms: `args.rs` holds the arguments (clap's derive types); the work of each command group
//! is a file of its own: `estimate.rs` (`synergy estimate …`), `pid.rs` (`synergy pid` and the
//! reading of its `.npy` codes), `pid_tier.rs` (`synergy pid-tier`, `synergy pid-codes`),
//! `data.rs` (`synergy data inspect`), `train_demo.rs` (`synergy train-demo`); this file
//! dispatches a parsed command and turns results and clap's errors into text.

use crate::io::read_vector;
use crate::metrics::regression_metrics;
use anyhow::{Context, Result};
use serde_json::Value;

mod args;
mod data;
mod estimate;
mod pid;
mod pid_tier;
mod train_demo;

pub use args::{Cli, Command};
pub(crate) use args::{
    DataCmd, DataFormat, DivArg, Estimate, KlMethod, PidArgs, PidCodesArgs, PidTierArgs,
};

use data::data_inspect;
use estimate::estimate;
use pid::pid;
use pid_tier::{pid_codes_cmd, pid_tier};
use train_demo::train_demo;

/// Runs a parsed command and returns its JSON result.
pub fn run(cli: &Cli) -> Result<Value> {
    match &cli.command {
        Command::Estimate(e) => estimate(e),
        Command::TrainDemo {
            steps,
            batch,
            divergence,
            seed,
            plot,
            every,
        } => train_demo(*steps, *batch, *divergence, *seed, plot, *every, cli.json),
        Command::CheckDevice { cuda, bench, iters } => {
            let device = if *cuda {
                candle_core::Device::new_cuda(0).context(
                    "no CUDA device (is this a build with --features cuda, on a GPU machine?)",
                )?
            } else {
                candle_core::Device::Cpu
            };
            let r = crate::app::check::check_device(&device, *bench, *iters)?;
            if !r.all_within_tolerance {
                eprintln!("synergy: warning: a device result is outside its tolerance");
            }
            Ok(serde_json::to_value(r)?)
        }
        Command::Data(DataCmd::Inspect { paths, format }) => data_inspect(paths, *format),
        Command::EncodeText(a) => crate::app::encode_text::encode_lines(a, std::io::stdin().lock()),
        Command::Metrics { pred, label } => {
            let p = read_vector(pred)?;
            let l = read_vector(label)?;
            let m = regression_metrics(&p.view(), &l.view())?;
            Ok(serde_json::to_value(m)?)
        }
        Command::Pid(a) => pid(a),
        Command::PidTier(a) => pid_tier(a, cli.json),
        Command::PidCodes(a) => pid_codes_cmd(a),
    }
}

/// Renders a result as `key: value` lines for humans.
pub fn human(v: &Value) -> String {
    match v.as_object() {
        Some(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        None => v.to_string(),
    }
}

/// clap's error message without its usage block, folded onto one line (both binaries print bad
/// arguments as one line on stderr).
pub fn one_line(e: &clap::Error) -> String {
    let msg = e.to_string();
    let text: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty())
        .collect();
    text.join(" ")
}
