//! The opcode loop ([`Vm::run`]): one arm per pickle opcode of protocols 2–5 that feature
//! pickles use; object construction (NEWOBJ/OBJ/INST), out-of-band buffers and unknown opcodes
//! are refused.

use super::error::{refuse, R};
use super::machine::Vm;
use super::reduce::{build, pairs};
use super::value::{Bytes, V};
use std::cell::RefCell;
use std::mem::size_of;
use std::rc::Rc;

impl<'a> Vm<'a> {
    pub(super) fn run(&mut self) -> R<V<'a>> {
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
                        return Err(refuse!("unsupported pickle protocol {p}"));
                    }
                }
                0x95 => {
                    // FRAME: a length hint; the frame's bytes follow in place
                    let n = self.le_u64(8)?;
                    if n > (self.data.len() - self.pos) as u64 {
                        return Err(refuse!("truncated: frame of {n} bytes runs past the end"));
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
                        return Err(refuse!("integer of {n} bytes is too large"));
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
                        _ => V::Int(l.trim().parse().map_err(|_| refuse!("bad INT {l:?}"))?),
                    };
                    self.stack.push(v);
                }
                b'L' => {
                    let l = self.line()?;
                    let v = l
                        .trim_end_matches('L')
                        .parse()
                        .map_err(|_| refuse!("bad LONG {l:?}"))?;
                    self.stack.push(V::Int(v));
                }
                b'F' => {
                    let l = self.line()?;
                    let v = l.trim().parse().map_err(|_| refuse!("bad FLOAT {l:?}"))?;
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
                        o => return Err(refuse!("APPEND to a {}", o.kind())),
                    }
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        V::List(l) => l.borrow_mut().extend(items),
                        o => return Err(refuse!("APPENDS to a {}", o.kind())),
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
                        o => return Err(refuse!("SETITEM on a {}", o.kind())),
                    }
                }
                b'u' => {
                    let items = pairs(self.pop_mark()?)?;
                    match self.top()? {
                        V::Dict(d) => d.borrow_mut().extend(items),
                        o => return Err(refuse!("SETITEMS on a {}", o.kind())),
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
                    let i = l.parse().map_err(|_| refuse!("bad PUT {l:?}"))?;
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
                    let i = l.parse().map_err(|_| refuse!("bad GET {l:?}"))?;
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
                _ => return Err(refuse!("unsupported or invalid opcode 0x{op:02x}")),
            }
        }
    }
}
