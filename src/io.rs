//! `.npy` input for the CLI: f64 or f32 (converted), C or Fortran order; typed errors that name
//! the file (missing, truncated, wrong dtype, wrong rank). And the **memory budget** of every
//! reader of untrusted files ([`MemoryBudget`], [`memory_budget`]): a size declared in a file is
//! checked against the file's length and the budget before anything is allocated (see
//! `docs/src/untrusted-files.md`).
//!
//! [`read_npy_checked`] is the checked `.npy` reader others can call: it reads the header,
//! checks the declared shape × element size against the bytes the file holds and the memory
//! budget, and only then lets `ndarray-npy` allocate and read.

use ndarray::{Array, Array1, Array2, Array3, ArrayD, Dimension, Ix1, Ix2, Ix3};
use ndarray_npy::{ReadNpyExt, ReadableElement};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why an input file could not be used.
#[derive(Debug, Error)]
pub enum InputError {
    /// The file could not be read or parsed as `.npy`.
    #[error("{path}: cannot read .npy ({reason})")]
    Npy { path: PathBuf, reason: String },
    /// The array has the wrong number of dimensions.
    #[error("{path}: expected a {expected} array, found shape {shape:?}")]
    Rank {
        path: PathBuf,
        expected: &'static str,
        shape: Vec<usize>,
    },
    /// A size declared in the file is larger than what the file holds from `offset` on.
    #[error(
        "{path}, byte offset {offset}: {what} declares {size} bytes but the file holds only \
         {available} bytes from there (a truncated or hostile file)"
    )]
    BeyondFile {
        path: PathBuf,
        offset: u64,
        what: String,
        size: u64,
        available: u64,
    },
    /// What the file declares would take more memory than the budget allows (the words after
    /// the file and offset: `OverBudget::refusal`).
    #[error(
        "{path}, byte offset {offset}: {}",
        OverBudget { size: *size, used: *used, limit: *limit }.refusal(what, *scope)
    )]
    OverBudget {
        path: PathBuf,
        offset: u64,
        what: String,
        size: u64,
        used: u64,
        limit: u64,
        /// What the budget was charged by: this one file, or a whole dataset load.
        scope: BudgetScope,
    },
    /// `NEURAL_SYNERGY_MEMORY_BUDGET` is set but is not a size.
    #[error(transparent)]
    BudgetEnv(#[from] BudgetEnvError),
}

// ---------------------------------------------------------------------------------------------
// The memory budget

/// Environment variable that sets the memory budget of the file readers: bytes, or a number with
/// a `K`, `M`, `G` or `T` suffix (powers of 1024; `16G`, `1.5T`, `512MiB` are all sizes).
pub const MEMORY_BUDGET_ENV: &str = "NEURAL_SYNERGY_MEMORY_BUDGET";

/// The budget when the machine's memory cannot be determined (8 GiB).
pub const FALLBACK_MEMORY_BUDGET: u64 = 8 << 30;

/// `NEURAL_SYNERGY_MEMORY_BUDGET` holds something that is not a size.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "{MEMORY_BUDGET_ENV}={value:?} is not a size: give bytes, or a number with K, M, G or T \
     (powers of 1024), e.g. 16G"
)]
pub struct BudgetEnvError {
    pub value: String,
}

/// Parses a size: `123` (bytes), `64K`, `1.5G`, `2TiB`, `512mb` (suffixes are powers of 1024,
/// case-insensitive, with an optional `B`/`iB`). `None` for anything else, for negative or
/// non-finite numbers and for sizes beyond `u64`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let lower = s.to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (num, shift) = match body.chars().last()? {
        'k' => (&body[..body.len() - 1], 10),
        'm' => (&body[..body.len() - 1], 20),
        'g' => (&body[..body.len() - 1], 30),
        't' => (&body[..body.len() - 1], 40),
        _ if body.len() < lower.len() => (body, 0), // "123b"
        _ => return None,
    };
    let num = num.trim();
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(1u64 << shift);
    }
    let x: f64 = num.parse().ok()?;
    let bytes = x * (1u64 << shift) as f64;
    // 2^64 as f64: anything at or above it does not fit
    (x.is_finite() && x >= 0.0 && bytes < 18_446_744_073_709_551_616.0).then_some(bytes as u64)
}

