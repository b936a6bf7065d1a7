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

use crate::io::{bytes_of, MemoryBudget, OverBudget};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::mem::size_of;
use std::rc::Rc;

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

/// A pickle could not be read: where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    /// Byte offset of the opcode that failed (the end of the pickle for a failure while its
    /// value is converted).
    pub offset: usize,
    pub reason: String,
    /// Set when the failure is the memory budget: what was asked, used and allowed.
    pub over_budget: Option<OverBudget>,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "byte offset {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for PickleError {}

/// A loaded numpy array (C order).
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    /// numpy's type string, e.g. `<f4`, `<U7`, `|O`.
    pub dtype: String,
    pub data: ArrayData,
}

/// An array's elements.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// Any numeric dtype, converted to f32.
    Num(Vec<f32>),
    /// `U` and `S` dtypes (trailing NULs removed; `S` decoded as UTF-8, lossy).
    Str(Vec<String>),
    /// Object dtype.
    Obj(Vec<Obj>),
}

impl Array {
    /// Elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A loaded Python object.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// Tuples, lists, sets and frozensets.
    List(Vec<Obj>),
    /// Dict items in pickle order.
    Dict(Vec<(Obj, Obj)>),
    Array(Array),
    /// A numpy dtype or a whitelisted global that ended up as data (its description).
    Other(String),
}

impl Obj {
    /// The value of `key` (a string key) in a dict.
    pub fn get(&self, key: &str) -> Option<&Obj> {
        match self {
            Obj::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Obj::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Takes the value of `key` out of a dict (leaving `None`), so big arrays move without copies.
    pub fn take(&mut self, key: &str) -> Option<Obj> {
        match self {
            Obj::Dict(items) => items
                .iter_mut()
                .find(|(k, _)| matches!(k, Obj::Str(s) if s == key))
                .map(|(_, v)| std::mem::replace(v, Obj::None)),
            _ => None,
        }
    }

    /// A short description of the kind of object, for error messages.
    pub fn kind(&self) -> String {
        match self {
            Obj::None => "None".into(),
            Obj::Bool(_) => "bool".into(),
            Obj::Int(_) => "int".into(),
            Obj::Float(_) => "float".into(),
            Obj::Str(_) => "str".into(),
            Obj::Bytes(_) => "bytes".into(),
            Obj::List(v) => format!("list of {}", v.len()),
            Obj::Dict(v) => format!("dict of {}", v.len()),
            Obj::Array(a) => format!("array {:?} {}", a.shape, a.dtype),
            Obj::Other(s) => s.clone(),
        }
    }

    /// A number as f64 (ints, floats, bools, 0-d / 1-element numeric arrays).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Obj::Int(i) => Some(*i as f64),
            Obj::Float(f) => Some(*f),
            Obj::Bool(b) => Some(f64::from(u8::from(*b))),
            Obj::Array(Array {
                data: ArrayData::Num(v),
                ..
            }) if v.len() == 1 => Some(f64::from(v[0])),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The VM's internal values (shared mutable containers, as in Python, so the memo sees later
// SETITEMS/APPENDS/BUILD).

#[derive(Debug, Clone)]
enum Bytes<'a> {
    Slice(&'a [u8]),
    Owned(Rc<Vec<u8>>),
}

impl Bytes<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Slice(s) => s,
            Bytes::Owned(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    Reconstruct,
    Scalar,
    FromBuffer,
    NdArray,
    Dtype,
    CodecsEncode,
    BytesType,
    ByteArrayType,
}

#[derive(Debug, Clone)]
struct Dtype {
    kind: u8,
    /// Bytes per element (for `U`: 4 × characters).
    size: usize,
    big_endian: bool,
}

impl Dtype {
    fn parse(s: &str) -> Result<Dtype, String> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err("empty dtype string".into());
        }
        let (kind, num) = (b[0], &s[1..]);
        let n: usize = if num.is_empty() {
            0
        } else {
            num.parse()
                .map_err(|_| format!("unsupported dtype {s:?} (only f, i, u, b, U, S, O)"))?
        };
        let size = match kind {
            b'f' if matches!(n, 2 | 4 | 8) => n,
            b'i' | b'u' if matches!(n, 1 | 2 | 4 | 8) => n,
            b'b' if n == 1 => 1,
            b'U' => n.checked_mul(4).ok_or("dtype size overflows")?,
            b'S' => n,
            b'O' => 8,
            _ => {
                return Err(format!(
                    "unsupported dtype {s:?} (only f, i, u, b, U, S, O)"
                ))
            }
        };
        Ok(Dtype {
            kind,
            size,
            big_endian: false,
        })
    }

    fn describe(&self) -> String {
        let order = match self.kind {
            b'O' | b'S' | b'b' => '|',
            _ if self.size == 1 && self.kind != b'U' => '|',
            _ if self.big_endian => '>',
            _ => '<',
        };
        match self.kind {
            b'O' => "|O".into(),
            b'U' => format!("{order}U{}", self.size / 4),
            k => format!("{order}{}{}", k as char, self.size),
        }
    }
}

#[derive(Debug, Clone)]
enum V<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Bytes<'a>),
    Tuple(Rc<Vec<V<'a>>>),
    List(Rc<RefCell<Vec<V<'a>>>>),
    Dict(Rc<RefCell<Vec<(V<'a>, V<'a>)>>>),
    Global(Global),
    Dtype(Rc<RefCell<Dtype>>),
    /// `None` until BUILD fills an array made by `_reconstruct`.
    Array(Rc<RefCell<Option<Array>>>),
}

impl V<'_> {
    fn kind(&self) -> &'static str {
        match self {
            V::None => "None",
            V::Bool(_) => "bool",
            V::Int(_) => "int",
            V::Float(_) => "float",
            V::Str(_) => "str",
            V::Bytes(_) => "bytes",
            V::Tuple(_) => "tuple",
            V::List(_) => "list",
            V::Dict(_) => "dict",
            V::Global(_) => "global",
            V::Dtype(_) => "dtype",
            V::Array(_) => "ndarray",
        }
    }
}

