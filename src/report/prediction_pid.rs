//! The synergy a model's predictions use (issue 27 §2, "Models"): the BROJA PID
//! ([`crate::estimators::pid`]) of each selected run's **test predictions** against the test
//! clips' text and audio+vision codes, and the claim "the C-network raises the synergy the model
//! uses".
//!
//! * `Y := ` the run's test prediction discretised like the label
//!   ([`crate::experiments::synergy_pid::prediction_codes`]: `1[ŷ ≥ 0]`, for a binary task's logit
//!   too); `X1, X2` = the text and audio+vision codes stored in `run.json`
//!   ([`crate::experiments::synergy_pid::PidCodes`]: clip means, PCA and k-means fitted on the
//!   train split). The PID then says how much of what the prediction carries about the inputs is
//!   redundant, unique to text, unique to audio+vision, or synergistic — information about the
//!   prediction that only the two codes together have.
//! * Each run's `S` is compared with its own permutation null (as
//!   [`crate::estimators::synergy_null`]: the predictions shuffled [`NULL_DRAWS`] times):
//!   "above null" means `S` above the null's 95th percentile.
//! * The claim, for each C-network variant (NLL+SKL, NLL+SMMD and the single-term ablations):
//!   the seed-paired delta `δ_s = S(variant, s) − S(NLL, s)`, its 95 % t-interval over seeds
//!   ([`super::stats::paired_t_interval`]) and the verdict of [`Verdict::of`] with the claimed
//!   direction "up" (supported: the interval is above 0; contradicted: below); Holm's correction
//!   runs over these claims as one family ([`super::stats::holm_flags`]). With one seed there is
//!   no t-interval and no verdict (a bootstrap over clips would re-solve the PID thousands of
//!   times per claim).
//!
//! Cost: one PID per run plus [`NULL_DRAWS`] for its null, on `2k²` cells (k = 8): see
//! `docs/src/synergy-measured.md` for the measured time per folder.

use super::stats::{holm_flags, p_text, paired_t_interval, verdict_cell, Interval, Verdict};
use super::tables::{stat, RunContext, Stat};
use crate::data::Task;
use crate::estimators::pid::{permuted, pid_discrete_with, PidOptions};
use crate::experiments::synergy_pid::{label_codes, prediction_codes, PidCodes, DEFAULT_DRAWS};
use crate::experiments::Selected;
use crate::models::ModelKind;
use crate::train::Variant;
use rayon::prelude::*;
use serde::Serialize;

/// Permutations of each run's null.
pub const NULL_DRAWS: usize = DEFAULT_DRAWS;
/// Seed of the null's permutations (the same permutations for every run).
pub(crate) const NULL_SEED: u64 = 0;
/// Certified duality gap of every PID here, bits. The estimator's default (1e-10) costs about 4×
/// the Newton steps on these 8 × 8 × 2 problems (233 vs 60 per solve, measured on a MOSI folder's
/// predictions) for digits far below the three decimals reported.
pub(crate) const PID_TOL_BITS: f64 = 1e-8;

/// A PID in bits with its permutation null (`Y` shuffled; the null's fields are absent when no
/// null was drawn).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PidWithNull {
    /// `R`.
    pub redundancy: f64,
    /// `U1`, unique to the text code.
    pub unique_text: f64,
    /// `U2`, unique to the audio+vision code.
    pub unique_audio_vision: f64,
    /// `S = I(Y; X1, X2) − min_{q ∈ Δ_p} I_q(Y; X1, X2)`.
    pub synergy: f64,
    /// `I(Y; X1, X2)`.
    pub mutual_information: f64,
    /// Mean and 95th percentile (nearest rank) of the null's synergy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub null_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub null_p95: Option<f64>,
    /// `(1 + #{null ≥ S}) / (1 + draws)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// `S > null_p95`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub above_null: Option<bool>,
}

