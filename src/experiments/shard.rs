//! Sharded grids (cluster job arrays): a deterministic partition of a plan's runs into `N` shards,
//! one results file per shard, and the merge of a results directory for the report.
//!
//! **Partition rule.** The plan's runs are ordered by (model name, run key) — the key is a hash of
//! the run's serialised configuration with its tier, profile and data ([`super::run_key`]) — and
//! run number `p` of that order goes to shard `p mod N`. The rule depends only on the set of runs,
//! not on the order of command-line flags; every run is in exactly one shard; and each shard gets
//! an equal share (±1) of every model's runs, so shards take about the same time even though
//! models differ tenfold in cost.
//!
//! **Files.** Shard `K` of `N` appends to `results.shard-K-of-N.jsonl` in the shared output folder
//! (no two writers on one file); an unsharded run appends to `results.jsonl`. [`read_dir`] merges
//! every such file of a folder; a file that cannot be read is reported by name and skipped, so the
//! rest still merge.

use super::{read_results, RunRecord};
use crate::train::RunConfig;
use std::path::{Path, PathBuf};

/// A `--shard K/N` value that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard {0:?}: expected K/N with integers 0 <= K < N (e.g. 0/3)")]
    Syntax(String),
    #[error("--shard {index}/{count}: K must be below N (shards are numbered 0..N-1)")]
    OutOfRange { index: usize, count: usize },
    #[error("--shard {0}/0: N must be at least 1")]
    NoShards(usize),
}

/// Shard `index` of `count` (0-based, as Slurm's `SLURM_ARRAY_TASK_ID` of `--array=0-(N-1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// A checked shard: `count >= 1` and `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards(index));
        }
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Self { index, count })
    }

    pub fn index(self) -> usize {
        self.index
    }

    pub fn count(self) -> usize {
        self.count
    }

    /// The shard's results file name, `results.shard-K-of-N.jsonl`.
    pub fn file_name(self) -> String {
        format!("results.shard-{}-of-{}.jsonl", self.index, self.count)
    }

    /// Indices (ascending, i.e. in plan order) of the runs of `configs` that belong to this shard;
    /// `keys[i]` is the run key of `configs[i]` (see the module docs for the rule).
    pub fn select<C: std::borrow::Borrow<RunConfig>>(
        self,
        configs: &[C],
        keys: &[String],
    ) -> Vec<usize> {
        debug_assert_eq!(configs.len(), keys.len());
        let mut order: Vec<usize> = (0..configs.len()).collect();
        order.sort_by(|&a, &b| {
            let name = |i: usize| configs[i].borrow().model.kind().name();
            (name(a), &keys[a]).cmp(&(name(b), &keys[b]))
        });
        let mut mine: Vec<usize> = order
            .into_iter()
            .enumerate()
            .filter(|(p, _)| p % self.count == self.index)
            .map(|(_, i)| i)
            .collect();
        mine.sort_unstable();
        mine
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardError::Syntax(s.to_string());
        let (k, n) = s.trim().split_once('/').ok_or_else(syntax)?;
        let k: usize = k.trim().parse().map_err(|_| syntax())?;
        let n: usize = n.trim().parse().map_err(|_| syntax())?;
        Self::new(k, n)
    }
}

/// What [`read_dir`] found.
#[derive(Debug, Default)]
pub struct Merged {
    /// One record per run key, ordered by key.
    pub records: Vec<RunRecord>,
    /// The results files read, in name order.
    pub files: Vec<PathBuf>,
    /// One line per file that could not be read (named, with the cause); its runs are missing.
    pub unreadable: Vec<String>,
    /// Records found more than once (the same run in two files); the first file's copy is kept.
    pub duplicates: usize,
}

/// Whether `name` is a results file of a run directory: `results.jsonl`,
/// `results.shard-K-of-N.jsonl` or an archive part `results.part-NNN.jsonl`
/// ([`super::store::split_file`]).
pub(crate) fn is_results_file(name: &str) -> bool {
    if name == "results.jsonl" || super::store::part_number(name).is_some() {
        return true;
    }
    name.strip_prefix("results.shard-")
        .and_then(|r| r.strip_suffix(".jsonl"))
        .and_then(|r| r.split_once("-of-"))
        .is_some_and(|(k, n)| {
            k.parse::<usize>()
                .ok()
                .zip(n.parse::<usize>().ok())
                .is_some_and(|(k, n)| Shard::new(k, n).is_ok())
        })
}

/// Reads and merges every results file of `dir` (`results.jsonl`, the shards'
/// `results.shard-K-of-N.jsonl` and the archive parts `results.part-NNN.jsonl`). Fails only when the
/// folder itself cannot be listed.
pub fn read_dir(dir: &Path) -> Result<Merged, super::ExperimentError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| super::ExperimentError::Io {
            path: dir.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(is_results_file))
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut merged = Merged::default();
    let mut seen = std::collections::HashMap::<String, RunRecord>::new();
    for f in &files {
        match read_results(f) {
            Ok(recs) => {
                for r in recs {
                    if seen.contains_key(&r.key) {
                        merged.duplicates += 1;
                    } else {
                        seen.insert(r.key.clone(), r);
                    }
                }
            }
            Err(e) => {
                let (name, msg) = (f.display().to_string(), format!("{e:#}"));
                merged.unreadable.push(if msg.contains(&name) {
                    msg
                } else {
                    format!("{name}: {msg}")
                });
            }
        }
    }
    let mut records: Vec<RunRecord> = seen.into_values().collect();
    records.sort_by(|a, b| a.key.cmp(&b.key));
    merged.records = records;
    merged.files = files;
    Ok(merged)
}

#[cfg(test)]
mod tests;
