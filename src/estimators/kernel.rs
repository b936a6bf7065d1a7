//! Gaussian kernels, bandwidth sets, the median heuristic and blocked pairwise distances.
//!
//! **Kernel.** `k_σ(x, y) = exp(−‖x − y‖² / (2σ²))`. With several bandwidths `σ_1..σ_B` the kernel is
//! the **mean** `k(x, y) = (1/B) Σ_b k_{σ_b}(x, y)` (so `k(x, x) = 1` always).
//!
//! **Distances.** Squared distances are computed through a matrix product,
//! `‖x − y‖² = ‖x‖² + ‖y‖² − 2 xᵀy`, clamped at 0; the distance of a point to itself is exactly 0.
//!
//! **Median heuristic.** `σ_med = sqrt(median{‖zᵢ − zⱼ‖² : i < j})` over the pooled sample
//! `Z = [X; Y]`; the median of an even count is the mean of the two middle values. The `--median`
//! bandwidth set is `σ_med × {0.25, 0.5, 1, 2, 4}` ([`MEDIAN_SCALES`]).

use crate::error::{EstimatorError, Result};
use ndarray::{concatenate, s, Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Multipliers of `σ_med` used by the `--median` bandwidth set.
pub const MEDIAN_SCALES: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// Rows per tile of the blocked distance/kernel computations.
pub(crate) const BLOCK: usize = 256;

/// A validated, non-empty set of positive, finite bandwidths `σ_b`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<f64>", into = "Vec<f64>")]
pub struct Bandwidths(Vec<f64>);

impl TryFrom<Vec<f64>> for Bandwidths {
    type Error = EstimatorError;
    fn try_from(v: Vec<f64>) -> Result<Self> {
        Self::new(v)
    }
}

impl From<Bandwidths> for Vec<f64> {
    fn from(b: Bandwidths) -> Self {
        b.0
    }
}

impl Bandwidths {
    /// Validates the set: non-empty, every σ finite and > 0.
    pub fn new(sigmas: Vec<f64>) -> Result<Self> {
        if sigmas.is_empty() {
            return Err(EstimatorError::InvalidParameter {
                name: "bandwidths",
                reason: "at least one bandwidth is needed".into(),
            });
        }
        if let Some(&bad) = sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(EstimatorError::NonPositiveBandwidth(bad.sqrt()));
        }
        Ok(Self(sigmas))
    }

    /// One bandwidth.
    pub fn single(sigma: f64) -> Result<Self> {
        Self::new(vec![sigma])
    }

    /// The σ values.
    pub fn as_slice(&self) -> &[f64] {
        &self.0
    }

    /// The kernel as a fast evaluator of `d² ↦ k`.
    pub(crate) fn evaluator(&self) -> KernelEval {
        KernelEval::new(&self.0)
    }
}

/// Evaluates the mean Gaussian kernel from a squared distance.
///
/// When every exponent `1/(2σ_b²)` is a power-of-two multiple of the smallest one (true for the
/// median set, whose σ differ by factors of 2), a single `exp` serves all bandwidths:
/// `k_b = exp(−a_min d²)^(2^j_b)`, computed by repeated squaring (relative error ≤ 2^j_b ulp).
#[derive(Debug, Clone)]
pub(crate) struct KernelEval {
    coeffs: Vec<f64>,
    /// `(a_min, sorted exponents j_b)` when the squaring path applies.
    squaring: Option<(f64, Vec<u32>)>,
    inv_b: f64,
}

impl KernelEval {
    fn new(sigmas: &[f64]) -> Self {
        let coeffs: Vec<f64> = sigmas.iter().map(|s| 0.5 / (s * s)).collect();
        let a_min = coeffs.iter().cloned().fold(f64::INFINITY, f64::min);
        let mut js = Vec::with_capacity(coeffs.len());
        let mut ok = true;
        for &a in &coeffs {
            let r = a / a_min;
            let j = r.log2().round();
            if !(0.0..=16.0).contains(&j) || ((2f64.powi(j as i32) - r) / r).abs() > 1e-13 {
                ok = false;
                break;
            }
            js.push(j as u32);
        }
        js.sort_unstable();
        let inv_b = 1.0 / coeffs.len() as f64;
        let squaring = ok.then_some((a_min, js));
        Self {
            coeffs,
            squaring,
            inv_b,
        }
    }

