//! `reproduce-paper`: the paper's tables, measured vs expected. See
//! `neural_synergy::app`.
use clap::Parser;
use neural_synergy::app::{one_line, reproduce_main, ReproduceArgs};

fn main() {
    neural_synergy::restore_sigpipe();
    neural_synergy::tune_allocator();
    let args = match ReproduceArgs::try_parse() {
        Ok(a) => a,
        Err(e) if e.use_stderr() => {
            eprintln!(
                "reproduce-paper: {} (see reproduce-paper --help)",
                one_line(&e)
            );
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    };
    if let Err(e) = reproduce_main(args) {
        eprintln!("reproduce-paper: error: {e:#}");
        std::process::exit(1);
    }
}
