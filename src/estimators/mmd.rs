//! Maximum mean discrepancy (Gretton et al., 2012) under the mean Gaussian kernel of
//! [`kernel`](super::kernel). The value returned is **MMD²**, not its root.
//!
//! With `Kxx = Σ_{i,j} k(xᵢ, xⱼ)`, `Kyy`, `Kxy = Σ_{i,j} k(xᵢ, yⱼ)` and `X` of `n` rows, `Y` of `m`:
//! * [`MmdVariant::Biased`] (V-statistic, all pairs incl. `i = j`):
//!   `Kxx/n² + Kyy/m² − 2 Kxy/(nm)`; always ≥ 0, and exactly 0 when `X = Y`.
//! * [`MmdVariant::Unbiased`] (U-statistic): the within-sample sums exclude `i = j` and are divided
//!   by `n(n−1)` and `m(m−1)`; needs `n, m ≥ 2`; may be negative.
//! * [`MmdVariant::Linear`] (Gretton et al. 2012, Lemma 14): quads `(x_{2i−1}, x_{2i}, y_{2i−1}, y_{2i})`,
//!   `h = k(x₁,x₂) + k(y₁,y₂) − k(x₁,y₂) − k(x₂,y₁)`, the mean over `⌊n/2⌋` quads; needs `n = m ≥ 2`.
//!
//! The quadratic variants are computed in `BLOCK × BLOCK` tiles of the pooled sample: one small GEMM
//! per tile gives the squared distances, the kernel is evaluated and reduced in place (no `n × n`
//! matrix per bandwidth is ever materialised), within-sample sums use only the upper triangle, and
//! the tiles run in parallel (rayon).

use super::kernel::{sq_norms, tile_sq_dists, tiles, Bandwidths, KernelEval};
use crate::error::{EstimatorError, Result};
use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Which MMD² estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MmdVariant {
    /// V-statistic.
    Biased,
    /// U-statistic.
    Unbiased,
    /// Linear-time statistic over disjoint quads.
    Linear,
}

impl MmdVariant {
    /// Lower-case name used by the CLI and JSON.
    pub fn name(self) -> &'static str {
        match self {
            MmdVariant::Biased => "biased",
            MmdVariant::Unbiased => "unbiased",
            MmdVariant::Linear => "linear",
        }
    }
}

impl FromStr for MmdVariant {
    type Err = EstimatorError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "biased" => Ok(Self::Biased),
            "unbiased" => Ok(Self::Unbiased),
            "linear" => Ok(Self::Linear),
            other => Err(EstimatorError::InvalidParameter {
                name: "variant",
                reason: format!("unknown MMD variant '{other}' (biased|unbiased|linear)"),
            }),
        }
    }
}

/// MMD² between the rows of `x` and of `y` under the mean Gaussian kernel over `bandwidths`.
///
/// # Example
///
/// The biased statistic is exactly 0 between a sample and itself and positive after a shift:
///
/// ```
/// use ndarray::Array2;
/// use neural_synergy::estimators::{median_bandwidths, mmd2, MmdVariant};
///
/// let x = Array2::from_shape_fn((64, 3), |(i, j)| ((i * 5 + j) % 9) as f64);
/// let y = &x + 2.0;
/// let bw = median_bandwidths(&x.view(), &y.view())?;
/// assert!(mmd2(&x.view(), &x.view(), MmdVariant::Biased, &bw)?.abs() < 1e-12);
/// assert!(mmd2(&x.view(), &y.view(), MmdVariant::Biased, &bw)? > 0.0);
/// # Ok::<(), neural_synergy::EstimatorError>(())
/// ```
pub fn mmd2(
    x: &ArrayView2<f64>,
    y: &ArrayView2<f64>,
    variant: MmdVariant,
    bandwidths: &Bandwidths,
) -> Result<f64> {
    super::check_pair(x, y)?;
    let (n, m) = (x.nrows(), y.nrows());
    let k = bandwidths.evaluator();
    let value = match variant {
        MmdVariant::Biased => {
            let kxx = sym_offdiag_sum(x, &k) + n as f64;
            let kyy = sym_offdiag_sum(y, &k) + m as f64;
            let kxy = cross_sum(x, y, &k);
            let (nf, mf) = (n as f64, m as f64);
            kxx / (nf * nf) + kyy / (mf * mf) - 2.0 * kxy / (nf * mf)
        }
        MmdVariant::Unbiased => {
            if n < 2 || m < 2 {
                return Err(EstimatorError::TooFewSamples {
                    what: "unbiased MMD²",
                    need: "at least 2 rows in each sample".into(),
                    got: n.min(m),
                });
            }
            let kxx = sym_offdiag_sum(x, &k);
            let kyy = sym_offdiag_sum(y, &k);
            let kxy = cross_sum(x, y, &k);
            let (nf, mf) = (n as f64, m as f64);
            kxx / (nf * (nf - 1.0)) + kyy / (mf * (mf - 1.0)) - 2.0 * kxy / (nf * mf)
        }
        MmdVariant::Linear => linear(x, y, &k)?,
    };
    super::finite("MMD²", value)
}

