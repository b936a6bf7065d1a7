//! The integration tests, one binary (each `tests/*.rs` would be its own LTO-linked binary).
//! Tests that need `../shared` read it through `SYNERGY_SHARED` (unset: they skip and say why).

mod bert;
mod cli;
mod common;
mod data_formats;
mod data_models;
mod data_tiers;
mod errors;
mod hostile;
mod lstm;
mod metrics;
mod models;
mod models_bert;
mod models_lmf;
mod models_mfn;
mod models_misa;
mod models_misa_bert;
mod models_tfn;
mod prop_kl;
mod prop_kurtosis;
mod prop_mmd;
mod prop_pid;
mod reproduce;
mod scoreboard;
mod shard;
mod slurm;
mod stats;
mod store;
mod synergy_cnet;
mod synergy_iwas;
mod synergy_parity;
mod tables;
