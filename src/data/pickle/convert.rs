//! From the machine's values to the owned [`Obj`] the caller gets ([`convert`]): arrays moved
//! out when nothing else holds them, shared values copied against the copy limit, nesting
//! bounded by [`MAX_NESTING`].

use super::error::{refuse, R};
use super::meter::Meter;
use super::object::array_heap;
use super::value::V;
use super::{Obj, MAX_NESTING};
use crate::io::bytes_of;
use std::mem::size_of;
use std::rc::Rc;

/// Converts a VM value to an owned object, moving arrays out of their cells when nothing else
/// holds them (the memo is gone by then, so the big arrays move without copies). A list or dict
/// that contains itself converts to an empty container at the inner occurrence; nesting deeper
/// than [`MAX_NESTING`] is an error. Every allocation is charged to `meter` first; a value met a
/// second time (a shared reference) is copied, and its copies count against the copy limit.
pub(super) fn convert(v: &V, depth: usize, meter: &mut Meter) -> R<Obj> {
    if depth > MAX_NESTING {
        return Err(refuse!("containers nested deeper than {MAX_NESTING}"));
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
