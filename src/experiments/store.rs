//! A results folder as a small database: one writer per results file, append-only records, and
//! rewrites that keep what they do not understand.
//!
//! **Guarantees** (each tested with real processes in `tests/it/store.rs`):
//! * **One writer per results file.** A training process takes an exclusive advisory lock on
//!   `results.jsonl.lock` (a Slurm shard on `results.shard-K-of-N.jsonl.lock`: shards never block
//!   each other) before it reads the file, and holds it until it exits. A second writer of the same
//!   file fails at once with a one-line error naming the holder (pid, host, start time, command).
//!   The lock is the kernel's (`flock`): a killed holder (kill -9, a node lost) releases it.
//! * **Append-only.** A finished run is one JSON line written with one `write` call to a file
//!   opened for appending, then `fsync`ed. Starting, resuming or finding nothing left to train
//!   never rewrites the file; the only repair is cutting a torn last line (a run killed while
//!   writing, whose record was never complete) back to the last newline, under the lock.
//! * **Rewrites keep unknown fields.** `compact` is the one command that rewrites a results file.
//!   It edits the JSON of the lines it changes (removing saved predictions) and copies every other
//!   line byte for byte, so fields written by a newer or older build survive. It takes the lock of
//!   every file it rewrites, so it fails instead of racing a training.
//! * **No file grows past what a repository takes.** `compact --max-file-mib M` moves whole
//!   records, byte for byte and in order, out of a results file larger than M MiB into new
//!   archive parts `results.part-NNN.jsonl` of at most M MiB each ([`split_file`]), under the
//!   file's lock. Parts are only ever created, never appended to; readers merge them and a resume
//!   counts their runs as done.
//! * Readers (`report --from`) take no lock: a record is visible once its line is complete, and a
//!   torn last line is skipped with a warning.