/// The memory this process can really use: the smallest of the physical memory, the address-space
/// limit (`ulimit -v`) and the cgroup v2 memory limit, where each is known (Unix; `None` where
/// none is).
fn usable_memory() -> Option<u64> {
    let mut lim: Option<u64> = None;
    let mut take = |v: u64| lim = Some(lim.map_or(v, |l| l.min(v)));
    #[cfg(unix)]
    {
        // SAFETY: sysconf and getrlimit only read process/system parameters into plain values.
        let (pages, page) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && page > 0 {
            take((pages as u64).saturating_mul(page as u64));
        }
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `rl` is a valid, writable rlimit.
        if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut rl) } == 0
            && rl.rlim_cur != libc::RLIM_INFINITY
        {
            // rlim_t is u64 on Linux, not on every Unix
            #[allow(clippy::unnecessary_cast)]
            take(rl.rlim_cur as u64);
        }
    }
    if let Ok(s) = std::fs::read_to_string("/sys/fs/cgroup/memory.max") {
        if let Ok(v) = s.trim().parse::<u64>() {
            take(v);
        }
    }
    lim
}

/// The default memory budget: three quarters of the memory this process can use (the smallest
/// of physical memory, `ulimit -v` and the cgroup limit), or [`FALLBACK_MEMORY_BUDGET`] where
/// that is unknown. A budget above what the machine can give protects nothing (the allocation
/// fails or the OOM killer strikes first); a fixed one below it refuses genuine files on large
/// machines (MMSA's MOSEI `unaligned_50.pkl` materialises about 9 GB of f32). The quarter left
/// is for the program, the mapped file and the training that follows.
pub fn default_memory_budget() -> u64 {
    usable_memory().map_or(FALLBACK_MEMORY_BUDGET, |m| m / 4 * 3)
}

/// The memory budget of one load: [`MEMORY_BUDGET_ENV`] when set, else
/// [`default_memory_budget`].
pub fn memory_budget() -> Result<u64, BudgetEnvError> {
    match std::env::var(MEMORY_BUDGET_ENV) {
        Ok(v) => parse_size(&v).ok_or(BudgetEnvError { value: v }),
        Err(std::env::VarError::NotPresent) => Ok(default_memory_budget()),
        Err(std::env::VarError::NotUnicode(v)) => Err(BudgetEnvError {
            value: v.to_string_lossy().into_owned(),
        }),
    }
}

/// Bytes a reader may still allocate for one load: every allocation whose size comes from a file
/// is charged ([`MemoryBudget::charge`]) before it is made. Freed memory is credited back only
/// where a reader says so ([`MemoryBudget::release`]), so the count is an upper bound of what the
/// load holds at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudget {
    limit: u64,
    used: u64,
}

/// A charge that would take a [`MemoryBudget`] past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// Bytes asked for.
    pub size: u64,
    /// Bytes already charged.
    pub used: u64,
    /// The budget.
    pub limit: u64,
}

/// What a [`MemoryBudget`] is charged by, as a refusal names it: one file read (`this read`: an
/// `.npy`) or a dataset load (`this load`: every file and array of one dataset share a budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetScope {
    Read,
    Load,
}

impl std::fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BudgetScope::Read => "read",
            BudgetScope::Load => "load",
        })
    }
}

impl OverBudget {
    /// The words of this refusal for `what` (`… would need … bytes of memory, over the memory
    /// budget …; … raise the budget with NEURAL_SYNERGY_MEMORY_BUDGET`): the one text of every
    /// budget error ([`InputError::OverBudget`], which wraps the data readers' too, and the pickle
    /// reader's reason).
    pub(crate) fn refusal(&self, what: &str, scope: BudgetScope) -> String {
        format!(
            "{what} would need {} bytes of memory, over the memory budget of {} bytes ({} already \
             used by this {scope}); if the file is genuine, raise the budget with \
             {MEMORY_BUDGET_ENV}",
            self.size, self.limit, self.used
        )
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        MemoryBudget { limit, used: 0 }
    }