/// The PID of `y` against `(codes.text, codes.audio_vision)` with a null of `draws` shuffles of
/// `y`, none for `draws = 0` (None when the lengths differ or the solver refuses). The null is that
/// of
/// [`crate::estimators::synergy_null`] — the same permutations ([`permuted`] stream `d` of
/// [`NULL_SEED`]), the same nearest-rank 95th percentile and `p = (1 + #{null ≥ S})/(1 + draws)`
/// — solved to the certified gap [`PID_TOL_BITS`] instead of the estimator's default 1e-10.
fn pid_with_null(codes: &PidCodes, y: &[usize], draws: usize) -> Option<PidWithNull> {
    let (x1, x2) = (&codes.text, &codes.audio_vision);
    if y.len() != x1.len() || x2.len() != x1.len() || y.is_empty() {
        return None;
    }
    let opts = PidOptions {
        tol_bits: PID_TOL_BITS,
        ..PidOptions::default()
    };
    let p = pid_discrete_with(x1, x2, y, &opts).ok()?.pid;
    let mut out = PidWithNull {
        redundancy: p.redundancy,
        unique_text: p.unique_x1,
        unique_audio_vision: p.unique_x2,
        synergy: p.synergy,
        mutual_information: p.mutual_information,
        null_mean: None,
        null_p95: None,
        p_value: None,
        above_null: None,
    };
    if draws == 0 {
        return Some(out);
    }
    let null: Vec<f64> = (0..draws)
        .into_par_iter()
        .map(|d| {
            pid_discrete_with(x1, x2, &permuted(y, NULL_SEED, d as u64), &opts)
                .map(|s| s.pid.synergy)
        })
        .collect::<Result<_, _>>()
        .ok()?;
    let mut sorted = null.clone();
    sorted.sort_by(f64::total_cmp);
    let rank = ((0.95 * draws as f64).ceil() as usize).clamp(1, draws);
    let p95 = sorted[rank - 1];
    let above = null.iter().filter(|&&s| s >= p.synergy).count();
    out.null_mean = Some(null.iter().sum::<f64>() / draws as f64);
    out.null_p95 = Some(p95);
    out.p_value = Some((1 + above) as f64 / (1 + draws) as f64);
    out.above_null = Some(p.synergy > p95);
    Some(out)
}

/// One selected run's prediction PID.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeedPid {
    pub seed: u64,
    #[serde(flatten)]
    pub pid: PidWithNull,
}

/// One (model, variant): the PID of its runs' test predictions per seed, their means, and for a
/// C-network variant the claim "the C-network raises the synergy the model uses".
#[derive(Debug, Clone, Serialize)]
pub struct PredictionPidRow {
    pub model: String,
    pub variant: String,
    /// The seeds with a prediction PID, and each one's PID.
    pub seeds: Vec<u64>,
    pub per_seed: Vec<SeedPid>,
    /// Mean and sd over seeds, bits.
    pub synergy: Stat,
    pub redundancy: Stat,
    pub unique_text: Stat,
    pub unique_audio_vision: Stat,
    pub mutual_information: Stat,
    /// Seeds whose `S` is above their own null's 95th percentile (None without nulls).
    pub seeds_above_null: Option<usize>,
    /// Whether the row is a claim (a C-network variant: its `S` against NLL's).
    pub claim: bool,
    /// `S(variant) − S(NLL)`, paired by seed, with its 95 % t-interval (claims with ≥ 2 paired
    /// seeds).
    pub vs_nll: Option<Interval>,
    pub verdict: Option<Verdict>,
    /// Whether a directional verdict survives Holm's correction over the claims (None outside
    /// the family: no interval).
    pub survives_holm: Option<bool>,
    /// Why a claim has no verdict, or why seeds are missing.
    pub note: Option<String>,
}

/// [`prediction_pid_with`] on the codes of `ctx` (`run.json`), with [`NULL_DRAWS`] permutations;
/// empty when `ctx` has no codes or they do not have one entry per test clip.
pub fn prediction_pid(selected: &[Selected], ctx: &RunContext) -> Vec<PredictionPidRow> {
    match &ctx.pid_codes {
        Some(codes) if codes.check_len(ctx.test_ids.len()).is_ok() => {
            prediction_pid_with(selected, codes, ctx.task, NULL_DRAWS)
        }
        _ => Vec::new(),
    }
}