fn resolve_global(module: &str, name: &str) -> Option<Global> {
    let module = module
        .strip_prefix("numpy._core")
        .map(|rest| format!("numpy.core{rest}"))
        .unwrap_or_else(|| module.to_string());
    if !ALLOWED_GLOBALS
        .iter()
        .any(|&(m, n)| m == module && n == name)
    {
        return None;
    }
    Some(match (module.as_str(), name) {
        (_, "_reconstruct") => Global::Reconstruct,
        (_, "scalar") => Global::Scalar,
        (_, "_frombuffer") => Global::FromBuffer,
        (_, "ndarray") => Global::NdArray,
        (_, "dtype") => Global::Dtype,
        ("_codecs", "encode") => Global::CodecsEncode,
        (_, "bytes") => Global::BytesType,
        (_, "bytearray") => Global::ByteArrayType,
        _ => return None,
    })
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    stack: Vec<V<'a>>,
    marks: Vec<usize>,
    memo: HashMap<u64, V<'a>>,
    meter: Meter,
}

/// Counts what reading a pickle allocates (see the module docs).
#[derive(Debug)]
struct Meter {
    budget: MemoryBudget,
    /// Bytes of copies of already converted values, and their limit.
    copied: u64,
    copy_limit: u64,
    /// > 0 while converting a value that was converted before.
    copying: usize,
    /// > 0 while converting a value with several handles (or inside one).
    under_shared: usize,
    /// Shared values (by address) converted so far.
    seen: HashSet<usize>,
    /// The refused charge, when the budget was the reason.
    exceeded: Option<OverBudget>,
}

impl Meter {
    fn new(budget: MemoryBudget, len: usize) -> Self {
        Meter {
            budget,
            copied: 0,
            copy_limit: SHARED_COPY_FLOOR.max(len as u64),
            copying: 0,
            under_shared: 0,
            seen: HashSet::new(),
            exceeded: None,
        }
    }

    /// Charges `bytes` for `what` before it is allocated.
    fn charge(&mut self, bytes: u64, what: impl FnOnce() -> String) -> R<()> {
        if let Err(o) = self.budget.charge(bytes) {
            self.exceeded = Some(o);
            return Err(format!(
                "{} would need {} bytes of memory, over the memory budget of {} bytes ({} already \
                 used by this load); if the file is genuine, raise the budget with {}",
                what(),
                o.size,
                o.limit,
                o.used,
                crate::io::MEMORY_BUDGET_ENV
            ));
        }
        if self.copying > 0 {
            self.copied = self.copied.saturating_add(bytes);
            if self.copied > self.copy_limit {
                return Err(format!(
                    "the values the pickle references more than once (memo GETs) expand to more \
                     than {} bytes of copies (at most max({} bytes, the pickle's length) are made): \
                     a pickle bomb, or a structure that is not a feature file",
                    self.copy_limit, SHARED_COPY_FLOOR
                ));
            }
        }
        Ok(())
    }
}

type R<T> = Result<T, String>;