    /// `k(d²) = (1/B) Σ_b exp(−d² / (2σ_b²))` for one pair (`f64::exp`).
    #[inline]
    pub(crate) fn eval(&self, d2: f64) -> f64 {
        match &self.squaring {
            Some((a_min, js)) => {
                let mut cur = (-a_min * d2).exp();
                let mut pow = 0u32;
                let mut acc = 0.0;
                for &j in js {
                    while pow < j {
                        cur *= cur;
                        pow += 1;
                    }
                    acc += cur;
                }
                acc * self.inv_b
            }
            None => self.coeffs.iter().map(|a| (-a * d2).exp()).sum::<f64>() * self.inv_b,
        }
    }

    /// `Σᵢ k(d2ᵢ)` over a slice of squared distances, overwriting the slice. Vectorised (AVX2+FMA
    /// when the CPU has them, detected at run time) with the exp of [`exp_nonpos`]; the sum runs in
    /// a fixed order, so the result is reproducible on a given machine.
    pub(crate) fn sum_in_place(&self, d2: &mut [f64], scratch: &mut Vec<f64>) -> f64 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports the features enabled on the callee.
                return unsafe { self.sum_avx2(d2, scratch) };
            }
        }
        self.sum_impl::<false>(d2, scratch)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum_avx2(&self, d2: &mut [f64], scratch: &mut Vec<f64>) -> f64 {
        self.sum_impl::<true>(d2, scratch)
    }

    #[inline(always)]
    fn sum_impl<const FMA: bool>(&self, d2: &mut [f64], scratch: &mut Vec<f64>) -> f64 {
        match &self.squaring {
            Some((a_min, js)) => {
                for v in d2.iter_mut() {
                    *v = exp_nonpos::<FMA>(-a_min * *v);
                }
                let mut pow = 0u32;
                let mut total = 0.0;
                for &j in js {
                    while pow < j {
                        for v in d2.iter_mut() {
                            *v *= *v;
                        }
                        pow += 1;
                    }
                    total += lane_sum(d2);
                }
                total * self.inv_b
            }
            None => {
                scratch.resize(d2.len(), 0.0);
                let mut total = 0.0;
                for &a in &self.coeffs {
                    for (s, v) in scratch.iter_mut().zip(d2.iter()) {
                        *s = exp_nonpos::<FMA>(-a * *v);
                    }
                    total += lane_sum(scratch);
                }
                total * self.inv_b
            }
        }
    }
}

/// `exp(x)` for `x ≤ 0`, written so that loops over slices vectorise: Cody–Waite reduction
/// `x = n ln2 + r`, `|r| ≤ ln2/2`, a degree-13 Taylor polynomial for `e^r` (truncation error
/// < 1e-17 relative) and `2ⁿ` assembled from the exponent bits. Results below `e^−708` (≈ 3e−308)
/// are flushed to 0. Agrees with `f64::exp` to a few ulp (tested).
#[inline(always)]
fn exp_nonpos<const FMA: bool>(x: f64) -> f64 {
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000); // ln 2, upper bits (fdlibm)
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76); // ln 2 − LN2_HI
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52: adding it rounds to an integer
    #[inline(always)]
    fn fma<const F: bool>(a: f64, b: f64, c: f64) -> f64 {
        if F {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }
    let xc = x.max(-708.0);
    let t = xc * INV_LN2 + MAGIC;
    let n = t - MAGIC;
    let r = fma::<FMA>(-n, LN2_LO, fma::<FMA>(-n, LN2_HI, xc));
    // Horner for Σ_{k≤13} r^k / k!
    const C: [f64; 14] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362880.0,
        1.0 / 3628800.0,
        1.0 / 39916800.0,
        1.0 / 479001600.0,
        1.0 / 6227020800.0,
    ];
    let mut p = C[13];
    let mut k = 12;
    while k > 0 {
        p = fma::<FMA>(p, r, C[k]);
        k -= 1;
    }
    p = fma::<FMA>(p, r, C[0]);
    // 2^n from the low bits of t (n ∈ [−1022, 0] here)
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    let v = p * scale;
    if x < -708.0 {
        0.0
    } else {
        v
    }
}

