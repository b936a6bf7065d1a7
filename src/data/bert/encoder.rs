//! A frozen BERT text encoder: MMSA's `text_bert` tokenisation ([`BertTokenizer`]) and
//! candle-transformers' [`BertModel`] ([`TextEncoder`]), with `[CLS]` and attention-masked mean
//! pooling.
//!
//! Tokenisation follows MMSA's `TextPre.py`: `[CLS] word-pieces [SEP]`, word-pieces truncated so the
//! whole sequence fits `max_len` (default 50), right-padded with `[PAD]`; the attention mask marks
//! the real tokens and the segment ids are all 0. The `tokenizer.json` of a checkpoint (MiniLM's
//! sets truncation and padding to 128) is overridden to `max_len`.
//!
//! Checkpoint naming variants are mapped with a [`VarBuilder`] rename: plain names
//! (`embeddings.*`, `encoder.*`, as in all-MiniLM-L6-v2), a `bert.` prefix (the hub's
//! bert-base-uncased) and the old LayerNorm names `gamma`/`beta`. Extra tensors (the pooler,
//! `embeddings.position_ids`, MLM heads) are ignored.
//!
//! candle-transformers keeps `BertEmbeddings` private (only `BertEncoder`/`BertLayer` are public),
//! so this frozen encoder uses `BertModel` as a whole; MAG-BERT, which injects its gate between the
//! embeddings and the encoder, will need its own embeddings + pooler around a public `BertEncoder`.

use super::TextEncoderError as E;
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use ndarray::{s, Array2, Array3, Axis};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// MMSA's sequence length for `text_bert` (and MAG-BERT's `max_seq_length`).
pub(crate) const DEFAULT_MAX_LEN: usize = 50;
/// Texts per forward pass in [`TextEncoder::encode`].
pub const BATCH: usize = 64;

/// Token ids of a batch of texts, each row exactly `max_len` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// `[CLS] word-pieces [SEP] [PAD]…` (N × max_len).
    pub input_ids: Array2<u32>,
    /// 1 on `[CLS]`, the word-pieces and `[SEP]`, 0 on padding.
    pub attention_mask: Array2<u32>,
    /// Segment ids: all 0 (one sentence per text).
    pub token_type_ids: Array2<u32>,
}

impl Tokenized {
    /// Number of texts.
    pub fn len(&self) -> usize {
        self.input_ids.nrows()
    }

    /// Whether there are no texts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequence length (columns).
    pub fn max_len(&self) -> usize {
        self.input_ids.ncols()
    }

    /// MMSA's `text_bert` array: ids, mask and segment ids stacked on axis 1 (N × 3 × max_len).
    pub fn text_bert(&self) -> Array3<i64> {
        let (n, l) = self.input_ids.dim();
        let parts = [&self.input_ids, &self.attention_mask, &self.token_type_ids];
        Array3::from_shape_fn((n, 3, l), |(i, k, j)| i64::from(parts[k][[i, j]]))
    }

    /// The texts `rows` (a batch).
    pub fn rows(&self, rows: Range<usize>) -> Tokenized {
        self.subset(&rows.collect::<Vec<_>>(), self.max_len())
    }

    /// The texts `rows`, first `cols` positions.
    fn subset(&self, rows: &[usize], cols: usize) -> Tokenized {
        let pick = |a: &Array2<u32>| a.select(Axis(0), rows).slice(s![.., ..cols]).to_owned();
        Tokenized {
            input_ids: pick(&self.input_ids),
            attention_mask: pick(&self.attention_mask),
            token_type_ids: pick(&self.token_type_ids),
        }
    }

    fn tensor(a: &Array2<u32>, device: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_iter(a.iter().copied(), device)?.reshape(a.dim())
    }
}

/// A BERT WordPiece tokenizer from a `tokenizer.json`, fixed to `max_len` tokens per text.
#[derive(Clone)]
pub struct BertTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    max_len: usize,
    cls_id: u32,
    sep_id: u32,
    pad_id: u32,
}