impl<'a> Vm<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                format!(
                    "truncated: needs {n} more bytes at byte {}, the file has {}",
                    self.pos,
                    data.len()
                )
            })?;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn le_u64(&mut self, n: usize) -> R<u64> {
        let b = self.take(n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        Ok(u64::from_le_bytes(v))
    }

    fn len_prefixed(&mut self, n: usize) -> R<&'a [u8]> {
        let len = self.le_u64(n)?;
        let len = usize::try_from(len).map_err(|_| "length does not fit in memory".to_string())?;
        self.take(len)
    }

    fn line(&mut self) -> R<&'a str> {
        let rest = &self.data[self.pos..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("truncated: no end of line")?;
        let s = std::str::from_utf8(&rest[..nl]).map_err(|_| "line is not UTF-8")?;
        self.pos += nl + 1;
        Ok(s)
    }

    fn pop(&mut self) -> R<V<'a>> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("stack underflow (pop past a mark)".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&mut self) -> R<&mut V<'a>> {
        self.stack
            .last_mut()
            .ok_or_else(|| "stack underflow".into())
    }

    fn pop_mark(&mut self) -> R<Vec<V<'a>>> {
        let m = self.marks.pop().ok_or("no mark on the stack")?;
        if m > self.stack.len() {
            return Err("mark beyond the stack".into());
        }
        Ok(self.stack.split_off(m))
    }

    fn str(&mut self, b: &[u8]) -> R<V<'a>> {
        let s = std::str::from_utf8(b).map_err(|_| "string is not valid UTF-8")?;
        self.meter
            .charge(b.len() as u64, || format!("a string of {} bytes", b.len()))?;
        Ok(V::Str(Rc::from(s)))
    }

    fn memo_put(&mut self, idx: u64) -> R<()> {
        self.meter
            .charge(2 * size_of::<(u64, V)>() as u64, || "the memo".into())?;
        let v = self
            .stack
            .last()
            .ok_or("memo put on an empty stack")?
            .clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u64) -> R<()> {
        let v = self
            .memo
            .get(&idx)
            .ok_or_else(|| format!("memo key {idx} was never stored"))?
            .clone();
        self.stack.push(v);
        Ok(())
    }

    fn run(&mut self) -> R<V<'a>> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            // each opcode adds at most one value to the stack, a container or the memo
            self.meter
                .charge(size_of::<V>() as u64, || "the pickle's values".into())?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(format!("unsupported pickle protocol {p}"));
                    }
                }
                0x95 => {
                    // FRAME: a length hint; the frame's bytes follow in place
                    let n = self.le_u64(8)?;
                    if n > (self.data.len() - self.pos) as u64 {
                        return Err(format!("truncated: frame of {n} bytes runs past the end"));
                    }
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(V::None),
                0x88 => self.stack.push(V::Bool(true)),
                0x89 => self.stack.push(V::Bool(false)),
                b'J' => {
                    let b = self.take(4)?;
                    let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    self.stack.push(V::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(V::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.le_u64(2)?;
                    self.stack.push(V::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as u64
                    } else {
                        self.le_u64(4)?
                    };
                    if n > 8 {
                        return Err(format!("integer of {n} bytes is too large"));
                    }
                    let b = self.take(n as usize)?;
                    let mut v = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xffu8; 8]
                    } else {
                        [0u8; 8]
                    };
                    v[..b.len()].copy_from_slice(b);
                    self.stack.push(V::Int(i64::from_le_bytes(v)));
                }
                b'I' => {
                    let l = self.line()?;
                    let v = match l {
                        "00" => V::Bool(false),
                        "01" => V::Bool(true),
                        _ => V::Int(l.trim().parse().map_err(|_| format!("bad INT {l:?}"))?),
                    };
                    self.stack.push(v);
                }
                b'L' => {
                    let l = self.line()?;
                    let v = l
                        .trim_end_matches('L')
                        .parse()
                        .map_err(|_| format!("bad LONG {l:?}"))?;
                    self.stack.push(V::Int(v));
                }
                b'F' => {
                    let l = self.line()?;
                    let v = l.trim().parse().map_err(|_| format!("bad FLOAT {l:?}"))?;
                    self.stack.push(V::Float(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.stack.push(V::Float(f64::from_be_bytes(a)));
                }
                0x8c => {
                    let b = self.len_prefixed(1)?;
                    let v = self.str(b)?;
                    self.stack.push(v);
                }
                b'X' => {
                    let b = self.len_prefixed(4)?;
                    let v = self.str(b)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let b = self.len_prefixed(8)?;
                    let v = self.str(b)?;
                    self.stack.push(v);
                }
                // Python 2 str (SHORT_BINSTRING / BINSTRING): decoded as latin-1
                b'U' | b'T' => {
                    let b = if op == b'U' {
                        self.len_prefixed(1)?
                    } else {
                        self.len_prefixed(4)?
                    };
                    self.meter.charge(2 * b.len() as u64, || {
                        format!("a string of {} bytes", b.len())
                    })?;
                    let s: String = b.iter().map(|&c| c as char).collect();
                    self.stack.push(V::Str(Rc::from(s.as_str())));
                }
                b'C' => {
                    let b = self.len_prefixed(1)?;
                    self.stack.push(V::Bytes(Bytes::Slice(b)));
                }
                b'B' => {
                    let b = self.len_prefixed(4)?;
                    self.stack.push(V::Bytes(Bytes::Slice(b)));
                }
                0x8e | 0x96 => {
                    let b = self.len_prefixed(8)?;
                    self.stack.push(V::Bytes(Bytes::Slice(b)));
                }
                0x97 | 0x98 => {
                    return Err("out-of-band pickle buffers are not supported".into());
                }
                b')' => self.stack.push(V::Tuple(Rc::new(Vec::new()))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(V::Tuple(Rc::new(items)));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let m = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < n || self.stack.len() - n < m {
                        return Err("stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(V::Tuple(Rc::new(items)));
                }
                b']' => self.stack.push(V::List(Rc::new(RefCell::new(Vec::new())))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(V::List(Rc::new(RefCell::new(items))));
                }
                0x8f => self.stack.push(V::List(Rc::new(RefCell::new(Vec::new())))),
                0x91 => {
                    let items = self.pop_mark()?;
                    self.stack.push(V::List(Rc::new(RefCell::new(items))));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        V::List(l) => l.borrow_mut().push(v),
                        o => return Err(format!("APPEND to a {}", o.kind())),
                    }
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        V::List(l) => l.borrow_mut().extend(items),
                        o => return Err(format!("APPENDS to a {}", o.kind())),
                    }
                }
                b'}' => self.stack.push(V::Dict(Rc::new(RefCell::new(Vec::new())))),
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = pairs(items)?;
                    self.stack.push(V::Dict(Rc::new(RefCell::new(d))));
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        V::Dict(d) => d.borrow_mut().push((k, v)),
                        o => return Err(format!("SETITEM on a {}", o.kind())),
                    }
                }
                b'u' => {
                    let items = pairs(self.pop_mark()?)?;
                    match self.top()? {
                        V::Dict(d) => d.borrow_mut().extend(items),
                        o => return Err(format!("SETITEMS on a {}", o.kind())),
                    }
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.global(&module, &name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (V::Str(m), V::Str(n)) => self.global(&m, &n)?,
                        _ => return Err("STACK_GLOBAL needs two strings".into()),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.reduce(f, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?.clone();
                    build(obj, state, &mut self.meter)?;
                }
                0x81 | 0x92 | b'o' | b'i' => {
                    return Err(
                        "object construction (NEWOBJ/OBJ/INST) is not allowed in feature pickles"
                            .into(),
                    );
                }
                b'p' => {
                    let l = self.line()?;
                    let i = l.parse().map_err(|_| format!("bad PUT {l:?}"))?;
                    self.memo_put(i)?;
                }
                b'q' => {
                    let i = self.u8()? as u64;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.le_u64(4)?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(i)?;
                }
                b'g' => {
                    let l = self.line()?;
                    let i = l.parse().map_err(|_| format!("bad GET {l:?}"))?;
                    self.memo_get(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u64;
                    self.memo_get(i)?;
                }
                b'j' => {
                    let i = self.le_u64(4)?;
                    self.memo_get(i)?;
                }
                _ => return Err(format!("unsupported or invalid opcode 0x{op:02x}")),
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) -> R<()> {
        match resolve_global(module, name) {
            Some(g) => {
                self.stack.push(V::Global(g));
                Ok(())
            }
            None => Err(format!(
                "forbidden global {module}.{name} (only numpy arrays, dtypes and scalars are read)"
            )),
        }
    }

    fn reduce(&mut self, f: V<'a>, args: V<'a>) -> R<V<'a>> {
        let g = match f {
            V::Global(g) => g,
            o => {
                return Err(format!(
                    "REDUCE on a {} (not a whitelisted callable)",
                    o.kind()
                ))
            }
        };
        let args = match args {
            V::Tuple(t) => t,
            o => return Err(format!("REDUCE arguments are a {}, not a tuple", o.kind())),
        };
        let a = args.as_slice();
        match g {
            Global::Reconstruct => {
                if !matches!(a.first(), Some(V::Global(Global::NdArray))) {
                    return Err("_reconstruct of something other than numpy.ndarray".into());
                }
                Ok(V::Array(Rc::new(RefCell::new(None))))
            }
            Global::Dtype => match a.first() {
                Some(V::Str(s)) => Ok(V::Dtype(Rc::new(RefCell::new(Dtype::parse(s)?)))),
                _ => Err("numpy.dtype needs a type string".into()),
            },
            Global::FromBuffer => {
                let (buf, dt, shape) = match a {
                    [b, d, s, ..] => (b, d, s),
                    _ => return Err("_frombuffer needs (buffer, dtype, shape, order)".into()),
                };
                let bytes = match buf {
                    V::Bytes(b) => b.clone(),
                    o => return Err(format!("_frombuffer of a {}", o.kind())),
                };
                let fortran = matches!(a.get(3), Some(V::Str(s)) if &**s == "F");
                let dt = dtype_of(dt)?;
                let shape = shape_of(shape, &mut self.meter)?;
                let arr = make_array(&shape, &dt, fortran, bytes.as_slice(), &mut self.meter)?;
                Ok(V::Array(Rc::new(RefCell::new(Some(arr)))))
            }
            Global::Scalar => {
                let dt = dtype_of(a.first().ok_or("scalar needs a dtype")?)?;
                let bytes = match a.get(1) {
                    Some(V::Bytes(b)) => b.as_slice().to_vec(),
                    Some(V::Str(s)) => latin1(s, &mut self.meter)?,
                    _ => return Err("numpy scalar without its bytes".into()),
                };
                let arr = make_array(&[], &dt, false, &bytes, &mut self.meter)?;
                match arr.data {
                    ArrayData::Num(v) if dt.kind == b'f' => Ok(V::Float(f64::from(v[0]))),
                    ArrayData::Num(v) => Ok(V::Int(v[0] as i64)),
                    ArrayData::Str(mut s) => Ok(V::Str(Rc::from(s.remove(0).as_str()))),
                    ArrayData::Obj(_) => Err("object numpy scalar".into()),
                }
            }
            Global::CodecsEncode => match a {
                [V::Str(s), ..] => Ok(V::Bytes(Bytes::Owned(Rc::new(latin1(s, &mut self.meter)?)))),
                _ => Err("_codecs.encode needs a string".into()),
            },
            Global::BytesType | Global::ByteArrayType => match a {
                [] => Ok(V::Bytes(Bytes::Owned(Rc::new(Vec::new())))),
                [V::Bytes(b)] => Ok(V::Bytes(b.clone())),
                [V::Str(s), ..] => Ok(V::Bytes(Bytes::Owned(Rc::new(latin1(s, &mut self.meter)?)))),
                _ => Err("bytes()/bytearray() with unsupported arguments".into()),
            },
            Global::NdArray => Err("numpy.ndarray called directly".into()),
        }
    }
}

fn latin1(s: &str, meter: &mut Meter) -> R<Vec<u8>> {
    meter.charge(s.len() as u64, || {
        format!("bytes of {} characters", s.len())
    })?;
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| "non-latin-1 character in bytes".into()))
        .collect()
}

