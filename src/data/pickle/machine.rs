//! The unpickler's state ([`Vm`]: the bytes, the stack, the marks, the memo, the meter) and its
//! primitives: reading bytes, lengths and lines, popping the stack, the memo. The opcodes are in
//! `opcodes.rs`, the whitelisted callables in `reduce.rs`.

use super::error::{refuse, R};
use super::meter::Meter;
use super::value::{dismantle, V};
use std::collections::HashMap;
use std::mem::size_of;
use std::rc::Rc;

/// The unpickler: the pickle's bytes, the read position (`op_pos`: where the opcode being run
/// started, for errors), the stack and its marks, the memo, and the meter.
pub(super) struct Vm<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) op_pos: usize,
    pub(super) stack: Vec<V<'a>>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u64, V<'a>>,
    pub(super) meter: Meter,
}

impl<'a> Vm<'a> {
    /// A machine at the start of `data`, charging `meter`.
    pub(super) fn new(data: &'a [u8], meter: Meter) -> Self {
        Vm {
            data,
            pos: 0,
            op_pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            meter,
        }
    }

    pub(super) fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                refuse!(
                    "truncated: needs {n} more bytes at byte {}, the file has {}",
                    self.pos,
                    data.len()
                )
            })?;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(super) fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn le_u64(&mut self, n: usize) -> R<u64> {
        let b = self.take(n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        Ok(u64::from_le_bytes(v))
    }

    pub(super) fn len_prefixed(&mut self, n: usize) -> R<&'a [u8]> {
        let len = self.le_u64(n)?;
        let len = usize::try_from(len).map_err(|_| "length does not fit in memory".to_string())?;
        self.take(len)
    }

    pub(super) fn line(&mut self) -> R<&'a str> {
        let rest = &self.data[self.pos..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("truncated: no end of line")?;
        let s = std::str::from_utf8(&rest[..nl]).map_err(|_| "line is not UTF-8")?;
        self.pos += nl + 1;
        Ok(s)
    }

    pub(super) fn pop(&mut self) -> R<V<'a>> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("stack underflow (pop past a mark)".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    pub(super) fn top(&mut self) -> R<&mut V<'a>> {
        self.stack
            .last_mut()
            .ok_or_else(|| "stack underflow".into())
    }

    pub(super) fn pop_mark(&mut self) -> R<Vec<V<'a>>> {
        let m = self.marks.pop().ok_or("no mark on the stack")?;
        if m > self.stack.len() {
            return Err("mark beyond the stack".into());
        }
        Ok(self.stack.split_off(m))
    }

    pub(super) fn str(&mut self, b: &[u8]) -> R<V<'a>> {
        let s = std::str::from_utf8(b).map_err(|_| "string is not valid UTF-8")?;
        self.meter
            .charge(b.len() as u64, || format!("a string of {} bytes", b.len()))?;
        Ok(V::Str(Rc::from(s)))
    }

    pub(super) fn memo_put(&mut self, idx: u64) -> R<()> {
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

    pub(super) fn memo_get(&mut self, idx: u64) -> R<()> {
        let v = self
            .memo
            .get(&idx)
            .ok_or_else(|| refuse!("memo key {idx} was never stored"))?
            .clone();
        self.stack.push(v);
        Ok(())
    }
}

impl Drop for Vm<'_> {
    fn drop(&mut self) {
        let mut work = std::mem::take(&mut self.stack);
        work.extend(std::mem::take(&mut self.memo).into_values());
        dismantle(work);
    }
}