use super::RunRecord;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why a results file could not be read, locked or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line} is not a run record: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "{path} is being written by another process ({holder}); wait for it to finish, or train \
         into another --out (or split the grid with --shard K/N)"
    )]
    Locked { path: PathBuf, holder: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The lock file of a results file (`results.jsonl` → `results.jsonl.lock`).
pub(crate) fn lock_path(results: &Path) -> PathBuf {
    let mut name = results.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    results.with_file_name(name)
}

/// An exclusive lock on one results file, held while this value lives (or until the process
/// exits, whichever comes first).
#[derive(Debug)]
pub(crate) struct WriterLock {
    file: std::fs::File,
}

impl WriterLock {
    /// Takes the lock of `results`, or fails at once with [`StoreError::Locked`] naming the holder.
    pub(crate) fn acquire(results: &Path) -> Result<Self, StoreError> {
        let path = lock_path(results);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::Locked {
                    path: results.to_path_buf(),
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        // who holds it, for the error message of the next writer
        let who = format!(
            "pid {} on {}, started {}: `{}`",
            std::process::id(),
            hostname(),
            unix_time_text(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        file.set_len(0).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
        file.write_all(who.as_bytes()).map_err(io_err(&path))?;
        file.flush().map_err(io_err(&path))?;
        Ok(Self { file })
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // the holder line is stale once released; the kernel releases the lock with the file
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "this host".into())
}

fn unix_time_text() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc_text(secs)
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time (the civil-from-days algorithm of the proleptic
/// Gregorian calendar).
fn utc_text(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The lines of a results file with what each holds: the parsed record, or `None` for a torn
/// last line. Blank lines are skipped.
struct Lines {
    lines: Vec<(String, Option<RunRecord>)>,
}

fn read_lines(path: &Path) -> Result<Lines, StoreError> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let raw: Vec<String> = std::io::BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(io_err(path))?;
    let n = raw.len();
    let mut lines = Vec::with_capacity(n);
    for (i, l) in raw.into_iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RunRecord>(&l) {
            Ok(r) => lines.push((l, Some(r))),
            Err(e) if i + 1 == n => {
                eprintln!(
                    "reproduce-paper: warning: {}: discarding the truncated last line {} ({e}); that run will be redone",
                    path.display(),
                    i + 1
                );
                lines.push((l, None));
            }
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(Lines { lines })
}

/// Reads a results file (JSON lines). A truncated or corrupt **last** line (a run killed while
/// writing) is dropped with a warning on stderr; a corrupt line elsewhere is an error. A missing
/// file has no records.
pub fn read_results(path: &Path) -> Result<Vec<RunRecord>, StoreError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    Ok(read_lines(path)?
        .lines
        .into_iter()
        .filter_map(|(_, r)| r)
        .collect())
}

/// The writer of one results file: holds its lock, cuts a torn tail once, appends records.
#[derive(Debug)]
pub(crate) struct ResultsWriter {
    path: PathBuf,
    _lock: WriterLock,
}

impl ResultsWriter {
    /// Locks `path` (see [`WriterLock`]), then makes sure the file ends on a complete line: a
    /// torn last line (a writer killed mid-record) is cut back to the last newline, so the next
    /// record starts on a line of its own. Nothing else in the file is touched.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let lock = WriterLock::acquire(path)?;
        if path.exists() {
            cut_torn_tail(path)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The records already in the file (under the lock, so no other writer adds to them),
    /// then those of the folder's archive parts ([`split_file`]): what a resume counts as done.
    pub(crate) fn records(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut recs = read_results(&self.path)?;
        recs.extend(archived_records(&dir_of(&self.path))?);
        Ok(recs)
    }

    /// Appends one record as one line (one `write` to a file opened for appending) and flushes
    /// it to disk.
    pub(crate) fn append(&self, rec: &RunRecord) -> Result<(), StoreError> {
        let mut line = serde_json::to_string(rec).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            line: 0,
            reason: format!("the record cannot be serialised: {e}"),
        })?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        f.write_all(line.as_bytes()).map_err(io_err(&self.path))?;
        f.sync_data().map_err(io_err(&self.path))?;
        Ok(())
    }
}

/// Cuts a last line that is not a complete record (no final newline and not valid JSON) back to
/// the previous newline. A complete last record without its newline gets the newline instead.
fn cut_torn_tail(path: &Path) -> Result<(), StoreError> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    if len == 0 {
        return Ok(());
    }
    // find the last newline, reading backwards in blocks
    let mut end = len;
    let mut last_nl = None;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 && last_nl.is_none() {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
        f.read_exact(&mut buf[..n]).map_err(io_err(path))?;
        if let Some(p) = buf[..n].iter().rposition(|&b| b == b'\n') {
            last_nl = Some(start + p as u64);
        }
        end = start;
    }
    let tail_start = last_nl.map_or(0, |p| p + 1);
    if tail_start == len {
        return Ok(()); // ends on a newline
    }
    f.seek(SeekFrom::Start(tail_start)).map_err(io_err(path))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).map_err(io_err(path))?;
    let complete = std::str::from_utf8(&tail)
        .ok()
        .is_some_and(|t| serde_json::from_str::<RunRecord>(t).is_ok());
    if complete {
        f.seek(SeekFrom::End(0)).map_err(io_err(path))?;
        f.write_all(b"\n").map_err(io_err(path))?;
    } else {
        eprintln!(
            "reproduce-paper: warning: {}: discarding the truncated last line ({} bytes: a run killed while writing); that run will be redone",
            path.display(),
            tail.len()
        );
        f.set_len(tail_start).map_err(io_err(path))?;
    }
    f.sync_data().map_err(io_err(path))?;
    Ok(())
}

/// Rewrites the lines of `path` whose record `edit` changes (it gets the line's JSON and returns
/// whether it changed it), atomically (a temporary file and a rename) and under the file's writer
/// lock. Unchanged lines are copied byte for byte and changed ones keep every field they had,
/// known to this build or not. Returns the number of lines changed (0: the file is untouched).
pub(crate) fn edit_lines(
    path: &Path,
    mut edit: impl FnMut(&RunRecord, &mut serde_json::Value) -> bool,
) -> Result<usize, StoreError> {
    let _lock = WriterLock::acquire(path)?;
    let lines = read_lines(path)?;
    let mut out = String::new();
    let mut changed = 0;
    for (text, rec) in &lines.lines {
        let Some(rec) = rec else {
            continue; // a torn last line is dropped (it was never a record)
        };
        let mut v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                line: 0,
                reason: e.to_string(),
            })?;
        if edit(rec, &mut v) {
            changed += 1;
            out += &serde_json::to_string(&v).map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                line: 0,
                reason: e.to_string(),
            })?;
        } else {
            out += text;
        }
        out.push('\n');
    }
    if changed == 0 {
        return Ok(0);
    }
    replace_atomically(path, out.as_bytes())?;
    Ok(changed)
}

