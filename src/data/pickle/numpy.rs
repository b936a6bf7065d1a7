//! numpy arrays from raw bytes: the dtypes read ([`Dtype`]: `f`, `i`, `u`, `b`, `U`, `S`, `O`),
//! the declared size checked against the bytes present and charged to the budget before anything
//! is allocated ([`make_array`]), Fortran order turned to C order, half floats.

use super::error::{refuse, R};
use super::meter::Meter;
use super::{Array, ArrayData};
use crate::io::bytes_of;
use std::mem::size_of;

#[derive(Debug, Clone)]
pub(super) struct Dtype {
    pub(super) kind: u8,
    /// Bytes per element (for `U`: 4 × characters).
    pub(super) size: usize,
    pub(super) big_endian: bool,
}

impl Dtype {
    pub(super) fn parse(s: &str) -> R<Dtype> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err("empty dtype string".into());
        }
        let (kind, num) = (b[0], &s[1..]);
        let n: usize = if num.is_empty() {
            0
        } else {
            num.parse()
                .map_err(|_| refuse!("unsupported dtype {s:?} (only f, i, u, b, U, S, O)"))?
        };
        let size = match kind {
            b'f' if matches!(n, 2 | 4 | 8) => n,
            b'i' | b'u' if matches!(n, 1 | 2 | 4 | 8) => n,
            b'b' if n == 1 => 1,
            b'U' => n.checked_mul(4).ok_or("dtype size overflows")?,
            b'S' => n,
            b'O' => 8,
            _ => {
                return Err(refuse!(
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

    pub(super) fn describe(&self) -> String {
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

pub(super) fn checked_count(shape: &[usize]) -> R<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| refuse!("array shape {shape:?} overflows"))
}

pub(super) fn fortran_to_c<T: Clone>(v: Vec<T>, shape: &[usize]) -> Vec<T> {
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
pub(super) fn make_array(
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
        .ok_or_else(|| refuse!("array shape {shape:?} overflows"))?;
    if need != bytes.len() {
        return Err(refuse!(
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
                _ => return Err(refuse!("unsupported dtype {}", dt.describe())),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::MemoryBudget;

    fn meter() -> Meter {
        Meter::new(MemoryBudget::new(1 << 20), 0)
    }

    #[test]
    fn dtypes_parse_to_their_numpy_names_and_others_are_refused() {
        for (s, name) in [
            ("f4", "<f4"),
            ("f8", "<f8"),
            ("f2", "<f2"),
            ("i1", "|i1"),
            ("u8", "<u8"),
            ("b1", "|b1"),
            ("U7", "<U7"),
            ("S3", "|S3"),
            ("O8", "|O"),
        ] {
            assert_eq!(Dtype::parse(s).unwrap().describe(), name, "{s}");
        }
        let mut be = Dtype::parse("f8").unwrap();
        be.big_endian = true;
        assert_eq!(be.describe(), ">f8");
        for bad in ["", "f3", "c16", "V8", "fx"] {
            assert!(Dtype::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Dtype::parse("c8").unwrap_err().to_string(),
            "unsupported dtype \"c8\" (only f, i, u, b, U, S, O)"
        );
    }

    #[test]
    fn half_floats_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn fortran_order_becomes_c_order() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column
        assert_eq!(
            fortran_to_c(vec![1, 4, 2, 5, 3, 6], &[2, 3]),
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(fortran_to_c(vec![1, 2, 3], &[3]), [1, 2, 3]);
        assert!(checked_count(&[usize::MAX, 2]).is_err());
    }

    #[test]
    fn an_array_must_hold_exactly_the_bytes_its_shape_declares() {
        let dt = Dtype::parse("f4").unwrap();
        let bytes: Vec<u8> = [1f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let a = make_array(&[2], &dt, false, &bytes, &mut meter()).unwrap();
        assert_eq!(a.data, ArrayData::Num(vec![1.0, 2.0]));
        assert_eq!(a.dtype, "<f4");
        let e = make_array(&[3], &dt, false, &bytes, &mut meter()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "array of shape [3] and dtype <f4 needs 12 bytes, the pickle holds 8"
        );
        let u = Dtype::parse("U2").unwrap();
        let s: Vec<u8> = ['h', 'i', 'a', '\0']
            .iter()
            .flat_map(|&c| (c as u32).to_le_bytes())
            .collect();
        let a = make_array(&[2], &u, false, &s, &mut meter()).unwrap();
        assert_eq!(a.data, ArrayData::Str(vec!["hi".into(), "a".into()]));
    }
}
