//! `synergy encode-text`: sentences on stdin (one per line) → token ids, attention masks, `[CLS]`
//! and masked-mean vectors of a pretrained BERT ([`crate::data::bert::TextEncoder`]).

use crate::data::bert::{encoder::DEFAULT_MAX_LEN, resolve_encoder_dir, TextEncoder};
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::PathBuf;

/// Arguments of `synergy encode-text`.
#[derive(Debug, Args)]
pub struct EncodeTextArgs {
    /// Checkpoint folder (config.json, model.safetensors, tokenizer.json). Default:
    /// $NEURAL_SYNERGY_TEXT_ENCODER, then the folder scripts/fetch-encoder.sh fills.
    #[arg(long, value_name = "DIR")]
    pub text_encoder: Option<PathBuf>,
    /// Tokens per sentence, [CLS] and [SEP] included (MMSA: 50).
    #[arg(long, default_value_t = DEFAULT_MAX_LEN)]
    pub max_len: usize,
}

/// Encodes the lines of `input` (a trailing `\r` is dropped).
pub(crate) fn encode_lines(args: &EncodeTextArgs, input: impl BufRead) -> Result<Value> {
    let dir = resolve_encoder_dir(args.text_encoder.as_deref())?;
    let mut lines = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("stdin, line {}", i + 1))?;
        lines.push(line.strip_suffix('\r').map(str::to_owned).unwrap_or(line));
    }
    if lines.is_empty() {
        bail!("encode-text: no sentences on stdin (one per line)");
    }
    let enc = TextEncoder::load_with(&dir, &candle_core::Device::Cpu, args.max_len)?;
    let e = enc.encode(&lines)?;
    let rows = |a: &ndarray::Array2<u32>| a.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>();
    let vecs = |a: &ndarray::Array2<f32>| a.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>();
    Ok(json!({
        "text_encoder": dir.display().to_string(),
        "max_len": enc.max_len(),
        "hidden_size": enc.hidden_size(),
        "input_ids": rows(&e.tokens.input_ids),
        "attention_mask": rows(&e.tokens.attention_mask),
        "cls": vecs(&e.cls),
        "mean": vecs(&e.mean),
    }))
}