    /// The budget of [`memory_budget`] (environment or default).
    pub(crate) fn from_env() -> Result<Self, BudgetEnvError> {
        memory_budget().map(Self::new)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes charged so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Charges `bytes`, or says why not (nothing is charged then).
    pub fn charge(&mut self, bytes: u64) -> Result<(), OverBudget> {
        match self.used.checked_add(bytes) {
            Some(u) if u <= self.limit => {
                self.used = u;
                Ok(())
            }
            _ => Err(OverBudget {
                size: bytes,
                used: self.used,
                limit: self.limit,
            }),
        }
    }

    /// Credits back `bytes` that were charged and have been freed.
    pub fn release(&mut self, bytes: u64) {
        self.used = self.used.saturating_sub(bytes);
    }
}

/// `count × size` in bytes, saturating (a saturated product is over any budget).
pub(crate) fn bytes_of(count: usize, size: usize) -> u64 {
    (count as u64).saturating_mul(size as u64)
}

// ---------------------------------------------------------------------------------------------
// Checked .npy reading

/// What the header of an `.npy` file declares, checked against the file: the data that follows
/// the header holds at least `shape × item_size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype string, e.g. `<f8`.
    pub descr: String,
    pub shape: Vec<usize>,
    pub fortran_order: bool,
    /// Bytes per element of `descr`.
    pub item_size: usize,
    /// Byte offset of the data.
    pub data_offset: u64,
}

