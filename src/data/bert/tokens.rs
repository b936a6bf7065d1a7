//! The token path: BERT word-piece ids for the BERT-based models (MAG-BERT, MMIM).
//!
//! A split that carries words ([`Split::words`], the real-text tiers: the transcript's words as
//! the tier tokenised them, one per word step) can be tokenised with a checkpoint's tokenizer
//! ([`attach`]): each clip becomes `[CLS] word-pieces [SEP] [PAD]…` of the tokenizer's `max_len`
//! (MMSA's `text_bert`), with its attention mask, segment ids (all 0) and, per token, the index of
//! the word step it came from (`-1` at `[CLS]`, `[SEP]` and padding). [`Dataset::batch`] then
//! fills `SeqBatch::tokens` with a [`TokenBatch`]: the ids, mask and segment ids cut to the
//! batch's longest real token sequence, and **word-aligned audio and vision**: at token `j` the
//! frame of the word step `word[j]` (MAG-BERT's "one frame per word-piece"), zeros where
//! `word[j] = -1`, as the original MAG-BERT pickles have them.
//!
//! **Words are given pre-split.** The tokenizer receives the tier's words (lower-cased, with
//! punctuation trimmed from both ends, see [`crate::data::realtext::tokenize`]) rather than the
//! raw transcript, so the word-piece → word-step map is exact. MMSA tokenises the raw transcript;
//! the difference is the trimmed punctuation (MOSI's transcripts have almost none) and the case
//! (irrelevant for an uncased vocabulary).
//!
//! **Synthetic tiers have no words**, so the BERT-based models are *not applicable* there: their
//! cells stay empty ("—") with that reason (`reproduce-paper` drops them from a synthetic plan and
//! says so). Feeding a BERT random token ids would measure nothing about the paper's claims.

use super::{BertTokenizer, TextEncoderError};
use crate::data::{Dataset, Split};
use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;
use std::sync::Arc;

/// The checkpoint a dataset's tokens were made with (shared by its splits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    /// The checkpoint folder (`config.json`, `model.safetensors`, `tokenizer.json`): the
    /// BERT-based models load their pretrained weights from it.
    pub dir: PathBuf,
    /// Tokens per clip (`max_len`, 50 as MMSA).
    pub max_len: usize,
    /// Id of `[PAD]` (what a dropped text modality's word-pieces become).
    pub pad_id: u32,
}

/// Word-piece tokens of every clip of a split (row-major `N × max_len`).
#[derive(Debug, Clone)]
pub struct SplitTokens {
    pub source: Arc<TokenSource>,
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    pub segment: Vec<u32>,
    /// Word step of each token (`-1` at `[CLS]`, `[SEP]`, padding).
    pub word: Vec<i32>,
}

impl SplitTokens {
    /// Keeps the first `n` clips.
    pub fn truncate(&mut self, n: usize) {
        let l = self.source.max_len;
        for v in [&mut self.ids, &mut self.mask, &mut self.segment] {
            v.truncate(n * l);
        }
        self.word.truncate(n * l);
    }

    /// The rows `idx` (a new split's tokens).
    pub fn select(&self, idx: &[usize]) -> SplitTokens {
        let l = self.source.max_len;
        let pick = |v: &[u32]| -> Vec<u32> {
            idx.iter()
                .flat_map(|&i| v[i * l..(i + 1) * l].iter().copied())
                .collect()
        };
        SplitTokens {
            source: self.source.clone(),
            ids: pick(&self.ids),
            mask: pick(&self.mask),
            segment: pick(&self.segment),
            word: idx
                .iter()
                .flat_map(|&i| self.word[i * l..(i + 1) * l].iter().copied())
                .collect(),
        }
    }

    /// Real tokens (`[CLS]` … `[SEP]`) of clip `i`.
    pub fn real_len(&self, i: usize) -> usize {
        let l = self.source.max_len;
        self.mask[i * l..(i + 1) * l]
            .iter()
            .filter(|&&m| m == 1)
            .count()
    }
}

/// A batch's tokens on a device (`L` = the batch's longest real token sequence).
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// `B × L` word-piece ids (u32).
    pub ids: Tensor,
    /// `B × L` attention mask, 1 on real tokens (in the batch's float dtype).
    pub mask: Tensor,
    /// `B × L` segment ids (u32, all 0).
    pub segment: Tensor,
    /// Word-aligned audio and vision, `B × L × d_a` and `B × L × d_v`: the word step's frame at
    /// each word-piece, zeros at `[CLS]`, `[SEP]` and padding.
    pub aligned: [Tensor; 2],
    /// Real tokens per clip.
    pub lengths: Vec<usize>,
}