impl fmt::Debug for BertTokenizer {
    // without the vocabulary (30 522 entries for MiniLM)
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BertTokenizer")
            .field("path", &self.path)
            .field("max_len", &self.max_len)
            .field("cls_id", &self.cls_id)
            .field("sep_id", &self.sep_id)
            .field("pad_id", &self.pad_id)
            .finish_non_exhaustive()
    }
}

impl BertTokenizer {
    /// Loads `path` and overrides its truncation and padding with `max_len` (≥ 2).
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self, E> {
        if max_len < 2 {
            return Err(E::InvalidParameter {
                name: "max_len",
                reason: format!("must be at least 2 ([CLS] and [SEP]), got {max_len}"),
            });
        }
        let p = path.display().to_string();
        if !path.is_file() {
            return Err(E::MissingFile { path: p });
        }
        let bad = |reason: String| E::Tokenizer {
            path: p.clone(),
            reason,
        };
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| bad(format!("not a Hugging Face tokenizer.json ({e})")))?;
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| bad(format!("no {t} token in the vocabulary")))
        };
        let (cls_id, sep_id, pad_id) = (id("[CLS]")?, id("[SEP]")?, id("[PAD]")?);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| bad(format!("cannot truncate to {max_len} tokens ({e})")))?;
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(max_len),
            pad_id,
            pad_type_id: 0,
            pad_token: "[PAD]".to_string(),
            ..PaddingParams::default()
        }));
        let tok = BertTokenizer {
            inner,
            path: path.to_path_buf(),
            max_len,
            cls_id,
            sep_id,
            pad_id,
        };
        // a tokenizer.json without BERT's post-processor would silently drop [CLS]/[SEP]
        tok.encode(&[""])?;
        Ok(tok)
    }

    /// Tokenises `texts` (MMSA `text_bert` convention, see the module docs).
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tokenized, E> {
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| self.error(format!("tokenising failed ({e})")))?;
        Ok(self.collect(&encodings)?.0)
    }

    /// Tokenises texts given as words (each text pre-split, e.g. a data tier's words), with the
    /// same `[CLS] word-pieces [SEP] [PAD]…` layout as [`Self::encode`]; also returns, per token,
    /// the index of the word it came from (`-1` at `[CLS]`, `[SEP]` and padding).
    pub(crate) fn encode_words(
        &self,
        words: &[Vec<String>],
    ) -> Result<(Tokenized, Array2<i32>), E> {
        let inputs: Vec<tokenizers::EncodeInput> = words
            .iter()
            .map(|w| tokenizers::EncodeInput::Single(w.clone().into()))
            .collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| self.error(format!("tokenising failed ({e})")))?;
        self.collect(&encodings)
    }

    fn collect(&self, encodings: &[tokenizers::Encoding]) -> Result<(Tokenized, Array2<i32>), E> {
        let n = encodings.len();
        let l = self.max_len;
        let mut ids = Array2::<u32>::from_elem((n, l), self.pad_id);
        let mut mask = Array2::<u32>::zeros((n, l));
        let mut word = Array2::<i32>::from_elem((n, l), -1);
        for (i, enc) in encodings.iter().enumerate() {
            let (e_ids, e_mask) = (enc.get_ids(), enc.get_attention_mask());
            let real = e_mask.iter().take_while(|&&m| m == 1).count();
            if e_ids.len() != l
                || e_mask[real..].iter().any(|&m| m != 0)
                || real < 2
                || e_ids[0] != self.cls_id
                || e_ids[real - 1] != self.sep_id
            {
                return Err(self.error(format!(
                    "text {i} did not tokenise to [CLS] … [SEP] padded to {l} tokens \
                     (is the post_processor BERT's TemplateProcessing?)"
                )));
            }
            let w = enc.get_word_ids();
            for j in 0..l {
                ids[[i, j]] = e_ids[j];
                mask[[i, j]] = e_mask[j];
                if j > 0 && j + 1 < real {
                    if let Some(Some(k)) = w.get(j) {
                        word[[i, j]] = i32::try_from(*k).unwrap_or(i32::MAX);
                    }
                }
            }
        }
        Ok((
            Tokenized {
                input_ids: ids,
                attention_mask: mask,
                token_type_ids: Array2::zeros((n, l)),
            },
            word,
        ))
    }

    fn error(&self, reason: String) -> E {
        E::Tokenizer {
            path: self.path.display().to_string(),
            reason,
        }
    }

    /// Tokens per text.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Id of `[CLS]`.
    pub fn cls_id(&self) -> u32 {
        self.cls_id
    }

    /// Id of `[SEP]`.
    pub fn sep_id(&self) -> u32 {
        self.sep_id
    }

    /// Id of `[PAD]`.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Vocabulary size, special tokens included.
    pub(crate) fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Pooled sentence vectors of a batch of texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The tokenisation the vectors come from.
    pub tokens: Tokenized,
    /// Last hidden state at position 0 (`[CLS]`), N × hidden.
    pub cls: Array2<f32>,
    /// Attention-masked mean of the last hidden state over positions, N × hidden.
    pub mean: Array2<f32>,
}

