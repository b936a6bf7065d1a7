//! k-means discretisation of continuous features for the discrete PID ([`super::pid`]).
//!
//! [`KMeans::fit`] learns, on a training matrix (rows = samples): the column means, a PCA
//! projection onto the leading `max_components` principal axes when the matrix is wider than
//! that (eigenvectors of the ML covariance, LAPACK `syevd` through `ndarray-linalg`), and `k`
//! centroids by Lloyd's algorithm from k-means++ seeds (Arthur & Vassilvitskii 2007), keeping the
//! best of `n_init` seeded restarts by inertia. [`KMeans::predict`] maps any matrix of the same
//! width to the index of its nearest centroid (lowest index on ties) after the same centring and
//! projection, so a model fitted on a training split discretises a test split consistently.
//! Everything random comes from `ChaCha8Rng::seed_from_u64(seed)`: the same data and seed give the
//! same codes.

use super::check_matrix;
use super::linalg::mean_cov;
use super::pid::{PidError, Result};
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use ndarray_linalg::{Eigh, UPLO};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Settings of [`KMeans::fit_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KMeansParams {
    /// Number of clusters.
    pub k: usize,
    /// Seed of the k-means++ draws.
    pub seed: u64,
    /// Restarts; the fit with the least inertia is kept.
    pub n_init: usize,
    /// Lloyd iterations per restart at most (it stops earlier when no assignment changes).
    pub max_iter: usize,
    /// Project onto at most this many principal components first (0: never).
    pub max_components: usize,
}

impl KMeansParams {
    /// `k` clusters, seed 0, 4 restarts, 300 iterations, PCA to 10 components.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            seed: 0,
            n_init: 4,
            max_iter: 300,
            max_components: 10,
        }
    }
}

/// A fitted k-means quantiser.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Training column means (subtracted before projecting).
    pub mean: Array1<f64>,
    /// `d × r` projection onto the principal axes (`None`: the centred features are used).
    pub projection: Option<Array2<f64>>,
    /// `k × r` centroids in the (projected) space.
    pub centroids: Array2<f64>,
    /// Sum of squared distances of the training rows to their centroids.
    pub inertia: f64,
    /// Lloyd iterations of the kept restart.
    pub iterations: usize,
}

impl KMeans {
    /// [`KMeans::fit_with`] with `k` clusters, `seed` and the defaults of [`KMeansParams::new`].
    pub fn fit(x: &ArrayView2<f64>, k: usize, seed: u64) -> Result<Self> {
        Self::fit_with(
            x,
            &KMeansParams {
                seed,
                ..KMeansParams::new(k)
            },
        )
    }

    /// Fits on the rows of `x`; needs `1 ≤ k ≤ n` and finite values.
    pub fn fit_with(x: &ArrayView2<f64>, p: &KMeansParams) -> Result<Self> {
        check_matrix("x", x)?;
        let (n, d) = x.dim();
        if p.k == 0 || p.k > n {
            return Err(PidError::InvalidParameter {
                name: "k",
                reason: format!("needs 1 <= k <= n = {n} rows, got {}", p.k),
            });
        }
        if p.n_init == 0 || p.max_iter == 0 {
            return Err(PidError::InvalidParameter {
                name: "n_init/max_iter",
                reason: "both must be at least 1".into(),
            });
        }
        let (mean, cov) = mean_cov(x);
        let projection = if p.max_components > 0 && d > p.max_components {
            let (vals, vecs) = cov
                .eigh(UPLO::Lower)
                .map_err(|e| PidError::InvalidParameter {
                    name: "x",
                    reason: format!("PCA eigendecomposition failed: {e}"),
                })?;
            // eigh sorts ascending: the leading axes are the last columns
            let _ = vals;
            let r = p.max_components;
            let mut v = vecs.slice(s![.., d - r..]).to_owned();
            v.invert_axis(Axis(1));
            Some(v)
        } else {
            None
        };
        let z = transform(x, &mean, projection.as_ref());
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut best: Option<(Array2<f64>, f64, usize)> = None;
        for _ in 0..p.n_init {
            let init = plus_plus(&z, p.k, &mut rng);
            let (c, inertia, it) = lloyd(&z, init, p.max_iter);
            if best.as_ref().is_none_or(|b| inertia < b.1) {
                best = Some((c, inertia, it));
            }
        }
        let (centroids, inertia, iterations) = best.expect("n_init >= 1");
        Ok(Self {
            mean,
            projection,
            centroids,
            inertia,
            iterations,
        })
    }

    /// Input width the model was fitted on.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// Index of the nearest centroid of every row (lowest index on ties).
    pub fn predict(&self, x: &ArrayView2<f64>) -> Result<Vec<usize>> {
        check_matrix("x", x)?;
        if x.ncols() != self.width() {
            return Err(PidError::Input(
                crate::error::EstimatorError::DimensionMismatch {
                    x: "x",
                    dx: x.ncols(),
                    y: "the fitted features",
                    dy: self.width(),
                },
            ));
        }
        let z = transform(x, &self.mean, self.projection.as_ref());
        Ok(z.rows()
            .into_iter()
            .map(|r| nearest(r.as_slice().expect("row-major"), &self.centroids).0)
            .collect())
    }
}

/// Centred (and projected) copy of `x`, row-major.
fn transform(x: &ArrayView2<f64>, mean: &Array1<f64>, proj: Option<&Array2<f64>>) -> Array2<f64> {
    let c = x - mean;
    match proj {
        Some(v) => c.dot(v),
        None => c,
    }
    .as_standard_layout()
    .into_owned()
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum()
}

/// Nearest centroid and its squared distance (lowest index on ties).
fn nearest(r: &[f64], c: &Array2<f64>) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (j, cj) in c.rows().into_iter().enumerate() {
        let d = sq_dist(r, cj.as_slice().expect("row-major"));
        if d < best.1 {
            best = (j, d);
        }
    }
    best
}

/// k-means++ seeding: the first centre uniformly, each next one with probability proportional to
/// the squared distance to the nearest centre so far (uniformly when all distances are zero).
fn plus_plus(z: &Array2<f64>, k: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    let n = z.nrows();
    let mut c = Array2::zeros((k, z.ncols()));
    let first = rng.random_range(0..n);
    c.row_mut(0).assign(&z.row(first));
    let mut d2: Vec<f64> = z
        .rows()
        .into_iter()
        .map(|r| {
            sq_dist(
                r.as_slice().expect("row-major"),
                c.row(0).as_slice().expect("row"),
            )
        })
        .collect();
    for j in 1..k {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let mut u = rng.random::<f64>() * total;
            let mut idx = n - 1;
            for (i, &w) in d2.iter().enumerate() {
                if u < w {
                    idx = i;
                    break;
                }
                u -= w;
            }
            idx
        } else {
            rng.random_range(0..n)
        };
        c.row_mut(j).assign(&z.row(pick));
        let cj = c.row(j).to_owned();
        for (i, r) in z.rows().into_iter().enumerate() {
            let d = sq_dist(
                r.as_slice().expect("row-major"),
                cj.as_slice().expect("row"),
            );
            if d < d2[i] {
                d2[i] = d;
            }
        }
    }
    c
}

/// Lloyd's iterations until no assignment changes; an emptied cluster moves to the row farthest
/// from its centroid. Returns the centroids, the inertia and the iteration count.
fn lloyd(z: &Array2<f64>, mut c: Array2<f64>, max_iter: usize) -> (Array2<f64>, f64, usize) {
    let (n, d) = z.dim();
    let k = c.nrows();
    let mut assign = vec![usize::MAX; n];
    let mut dist = vec![0.0; n];
    let mut iterations = 0;
    for it in 0..max_iter {
        iterations = it + 1;
        let mut changed = false;
        for (i, r) in z.rows().into_iter().enumerate() {
            let (j, dd) = nearest(r.as_slice().expect("row-major"), &c);
            if assign[i] != j {
                assign[i] = j;
                changed = true;
            }
            dist[i] = dd;
        }
        if !changed && it > 0 {
            break;
        }
        let mut sums = Array2::<f64>::zeros((k, d));
        let mut counts = vec![0usize; k];
        for (i, r) in z.rows().into_iter().enumerate() {
            let mut srow = sums.row_mut(assign[i]);
            srow += &r;
            counts[assign[i]] += 1;
        }
        for (j, &cnt) in counts.iter().enumerate() {
            if cnt > 0 {
                let m = &sums.row(j) / cnt as f64;
                c.row_mut(j).assign(&m);
            } else {
                // farthest row from its centroid (lowest index on ties) seeds the empty cluster
                let far = (0..n).fold(0, |b, i| if dist[i] > dist[b] { i } else { b });
                c.row_mut(j).assign(&z.row(far));
                dist[far] = 0.0;
            }
        }
    }
    let inertia = z
        .rows()
        .into_iter()
        .map(|r| nearest(r.as_slice().expect("row-major"), &c).1)
        .sum();
    (c, inertia, iterations)
}
