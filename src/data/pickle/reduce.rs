//! The whitelisted callables: GLOBAL ([`Vm::global`]), REDUCE ([`Vm::reduce`]: `_reconstruct`,
//! `dtype`, `_frombuffer`, `scalar`, `_codecs.encode`, `bytes`/`bytearray`) and BUILD ([`build`]:
//! a dtype's byte order, an array's state), with the argument checks they share.

use super::convert::convert;
use super::error::{refuse, Fault, R};
use super::machine::Vm;
use super::meter::Meter;
use super::numpy::{checked_count, fortran_to_c, make_array, Dtype};
use super::value::{resolve_global, Bytes, Global, V};
use super::{Array, ArrayData, Obj};
use crate::io::bytes_of;
use std::cell::RefCell;
use std::mem::size_of;
use std::rc::Rc;

impl<'a> Vm<'a> {
    pub(super) fn global(&mut self, module: &str, name: &str) -> R<()> {
        match resolve_global(module, name) {
            Some(g) => {
                self.stack.push(V::Global(g));
                Ok(())
            }
            None => Err(refuse!(
                "forbidden global {module}.{name} (only numpy arrays, dtypes and scalars are read)"
            )),
        }
    }

    pub(super) fn reduce(&mut self, f: V<'a>, args: V<'a>) -> R<V<'a>> {
        let g = match f {
            V::Global(g) => g,
            o => {
                return Err(refuse!(
                    "REDUCE on a {} (not a whitelisted callable)",
                    o.kind()
                ))
            }
        };
        let args = match args {
            V::Tuple(t) => t,
            o => return Err(refuse!("REDUCE arguments are a {}, not a tuple", o.kind())),
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
                    o => return Err(refuse!("_frombuffer of a {}", o.kind())),
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

pub(super) fn latin1(s: &str, meter: &mut Meter) -> R<Vec<u8>> {
    meter.charge(s.len() as u64, || {
        format!("bytes of {} characters", s.len())
    })?;
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| "non-latin-1 character in bytes".into()))
        .collect()
}

pub(super) fn pairs<'a>(items: Vec<V<'a>>) -> R<Vec<(V<'a>, V<'a>)>> {
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

pub(super) fn dtype_of(v: &V) -> R<Dtype> {
    match v {
        V::Dtype(d) => Ok(d.borrow().clone()),
        o => Err(refuse!("expected a numpy dtype, found a {}", o.kind())),
    }
}

pub(super) fn shape_of(v: &V, meter: &mut Meter) -> R<Vec<usize>> {
    let dim = |d: &V| match d {
        V::Int(i) if *i >= 0 => Ok(*i as usize),
        _ => Err(Fault::from(
            "array shape holds a negative or non-integer size",
        )),
    };
    let n = match v {
        V::Tuple(t) => t.len(),
        V::List(l) => l.borrow().len(),
        V::Int(_) => 1,
        o => return Err(refuse!("array shape is a {}", o.kind())),
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
pub(super) fn build<'a>(obj: V<'a>, state: V<'a>, meter: &mut Meter) -> R<()> {
    let st = match &state {
        V::Tuple(t) => t.clone(),
        o => return Err(refuse!("BUILD state is a {}", o.kind())),
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
                        return Err(refuse!("object array of shape {shape:?} holds {len} items"));
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
                o => return Err(refuse!("ndarray data is a {}", o.kind())),
            };
            *cell.borrow_mut() = Some(arr);
            Ok(())
        }
        o => Err(refuse!("BUILD on a {} (not an array or dtype)", o.kind())),
    }
}
