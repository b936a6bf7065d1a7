//! The permutation null of the synergy: `Y` shuffled by seeded ChaCha8 streams, the null's mean,
//! 95th percentile and the permutation p-value `(1 + #{null ≥ observed}) / (1 + draws)`.

use super::{check_codes, pid_discrete, Pid, PidError, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

/// The synergy of `(x1, x2, y)` against a permutation null: `Y` shuffled `draws` times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NullSummary {
    /// The PID of the data as given.
    pub observed: Pid,
    /// Number of permutations.
    pub draws: usize,
    pub seed: u64,
    /// Mean of the null synergies, bits.
    pub mean: f64,
    /// 95th percentile of the null synergies (nearest rank: the `⌈0.95·draws⌉`-th smallest), bits.
    pub p95: f64,
    /// `(1 + #{null ≥ observed}) / (1 + draws)`.
    pub p_value: f64,
    /// The null synergies, in draw order.
    pub synergy: Vec<f64>,
}

/// Permutation null of the synergy: draw `d` shuffles `y` (positions) with the ChaCha8 stream
/// `d` of `seed`, which breaks every dependence of `Y` on `(X1, X2)` while keeping the marginal
/// of `Y` and the joint of `(X1, X2)`; the draws run in parallel and do not depend on the thread
/// count. "Synergy present" means the observed synergy above the null (e.g. above `p95`).
pub fn synergy_null(
    x1: &[usize],
    x2: &[usize],
    y: &[usize],
    draws: usize,
    seed: u64,
) -> Result<NullSummary> {
    check_codes(x1, x2, y)?;
    if draws == 0 {
        return Err(PidError::InvalidParameter {
            name: "draws",
            reason: "the null needs at least one permutation".into(),
        });
    }
    let observed = pid_discrete(x1, x2, y)?;
    let synergy: Vec<f64> = (0..draws)
        .into_par_iter()
        .map(|d| {
            let yp = permuted(y, seed, d as u64);
            pid_discrete(x1, x2, &yp).map(|p| p.synergy)
        })
        .collect::<Result<_>>()?;
    let mean = synergy.iter().sum::<f64>() / draws as f64;
    let mut sorted = synergy.clone();
    sorted.sort_by(f64::total_cmp);
    let rank = ((0.95 * draws as f64).ceil() as usize).clamp(1, draws);
    let p95 = sorted[rank - 1];
    let above = synergy.iter().filter(|&&s| s >= observed.synergy).count();
    Ok(NullSummary {
        observed,
        draws,
        seed,
        mean,
        p95,
        p_value: (1 + above) as f64 / (1 + draws) as f64,
        synergy,
    })
}

/// `y` with its positions shuffled by the ChaCha8 stream `stream` of `seed` (the permutation of
/// null draw `stream` in [`synergy_null`]).
pub fn permuted(y: &[usize], seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut v = y.to_vec();
    v.shuffle(&mut rng);
    v
}
