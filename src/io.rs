//! `.npy` input for the CLI: f64 or f32 (converted), C or Fortran order; typed errors that name
//! the file (missing, truncated, wrong dtype, wrong rank).

use ndarray::{Array1, Array2, Array3, ArrayD, Ix1, Ix2, Ix3};
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
}

/// Reads an `.npy` of `f64` or `f32` elements as `f64`.
pub fn read_any(path: &Path) -> Result<ArrayD<f64>, InputError> {
    let err = |e: ndarray_npy::ReadNpyError| InputError::Npy {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    match ndarray_npy::read_npy::<_, ArrayD<f64>>(path) {
        Ok(a) => Ok(a),
        Err(ndarray_npy::ReadNpyError::WrongDescriptor(_)) => {
            let a: ArrayD<f32> = ndarray_npy::read_npy(path).map_err(err)?;
            Ok(a.mapv(f64::from))
        }
        Err(e) => Err(err(e)),
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
pub fn read_vector(path: &Path) -> Result<Array1<f64>, InputError> {
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
pub fn read_batches(path: &Path) -> Result<Array3<f64>, InputError> {
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
