//! `synergy`: estimators and metrics on `.npy` files. See `neural_synergy::app`.
use clap::Parser;
use neural_synergy::app::{human, one_line, synergy_main, SynergyCli, SynergyCommand};

fn main() {
    neural_synergy::restore_sigpipe();
    neural_synergy::tune_allocator();
    neural_synergy::init_threads(None);
    let cli = match SynergyCli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            eprintln!("synergy: {} (see synergy --help)", one_line(&e));
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    };
    let demo = matches!(cli.command, SynergyCommand::TrainDemo { .. });
    match synergy_main(&cli) {
        Ok(v) if cli.json => println!("{v}"),
        Ok(_) if demo => {} // already printed its table
        Ok(v) => println!("{}", human(&v)),
        Err(e) => {
            eprintln!("synergy: error: {e:#}");
            std::process::exit(1);
        }
    }
}