/// The prediction PID of every selected run (models in registry order, variants in table order),
/// aggregated per (model, variant), with the claim for each C-network variant
/// ([`Variant::divergence`] is set) against the same model's NLL runs, paired by seed. A run
/// without saved predictions, or whose predictions do not have one entry per code, is left out
/// (and counted in the row's note). `draws` permutations per run's null; `draws = 0` computes no
/// null (one PID per run: all the claim needs, e.g. for a scoreboard over many folders).
pub fn prediction_pid_with(
    selected: &[Selected],
    codes: &PidCodes,
    task: Task,
    draws: usize,
) -> Vec<PredictionPidRow> {
    // every run's PID, in parallel (each null is parallel too)
    let computed: Vec<Option<PidWithNull>> = selected
        .par_iter()
        .map(|s| {
            let p = s.result.test_predictions_f64()?;
            let y = prediction_codes(&p, task).ok()?;
            pid_with_null(codes, &y, draws)
        })
        .collect();
    let of = |kind: ModelKind, v: Variant| -> Vec<(&Selected, Option<PidWithNull>)> {
        selected
            .iter()
            .zip(&computed)
            .filter(|(s, _)| s.model == kind && s.variant == v)
            .map(|(s, c)| (s, *c))
            .collect()
    };
    let mut rows = Vec::new();
    for &kind in ModelKind::ALL {
        let base = of(kind, Variant::Nll);
        for v in Variant::TABLE_ORDER {
            let runs = of(kind, v);
            if runs.is_empty() {
                continue;
            }
            let per_seed: Vec<SeedPid> = runs
                .iter()
                .filter_map(|(s, c)| c.map(|pid| SeedPid { seed: s.seed, pid }))
                .collect();
            let missing = runs.len() - per_seed.len();
            let col = |f: fn(&PidWithNull) -> f64| {
                stat(&per_seed.iter().map(|s| f(&s.pid)).collect::<Vec<_>>())
            };
            let claim = v.divergence().is_some();
            let mut note = (missing > 0).then(|| {
                format!(
                    "{missing} of {} runs without usable test predictions (or PID)",
                    runs.len()
                )
            });
            let (vs_nll, verdict) = if claim {
                let base_sel: Vec<&Selected> = base.iter().map(|(s, _)| *s).collect();
                let var_sel: Vec<&Selected> = runs.iter().map(|(s, _)| *s).collect();
                let s_of = |sel: &Selected, list: &[(&Selected, Option<PidWithNull>)]| {
                    list.iter()
                        .find(|(s, _)| std::ptr::eq(*s, sel))
                        .and_then(|(_, c)| c.map(|p| p.synergy))
                };
                let deltas: Vec<f64> = super::claims::pair_by_seed(&base_sel, &var_sel)
                    .into_iter()
                    .filter_map(|(b, x)| Some(s_of(x, &runs)? - s_of(b, &base)?))
                    .collect();
                match paired_t_interval(&deltas, 0.95) {
                    Some(ci) => (Some(ci), Some(Verdict::of(1.0, &ci))),
                    None => {
                        note = Some(match deltas.len() {
                            0 => {
                                "no seed has a prediction PID for both NLL and this variant".into()
                            }
                            _ => "one seed paired with NLL: a t-interval needs ≥ 2".into(),
                        });
                        (None, None)
                    }
                }
            } else {
                (None, None)
            };
            rows.push(PredictionPidRow {
                model: kind.name().into(),
                variant: v.name().into(),
                seeds: per_seed.iter().map(|s| s.seed).collect(),
                seeds_above_null: (draws > 0).then(|| {
                    per_seed
                        .iter()
                        .filter(|s| s.pid.above_null == Some(true))
                        .count()
                }),
                synergy: col(|p| p.synergy),
                redundancy: col(|p| p.redundancy),
                unique_text: col(|p| p.unique_text),
                unique_audio_vision: col(|p| p.unique_audio_vision),
                mutual_information: col(|p| p.mutual_information),
                per_seed,
                claim,
                vs_nll,
                verdict,
                survives_holm: None,
                note,
            });
        }
    }
    let members: Vec<_> = rows
        .iter()
        .map(|r| Some((r.verdict?, r.vs_nll?.p)))
        .collect();
    for (r, f) in rows.iter_mut().zip(holm_flags(&members)) {
        r.survives_holm = f;
    }
    rows
}

/// The PID of the test **labels** (discretised as [`label_codes`]) against the codes of `ctx`,
/// with [`NULL_DRAWS`] permutations: the synergy the data holds, for reading the models' rows.
/// None without codes, with codes of the wrong length, or with a non-finite label.
pub(crate) fn label_pid(ctx: &RunContext) -> Option<PidWithNull> {
    let codes = ctx.pid_codes.as_ref()?;
    codes.check_len(ctx.test_labels.len()).ok()?;
    let y = label_codes(&ctx.test_labels, ctx.task).ok()?;
    pid_with_null(codes, &y, NULL_DRAWS)
}

fn mean_sd(s: &Stat) -> String {
    if s.n > 1 {
        format!("{:.3} ± {:.3}", s.mean, s.std)
    } else {
        format!("{:.3}", s.mean)
    }
}

