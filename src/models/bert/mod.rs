//! The trainable side of BERT, shared by the BERT-based fusion models (MAG-BERT, MISA's BERT text
//! path, MMIM).
//!
//! | file | what it holds |
//! |---|---|
//! | [`backbone`] | [`BertBackbone`](backbone::BertBackbone): embeddings → optional MAG gate → encoder → pooler, with pretrained weights loaded by name into the trainer's `VarMap` |
//! | [`frozen`] | [`FrozenText`](frozen::FrozenText): a frozen BERT's pooled outputs, computed once per token sequence and cached in memory and on disk |
//!
//! **Where the rest of BERT lives, and why there.** BERT is used at three layers, and each layer
//! holds its part in one room named `bert`:
//! * [`crate::data::bert`] — the inputs: the `text_bert` tokenizer, the frozen encoder of
//!   `synergy encode-text`, its feature cache, and a dataset's word-piece tokens and token
//!   batches. They sit in `data` because a split's tokens and a batch's word-aligned audio and
//!   vision are made from the split's arrays, below every model.
//! * here — what trains (or is frozen) inside a model; it builds on [`super::layers`]' dropout
//!   and pooling.
//! * `experiments/bert.rs` — what `reproduce-paper` does with them for a plan: the
//!   `--frozen-bert`/`--misa-text` options and attaching the checkpoint's tokens to the plan's
//!   data.

pub mod backbone;
pub mod frozen;
