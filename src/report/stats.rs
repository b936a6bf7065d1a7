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
//! * Each interval carries the two-sided p-value of `δ = 0` (t: `2·(1 − F_{n−1}(|δ̄|/(sd/√n)))`,
//!   which is < 0.05 exactly when the 95 % t-interval excludes 0; bootstrap: `2·(min(#δ* ≤ 0,
//!   #δ* ≥ 0) + 1)/(B + 1)`, capped at 1; its interval's interpolated percentiles can sit one
//!   resample away, so at the boundary the verdict, which follows the interval, and `p ≤ 0.05`
//!   may differ). A table's many claims are a family: [`holm`] says which verdicts survive Holm's
//!   step-down correction at a family-wise error of 5 %. Seeds that all moved by the same amount
//!   (possible with two seeds: Acc2 moves in steps of 100/N) give a zero-width interval and p = 0,
//!   which any correction keeps — read such an n = 2 verdict as fragile.

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
    /// Two-sided p-value of "the mean delta is 0" (see the module doc).
    pub p: f64,
    /// The standard deviation of the per-seed deltas (paired-t only; what [`seeds_for_power`]
    /// plans with).
    pub sd: Option<f64>,
}

/// The 95 % paired t-interval of `deltas` (None for fewer than 2 values or non-finite ones).
pub fn paired_t_interval(deltas: &[f64], level: f64) -> Option<Interval> {
    let n = deltas.len();
    if n < 2 || deltas.iter().any(|d| !d.is_finite()) || !(0.0..1.0).contains(&level) {
        return None;
    }
    let mean = deltas.iter().sum::<f64>() / n as f64;
    let var = deltas.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    let t = dist.inverse_cdf(0.5 + level / 2.0);
    let se = (var / n as f64).sqrt();
    let half = t * se;
    let p = if se > 0.0 {
        (2.0 * (1.0 - dist.cdf((mean / se).abs()))).clamp(0.0, 1.0)
    } else if mean == 0.0 {
        1.0
    } else {
        0.0 // every seed moved by the same non-zero amount
    };
    Some(Interval {
        mean,
        lo: mean - half,
        hi: mean + half,
        n,
        method: "paired-t",
        p,
        sd: Some(var.sqrt()),
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
    let (le, ge) = (
        diffs.iter().filter(|d| **d <= 0.0).count(),
        diffs.iter().filter(|d| **d >= 0.0).count(),
    );
    let p = (2.0 * (le.min(ge) + 1) as f64 / (diffs.len() + 1) as f64).min(1.0);
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
        p,
        sd: None,
    })
}

