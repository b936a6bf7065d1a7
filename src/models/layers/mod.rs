//! The building blocks the fusion models are made of, one layer family per file (as candle-nn's
//! `nn` modules): each file's public forward functions state their shapes in a `# Shapes`
//! section.
//!
//! | file | what it holds | used by |
//! |---|---|---|
//! | [`lstm`] | [`FastLstm`](lstm::FastLstm): a single-layer LSTM with a fused CPU recurrence; [`Packing`](lstm::Packing) (packed sequences); `BiLstm` (bidirectional) | EF-LSTM, TFN, LMF, MFN, MISA, MMIM |
//! | [`subnet`] | [`SubNetConfig`](subnet::SubNetConfig) and the audio/vision/text sub-networks | TFN, LMF |
//! | [`dropout`] | `SeededDropout`: dropout with reproducible masks | all |
//! | [`pool`] | [`masked_mean`](pool::masked_mean), [`last_valid`](pool::last_valid): pooling over time | all but MAG-BERT |
//!
//! Dependencies run one way: the crate-private `kernels` (the fused CPU ops and their f32/f64 dispatch) ←
//! `lstm` ← `subnet`; `dropout` and `pool` ← [`crate::models::bert`] (the trainable BERT and its
//! frozen cache, one room of their own); nothing here reads a model's file.

pub mod dropout;
pub mod lstm;
pub mod pool;
pub mod subnet;

pub use dropout::SeededDropout;