/// Sum of a slice with four independent lanes (vectorises; fixed order, so reproducible).
#[inline(always)]
fn lane_sum(v: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = v.chunks_exact(4);
    let rem = chunks.remainder();
    for c in chunks {
        for l in 0..4 {
            acc[l] += c[l];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for x in rem {
        s += x;
    }
    s
}

/// Squared row norms, summed in index order (BLAS `ddot` may change its summation order with the
/// memory alignment of the row, which would make results differ between runs by an ulp).
pub(crate) fn sq_norms(x: &ArrayView2<f64>) -> Array1<f64> {
    x.rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v * v).sum::<f64>())
        .collect()
}

/// `out[i, j] = ‖aᵢ − bⱼ‖²` for a tile, via one single-threaded GEMM (the tiles are what runs in
/// parallel), clamped at 0.
pub(crate) fn tile_sq_dists(
    a: &ArrayView2<f64>,
    na: &[f64],
    b: &ArrayView2<f64>,
    nb: &[f64],
    out: &mut Array2<f64>,
) {
    super::linalg::gemm_into(a, &b.t(), 0.0, &mut out.view_mut());
    for (i, mut row) in out.rows_mut().into_iter().enumerate() {
        let ni = na[i];
        for (v, nj) in row.iter_mut().zip(nb) {
            *v = (-2.0 * *v + ni + nj).max(0.0);
        }
    }
}

/// All tile pairs `(i0, i1, j0, j1)` of an `n × m` grid; with `upper`, only tiles with `j0 ≥ i0`.
pub(crate) fn tiles(n: usize, m: usize, upper: bool) -> Vec<(usize, usize, usize, usize)> {
    let mut v = Vec::new();
    for i0 in (0..n).step_by(BLOCK) {
        for j0 in (0..m).step_by(BLOCK) {
            if upper && j0 < i0 {
                continue;
            }
            v.push((i0, (i0 + BLOCK).min(n), j0, (j0 + BLOCK).min(m)));
        }
    }
    v
}

/// Full matrix of squared distances `D[i, j] = ‖aᵢ − bⱼ‖²` (GEMM form, clamped at 0).
pub fn pairwise_sq_dists(a: &ArrayView2<f64>, b: &ArrayView2<f64>) -> Result<Array2<f64>> {
    super::check_pair(a, b)?;
    let na = sq_norms(a);
    let nb = sq_norms(b);
    let mut out = Array2::zeros((a.nrows(), b.nrows()));
    tile_sq_dists(
        a,
        na.as_slice().unwrap(),
        b,
        nb.as_slice().unwrap(),
        &mut out,
    );
    Ok(out)
}

/// `σ_med = sqrt(median{‖zᵢ − zⱼ‖² : i < j})` of the pooled sample `Z = [X; Y]`.
///
/// Needs at least two pooled points; a zero median (more than half the pairs are duplicates) is an
/// error, since it would give a zero bandwidth. Cost `O((n+m)² d)` time, `O((n+m)²)` memory.
/// [`median_bandwidth_or_positive`] is the total form the training losses use.
pub fn median_bandwidth(x: &ArrayView2<f64>, y: &ArrayView2<f64>) -> Result<f64> {
    let mut all = pooled_sq_dists(x, y)?;
    let sigma = median(&mut all).sqrt();
    if !(sigma > 0.0 && sigma.is_finite()) {
        return Err(EstimatorError::NonPositiveBandwidth(sigma));
    }
    Ok(sigma)
}

/// [`median_bandwidth`], made total for batches whose points have collapsed (what a regulariser
/// can do to a C-network's representations mid-training):
///
/// * `σ = sqrt(median{‖zᵢ − zⱼ‖²})` when that median is positive (the same value);
/// * else `σ = sqrt(median{‖zᵢ − zⱼ‖² : ‖zᵢ − zⱼ‖² > 0})`, the median over the pairs that differ
///   (a duplicate is a pair at squared distance exactly 0 in the GEMM form `‖a‖² + ‖b‖² − 2aᵀb`,
///   clamped at 0, as for collapsed ReLU outputs);
/// * else (every pooled point coincides) `σ = 1`: then every Gaussian kernel value is 1, so MMD²
///   and its gradient are 0 whatever `σ` is.
///
/// A non-finite squared distance (a NaN or infinite input) is an error, as are fewer than two
/// points; the strict form's checks otherwise apply.
pub fn median_bandwidth_or_positive(x: &ArrayView2<f64>, y: &ArrayView2<f64>) -> Result<f64> {
    let mut all = pooled_sq_dists(x, y)?;
    if let Some(&bad) = all.iter().find(|d| !d.is_finite()) {
        return Err(EstimatorError::NonPositiveBandwidth(bad.sqrt()));
    }
    let med = median(&mut all);
    if med > 0.0 {
        return Ok(med.sqrt());
    }
    all.retain(|&d| d > 0.0);
    if all.is_empty() {
        return Ok(1.0);
    }
    Ok(median(&mut all).sqrt())
}

