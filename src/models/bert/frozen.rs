//! A frozen BERT's pooled outputs, computed once per distinct token sequence and cached in memory
//! and on disk (MIM's `finetune: false`, MISA's BERT text path with `bert.finetune: false`).
//!
//! When BERT is frozen its pooled output for a clip depends only on the checkpoint and the clip's
//! token ids, so running BERT at every training step repeats the same computation. A
//! [`FrozenText`] keeps one vector per distinct token sequence (the ids from `[CLS]` to `[SEP]`:
//! BERT's outputs at real tokens do not depend on padding, see
//! [`super::backbone`]) and computes only the sequences it has not seen, in inference mode.
//!
//! # On disk
//! Before training, `FrozenText::prepare_dataset` fills the memory from one file per split:
//!
//! `<dir>/frozen-<weights key>-<cls|mean>-<rows hash>.bin`
//!
//! * the **weights key** is the first 8 bytes (hex) of sha256(`model.safetensors` ‖
//!   `config.json`) of the checkpoint folder ([`weights_key`]): what the vectors depend on besides
//!   the ids (the tokenizer only decides the ids, which are part of the key below);
//! * the **rows hash** covers the split's `max_len` and every clip's token ids (so another split,
//!   corpus, truncation or tokenizer is another file);
//! * `<dir>` is `${NEURAL_SYNERGY_CACHE:-~/.cache/neural-synergy}/features`
//!   (`crate::data::bert::cache::FeatureCache::default_dir`), shared with `synergy encode-text`'s cache.
//!
//! A file holds a magic string, the pooling, the shape, every row's ids, the `f32` vectors and a
//! sha256 of all of that. It is written to a temporary name and renamed (a reader never sees half
//! a file). Reading checks the checksum, the header, that the ids are exactly the split's and that
//! every value is finite; a file that fails any check is **reported and recomputed**
//! ([`CacheOutcome::Rebuilt`]), never used.
//!
//! Token sequences not in any split file (e.g. the test split with its text modality dropped) are
//! computed on first use and kept in memory only.
//!
//! # Deviation from MMSA
//! MMSA runs a frozen BERT under `torch.no_grad()` but in training mode, so its hidden dropout
//! still perturbs the text features at every step; cached features are BERT's inference-mode
//! output (no dropout). With `feature_cache: false` the models keep MMSA's behaviour (BERT with
//! dropout at every step, its output detached).
//!
//! MAG-BERT cannot use this cache: its gate adds audio and vision **inside** BERT (after the
//! embeddings), so BERT's output depends on the non-text modalities and on the trained gate.

use super::backbone::BertBackbone;
use crate::data::bert::tokens::{SplitTokens, TokenBatch};
use crate::data::bert::TextEncoderError as E;
use crate::data::Dataset;
use crate::models::layers::pool::masked_mean;
use candle_core::{IndexOp, Tensor};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Which vector of BERT's last hidden state is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The hidden state at `[CLS]` (position 0): MMIM's text vector.
    Cls,
    /// The attention-masked mean over `[CLS]`, word-pieces and `[SEP]`: MMSA's MISA text vector.
    Mean,
}

impl Pooling {
    /// Name in cache file names.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
        }
    }

    fn code(self) -> u32 {
        match self {
            Pooling::Cls => 0,
            Pooling::Mean => 1,
        }
    }
}

/// How a split's vectors were obtained by [`FrozenText::prepare_split`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Read from an existing, intact file.
    Hit,
    /// Computed now and written.
    Miss,
    /// The file was unusable (the reason), so the vectors were recomputed and the file rewritten.
    Rebuilt(String),
    /// Computed now, kept in memory only (no cache folder).
    MemoryOnly,
}

const MAGIC: &[u8; 8] = b"NSFROZEN";
const VERSION: u32 = 1;
/// Clips per BERT forward pass when filling the cache.
const CHUNK: usize = 64;