fn pairs<'a>(items: Vec<V<'a>>) -> R<Vec<(V<'a>, V<'a>)>> {
    if !items.len().is_multiple_of(2) {
        return Err("odd number of items for a dict".into());
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn dtype_of(v: &V) -> R<Dtype> {
    match v {
        V::Dtype(d) => Ok(d.borrow().clone()),
        o => Err(format!("expected a numpy dtype, found a {}", o.kind())),
    }
}

fn shape_of(v: &V, meter: &mut Meter) -> R<Vec<usize>> {
    let dim = |d: &V| match d {
        V::Int(i) if *i >= 0 => Ok(*i as usize),
        _ => Err("array shape holds a negative or non-integer size".to_string()),
    };
    let n = match v {
        V::Tuple(t) => t.len(),
        V::List(l) => l.borrow().len(),
        V::Int(_) => 1,
        o => return Err(format!("array shape is a {}", o.kind())),
    };
    // the shape is kept with the array: a memo'd shape of a million dimensions must be paid for
    meter.charge(bytes_of(n, size_of::<usize>()), || {
        format!("an array shape of {n} dimensions")
    })?;
    match v {
        V::Tuple(t) => t.iter().map(dim).collect(),
        V::List(l) => l.borrow().iter().map(dim).collect(),
        _ => Ok(vec![dim(v)?]),
    }
}

/// BUILD on a dtype (its state carries the byte order) or on an array from `_reconstruct`.
fn build<'a>(obj: V<'a>, state: V<'a>, meter: &mut Meter) -> R<()> {
    let st = match &state {
        V::Tuple(t) => t.clone(),
        o => return Err(format!("BUILD state is a {}", o.kind())),
    };
    match obj {
        V::Dtype(d) => {
            if let Some(V::Str(order)) = st.get(1) {
                d.borrow_mut().big_endian = &**order == ">";
            }
            if let Some(V::Tuple(names)) = st.get(3) {
                if !names.is_empty() {
                    return Err("structured dtypes are not supported".into());
                }
            }
            Ok(())
        }
        V::Array(cell) => {
            let (shape, dt, fortran, data) = match st.as_slice() {
                [_, s, d, f, data] => (s, d, f, data),
                _ => {
                    return Err(
                        "ndarray state is not (version, shape, dtype, fortran, data)".into(),
                    )
                }
            };
            let shape = shape_of(shape, meter)?;
            let dt = dtype_of(dt)?;
            let fortran = matches!(fortran, V::Bool(true) | V::Int(1));
            let arr = match data {
                V::Bytes(b) => make_array(&shape, &dt, fortran, b.as_slice(), meter)?,
                V::Str(s) => {
                    let b = latin1(s, meter)?;
                    make_array(&shape, &dt, fortran, &b, meter)?
                }
                V::List(items) if dt.kind == b'O' => {
                    let n = checked_count(&shape)?;
                    let len = items.borrow().len();
                    if len != n {
                        return Err(format!("object array of shape {shape:?} holds {len} items"));
                    }
                    // a copy of the item handles: an item may be this very list (via the memo)
                    meter.charge(bytes_of(n, size_of::<V>() + size_of::<Obj>()), || {
                        format!("an object array of {n} items")
                    })?;
                    let items = items.borrow().clone();
                    let objs = items
                        .iter()
                        .map(|v| convert(v, 0, meter))
                        .collect::<R<Vec<_>>>()?;
                    let objs = if fortran {
                        meter.charge(bytes_of(n, size_of::<Obj>()), || {
                            format!("a Fortran-order object array of {n} items")
                        })?;
                        fortran_to_c(objs, &shape)
                    } else {
                        objs
                    };
                    Array {
                        shape,
                        dtype: dt.describe(),
                        data: ArrayData::Obj(objs),
                    }
                }
                o => return Err(format!("ndarray data is a {}", o.kind())),
            };
            *cell.borrow_mut() = Some(arr);
            Ok(())
        }
        o => Err(format!("BUILD on a {} (not an array or dtype)", o.kind())),
    }
}

fn checked_count(shape: &[usize]) -> R<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("array shape {shape:?} overflows"))
}

