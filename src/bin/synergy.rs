//! `synergy`: estimators and metrics on `.npy` files. See `neural_synergy::cli`.
use clap::Parser;
use neural_synergy::cli::{human, run, Cli};

fn main() {
    neural_synergy::init_threads(None);
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            // clap's message without its usage block, folded onto one line
            let msg = e.to_string();
            let text: Vec<&str> = msg
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:"))
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("synergy: {} (see synergy --help)", text.join(" "));
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    };
    let demo = matches!(cli.command, neural_synergy::cli::Command::TrainDemo { .. });
    match run(&cli) {
        Ok(v) if cli.json => println!("{v}"),
        Ok(_) if demo => {} // already printed its table
        Ok(v) => println!("{}", human(&v)),
        Err(e) => {
            eprintln!("synergy: error: {e:#}");
            std::process::exit(1);
        }
    }
}