/// How many seeds a paired t-test at two-sided level 5 % needs to detect a true mean delta
/// `delta` with probability `power`, when the per-seed deltas spread with standard deviation `sd`:
/// the smallest `n ≥ 2` with `(t_{0.975, n−1} + t_{power, n−1}) · sd / √n ≤ |delta|` — the usual
/// t-approximation of the noncentral-t power (it tends to the normal formula
/// `n ≈ ((z_{0.975} + z_{power}) · sd / delta)²` for large `n`). `None` when `delta` is 0, `sd` is
/// not positive (a zero spread estimates nothing), an input is not finite, `power` is outside
/// [0.5, 1), or more than `cap` seeds would be needed. The plan inherits the uncertainty of `sd`:
/// estimated from 4 degrees of freedom its 95 % range is ×0.6 to ×2.9, so `n` is good to a factor
/// of about 3 either way. A claim's
/// "seeds needed" plans with the measured spread and the paper's delta: it says whether an
/// inconclusive verdict is a matter of seeds, and how many a resolution would take.
pub fn seeds_for_power(sd: f64, delta: f64, power: f64, cap: usize) -> Option<usize> {
    if !power_plan_applies(sd, delta) || cap < 2 {
        return None;
    }
    if !(0.5..1.0).contains(&power) {
        return None;
    }
    let ratio = sd / delta.abs();
    // the left side decreases in n: bisect between 2 and cap
    let need = |n: usize| -> Option<bool> {
        let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
        Some((t.inverse_cdf(0.975) + t.inverse_cdf(power)) * ratio / (n as f64).sqrt() <= 1.0)
    };
    if need(2)? {
        return Some(2);
    }
    if cap < 3 || !need(cap)? {
        return None;
    }
    let (mut lo, mut hi) = (2usize, cap); // need(lo) false, need(hi) true
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if need(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// Whether [`seeds_for_power`] can plan for a spread `sd` and a delta `delta` at all: both finite,
/// `delta ≠ 0` (a direction) and `sd > 0` (a zero spread — two seeds that moved by the same Acc2
/// step, or two collapsed variants — estimates nothing). Where it applies and returns `None`, more
/// seeds than its cap would be needed.
pub(crate) fn power_plan_applies(sd: f64, delta: f64) -> bool {
    sd.is_finite() && delta.is_finite() && delta != 0.0 && sd > 0.0
}

/// Holm's step-down correction: which of the hypotheses with p-values `p` are rejected at a
/// family-wise error rate `alpha`. Sort the p-values ascending, `p_(1) ≤ … ≤ p_(m)`; reject
/// `H_(1), …, H_(k)` for the largest `k` with `p_(j) ≤ alpha / (m − j + 1)` for every `j ≤ k`.
/// Rejects every hypothesis Bonferroni (`p ≤ alpha/m`) rejects and none that `p ≤ alpha` keeps.
/// Non-finite p-values are never rejected; the result is in the input's order.
pub fn holm(p: &[f64], alpha: f64) -> Vec<bool> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| {
            if p[i].is_finite() {
                p[i]
            } else {
                f64::INFINITY
            }
        };
        key(a).total_cmp(&key(b))
    });
    let mut out = vec![false; m];
    for (j, &i) in order.iter().enumerate() {
        if p[i].is_finite() && p[i] <= alpha / (m - j) as f64 {
            out[i] = true;
        } else {
            break;
        }
    }
    out
}

/// A p-value for a table: `p = 0.012`, `p < 0.001`.
pub(crate) fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

/// The summary of a table's verdicts after [`holm`]: of the claims with a direction (a verdict
/// and an interval), how many stay supported and contradicted at a family-wise error of 5 %.
pub fn holm_summary(verdicts: &[(Verdict, f64)]) -> String {
    let members: Vec<_> = verdicts.iter().copied().map(Some).collect();
    let keep = holm_flags(&members);
    let count = |want: Verdict| {
        verdicts
            .iter()
            .zip(&keep)
            .filter(|((v, _), k)| **k == Some(true) && *v == want)
            .count()
    };
    format!(
        "Corrected for multiplicity (Holm, family-wise error 5 %, the table's {} directional \
         claims as one family): {} supported, {} contradicted.",
        verdicts.len(),
        count(Verdict::Supported),
        count(Verdict::Contradicted)
    )
}

/// Holm's correction over one table's family of claims: `members[i]` is `Some((verdict, p))`
/// for a claim in the family (it states a direction and has an interval), `None` for one outside.
/// Per claim: `None` outside the family, else whether its verdict is directional (supported or
/// contradicted) and its hypothesis is rejected by [`holm`] at a family-wise error of 5 %.
pub fn holm_flags(members: &[Option<(Verdict, f64)>]) -> Vec<Option<bool>> {
    let p: Vec<f64> = members.iter().flatten().map(|m| m.1).collect();
    let mut keep = holm(&p, 0.05).into_iter();
    members
        .iter()
        .map(|m| m.map(|(v, _)| keep.next().unwrap_or(false) && v != Verdict::Inconclusive))
        .collect()
}

/// The verdict column of a claims table: `**supported** (tier, survives Holm)`, or the reason
/// there is no verdict.
pub fn verdict_cell(
    verdict: Option<Verdict>,
    note: Option<&str>,
    survives_holm: Option<bool>,
    tier: &str,
) -> String {
    match (verdict, note) {
        (Some(v), _) => {
            let holm = match (v, survives_holm) {
                (Verdict::Inconclusive, _) | (_, None) => "",
                (_, Some(true)) => ", survives Holm",
                (_, Some(false)) => ", not after Holm",
            };
            format!("**{}** ({tier}{holm})", v.name())
        }
        (None, Some(n)) => format!("— ({n})"),
        (None, None) => "—".into(),
    }
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
    pub(crate) fn name(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}