/// The squared distances `‖zᵢ − zⱼ‖²`, `i < j`, of the pooled sample `Z = [X; Y]` (at least two
/// points), in no particular order.
fn pooled_sq_dists(x: &ArrayView2<f64>, y: &ArrayView2<f64>) -> Result<Vec<f64>> {
    super::check_pair(x, y)?;
    let z = concatenate(Axis(0), &[x.view(), y.view()]).expect("same width");
    let z = z.as_standard_layout();
    let n = z.nrows();
    if n < 2 {
        return Err(EstimatorError::TooFewSamples {
            what: "median heuristic",
            need: "at least 2 pooled points".into(),
            got: n,
        });
    }
    let norms = sq_norms(&z.view());
    let norms = norms.as_slice().unwrap();
    let zv = z.view();
    Ok(tiles(n, n, true)
        .into_par_iter()
        .map(|(i0, i1, j0, j1)| {
            let a = zv.slice(s![i0..i1, ..]);
            let b = zv.slice(s![j0..j1, ..]);
            let mut t = Array2::zeros((i1 - i0, j1 - j0));
            tile_sq_dists(&a, &norms[i0..i1], &b, &norms[j0..j1], &mut t);
            let mut v = Vec::with_capacity(t.len());
            for ((i, j), d) in t.indexed_iter() {
                if j0 + j > i0 + i {
                    v.push(*d);
                }
            }
            v
        })
        .flatten()
        .collect())
}

/// The median of a non-empty slice (the mean of the two middle values for an even length),
/// reordering it; NaN sorts last (`total_cmp`).
fn median(all: &mut [f64]) -> f64 {
    let cnt = all.len();
    let mid = cnt / 2;
    let cmp = |a: &f64, b: &f64| a.total_cmp(b);
    let (_, upper_mid, _) = all.select_nth_unstable_by(mid, cmp);
    let upper_mid = *upper_mid;
    if cnt % 2 == 1 {
        upper_mid
    } else {
        let lower_mid = all[..mid].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower_mid + upper_mid)
    }
}

/// The `--median` set: `σ_med × {0.25, 0.5, 1, 2, 4}`.
pub fn median_bandwidths(x: &ArrayView2<f64>, y: &ArrayView2<f64>) -> Result<Bandwidths> {
    median_scaled(median_bandwidth(x, y)?)
}

/// `σ × {0.25, 0.5, 1, 2, 4}` with `σ` from [`median_bandwidth_or_positive`] (the training
/// losses' set: positive for any finite batch of at least two points).
pub fn median_bandwidths_or_positive(
    x: &ArrayView2<f64>,
    y: &ArrayView2<f64>,
) -> Result<Bandwidths> {
    median_scaled(median_bandwidth_or_positive(x, y)?)
}

/// `σ × MEDIAN_SCALES`.
fn median_scaled(sigma: f64) -> Result<Bandwidths> {
    Bandwidths::new(MEDIAN_SCALES.iter().map(|c| c * sigma).collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// `exp(x)` for `x ≤ 0` through the vectorisable routine.
    fn exp_nonpos_scalar(x: f64) -> f64 {
        super::exp_nonpos::<false>(x)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn vectorised_exp_is_within_4_ulp_of_std_exp(x in -708.0f64..=0.0) {
            let a = exp_nonpos_scalar(x);
            let b = x.exp();
            let ulp = (a.to_bits() as i64 - b.to_bits() as i64).abs();
            prop_assert!(ulp <= 4, "exp({x}): {a} vs {b} ({ulp} ulp)");
        }

        #[test]
        fn vectorised_exp_flushes_below_minus_708_to_zero(x in -1e300f64..-708.0) {
            prop_assert_eq!(exp_nonpos_scalar(x), 0.0);
        }
    }
}
