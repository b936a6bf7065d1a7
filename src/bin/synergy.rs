//! `synergy`: estimators and metrics on `.npy` files. See `neural_synergy::cli`.
use clap::Parser;
use neural_synergy::cli::{human, run, Cli};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid arguments");
            eprintln!("synergy: {first} (see synergy --help)");
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    };
    match run(&cli) {
        Ok(v) if cli.json => println!("{v}"),
        Ok(v) => println!("{}", human(&v)),
        Err(e) => {
            eprintln!("synergy: error: {e:#}");
            std::process::exit(1);
        }
    }
}