/// The frozen encoder's pooled outputs (see the module docs).
#[derive(Debug)]
pub struct FrozenText {
    pooling: Pooling,
    hidden: usize,
    dir: Option<PathBuf>,
    rows: RefCell<HashMap<Vec<u32>, Vec<f32>>>,
    computed: Cell<usize>,
}

/// The first 8 bytes (hex) of sha256(`model.safetensors` ‖ `config.json`) of a checkpoint folder.
pub fn weights_key(dir: &Path) -> Result<String, E> {
    let mut h = Sha256::new();
    for name in ["model.safetensors", "config.json"] {
        let p = dir.join(name);
        let bytes = std::fs::read(&p).map_err(|_| E::MissingFile {
            path: p.display().to_string(),
        })?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(hex(&h.finalize()[..8]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cache_err(path: &Path, reason: impl Into<String>) -> E {
    E::Cache {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Each clip's real token ids (`[CLS]` … `[SEP]`; at least one token) of a split.
pub fn split_rows(tok: &SplitTokens) -> Vec<Vec<u32>> {
    let l = tok.source.max_len;
    let n = tok.ids.len() / l.max(1);
    (0..n)
        .map(|i| tok.ids[i * l..i * l + tok.real_len(i).clamp(1, l)].to_vec())
        .collect()
}

impl FrozenText {
    /// An empty cache of `pooling` vectors of width `hidden`, backed by files in `dir` (`None`:
    /// memory only).
    pub fn new(pooling: Pooling, hidden: usize, dir: Option<PathBuf>) -> Self {
        Self {
            pooling,
            hidden,
            dir,
            rows: RefCell::new(HashMap::new()),
            computed: Cell::new(0),
        }
    }

    /// The default folder, `${NEURAL_SYNERGY_CACHE:-~/.cache/neural-synergy}/features`.
    pub(crate) fn default_dir() -> Option<PathBuf> {
        crate::data::bert::cache::FeatureCache::default_dir()
    }

    /// How many token sequences BERT has encoded so far (cache misses; for tests and notes).
    pub fn computed_rows(&self) -> usize {
        self.computed.get()
    }

    /// Distinct token sequences held in memory.
    pub fn len(&self) -> usize {
        self.rows.borrow().len()
    }

    /// Whether nothing is held yet.
    pub fn is_empty(&self) -> bool {
        self.rows.borrow().is_empty()
    }

    /// Path of the file of a split with these `rows` and `max_len` under the checkpoint
    /// `weights_key` (`None` without a cache folder).
    pub fn path(&self, weights_key: &str, max_len: usize, rows: &[Vec<u32>]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut h = Sha256::new();
        h.update((max_len as u64).to_le_bytes());
        h.update((rows.len() as u64).to_le_bytes());
        for r in rows {
            h.update((r.len() as u64).to_le_bytes());
            for id in r {
                h.update(id.to_le_bytes());
            }
        }
        Some(dir.join(format!(
            "frozen-{weights_key}-{}-{}.bin",
            self.pooling.name(),
            hex(&h.finalize()[..8])
        )))
    }

    /// BERT's pooled outputs (inference mode) of `rows`, `CHUNK` clips per pass, grouped by length.
    fn compute(&self, bert: &BertBackbone, rows: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| rows[i].len());
        let mut out = vec![Vec::new(); rows.len()];
        let device = bert.device();
        for chunk in order.chunks(CHUNK) {
            let l = chunk.iter().map(|&i| rows[i].len()).max().unwrap_or(1);
            let b = chunk.len();
            let mut ids = vec![0u32; b * l];
            let mut mask = vec![0f32; b * l];
            for (r, &i) in chunk.iter().enumerate() {
                ids[r * l..r * l + rows[i].len()].copy_from_slice(rows[i]);
                mask[r * l..r * l + rows[i].len()].fill(1.0);
            }
            let ids = Tensor::from_vec(ids, (b, l), device)?;
            let seg = ids.zeros_like()?;
            let mask = Tensor::from_vec(mask, (b, l), device)?.to_dtype(bert.dtype())?;
            let h = bert.encode(&bert.embed(&ids, &seg)?, &mask, false)?;
            let pooled = match self.pooling {
                Pooling::Cls => h.i((.., 0, ..))?,
                Pooling::Mean => masked_mean(&h, &mask)?,
            };
            let v = pooled.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
            for (r, &i) in chunk.iter().enumerate() {
                if v[r].iter().any(|x| !x.is_finite()) {
                    candle_core::bail!(
                        "frozen BERT: the {} vector of a clip is not finite (NaN or Inf)",
                        self.pooling.name()
                    );
                }
                out[i] = v[r].clone();
            }
        }
        self.computed.set(self.computed.get() + rows.len());
        Ok(out)
    }

    /// Encodes and stores the rows of `rows` not held yet.
    fn fill(&self, bert: &BertBackbone, rows: &[&[u32]]) -> candle_core::Result<()> {
        let mut missing: Vec<&[u32]> = {
            let held = self.rows.borrow();
            rows.iter()
                .copied()
                .filter(|r| !held.contains_key(*r))
                .collect()
        };
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let v = self.compute(bert, &missing)?;
        let mut held = self.rows.borrow_mut();
        for (r, x) in missing.into_iter().zip(v) {
            held.insert(r.to_vec(), x);
        }
        Ok(())
    }

    /// The pooled vectors of a batch's clips (the mask's dtype, no gradient), from memory or
    /// computed now (and kept).
    ///
    /// # Shapes
    /// * `tk.ids`, `tk.mask`: `B × L`
    /// * returns: `B × hidden`
    pub fn pooled(&self, bert: &BertBackbone, tk: &TokenBatch) -> candle_core::Result<Tensor> {
        let ids = tk.ids.to_vec2::<u32>()?;
        let rows: Vec<&[u32]> = ids
            .iter()
            .zip(&tk.lengths)
            .map(|(r, &n)| &r[..n.clamp(1, r.len())])
            .collect();
        self.fill(bert, &rows)?;
        let held = self.rows.borrow();
        let mut flat = Vec::with_capacity(rows.len() * self.hidden);
        for r in &rows {
            flat.extend_from_slice(&held[*r]);
        }
        Tensor::from_vec(flat, (rows.len(), self.hidden), tk.ids.device())?
            .to_dtype(tk.mask.dtype())
    }

    /// Fills the memory with every clip of a split: from its file when intact, else computed (and
    /// written when there is a cache folder). `weights_key`: [`weights_key`] of the checkpoint.
    pub fn prepare_split(
        &self,
        bert: &BertBackbone,
        weights_key: &str,
        tok: &SplitTokens,
    ) -> Result<CacheOutcome, E> {
        let rows = split_rows(tok);
        let Some(path) = self.path(weights_key, tok.source.max_len, &rows) else {
            let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
            self.fill(bert, &refs)?;
            return Ok(CacheOutcome::MemoryOnly);
        };
        let damaged = if path.is_file() {
            match read_file(&path, self.pooling, self.hidden, &rows) {
                Ok(v) => {
                    let mut held = self.rows.borrow_mut();
                    for (r, x) in rows.into_iter().zip(v) {
                        held.insert(r, x);
                    }
                    return Ok(CacheOutcome::Hit);
                }
                Err(e) => Some(e.to_string()),
            }
        } else {
            None
        };
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let v = self.compute(bert, &refs)?;
        write_file(&path, self.pooling, self.hidden, &rows, &v)?;
        let mut held = self.rows.borrow_mut();
        for (r, x) in rows.into_iter().zip(v) {
            held.insert(r, x);
        }
        Ok(match damaged {
            Some(why) => CacheOutcome::Rebuilt(why),
            None => CacheOutcome::Miss,
        })
    }

    /// [`Self::prepare_split`] for the train, valid and test splits of `ds` (those with tokens),
    /// with the checkpoint the tokens were made with. A rebuilt file is noted on stderr.
    pub(crate) fn prepare_dataset(&self, bert: &BertBackbone, ds: &Dataset) -> Result<(), E> {
        let mut key = None;
        for s in [&ds.train, &ds.valid, &ds.test] {
            let Some(tok) = &s.tokens else { continue };
            let k = match &key {
                Some(k) => k,
                None => key.insert(weights_key(&tok.source.dir)?),
            };
            if let CacheOutcome::Rebuilt(why) = self.prepare_split(bert, k, tok)? {
                eprintln!("frozen BERT feature cache: recomputed a damaged file ({why})");
            }
        }
        Ok(())
    }
}

/// Writes a cache file (see the module docs) atomically.
pub(crate) fn write_file(
    path: &Path,
    pooling: Pooling,
    hidden: usize,
    rows: &[Vec<u32>],
    feats: &[Vec<f32>],
) -> Result<(), E> {
    if rows.len() != feats.len() || feats.iter().any(|f| f.len() != hidden) {
        return Err(cache_err(path, "rows and vectors do not match"));
    }
    let mut b = Vec::with_capacity(64 + rows.len() * (4 * hidden + 64));
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&pooling.code().to_le_bytes());
    b.extend_from_slice(&(rows.len() as u64).to_le_bytes());
    b.extend_from_slice(&(hidden as u64).to_le_bytes());
    for r in rows {
        b.extend_from_slice(&(r.len() as u32).to_le_bytes());
        for id in r {
            b.extend_from_slice(&id.to_le_bytes());
        }
    }
    for f in feats {
        for x in f {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    let sum = Sha256::digest(&b);
    b.extend_from_slice(&sum);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| cache_err(dir, e.to_string()))?;
    let tmp = path.with_extension(format!("bin.tmp{}", std::process::id()));
    std::fs::write(&tmp, &b).map_err(|e| cache_err(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| cache_err(path, e.to_string()))
}

/// A little-endian reader over a cache file's bytes that reports truncation.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Reads a cache file and checks it against the expected `pooling`, `hidden` and `rows` (see the
/// module docs); any mismatch or damage is an [`E::Cache`] error.
pub fn read_file(
    path: &Path,
    pooling: Pooling,
    hidden: usize,
    rows: &[Vec<u32>],
) -> Result<Vec<Vec<f32>>, E> {
    let all = std::fs::read(path).map_err(|e| cache_err(path, e.to_string()))?;
    let bad = |why: &str| cache_err(path, format!("{why}; it is recomputed"));
    if all.len() < MAGIC.len() + 32 {
        return Err(bad("truncated"));
    }
    let (body, sum) = all.split_at(all.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(bad("checksum mismatch (truncated or modified)"));
    }
    let mut r = Reader { b: body, at: 0 };
    let short = || bad("truncated");
    if r.take(MAGIC.len()).ok_or_else(short)? != MAGIC {
        return Err(bad("not a frozen-feature file"));
    }
    if r.u32().ok_or_else(short)? != VERSION {
        return Err(bad("unknown version"));
    }
    if r.u32().ok_or_else(short)? != pooling.code() {
        return Err(bad("another pooling"));
    }
    let n = r.u64().ok_or_else(short)? as usize;
    let h = r.u64().ok_or_else(short)? as usize;
    if n != rows.len() || h != hidden {
        return Err(bad(&format!(
            "shape {n} x {h}, expected {} x {hidden}",
            rows.len()
        )));
    }
    for want in rows {
        let len = r.u32().ok_or_else(short)? as usize;
        let ids = r.take(4 * len).ok_or_else(short)?;
        let same = len == want.len()
            && ids
                .chunks_exact(4)
                .zip(want)
                .all(|(c, w)| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) == *w);
        if !same {
            return Err(bad("token ids differ from the split's"));
        }
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let raw = r.take(4 * h).ok_or_else(short)?;
        let v: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(bad("non-finite value"));
        }
        out.push(v);
    }
    if r.at != body.len() {
        return Err(bad("trailing bytes"));
    }
    Ok(out)
}