fn owned_standard(x: &ArrayView2<f64>) -> Array2<f64> {
    x.as_standard_layout().into_owned()
}

/// `Σ_{i≠j} k(xᵢ, xⱼ)` from the upper triangle of tiles.
fn sym_offdiag_sum(x: &ArrayView2<f64>, k: &KernelEval) -> f64 {
    let x = owned_standard(x);
    let n = x.nrows();
    let norms = sq_norms(&x.view());
    let norms = norms.as_slice().unwrap();
    let xv = x.view();
    tiles(n, n, true)
        .into_par_iter()
        .map_init(
            || (Array2::zeros((0, 0)), Vec::new()),
            |(buf, scratch): &mut (Array2<f64>, Vec<f64>), (i0, i1, j0, j1)| {
                let a = xv.slice(s![i0..i1, ..]);
                let b = xv.slice(s![j0..j1, ..]);
                if buf.dim() != (i1 - i0, j1 - j0) {
                    *buf = Array2::zeros((i1 - i0, j1 - j0));
                }
                tile_sq_dists(&a, &norms[i0..i1], &b, &norms[j0..j1], buf);
                if i0 == j0 {
                    // diagonal tile: strictly upper part, counted twice
                    let mut acc = 0.0;
                    for (i, mut row) in buf.rows_mut().into_iter().enumerate() {
                        let row = row.as_slice_mut().expect("standard layout");
                        acc += k.sum_in_place(&mut row[i + 1..], scratch);
                    }
                    2.0 * acc
                } else {
                    2.0 * k.sum_in_place(buf.as_slice_mut().expect("standard layout"), scratch)
                }
            },
        )
        .collect::<Vec<f64>>()
        .iter()
        .sum() // ordered: bit-identical results whatever the thread schedule
}

/// `Σ_{i,j} k(xᵢ, yⱼ)`.
fn cross_sum(x: &ArrayView2<f64>, y: &ArrayView2<f64>, k: &KernelEval) -> f64 {
    let x = owned_standard(x);
    let y = owned_standard(y);
    let nx = sq_norms(&x.view());
    let ny = sq_norms(&y.view());
    let (nx, ny) = (nx.as_slice().unwrap(), ny.as_slice().unwrap());
    let (xv, yv) = (x.view(), y.view());
    tiles(x.nrows(), y.nrows(), false)
        .into_par_iter()
        .map_init(
            || (Array2::zeros((0, 0)), Vec::new()),
            |(buf, scratch): &mut (Array2<f64>, Vec<f64>), (i0, i1, j0, j1)| {
                if buf.dim() != (i1 - i0, j1 - j0) {
                    *buf = Array2::zeros((i1 - i0, j1 - j0));
                }
                tile_sq_dists(
                    &xv.slice(s![i0..i1, ..]),
                    &nx[i0..i1],
                    &yv.slice(s![j0..j1, ..]),
                    &ny[j0..j1],
                    buf,
                );
                k.sum_in_place(buf.as_slice_mut().expect("standard layout"), scratch)
            },
        )
        .collect::<Vec<f64>>()
        .iter()
        .sum() // ordered: bit-identical results whatever the thread schedule
}

fn sq_dist(a: ndarray::ArrayView1<f64>, b: ndarray::ArrayView1<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(u, v)| (u - v) * (u - v)).sum()
}

fn linear(x: &ArrayView2<f64>, y: &ArrayView2<f64>, k: &KernelEval) -> Result<f64> {
    let (n, m) = (x.nrows(), y.nrows());
    if n != m {
        return Err(EstimatorError::LengthMismatch {
            x: "x",
            nx: n,
            y: "y",
            ny: m,
        });
    }
    if n < 2 {
        return Err(EstimatorError::TooFewSamples {
            what: "linear MMD²",
            need: "at least 2 rows in each sample".into(),
            got: n,
        });
    }
    let quads = n / 2;
    let sum: f64 = (0..quads)
        .map(|i| {
            let (x1, x2) = (x.row(2 * i), x.row(2 * i + 1));
            let (y1, y2) = (y.row(2 * i), y.row(2 * i + 1));
            k.eval(sq_dist(x1, x2)) + k.eval(sq_dist(y1, y2))
                - k.eval(sq_dist(x1, y2))
                - k.eval(sq_dist(x2, y1))
        })
        .sum();
    Ok(sum / quads as f64)
}