impl NpyHeader {
    /// Elements (the product of the shape; checked against overflow when read).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Bytes per element of a numpy type string such as `<f8`, `|u1`, `<U7`, `|b1`; `None` for
/// structured or unknown types.
fn npy_item_size(descr: &str) -> Option<usize> {
    let d = descr.trim_start_matches(['<', '>', '|', '=']);
    let kind = d.chars().next()?;
    let n: usize = d[kind.len_utf8()..].parse().ok()?;
    match kind {
        'f' | 'i' | 'u' | 'c' | 'b' | 'S' | 'V' => Some(n),
        'U' => n.checked_mul(4),
        '?' => Some(1),
        _ => None,
    }
}

/// Longest `.npy` header read (numpy writes a few hundred bytes for a numeric array; since numpy
/// 1.24 its own reader refuses headers over 10 000 bytes by default).
pub(crate) const MAX_NPY_HEADER: u64 = 1 << 20;

/// Reads and checks the header of an open `.npy` file (leaves the file position unspecified).
fn check_npy_header(
    file: &mut std::fs::File,
    path: &Path,
    file_len: u64,
) -> Result<NpyHeader, InputError> {
    let npy = |reason: String| InputError::Npy {
        path: path.to_path_buf(),
        reason,
    };
    let mut pre = [0u8; 12];
    let got = read_up_to(file, &mut pre).map_err(|e| npy(e.to_string()))?;
    if got < 10 || &pre[..6] != b"\x93NUMPY" {
        return Err(npy("not an .npy file (no \\x93NUMPY magic string)".into()));
    }
    let (header_len, prefix) = match pre[6] {
        1 => (u64::from(u16::from_le_bytes([pre[8], pre[9]])), 10u64),
        2 | 3 if got == 12 => (
            u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])),
            12u64,
        ),
        v => return Err(npy(format!("unsupported .npy format version {v}"))),
    };
    let available = file_len.saturating_sub(prefix);
    if header_len > available {
        return Err(InputError::BeyondFile {
            path: path.to_path_buf(),
            offset: prefix,
            what: "the header".into(),
            size: header_len,
            available,
        });
    }
    if header_len > MAX_NPY_HEADER {
        return Err(npy(format!(
            "header of {header_len} bytes (at most {MAX_NPY_HEADER} are read)"
        )));
    }
    // the whole prefix + header, bounded by the checks above
    let mut head = vec![0u8; (prefix + header_len) as usize];
    file.seek(SeekFrom::Start(0))
        .map_err(|e| npy(e.to_string()))?;
    file.read_exact(&mut head).map_err(|e| npy(e.to_string()))?;
    // a flat dict: refuse deep nesting before the recursive literal parser sees it
    let mut depth = 0usize;
    for &b in &head[prefix as usize..] {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > 8 {
            return Err(npy("header nests brackets deeper than 8 levels".into()));
        }
    }
    let h = ndarray_npy::npy::header::Header::from_reader(&mut std::io::Cursor::new(&head))
        .map_err(|e| npy(format!("bad header: {e}")))?;
    let descr = h.type_descriptor.as_string().cloned().ok_or_else(|| {
        npy(format!(
            "unsupported dtype {} (structured arrays are not read)",
            h.type_descriptor
        ))
    })?;
    let item_size =
        npy_item_size(&descr).ok_or_else(|| npy(format!("unsupported dtype {descr:?}")))?;
    let data_offset = prefix + header_len;
    // ndarray (and so ndarray-npy, which unwraps here) requires the product of the non-zero axis
    // lengths, in bytes of the widest element this crate reads them into (f64 for f4 data), to
    // fit in isize; a shape such as (2^61, 0) holds no element yet cannot be represented.
    let addressable = h
        .shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(item_size.max(8) as u64, |a, &d| a.checked_mul(d as u64))
        .is_some_and(|b| b <= isize::MAX as u64);
    if !addressable {
        return Err(npy(format!(
            "shape {:?} of {descr} cannot be addressed (its non-zero axes exceed isize::MAX bytes)",
            h.shape
        )));
    }
    let count = h
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64));
    let need = count.and_then(|c| c.checked_mul(item_size as u64));
    let available = file_len.saturating_sub(data_offset);
    match need {
        Some(need) if need <= available => {}
        _ => {
            return Err(InputError::BeyondFile {
                path: path.to_path_buf(),
                offset: data_offset,
                what: format!("an array of shape {:?} and dtype {descr}", h.shape),
                size: need.unwrap_or(u64::MAX),
                available,
            })
        }
    }
    Ok(NpyHeader {
        descr,
        shape: h.shape,
        fortran_order: h.layout.is_fortran(),
        item_size,
        data_offset,
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the header of an `.npy` file and checks it against the file (see [`NpyHeader`]); reads
/// no data.
pub fn read_npy_header(path: &Path) -> Result<NpyHeader, InputError> {
    let npy = |e: std::io::Error| InputError::Npy {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(npy)?;
    let len = file.metadata().map_err(npy)?.len();
    check_npy_header(&mut file, path, len)
}

/// Reads an `.npy` file into an array of `T` (the file's dtype must be `T`'s, as
/// `ndarray_npy::read_npy` requires) after checking the header: the declared shape × element size
/// must fit in the bytes after the header ([`InputError::BeyondFile`]) and the array must fit the
/// memory budget ([`InputError::OverBudget`]; [`MEMORY_BUDGET_ENV`]). Only then is anything
/// allocated: a 192-byte file that declares a 26 TB array is an error, not an abort.
pub fn read_npy_checked<T: ReadableElement, D: Dimension>(
    path: &Path,
) -> Result<Array<T, D>, InputError> {
    let mut budget = MemoryBudget::from_env()?;
    read_npy_checked_with(path, &mut budget)
}

/// [`read_npy_checked`] charging an explicit budget.
pub fn read_npy_checked_with<T: ReadableElement, D: Dimension>(
    path: &Path,
    budget: &mut MemoryBudget,
) -> Result<Array<T, D>, InputError> {
    let file = open_checked(path, budget, |_| Ok(std::mem::size_of::<T>()))?;
    Array::<T, D>::read_npy(std::io::BufReader::new(file)).map_err(|e| InputError::Npy {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Opens `path`, checks its header against the file and charges `out_size(header)` bytes per
/// element to `budget`; returns the file positioned at 0.
fn open_checked(
    path: &Path,
    budget: &mut MemoryBudget,
    out_size: impl FnOnce(&NpyHeader) -> Result<usize, InputError>,
) -> Result<std::fs::File, InputError> {
    let npy = |e: std::io::Error| InputError::Npy {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(npy)?;
    let len = file.metadata().map_err(npy)?.len();
    let h = check_npy_header(&mut file, path, len)?;
    let size = bytes_of(h.len(), out_size(&h)?);
    budget.charge(size).map_err(|o| InputError::OverBudget {
        path: path.to_path_buf(),
        offset: h.data_offset,
        what: format!("an array of shape {:?}", h.shape),
        size: o.size,
        used: o.used,
        limit: o.limit,
        scope: BudgetScope::Read,
    })?;
    file.seek(SeekFrom::Start(0)).map_err(npy)?;
    Ok(file)
}

/// Reads an `.npy` of `f64` or `f32` elements as `f64` (checked as [`read_npy_checked`]).
pub fn read_any(path: &Path) -> Result<ArrayD<f64>, InputError> {
    let mut budget = MemoryBudget::from_env()?;
    let err = |e: ndarray_npy::ReadNpyError| InputError::Npy {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut f32_data = false;
    let file = open_checked(path, &mut budget, |h| {
        match h.descr.trim_start_matches(['<', '>', '|', '=']) {
            "f8" => Ok(8),
            "f4" => {
                // the f32 array and its f64 copy exist at once
                f32_data = true;
                Ok(12)
            }
            other => Err(InputError::Npy {
                path: path.to_path_buf(),
                reason: format!("dtype {other} (expected f8 or f4: float64 or float32)"),
            }),
        }
    })?;
    let rd = std::io::BufReader::new(file);
    if f32_data {
        let a = ArrayD::<f32>::read_npy(rd).map_err(err)?;
        Ok(a.mapv(f64::from))
    } else {
        ArrayD::<f64>::read_npy(rd).map_err(err)
    }
}

/// A sample matrix (rows = samples); a 1-D array is read as one column.
pub fn read_matrix(path: &Path) -> Result<Array2<f64>, InputError> {
    let a = read_any(path)?;
    let shape = a.shape().to_vec();
    match a.ndim() {
        1 => {
            let v = a.into_dimensionality::<Ix1>().expect("rank checked");
            let n = v.len();
            Ok(v.into_shape_with_order((n, 1)).expect("same size"))
        }
        2 => Ok(a.into_dimensionality::<Ix2>().expect("rank checked")),
        _ => Err(InputError::Rank {
            path: path.to_path_buf(),
            expected: "1-D or 2-D",
            shape,
        }),
    }
}

/// A vector; an `n × 1` matrix is accepted.
pub(crate) fn read_vector(path: &Path) -> Result<Array1<f64>, InputError> {
    let a = read_any(path)?;
    let shape = a.shape().to_vec();
    match (a.ndim(), shape.as_slice()) {
        (1, _) => Ok(a.into_dimensionality::<Ix1>().expect("rank checked")),
        (2, [n, 1]) => {
            let n = *n;
            Ok(a.into_shape_with_order(n).expect("same size"))
        }
        _ => Err(InputError::Rank {
            path: path.to_path_buf(),
            expected: "1-D (or n x 1)",
            shape,
        }),
    }
}

/// A stack of batches `K × N × p`.
pub(crate) fn read_batches(path: &Path) -> Result<Array3<f64>, InputError> {
    let a = read_any(path)?;
    let shape = a.shape().to_vec();
    if a.ndim() != 3 {
        return Err(InputError::Rank {
            path: path.to_path_buf(),
            expected: "3-D (batches x rows x dims)",
            shape,
        });
    }
    Ok(a.into_dimensionality::<Ix3>().expect("rank checked"))
}
