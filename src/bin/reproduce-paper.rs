//! `reproduce-paper`: the paper's tables, measured vs expected. See
//! `neural_synergy::experiments::reproduce`.
use clap::Parser;
use neural_synergy::experiments::reproduce::{main_with, ReproduceArgs};

fn main() {
    let args = match ReproduceArgs::try_parse() {
        Ok(a) => a,
        Err(e) if e.use_stderr() => {
            let msg = e.to_string();
            let text: Vec<&str> = msg
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:"))
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!(
                "reproduce-paper: {} (see reproduce-paper --help)",
                text.join(" ")
            );
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    };
    if let Err(e) = main_with(args) {
        eprintln!("reproduce-paper: error: {e:#}");
        std::process::exit(1);
    }
}