/// Writes `bytes` to a new file `path` and flushes it to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = std::fs::File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Replaces `path` with `bytes` atomically: a temporary file named after this process, flushed,
/// then renamed over it (a reader sees the old file or the new one, never half of either).
fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("jsonl.tmp.{}", std::process::id()));
    write_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The folder of a results file (`.` for a bare file name).
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The file name of archive part `n` of a results folder: `results.part-NNN.jsonl`. Parts hold
/// finished runs moved out of an oversized results file by [`split_file`]; no training appends to
/// them, every reader merges them ([`super::shard::read_dir`]) and a resume counts their runs as
/// done ([`ResultsWriter::records`]).
pub(crate) fn part_name(n: usize) -> String {
    format!("results.part-{n:03}.jsonl")
}

/// The number of archive part `name` (`results.part-N.jsonl`, N decimal digits), or `None`.
pub(crate) fn part_number(name: &str) -> Option<usize> {
    name.strip_prefix("results.part-")?
        .strip_suffix(".jsonl")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

/// The records of every archive part in `dir` (see [`part_name`]), in name order. A part that
/// cannot be read is an error: its runs would otherwise be trained again.
pub(crate) fn archived_records(dir: &Path) -> Result<Vec<RunRecord>, StoreError> {
    let mut out = Vec::new();
    for (_, p) in part_files(dir)? {
        out.extend(read_results(&p)?);
    }
    Ok(out)
}

/// The archive parts in `dir` (see [`part_name`]) with their numbers, in name order.
fn part_files(dir: &Path) -> Result<Vec<(usize, PathBuf)>, StoreError> {
    let mut parts: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str().and_then(part_number)?, e.path())))
        .collect();
    parts.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(parts)
}