/// A pretrained BERT checkpoint (frozen) with its tokenizer.
pub struct TextEncoder {
    model: BertModel,
    config: Config,
    tokenizer: BertTokenizer,
    dir: PathBuf,
    device: Device,
    weights_sha256: String,
    key: String,
}

impl fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextEncoder")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .field("max_len", &self.tokenizer.max_len)
            .field("weights_sha256", &self.weights_sha256)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> Result<Vec<u8>, E> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            E::MissingFile {
                path: path.display().to_string(),
            }
        } else {
            E::Io {
                path: path.display().to_string(),
                source,
            }
        }
    })
}

/// The name a checkpoint uses for the tensor BertModel asks for (`wanted`): with the checkpoint's
/// `bert.` prefix, and `gamma`/`beta` for LayerNorm weights where the file has those. Unknown
/// names pass through, so a missing tensor is reported under the name the model expects.
pub(crate) fn checkpoint_name(names: &HashSet<String>, prefix: &str, wanted: &str) -> String {
    let full = format!("{prefix}{wanted}");
    if names.contains(&full) {
        return full;
    }
    let old = if let Some(stem) = full.strip_suffix("LayerNorm.weight") {
        format!("{stem}LayerNorm.gamma")
    } else if let Some(stem) = full.strip_suffix("LayerNorm.bias") {
        format!("{stem}LayerNorm.beta")
    } else {
        return full;
    };
    if names.contains(&old) {
        old
    } else {
        full
    }
}