/// Builds the [`TokenBatch`] of rows `idx` of `split` (see [`Dataset::batch`]).
pub(crate) fn token_batch(
    ds: &Dataset,
    split: &Split,
    tok: &SplitTokens,
    idx: &[usize],
    drop: &[usize],
    dtype: DType,
    device: &Device,
) -> candle_core::Result<TokenBatch> {
    let lmax = tok.source.max_len;
    let lengths: Vec<usize> = idx.iter().map(|&i| tok.real_len(i).max(1)).collect();
    let l = lengths.iter().copied().max().unwrap_or(1);
    let b = idx.len();
    let (mut ids, mut mask, mut seg) = (
        Vec::with_capacity(b * l),
        Vec::with_capacity(b * l),
        Vec::with_capacity(b * l),
    );
    let [_, da, dv] = ds.dims;
    let tm = ds.t_max;
    let mut al = vec![0f32; b * l * da];
    let mut vi = vec![0f32; b * l * dv];
    for (r, &i) in idx.iter().enumerate() {
        for j in 0..l {
            let k = i * lmax + j;
            let w = tok.word[k];
            let is_piece = w >= 0;
            ids.push(if drop.contains(&0) && is_piece {
                tok.source.pad_id
            } else {
                tok.ids[k]
            });
            mask.push(tok.mask[k] as f32);
            seg.push(tok.segment[k]);
            let w = w as usize;
            if is_piece && w < split.lengths[i].min(tm) {
                if !drop.contains(&1) {
                    let src = &split.audio[(i * tm + w) * da..(i * tm + w + 1) * da];
                    al[(r * l + j) * da..(r * l + j + 1) * da].copy_from_slice(src);
                }
                if !drop.contains(&2) {
                    let src = &split.vision[(i * tm + w) * dv..(i * tm + w + 1) * dv];
                    vi[(r * l + j) * dv..(r * l + j + 1) * dv].copy_from_slice(src);
                }
            }
        }
    }
    Ok(TokenBatch {
        ids: Tensor::from_vec(ids, (b, l), device)?,
        mask: Tensor::from_vec(mask, (b, l), device)?.to_dtype(dtype)?,
        segment: Tensor::from_vec(seg, (b, l), device)?,
        aligned: [
            Tensor::from_vec(al, (b, l, da), device)?.to_dtype(dtype)?,
            Tensor::from_vec(vi, (b, l, dv), device)?.to_dtype(dtype)?,
        ],
        lengths,
    })
}

/// Tokenises every split's [`Split::words`] with `tokenizer` (whose checkpoint folder is `dir`)
/// and stores the tokens in [`Split::tokens`]; appends the tokenisation to the dataset's
/// description (so run keys differ between checkpoints). Errors if a split has no words (a
/// synthetic tier) or a word step index would exceed the split's padded length.
pub fn attach(
    ds: &mut Dataset,
    tokenizer: &BertTokenizer,
    dir: PathBuf,
    checkpoint_key: &str,
) -> Result<(), TextEncoderError> {
    let source = Arc::new(TokenSource {
        dir,
        max_len: tokenizer.max_len(),
        pad_id: tokenizer.pad_id(),
    });
    let name = ds.name.clone();
    for (what, s) in [
        ("train", &mut ds.train),
        ("valid", &mut ds.valid),
        ("test", &mut ds.test),
    ] {
        if s.words.len() != s.len() {
            return Err(TextEncoderError::InvalidParameter {
                name: "dataset",
                reason: format!(
                    "{name} {what}: {} of {} clips have words (the synthetic tiers have none; \
                     the BERT models need the real-text tier)",
                    s.words.len(),
                    s.len()
                ),
            });
        }
        let (tok, word) = tokenizer.encode_words(&s.words)?;
        let l = tokenizer.max_len();
        let n = s.len();
        // every array one row of `max_len` per clip: the batches index them so
        for (arr, shape) in [
            ("input ids", tok.input_ids.shape()),
            ("attention mask", tok.attention_mask.shape()),
            ("segment ids", tok.token_type_ids.shape()),
            ("word map", word.shape()),
        ] {
            if shape != [n, l] {
                return Err(TextEncoderError::InvalidParameter {
                    name: "dataset",
                    reason: format!(
                        "{name} {what}: the tokenizer's {arr} have shape {shape:?}, expected \
                         {n} clips × max_len {l}"
                    ),
                });
            }
        }
        let mut word_v = Vec::with_capacity(n * l);
        for (i, row) in word.outer_iter().enumerate() {
            for &w in row.iter() {
                if w >= 0 && w as usize >= s.lengths[i].max(1) {
                    return Err(TextEncoderError::InvalidParameter {
                        name: "dataset",
                        reason: format!(
                            "{name} {what} clip {i}: word {w} beyond its {} word steps",
                            s.lengths[i]
                        ),
                    });
                }
                word_v.push(w);
            }
        }
        s.tokens = Some(SplitTokens {
            source: source.clone(),
            ids: tok.input_ids.iter().copied().collect(),
            mask: tok.attention_mask.iter().copied().collect(),
            segment: tok.token_type_ids.iter().copied().collect(),
            word: word_v,
        });
    }
    ds.description += &format!(
        "{}text_bert max_len {} from checkpoint {checkpoint_key}",
        crate::data::TOKEN_NOTE,
        tokenizer.max_len()
    );
    Ok(())
}
