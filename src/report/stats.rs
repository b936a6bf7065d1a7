//! Statistics that tell a gain from seed noise: paired deltas between a synergy variant and its
//! NLL baseline, their confidence intervals, and a verdict on each of the paper's claims.
//!
//! * Several seeds: the per-seed paired delta `δ_s = m(variant, s) − m(NLL, s)` (same seed ⇒ same
//!   initialisation, batch order and dropout masks), mean `δ̄` and the two-sided 95 % Student-t
//!   interval `δ̄ ± t_{0.975, n−1} · sd(δ) / √n`.
//! * One seed: a paired bootstrap over test clips — resample clip indices with replacement
//!   (`B` = 2000 resamples from a fixed seed), recompute both metrics on the same resample, and take
//!   the 2.5 % and 97.5 % percentiles of the difference.
//! * Verdict: **supported** when the interval excludes 0 on the side of the paper's delta,
//!   **contradicted** when it excludes 0 on the other side, **inconclusive** otherwise (also when
//!   the paper's delta is 0: no direction is claimed).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// A mean with a two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    /// Seeds (t-interval) or test clips (bootstrap) behind it.
    pub n: usize,
    /// `"paired-t"` or `"paired-bootstrap"`.
    pub method: &'static str,
}

/// The 95 % paired t-interval of `deltas` (None for fewer than 2 values or non-finite ones).
pub fn paired_t_interval(deltas: &[f64], level: f64) -> Option<Interval> {
    let n = deltas.len();
    if n < 2 || deltas.iter().any(|d| !d.is_finite()) || !(0.0..1.0).contains(&level) {
        return None;
    }
    let mean = deltas.iter().sum::<f64>() / n as f64;
    let var = deltas.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .ok()?
        .inverse_cdf(0.5 + level / 2.0);
    let half = t * (var / n as f64).sqrt();
    Some(Interval {
        mean,
        lo: mean - half,
        hi: mean + half,
        n,
        method: "paired-t",
    })
}

/// Paired bootstrap of `metric(a) − metric(b)` over test clips: `a`, `b` are two models'
/// predictions of the same clips, `labels` their labels; `resamples` draws from `seed`.
/// None if the inputs are empty, of different lengths, or the metric is never finite.
pub fn paired_bootstrap(
    a: &[f64],
    b: &[f64],
    labels: &[f64],
    metric: impl Fn(&[f64], &[f64]) -> Option<f64>,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<Interval> {
    let n = labels.len();
    if n == 0 || a.len() != n || b.len() != n || resamples < 10 {
        return None;
    }
    let mean = metric(a, labels)? - metric(b, labels)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut ra, mut rb, mut rl) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut diffs = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for k in 0..n {
            let i = rng.random_range(0..n);
            ra[k] = a[i];
            rb[k] = b[i];
            rl[k] = labels[i];
        }
        if let (Some(x), Some(y)) = (metric(&ra, &rl), metric(&rb, &rl)) {
            if (x - y).is_finite() {
                diffs.push(x - y);
            }
        }
    }
    if diffs.len() < resamples / 2 {
        return None;
    }
    diffs.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (diffs.len() - 1) as f64;
        let (i, f) = (pos.floor() as usize, pos.fract());
        diffs[i] + f * (diffs[(i + 1).min(diffs.len() - 1)] - diffs[i])
    };
    let tail = (1.0 - level) / 2.0;
    Some(Interval {
        mean,
        lo: q(tail),
        hi: q(1.0 - tail),
        n,
        method: "paired-bootstrap",
    })
}

/// What the measurement says about one of the paper's claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The interval excludes 0 in the paper's direction.
    Supported,
    /// The interval excludes 0 in the opposite direction.
    Contradicted,
    /// The interval contains 0 (or the paper claims no direction).
    Inconclusive,
}

impl Verdict {
    /// The verdict on a claimed delta `paper_delta` given the measured interval.
    pub fn of(paper_delta: f64, ci: &Interval) -> Verdict {
        let dir = if paper_delta > 0.0 {
            1.0
        } else if paper_delta < 0.0 {
            -1.0
        } else {
            return Verdict::Inconclusive;
        };
        if ci.lo > 0.0 || ci.hi < 0.0 {
            if ci.mean * dir > 0.0 {
                Verdict::Supported
            } else {
                Verdict::Contradicted
            }
        } else {
            Verdict::Inconclusive
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}