/// Splits lines of the given byte sizes (each counted with its newline) into consecutive runs of
/// lines whose sizes sum to at most `max` bytes, greedily from the first line; a line longer than
/// `max` is a run of its own. The runs cover `0..sizes.len()` in order, without gaps or overlap.
pub(crate) fn chunk_lines(sizes: &[u64], max: u64) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, &s) in sizes.iter().enumerate() {
        if i > start && bytes + s > max {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += s;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Writes `bytes` to a new file `dir/part_name(n)` for the first free `n ≥ first`, never replacing
/// an existing file (a temporary file hard-linked to its name, which fails if the name is taken).
fn write_new_part(dir: &Path, first: usize, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    let tmp = dir.join(format!(".results.part.tmp.{}", std::process::id()));
    write_synced(&tmp, bytes)?;
    let mut n = first;
    let result = loop {
        let part = dir.join(part_name(n));
        match std::fs::hard_link(&tmp, &part) {
            Ok(()) => break Ok(part),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => break Err(io_err(&part)(e)),
        }
    };
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Splits a results file larger than `max` bytes: under its writer lock, its records are cut
/// into consecutive runs of lines of at most `max` bytes ([`chunk_lines`]); every run but the
/// last moves, byte for byte, into a new archive part ([`part_name`], numbered after the folder's
/// existing parts), and the file keeps the last run (rewritten atomically). Lines stay whole and
/// in order, so the folder holds the same records before and after. Parts are written before the
/// file is cut: a crash in between leaves runs in two files, which readers count once (the same
/// key) and report as duplicates. Returns the files written with their sizes in bytes (empty:
/// the file was at most `max`, or is one record).
pub(crate) fn split_file(path: &Path, max: u64) -> Result<Vec<(PathBuf, u64)>, StoreError> {
    let _lock = WriterLock::acquire(path)?;
    let len = std::fs::metadata(path).map_err(io_err(path))?.len();
    if len <= max {
        return Ok(Vec::new());
    }
    let lines: Vec<String> = read_lines(path)?
        .lines
        .into_iter()
        .filter(|(_, r)| r.is_some()) // a torn last line was never a record
        .map(|(t, _)| t)
        .collect();
    let sizes: Vec<u64> = lines.iter().map(|l| l.len() as u64 + 1).collect();
    let chunks = chunk_lines(&sizes, max);
    if chunks.len() < 2 {
        return Ok(Vec::new());
    }
    let dir = dir_of(path);
    let first = part_files(&dir)?
        .iter()
        .map(|(n, _)| n + 1)
        .max()
        .unwrap_or(1);
    let text = |r: &std::ops::Range<usize>| -> String {
        lines[r.clone()].iter().map(|l| format!("{l}\n")).collect()
    };
    let mut written = Vec::new();
    let (last, moved) = chunks.split_last().expect("two chunks or more");
    for r in moved {
        let body = text(r);
        let part = write_new_part(&dir, first + written.len(), body.as_bytes())?;
        written.push((part, body.len() as u64));
    }
    let body = text(last);
    replace_atomically(path, body.as_bytes())?;
    written.push((path.to_path_buf(), body.len() as u64));
    Ok(written)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The chunks are consecutive, start at 0 and end at the last line: no line is lost,
        /// repeated or reordered.
        #[test]
        fn chunks_cover_every_line_once_in_order(
            sizes in proptest::collection::vec(1u64..500, 0..60),
            max in 1u64..2000,
        ) {
            let chunks = super::chunk_lines(&sizes, max);
            let mut next = 0;
            for c in &chunks {
                prop_assert_eq!(c.start, next);
                prop_assert!(c.end > c.start);
                next = c.end;
            }
            prop_assert_eq!(next, sizes.len());
        }

        /// Every chunk fits the budget unless it is one line alone (a record is never cut).
        #[test]
        fn every_chunk_fits_the_budget_or_is_one_line(
            sizes in proptest::collection::vec(1u64..500, 0..60),
            max in 1u64..2000,
        ) {
            for c in super::chunk_lines(&sizes, max) {
                let bytes: u64 = sizes[c.clone()].iter().sum();
                prop_assert!(bytes <= max || c.len() == 1, "{c:?}: {bytes} > {max}");
            }
        }

        /// Greedy: no chunk could have taken the next line, so no more files are written than
        /// needed one after another.
        #[test]
        fn no_chunk_could_take_the_next_line(
            sizes in proptest::collection::vec(1u64..500, 0..60),
            max in 1u64..2000,
        ) {
            let chunks = super::chunk_lines(&sizes, max);
            for w in chunks.windows(2) {
                let bytes: u64 = sizes[w[0].clone()].iter().sum();
                prop_assert!(bytes + sizes[w[1].start] > max);
            }
        }
    }

    #[test]
    fn part_names_round_trip_and_other_names_are_not_parts() {
        for n in [1, 7, 42, 999, 1000, 123_456] {
            assert_eq!(super::part_number(&super::part_name(n)), Some(n));
        }
        for name in [
            "results.jsonl",
            "results.part-.jsonl",
            "results.part-1a.jsonl",
            "results.part-+1.jsonl",
            "results.part-1.jsonl.lock",
            "results.shard-1-of-2.jsonl",
        ] {
            assert_eq!(super::part_number(name), None, "{name}");
        }
    }

    #[test]
    fn utc_text_matches_known_dates() {
        assert_eq!(super::utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc_text(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::utc_text(1_796_538_327), "2026-12-06 06:25:27 UTC");
    }
}
