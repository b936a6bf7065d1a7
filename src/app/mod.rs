//! Applications on top of the layers: argument parsing and orchestration of the two binaries
//! (`synergy`, `reproduce-paper`), the training demo and the device check. Nothing in the layers
//! below imports from here; the binaries only call [`synergy_cli::run`] and [`reproduce::main_with`].

pub mod check;
pub mod demo;
pub mod encode_text;
pub mod progress;
pub mod reproduce;
pub mod synergy_cli;
