//! A small, defensive pickle reader (protocols 2–5) that builds numpy arrays natively.
//!
//! Only the objects that feature pickles contain are accepted: Python scalars, strings, bytes,
//! tuples, lists, sets, dicts, and numpy arrays / dtypes / scalars reached through a fixed
//! whitelist of globals ([`ALLOWED_GLOBALS`], under both `numpy.core.*` (numpy 1.x) and
//! `numpy._core.*` (numpy 2.x) module names). Any other global is an error that names it; nothing
//! is ever executed.
//!
//! * Arrays: `_reconstruct(ndarray, (0,), b'b')` + `BUILD (version, shape, dtype, is_fortran,
//!   data)` (protocols 2–4), or `_frombuffer(buffer, dtype, shape, order)` (protocol 5, in-band
//!   `BYTEARRAY8`/`BINBYTES`). Numeric dtypes (`f2`/`f4`/`f8`, `i1`–`i8`, `u1`–`u8`, `b1`, either
//!   byte order) are converted straight from the file's bytes into their final `Vec<f32>`
//!   (no intermediate copy; integers beyond 2^24 lose precision); `U`, `S` and `O` arrays become
//!   strings / objects.
//! * Untrusted input: every declared length is checked against the bytes present before anything
//!   is allocated (an array's element count times its item size must equal its data's length),
//!   integers are bounded, and truncated or corrupt input is an error with the byte offset.
//! * Protocol 2 stores bytes as `_codecs.encode(latin-1 text, 'latin1')`; that path costs one
//!   temporary copy of the array's bytes.
//! * Memory: everything the reader allocates from what the file says (arrays, strings, the VM's
//!   values, and the owned objects it returns) is charged to a [`MemoryBudget`] before it is
//!   allocated; past it, the error says how much was asked ([`PickleError::over_budget`]). The
//!   memo lets a few bytes reference a value again and again, and the owned result copies every
//!   reference: copies of values already converted are also limited to
//!   max([`SHARED_COPY_FLOOR`], the pickle's length), so a 941-byte pickle that fans out 10× per
//!   level for 40 levels (10^40 nodes) is an error after a few MB, not an abort.
//!
//! Files, one responsibility each: `object.rs` (the [`Obj`] / [`Array`] a pickle becomes),
//! `error.rs` ([`PickleError`]), `machine.rs` (the unpickler's state and primitives),
//! `opcodes.rs` (the opcode loop), `reduce.rs` (the whitelisted callables: GLOBAL, REDUCE,
//! BUILD), `numpy.rs` (dtypes and arrays from raw bytes), `value.rs` (the machine's own values),
//! `meter.rs` (the memory budget and the copy limit), `convert.rs` (values to [`Obj`]); this
//! file: the limits and the entry points ([`loads`], [`load_file`]).

mod convert;
mod error;
mod machine;
mod meter;
mod numpy;
mod object;
mod opcodes;
mod reduce;
mod value;

pub use error::PickleError;
pub use object::{Array, ArrayData, Obj};

use crate::io::MemoryBudget;
use convert::convert;
use error::Fault;
use machine::Vm;
use meter::Meter;
use std::mem::size_of;
use value::dismantle;

/// The least a converted pickle may copy of values it references more than once (through the
/// memo); the limit is this or the pickle's length, whichever is larger. Genuine feature pickles
/// share only small things (dict keys, dtypes, the `(0,)` of every array); a pickle bomb shares
/// whole containers.
pub const SHARED_COPY_FLOOR: u64 = 64 << 20;

/// Globals a pickle may reference (module, name); `numpy._core` is accepted wherever
/// `numpy.core` is.
pub const ALLOWED_GLOBALS: &[(&str, &str)] = &[
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "bytes"),
    ("__builtin__", "bytes"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
];

/// Deepest nesting of containers the conversion to [`Obj`] follows. Real feature pickles nest a
/// few levels; a hostile file can nest one level per byte (TUPLE1), which would overflow the
/// stack.
pub const MAX_NESTING: usize = 256;

/// Reads a pickle from memory, charging what it allocates to the memory budget of
/// [`crate::io::memory_budget`] (`NEURAL_SYNERGY_MEMORY_BUDGET` or the default).
pub fn loads(data: &[u8]) -> Result<Obj, PickleError> {
    let mut budget = MemoryBudget::from_env().map_err(|e| PickleError {
        offset: 0,
        reason: e.to_string(),
        over_budget: None,
    })?;
    loads_with(data, &mut budget)
}

/// [`loads`] charging `budget` (which keeps what was charged, for the caller's later
/// allocations).
pub fn loads_with(data: &[u8], budget: &mut MemoryBudget) -> Result<Obj, PickleError> {
    read(data, budget).map_err(|(offset, fault)| fault.at(offset))
}

/// Runs the machine over `data` and converts its value; a failure comes with the byte offset it
/// is about. `budget` keeps what was charged, except when the result itself could not be charged.
fn read(data: &[u8], budget: &mut MemoryBudget) -> Result<Obj, (usize, Fault)> {
    let mut vm = Vm::new(data, Meter::new(budget.clone(), data.len()));
    let r = vm.run();
    let mut meter = std::mem::replace(&mut vm.meter, Meter::new(MemoryBudget::new(0), 0));
    let v = match r {
        Ok(v) => v,
        Err(fault) => {
            *budget = meter.budget;
            return Err((vm.op_pos, fault));
        }
    };
    let end = vm.pos;
    drop(vm);
    meter
        .charge(size_of::<Obj>() as u64, || "the result".into())
        .map_err(|fault| (end, fault))?;
    let out = convert(&v, 0, &mut meter).map_err(|fault| (end, fault));
    dismantle(vec![v]);
    *budget = meter.budget;
    out
}

/// Reads a pickle file (memory-mapped: the file is not copied; arrays are converted straight
/// into their final vectors), charging the memory budget of [`crate::io::memory_budget`].
/// Errors name the file and the byte offset.
pub fn load_file(path: &std::path::Path) -> Result<Obj, super::DataError> {
    let mut budget = MemoryBudget::from_env()?;
    load_file_with(path, &mut budget)
}

/// [`load_file`] charging `budget`.
pub fn load_file_with(
    path: &std::path::Path,
    budget: &mut MemoryBudget,
) -> Result<Obj, super::DataError> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| super::DataError::File {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    // SAFETY: the map is read-only and lives only during this call; a file truncated by another
    // process while we read it could fault, as with any mmap reader.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| super::DataError::File {
        path: p,
        reason: e.to_string(),
    })?;
    read(&map, budget).map_err(|(offset, fault)| fault.in_file(path, offset))
}
