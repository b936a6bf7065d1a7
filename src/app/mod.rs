//! Applications on top of the layers: argument parsing and orchestration of the two binaries
//! (`synergy`, `reproduce-paper`), the training demo and the device check. Nothing in the layers
//! below imports from here; the binaries only call [`synergy_main`] and [`reproduce_main`].

mod check;
mod demo;
mod encode_text;
mod progress;
mod reproduce;
mod synergy_cli;

// The applications' public surface: what the two binaries, the benches and the examples call.
// Everything else under `app/` is crate-private.
pub use check::synergy_workload;
pub use demo::{DemoFusion, DemoStream};
pub use reproduce::{main_with as reproduce_main, DeviceArg, ReproduceArgs};
pub use synergy_cli::{
    human, one_line, run as synergy_main, Cli as SynergyCli, Command as SynergyCommand,
};
