//! The machine's own values ([`V`]): shared, mutable containers as in Python, so that what the
//! memo holds sees later SETITEMS/APPENDS/BUILD; the whitelisted globals ([`Global`],
//! [`resolve_global`]); and [`dismantle`], which drops deep values without recursion.

use super::numpy::Dtype;
use super::Array;
use super::ALLOWED_GLOBALS;
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Debug, Clone)]
pub(super) enum Bytes<'a> {
    Slice(&'a [u8]),
    Owned(Rc<Vec<u8>>),
}

impl Bytes<'_> {
    pub(super) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Slice(s) => s,
            Bytes::Owned(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Global {
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
pub(super) enum V<'a> {
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
    pub(super) fn kind(&self) -> &'static str {
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

pub(super) fn resolve_global(module: &str, name: &str) -> Option<Global> {
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

/// Drops VM values without recursion: a deeply nested value (one level per byte of a hostile
/// file) would otherwise overflow the stack in its destructor. Containers whose last handle is
/// dropped here hand their items to the work list; shared ones are dropped by their last holder.
pub(super) fn dismantle<'a>(mut work: Vec<V<'a>>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_2_module_names_resolve_like_numpy_1_and_nothing_else_does() {
        assert_eq!(
            resolve_global("numpy._core.multiarray", "_reconstruct"),
            Some(Global::Reconstruct)
        );
        assert_eq!(
            resolve_global("numpy.core.multiarray", "_reconstruct"),
            Some(Global::Reconstruct)
        );
        assert_eq!(
            resolve_global("numpy._core.numeric", "_frombuffer"),
            Some(Global::FromBuffer)
        );
        assert_eq!(
            resolve_global("__builtin__", "bytes"),
            Some(Global::BytesType)
        );
        for (m, n) in [
            ("os", "system"),
            ("builtins", "eval"),
            ("numpy", "load"),
            ("numpy.core.multiarray", "ndarray"),
            ("numpy._core.multiarray", "_frombuffer"),
        ] {
            assert_eq!(resolve_global(m, n), None, "{m}.{n}");
        }
    }

    #[test]
    fn deep_values_are_dropped_without_recursion() {
        let mut v: V = V::None;
        for _ in 0..200_000 {
            v = V::Tuple(Rc::new(vec![v]));
        }
        dismantle(vec![v]);
    }
}