/// The section of a report: a heading, a one-paragraph reading guide, the labels' own PID for
/// reference, one table row per (model, variant) and a verdict count. Without codes in `ctx` it
/// says how to add them.
pub fn markdown(rows: &[PredictionPidRow], ctx: &RunContext) -> String {
    let mut s = String::from("### Synergy the models use (PID of the test predictions)\n\n");
    let Some(codes) = &ctx.pid_codes else {
        return s + "This folder's `run.json` has no PID codes (it predates them): add them with \
               `synergy pid-codes --from DIR` (plus `--data-dir` for the real-text and full \
               tiers) and re-render.\n\n";
    };
    s += &format!(
        "How to read: each selected run's test prediction, discretised like the label \
         (`1[ŷ ≥ 0]`; for a binary task the logit), is decomposed (BROJA PID, bits) against two \
         codes of the same test clips — the text and the audio+vision clip means, each quantised \
         by k-means (k = {}, fitted on the train split). `S` is the information about the \
         prediction that only text and audio+vision *together* carry: the synergy the model's \
         output uses; `U_text`, `U_av` what one code alone carries, `R` what both carry. A small \
         sample inflates every plug-in value, so each run's `S` is compared with its own \
         permutation null ({} shuffles of its predictions): \"above null\" counts the seeds whose \
         `S` exceeds the null's 95th percentile. The claim *the C-network raises the synergy the \
         model uses* is tested for each C-network variant by the seed-paired `S(variant) − \
         S(NLL)` with a 95 % t-interval over seeds (supported: above 0; contradicted: below; \
         Holm over these claims). The labels' own PID on the same codes is the synergy the data \
         holds.\n\n",
        codes.clusters, NULL_DRAWS
    );
    if let Some((l, (mean, p95, above))) = label_pid(ctx).and_then(|l| {
        let null = (l.null_mean?, l.null_p95?, l.above_null?);
        Some((l, null))
    }) {
        s += &format!(
            "Labels: S = {:.3} bits (null mean {:.3}, p95 {:.3}: {}), R = {:.3}, U_text = {:.3}, \
             U_av = {:.3}, I = {:.3}.\n\n",
            l.synergy,
            mean,
            p95,
            if above {
                "above null"
            } else {
                "not above null"
            },
            l.redundancy,
            l.unique_text,
            l.unique_audio_vision,
            l.mutual_information
        );
    }
    if rows.is_empty() {
        return s + "No selected run has saved test predictions matching the codes.\n\n";
    }
    let tier = ctx.tier.name();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.model.clone(),
                r.variant.clone(),
                r.seeds.len().to_string(),
                mean_sd(&r.synergy),
                mean_sd(&r.redundancy),
                mean_sd(&r.unique_text),
                mean_sd(&r.unique_audio_vision),
                mean_sd(&r.mutual_information),
                r.seeds_above_null
                    .map_or_else(|| "—".into(), |k| format!("{k}/{}", r.seeds.len())),
                r.vs_nll.map_or_else(
                    || "—".into(),
                    |m| {
                        format!(
                            "{:+.3} [{:+.3}, {:+.3}] (n = {}, {})",
                            m.mean,
                            m.lo,
                            m.hi,
                            m.n,
                            p_text(m.p)
                        )
                    },
                ),
                if r.claim {
                    verdict_cell(r.verdict, r.note.as_deref(), r.survives_holm, tier)
                } else {
                    r.note.clone().unwrap_or_else(|| "—".into())
                },
            ]
        })
        .collect();
    s += &super::markdown_table(
        &[
            "Model",
            "Variant",
            "seeds",
            "S",
            "R",
            "U_text",
            "U_av",
            "I",
            "S above null",
            "S − S(NLL) [95 % CI]",
            "C-network raises S?",
        ],
        &table,
    );
    let claims: Vec<&PredictionPidRow> = rows.iter().filter(|r| r.claim).collect();
    let count = |v: Verdict| claims.iter().filter(|r| r.verdict == Some(v)).count();
    s += &format!(
        "\nClaim \"the C-network raises the synergy the model uses\" ({tier} tier): {} supported, \
         {} contradicted, {} inconclusive, {} without a verdict.\n\n",
        count(Verdict::Supported),
        count(Verdict::Contradicted),
        count(Verdict::Inconclusive),
        claims.iter().filter(|r| r.verdict.is_none()).count()
    );
    s
}