fn fortran_to_c<T: Clone>(v: Vec<T>, shape: &[usize]) -> Vec<T> {
    if shape.len() < 2 {
        return v;
    }
    let n = v.len();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        // fortran offset of the C-order multi-index `idx`
        let mut off = 0;
        let mut stride = 1;
        for (k, &d) in shape.iter().enumerate() {
            off += idx[k] * stride;
            stride *= d;
        }
        out.push(v[off].clone());
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// Builds an array from raw bytes after checking the declared size against the bytes present
/// and charging what it will take in memory (f32 elements, or strings) to the budget.
fn make_array(
    shape: &[usize],
    dt: &Dtype,
    fortran: bool,
    bytes: &[u8],
    meter: &mut Meter,
) -> R<Array> {
    if dt.kind == b'O' {
        return Err("object array given as raw bytes".into());
    }
    let n = checked_count(shape)?;
    let need = n
        .checked_mul(dt.size)
        .ok_or_else(|| format!("array shape {shape:?} overflows"))?;
    if need != bytes.len() {
        return Err(format!(
            "array of shape {shape:?} and dtype {} needs {need} bytes, the pickle holds {}",
            dt.describe(),
            bytes.len()
        ));
    }
    // out: f32 per number; per string its String and up to 3 bytes of UTF-8 per byte (lossy `S`,
    // 4-byte `U` code points); a Fortran-order array is copied once more
    let out = match dt.kind {
        b'U' | b'S' => bytes_of(n, size_of::<String>()).saturating_add(3 * bytes.len() as u64),
        _ => bytes_of(n, size_of::<f32>()),
    };
    let copies = if fortran && shape.len() > 1 { 2 } else { 1 };
    meter.charge(out.saturating_mul(copies), || {
        format!("an array of shape {shape:?} and dtype {}", dt.describe())
    })?;
    let be = dt.big_endian;
    let sz = dt.size;
    let data = match dt.kind {
        b'U' | b'S' => {
            let strs: Vec<String> = if sz == 0 {
                vec![String::new(); n]
            } else {
                bytes
                    .chunks_exact(sz)
                    .map(|c| {
                        if dt.kind == b'S' {
                            let end = c.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                            String::from_utf8_lossy(&c[..end]).into_owned()
                        } else {
                            c.chunks_exact(4)
                                .map(|u| {
                                    let a = [u[0], u[1], u[2], u[3]];
                                    if be {
                                        u32::from_be_bytes(a)
                                    } else {
                                        u32::from_le_bytes(a)
                                    }
                                })
                                .take_while(|&u| u != 0)
                                .map(|u| char::from_u32(u).unwrap_or('\u{fffd}'))
                                .collect()
                        }
                    })
                    .collect()
            };
            ArrayData::Str(if fortran {
                fortran_to_c(strs, shape)
            } else {
                strs
            })
        }
        kind => {
            let mut out: Vec<f32> = Vec::with_capacity(n);
            macro_rules! conv {
                ($t:ty, $w:expr) => {
                    out.extend(bytes.chunks_exact($w).map(|c| {
                        let mut a = [0u8; $w];
                        a.copy_from_slice(c);
                        (if be {
                            <$t>::from_be_bytes(a)
                        } else {
                            <$t>::from_le_bytes(a)
                        }) as f32
                    }))
                };
            }
            match (kind, sz) {
                (b'f', 4) => conv!(f32, 4),
                (b'f', 8) => conv!(f64, 8),
                (b'f', 2) => out.extend(bytes.chunks_exact(2).map(|c| {
                    let h = if be {
                        u16::from_be_bytes([c[0], c[1]])
                    } else {
                        u16::from_le_bytes([c[0], c[1]])
                    };
                    f16_to_f32(h)
                })),
                (b'i', 1) => out.extend(bytes.iter().map(|&b| b as i8 as f32)),
                (b'u', 1) | (b'b', 1) => out.extend(bytes.iter().map(|&b| b as f32)),
                (b'i', 2) => conv!(i16, 2),
                (b'i', 4) => conv!(i32, 4),
                (b'i', 8) => conv!(i64, 8),
                (b'u', 2) => conv!(u16, 2),
                (b'u', 4) => conv!(u32, 4),
                (b'u', 8) => conv!(u64, 8),
                _ => return Err(format!("unsupported dtype {}", dt.describe())),
            }
            ArrayData::Num(if fortran {
                fortran_to_c(out, shape)
            } else {
                out
            })
        }
    };
    Ok(Array {
        shape: shape.to_vec(),
        dtype: dt.describe(),
        data,
    })
}

fn f16_to_f32(h: u16) -> f32 {
    let s = u32::from(h >> 15) << 31;
    let e = u32::from((h >> 10) & 0x1f);
    let m = u32::from(h & 0x3ff);
    let bits = match (e, m) {
        (0, 0) => s,
        (0, _) => {
            // subnormal
            let v = m as f32 * 2f32.powi(-24);
            return if s != 0 { -v } else { v };
        }
        (31, 0) => s | 0x7f80_0000,
        (31, _) => s | 0x7fc0_0000,
        _ => s | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Deepest nesting of containers [`convert`] follows. Real feature pickles nest a few levels;
/// a hostile file can nest one level per byte (TUPLE1), which would overflow the stack.
pub const MAX_NESTING: usize = 256;

/// Converts a VM value to an owned object, moving arrays out of their cells when nothing else
/// holds them (the memo is gone by then, so the big arrays move without copies). A list or dict
/// that contains itself converts to an empty container at the inner occurrence; nesting deeper
/// than [`MAX_NESTING`] is an error. Every allocation is charged to `meter` first; a value met a
/// second time (a shared reference) is copied, and its copies count against the copy limit.
fn convert(v: &V, depth: usize, meter: &mut Meter) -> R<Obj> {
    if depth > MAX_NESTING {
        return Err(format!("containers nested deeper than {MAX_NESTING}"));
    }
    // (address, handles) of a shared value
    let rc = match v {
        V::Tuple(t) => Some((Rc::as_ptr(t) as *const u8 as usize, Rc::strong_count(t))),
        V::List(l) => Some((Rc::as_ptr(l) as *const u8 as usize, Rc::strong_count(l))),
        V::Dict(m) => Some((Rc::as_ptr(m) as *const u8 as usize, Rc::strong_count(m))),
        V::Array(a) => Some((Rc::as_ptr(a) as *const u8 as usize, Rc::strong_count(a))),
        _ => None,
    };
    let again = rc.is_some_and(|(p, _)| !meter.seen.insert(p));
    // inside a container with several handles, arrays are copied, not moved: it may be
    // converted again
    let shared = rc.is_some_and(|(_, n)| n > 1);
    meter.copying += usize::from(again);
    meter.under_shared += usize::from(shared);
    let out = convert_inner(v, depth + 1, meter);
    meter.copying -= usize::from(again);
    meter.under_shared -= usize::from(shared);
    out
}

fn convert_inner(v: &V, d: usize, meter: &mut Meter) -> R<Obj> {
    let what = || "the object the pickle describes".to_string();
    Ok(match v {
        V::None => Obj::None,
        V::Bool(b) => Obj::Bool(*b),
        V::Int(i) => Obj::Int(*i),
        V::Float(f) => Obj::Float(*f),
        V::Str(s) => {
            meter.charge(s.len() as u64, what)?;
            Obj::Str(s.to_string())
        }
        V::Bytes(b) => {
            meter.charge(b.as_slice().len() as u64, what)?;
            Obj::Bytes(b.as_slice().to_vec())
        }
        V::Tuple(t) => {
            meter.charge(bytes_of(t.len(), size_of::<Obj>()), what)?;
            Obj::List(t.iter().map(|x| convert(x, d, meter)).collect::<R<_>>()?)
        }
        V::List(l) => {
            let items = std::mem::take(&mut *l.borrow_mut());
            let out = meter
                .charge(bytes_of(items.len(), size_of::<Obj>()), what)
                .and_then(|()| {
                    items
                        .iter()
                        .map(|x| convert(x, d, meter))
                        .collect::<R<Vec<_>>>()
                });
            *l.borrow_mut() = items;
            Obj::List(out?)
        }
        V::Dict(m) => {
            let items = std::mem::take(&mut *m.borrow_mut());
            let out = meter
                .charge(bytes_of(items.len(), size_of::<(Obj, Obj)>()), what)
                .and_then(|()| {
                    items
                        .iter()
                        .map(|(k, v)| Ok((convert(k, d, meter)?, convert(v, d, meter)?)))
                        .collect::<R<Vec<_>>>()
                });
            *m.borrow_mut() = items;
            Obj::Dict(out?)
        }
        V::Global(g) => {
            let s = format!("global {g:?}");
            meter.charge(s.len() as u64, what)?;
            Obj::Other(s)
        }
        V::Dtype(t) => {
            let s = format!("dtype {}", t.borrow().describe());
            meter.charge(s.len() as u64, what)?;
            Obj::Other(s)
        }
        V::Array(a) => {
            let arr = if meter.under_shared == 0 {
                // charged when it was made
                a.borrow_mut().take()
            } else {
                let bytes = a.borrow().as_ref().map_or(0, array_heap);
                meter.charge(bytes, || "a copy of a shared array".into())?;
                a.borrow().clone()
            };
            Obj::Array(arr.ok_or("an ndarray that was never built")?)
        }
    })
}

/// Heap bytes of an array (shape, dtype string, elements).
fn array_heap(a: &Array) -> u64 {
    let data = match &a.data {
        ArrayData::Num(v) => bytes_of(v.len(), size_of::<f32>()),
        ArrayData::Str(v) => v
            .iter()
            .fold(bytes_of(v.len(), size_of::<String>()), |s, x| {
                s.saturating_add(x.len() as u64)
            }),
        ArrayData::Obj(v) => v.iter().fold(bytes_of(v.len(), size_of::<Obj>()), |s, x| {
            s.saturating_add(obj_heap(x))
        }),
    };
    bytes_of(a.shape.len(), size_of::<usize>())
        .saturating_add(a.dtype.len() as u64)
        .saturating_add(data)
}

/// Heap bytes owned by an object (not counting its own `size_of::<Obj>()`).
fn obj_heap(o: &Obj) -> u64 {
    match o {
        Obj::None | Obj::Bool(_) | Obj::Int(_) | Obj::Float(_) => 0,
        Obj::Str(s) | Obj::Other(s) => s.len() as u64,
        Obj::Bytes(b) => b.len() as u64,
        Obj::List(v) => v.iter().fold(bytes_of(v.len(), size_of::<Obj>()), |s, x| {
            s.saturating_add(obj_heap(x))
        }),
        Obj::Dict(v) => v
            .iter()
            .fold(bytes_of(v.len(), size_of::<(Obj, Obj)>()), |s, (k, x)| {
                s.saturating_add(obj_heap(k)).saturating_add(obj_heap(x))
            }),
        Obj::Array(a) => array_heap(a),
    }
}

impl Obj {
    /// Bytes this object takes in memory, itself and everything it owns (vectors by their length;
    /// what the reader charged to its budget for it is at least this much).
    pub fn deep_size(&self) -> u64 {
        (size_of::<Obj>() as u64).saturating_add(obj_heap(self))
    }
}

/// Drops VM values without recursion: a deeply nested value (one level per byte of a hostile
/// file) would otherwise overflow the stack in its destructor. Containers whose last handle is
/// dropped here hand their items to the work list; shared ones are dropped by their last holder.
fn dismantle<'a>(mut work: Vec<V<'a>>) {
    while let Some(v) = work.pop() {
        match v {
            V::Tuple(t) => {
                if let Ok(items) = Rc::try_unwrap(t) {
                    work.extend(items);
                }
            }
            V::List(l) => {
                if let Ok(items) = Rc::try_unwrap(l) {
                    work.extend(items.into_inner());
                }
            }
            V::Dict(m) => {
                if let Ok(items) = Rc::try_unwrap(m) {
                    for (k, v) in items.into_inner() {
                        work.push(k);
                        work.push(v);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Drop for Vm<'_> {
    fn drop(&mut self) {
        let mut work = std::mem::take(&mut self.stack);
        work.extend(std::mem::take(&mut self.memo).into_values());
        dismantle(work);
    }
}

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
    let mut vm = Vm {
        data,
        pos: 0,
        op_pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        meter: Meter::new(budget.clone(), data.len()),
    };
    let r = vm.run();
    let mut meter = std::mem::replace(&mut vm.meter, Meter::new(MemoryBudget::new(0), 0));
    let v = match r {
        Ok(v) => v,
        Err(reason) => {
            *budget = meter.budget;
            return Err(PickleError {
                offset: vm.op_pos,
                reason,
                over_budget: meter.exceeded,
            });
        }
    };
    let end = vm.pos;
    drop(vm);
    meter
        .charge(size_of::<Obj>() as u64, || "the result".into())
        .map_err(|reason| PickleError {
            offset: end,
            reason,
            over_budget: meter.exceeded,
        })?;
    let out = convert(&v, 0, &mut meter).map_err(|reason| PickleError {
        offset: end,
        reason,
        over_budget: meter.exceeded,
    });
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
        path: p.clone(),
        reason: e.to_string(),
    })?;
    loads_with(&map, budget).map_err(|e| match e.over_budget {
        Some(o) => super::DataError::OverBudget {
            path: p,
            offset: e.offset as u64,
            what: e
                .reason
                .split(" would need ")
                .next()
                .unwrap_or("the pickle")
                .to_string(),
            size: o.size,
            used: o.used,
            limit: o.limit,
        },
        None => super::DataError::Offset {
            path: p,
            offset: e.offset,
            reason: e.reason,
        },
    })
}