impl TextEncoder {
    /// Loads `dir/{config.json, tokenizer.json, model.safetensors}` with `max_len` 50.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, E> {
        Self::load_with(dir, device, DEFAULT_MAX_LEN)
    }

    /// Loads a checkpoint folder with sequences of `max_len` tokens.
    pub fn load_with(dir: &Path, device: &Device, max_len: usize) -> Result<Self, E> {
        if !dir.is_dir() {
            return Err(E::MissingFile {
                path: dir.display().to_string(),
            });
        }
        let cpath = dir.join("config.json");
        let cbytes = read(&cpath)?;
        let cerr = |reason: String| E::Config {
            path: cpath.display().to_string(),
            reason,
        };
        let config: Config = serde_json::from_slice(&cbytes)
            .map_err(|e| cerr(format!("not a BERT config.json ({e})")))?;
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(cerr(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            )));
        }
        if max_len > config.max_position_embeddings {
            return Err(E::InvalidParameter {
                name: "max_len",
                reason: format!(
                    "{max_len} exceeds the model's max_position_embeddings {}",
                    config.max_position_embeddings
                ),
            });
        }

        let tpath = dir.join("tokenizer.json");
        let tokenizer = BertTokenizer::from_file(&tpath, max_len)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(cerr(format!(
                "vocab_size {} is smaller than the tokenizer's vocabulary ({} tokens in {})",
                config.vocab_size,
                tokenizer.vocab_size(),
                tpath.display()
            )));
        }

        let wpath = dir.join("model.safetensors");
        let bytes = read(&wpath)?;
        let weights_sha256 = hex(&Sha256::digest(&bytes));
        let werr = |reason: String| E::Weights {
            path: wpath.display().to_string(),
            reason,
        };
        let st = candle_core::safetensors::BufferedSafetensors::new(bytes)
            .map_err(|e| werr(format!("not a safetensors file ({e})")))?;
        let names: HashSet<String> = st.tensors().into_iter().map(|(n, _)| n).collect();
        let prefix = if names.iter().any(|n| n.starts_with("bert.embeddings.")) {
            "bert."
        } else {
            ""
        };
        let vb = VarBuilder::from_backend(Box::new(st), DType::F32, device.clone())
            .rename_f(move |wanted| checkpoint_name(&names, prefix, wanted));
        let model = BertModel::load(vb, &config)
            .map_err(|e| werr(format!("does not fit config.json ({e})")))?;

        let mut h = Sha256::new();
        h.update(weights_sha256.as_bytes());
        h.update(Sha256::digest(&read(&tpath)?));
        h.update(Sha256::digest(&cbytes));
        h.update((max_len as u64).to_le_bytes());
        let key = hex(&h.finalize()[..8]);
        Ok(TextEncoder {
            model,
            config,
            tokenizer,
            dir: dir.to_path_buf(),
            device: device.clone(),
            weights_sha256,
            key,
        })
    }

    /// The tokenizer (fixed to [`Self::max_len`]).
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// The checkpoint's `config.json`.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Tokens per text.
    pub fn max_len(&self) -> usize {
        self.tokenizer.max_len
    }

    /// The checkpoint folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// sha256 of `model.safetensors` (hex), comparable with the published checksum.
    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    /// 16 hex digits identifying what the features depend on: the weights, `tokenizer.json`,
    /// `config.json` and `max_len` (the key of the feature cache).
    pub fn checkpoint_key(&self) -> &str {
        &self.key
    }

    /// Tokenises `texts` (N × max_len).
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tokenized, E> {
        self.tokenizer.encode(texts)
    }

    /// Last hidden state (N × L × hidden, f32 on [`Self::device`]) of a tokenised batch, padding
    /// positions included (MMSA's `text` feature).
    pub fn last_hidden(&self, tok: &Tokenized) -> Result<Tensor, E> {
        self.check_tokens(tok)?;
        let ids = Tokenized::tensor(&tok.input_ids, &self.device)?;
        let types = Tokenized::tensor(&tok.token_type_ids, &self.device)?;
        let mask = Tokenized::tensor(&tok.attention_mask, &self.device)?;
        Ok(self.model.forward(&ids, &types, Some(&mask))?)
    }

    fn check_tokens(&self, tok: &Tokenized) -> Result<(), E> {
        let bad = |reason: String| E::InvalidParameter {
            name: "tokens",
            reason,
        };
        let (n, l) = tok.input_ids.dim();
        if tok.attention_mask.dim() != (n, l) || tok.token_type_ids.dim() != (n, l) {
            return Err(bad("ids, mask and segment ids differ in shape".into()));
        }
        if l == 0 || l > self.config.max_position_embeddings {
            return Err(bad(format!(
                "sequence length {l} is outside 1..={}",
                self.config.max_position_embeddings
            )));
        }
        if let Some(id) = tok
            .input_ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(bad(format!(
                "token id {id} is outside the vocabulary ({})",
                self.config.vocab_size
            )));
        }
        if tok
            .token_type_ids
            .iter()
            .any(|&t| t as usize >= self.config.type_vocab_size)
        {
            return Err(bad("a segment id is outside type_vocab_size".into()));
        }
        if tok.attention_mask.iter().any(|&m| m > 1) {
            return Err(bad("the attention mask must be 0/1".into()));
        }
        if let Some(i) = tok
            .attention_mask
            .rows()
            .into_iter()
            .position(|r| r.sum() == 0)
        {
            return Err(bad(format!("text {i} has an all-zero attention mask")));
        }
        Ok(())
    }

    /// Tokenises and encodes `texts` in batches of [`BATCH`]: `[CLS]` and masked-mean vectors.
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Result<Encoded, E> {
        let tokens = self.tokenize(texts)?;
        self.encode_tokens(tokens)
    }

    /// [`Self::encode`] on an existing tokenisation. Texts are batched by length and each batch
    /// is cut after its last unmasked position: masked keys get zero attention weight, so trailing
    /// padding never changes `[CLS]` or the masked mean, and cutting it only skips work (MOSI's
    /// transcripts average ~15 of 50 tokens).
    pub fn encode_tokens(&self, tokens: Tokenized) -> Result<Encoded, E> {
        self.check_tokens(&tokens)?;
        let (n, h) = (tokens.len(), self.hidden_size());
        let used: Vec<usize> = tokens
            .attention_mask
            .rows()
            .into_iter()
            .map(|r| r.iter().rposition(|&m| m == 1).map_or(1, |p| p + 1))
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| used[i]);
        let mut cls = Array2::<f32>::zeros((n, h));
        let mut mean = Array2::<f32>::zeros((n, h));
        for rows in order.chunks(BATCH) {
            let len = rows.iter().map(|&i| used[i]).max().unwrap_or(1);
            let part = tokens.subset(rows, len);
            let hidden = self.last_hidden(&part)?;
            let mask =
                Tokenized::tensor(&part.attention_mask, &self.device)?.to_dtype(DType::F32)?;
            let c = cls_pool(&hidden)?.to_vec2::<f32>()?;
            let m = masked_mean(&hidden, &mask)?.to_vec2::<f32>()?;
            for (&i, (cr, mr)) in rows.iter().zip(c.iter().zip(&m)) {
                for (what, src, dst) in [
                    ("[CLS] vector", cr, &mut cls),
                    ("mean vector", mr, &mut mean),
                ] {
                    if src.iter().any(|v| !v.is_finite()) {
                        return Err(E::NonFinite { what, row: i });
                    }
                    dst.row_mut(i)
                        .iter_mut()
                        .zip(src)
                        .for_each(|(d, s)| *d = *s);
                }
            }
        }
        Ok(Encoded { tokens, cls, mean })
    }

    /// Last hidden states of all texts (N × max_len × hidden, padding positions included, as
    /// MMSA's `text` feature), in batches of [`BATCH`].
    pub fn encode_hidden(&self, tokens: &Tokenized) -> Result<Array3<f32>, E> {
        let (n, l, h) = (tokens.len(), tokens.max_len(), self.hidden_size());
        let mut out = Array3::<f32>::zeros((n, l, h));
        for start in (0..n).step_by(BATCH) {
            let rows = start..(start + BATCH).min(n);
            let v = self
                .last_hidden(&tokens.rows(rows.clone()))?
                .flatten_all()?
                .to_vec1::<f32>()?;
            if let Some(p) = v.iter().position(|x| !x.is_finite()) {
                return Err(E::NonFinite {
                    what: "last hidden state",
                    row: start + p / (l * h),
                });
            }
            let block = Array3::from_shape_vec((rows.len(), l, h), v)
                .map_err(|e| E::Candle(candle_core::Error::Msg(e.to_string())))?;
            out.slice_mut(s![rows, .., ..]).assign(&block);
        }
        Ok(out)
    }
}

/// `[CLS]` pooling: the hidden state at position 0 (B × L × H → B × H).
pub(crate) fn cls_pool(hidden: &Tensor) -> candle_core::Result<Tensor> {
    hidden.i((.., 0, ..))
}

/// Attention-masked mean over positions (B × L × H, mask B × L of 0/1 → B × H). A row whose mask
/// is all zero divides by zero (NaN); [`TextEncoder`] rejects such masks before the forward pass.
pub fn masked_mean(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(2)?;
    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
    sum.broadcast_div(&m.sum(1)?)
}
