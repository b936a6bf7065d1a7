//! What a pickle becomes: an owned [`Obj`] tree (Python scalars, strings, containers) with
//! numpy arrays as [`Array`]s, the accessors the format readers use, and the heap sizes the
//! reader charges for them ([`Obj::deep_size`]).

use crate::io::bytes_of;
use std::mem::size_of;

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

/// Heap bytes of an array (shape, dtype string, elements).
pub(super) fn array_heap(a: &Array) -> u64 {
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
