//! Feature cache of a frozen text encoder: a list of texts is encoded once and kept as `.npy`
//! files named after what the features depend on — the encoder's
//! [`checkpoint_key`](super::TextEncoder::checkpoint_key) (weights, tokenizer, config, `max_len`),
//! the kind of feature and the texts themselves:
//!
//! `<dir>/<checkpoint key>-<texts hash>-{cls,mean,hidden}.npy`
//!
//! The default folder is `${NEURAL_SYNERGY_CACHE:-~/.cache/neural-synergy}/features`. Files are
//! written to a temporary name and renamed, so a reader never sees half a file; a file whose shape
//! does not match the request is reported (delete it to recompute), never silently reused.

use super::{TextEncoder, TextEncoderError as E};
use ndarray::{Array, Array2, Array3, Dimension};
use ndarray_npy::{ReadableElement, WritableElement};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Whether a request was served from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Read from existing files.
    Hit,
    /// Computed now and written.
    Miss,
}

/// A folder of cached encoder features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCache {
    dir: PathBuf,
}

impl FeatureCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FeatureCache { dir: dir.into() }
    }

    /// `${NEURAL_SYNERGY_CACHE:-~/.cache/neural-synergy}/features` (`None` without HOME either).
    pub(crate) fn default_dir() -> Option<PathBuf> {
        super::cache_root().map(|c| c.join("features"))
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// File stem of `texts` under `enc`: checkpoint key and a hash of the texts (each text's
    /// length is hashed before its bytes, so different splits of the same characters differ).
    pub fn stem<S: AsRef<str>>(enc: &TextEncoder, texts: &[S]) -> String {
        let mut h = Sha256::new();
        h.update((texts.len() as u64).to_le_bytes());
        for t in texts {
            let t = t.as_ref().as_bytes();
            h.update((t.len() as u64).to_le_bytes());
            h.update(t);
        }
        let d = h.finalize();
        let texts_hash: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{texts_hash}", enc.checkpoint_key())
    }

    /// Path of one feature file (`kind` = `cls`, `mean` or `hidden`).
    pub fn path<S: AsRef<str>>(&self, enc: &TextEncoder, texts: &[S], kind: &str) -> PathBuf {
        self.dir
            .join(format!("{}-{kind}.npy", Self::stem(enc, texts)))
    }

    /// `[CLS]` and masked-mean vectors of `texts` (each N × hidden), from the cache or computed
    /// and stored.
    pub fn pooled<S: AsRef<str>>(
        &self,
        enc: &TextEncoder,
        texts: &[S],
    ) -> Result<(Array2<f32>, Array2<f32>, CacheStatus), E> {
        let shape = [texts.len(), enc.hidden_size()];
        let (pc, pm) = (self.path(enc, texts, "cls"), self.path(enc, texts, "mean"));
        if pc.is_file() && pm.is_file() {
            let cls = read_checked(&pc, &shape)?;
            let mean = read_checked(&pm, &shape)?;
            return Ok((cls, mean, CacheStatus::Hit));
        }
        let e = enc.encode(texts)?;
        write_atomic(&pc, &e.cls)?;
        write_atomic(&pm, &e.mean)?;
        Ok((e.cls, e.mean, CacheStatus::Miss))
    }

    /// Last hidden states of `texts` (N × max_len × hidden, MMSA's `text` feature), from the cache
    /// or computed and stored.
    pub fn hidden<S: AsRef<str>>(
        &self,
        enc: &TextEncoder,
        texts: &[S],
    ) -> Result<(Array3<f32>, CacheStatus), E> {
        let shape = [texts.len(), enc.max_len(), enc.hidden_size()];
        let p = self.path(enc, texts, "hidden");
        if p.is_file() {
            return Ok((read_checked(&p, &shape)?, CacheStatus::Hit));
        }
        let h = enc.encode_hidden(&enc.tokenize(texts)?)?;
        write_atomic(&p, &h)?;
        Ok((h, CacheStatus::Miss))
    }
}

fn cache_err(path: &Path, reason: String) -> E {
    E::Cache {
        path: path.display().to_string(),
        reason,
    }
}

fn read_checked<T: ReadableElement, D: Dimension>(
    path: &Path,
    shape: &[usize],
) -> Result<Array<T, D>, E> {
    let a: Array<T, D> = crate::io::read_npy_checked::<T, D>(path)
        .map_err(|e| cache_err(path, format!("unreadable ({e}); delete it to recompute")))?;
    if a.shape() != shape {
        return Err(cache_err(
            path,
            format!(
                "shape {:?}, expected {shape:?}; delete it to recompute",
                a.shape()
            ),
        ));
    }
    Ok(a)
}

fn write_atomic<T: WritableElement, D: Dimension>(path: &Path, a: &Array<T, D>) -> Result<(), E> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| cache_err(dir, e.to_string()))?;
    let tmp = path.with_extension(format!("npy.tmp{}", std::process::id()));
    ndarray_npy::write_npy(&tmp, a).map_err(|e| cache_err(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| cache_err(path, e.to_string()))
}
