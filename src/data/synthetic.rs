//! The `synthetic` tier: a seeded generator with MOSI's split sizes and label shape and a known
//! information structure, including a synergistic part that needs two modalities.
//!
//! Per clip: a label `y ∈ [−3, 3]` drawn from MOSI's rounded-label histogram (uniform jitter within
//! ±0.5 of the class; 4.4 % of all labels exactly 0, as in MOSI), the latent sentiment the clip
//! expresses `y* = clip(y + N(0, 0.25²), −3, 3)` (annotator noise), and a sarcasm flag
//! `c ~ Bernoulli(0.15)`.
//! * **text** (300-d): the words express `w = y*·(1 − 2c)` — sarcasm flips the polarity. At each
//!   valid step, with probability ½ the step carries `w/1.57 · a_T`, otherwise nothing; plus
//!   `N(0, 2²)` noise per feature.
//! * **audio** (74-d): the sarcasm cue `(2c − 1)·b_A` and the intensity `|y*|/1.57 · b'_A`, plus
//!   `N(0, 2²)` noise, at every valid step.
//! * **vision** (35-d): the sarcasm cue `(2c − 1)·b_V` plus `N(0, 2²)` noise.
//!
//! `a_T, b_A, b'_A, b_V` are fixed N(0, 1) directions drawn from the seed. Lengths follow MOSI's
//! transcript lengths (log-normal, median 10 words, capped at 50). So text carries most of the
//! label but cannot tell sarcasm; audio/vision alone carry no polarity; recovering the sign of
//! sarcastic clips needs text **and** audio or vision. The generator reports, on the test split,
//! the Bayes predictors from the latents: all latents (`y*`), text only (`E[y* | w]`) and
//! audio+vision only (`E[y* | |y*|, c]`), and the train-mean predictor.

use super::mosi_facts as facts;
use super::{Ceiling, Dataset, Split, Tier};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::weighted::WeightedIndex;
use rand_distr::{Distribution, Normal, StandardNormal};

/// Widths of text, audio, vision (as the issue fixes them: GloVe-300-like text, COVAREP 74, FACET 35).
pub const DIMS: [usize; 3] = [300, 74, 35];
/// Padded length.
pub const T_MAX: usize = 50;
/// Probability of a sarcastic (polarity-flipped) clip.
pub const SARCASM: f64 = 0.15;
/// Annotator noise on the label.
pub const LABEL_NOISE: f64 = 0.25;
/// Feature noise standard deviation.
pub const NOISE: f64 = 2.0;

struct Latent {
    y_star: f64,
    sarcastic: bool,
    label: f64,
    len: usize,
}

fn draw_latent(rng: &mut ChaCha8Rng, classes: &WeightedIndex<f64>) -> Latent {
    let k = classes.sample(rng) as f64 - 3.0;
    // exact zeros are part of MOSI's rounded-0 class
    let share0 = facts::ROUNDED_COUNTS[3] / facts::ROUNDED_COUNTS.iter().sum::<f64>();
    let zero = k == 0.0 && rng.random::<f64>() < facts::EXACT_ZERO / share0;
    // the label keeps MOSI's rounded histogram exactly; the latent sentiment the modalities
    // express is the label plus annotator noise
    let label = if zero {
        0.0
    } else {
        (k + rng.random::<f64>() - 0.5).clamp(-3.0, 3.0)
    };
    let sarcastic = rng.random::<f64>() < SARCASM;
    let noise: f64 = StandardNormal.sample(rng);
    let y_star = (label + LABEL_NOISE * noise).clamp(-3.0, 3.0);
    let sigma = (2.0 * (facts::MEAN_WORDS / facts::MEDIAN_WORDS).ln()).sqrt();
    let ln: f64 = Normal::new(facts::MEDIAN_WORDS.ln(), sigma)
        .expect("valid")
        .sample(rng);
    let len = (ln.exp().round() as usize).clamp(2, T_MAX);
    Latent {
        y_star,
        sarcastic,
        label,
        len,
    }
}

fn directions(rng: &mut ChaCha8Rng, d: usize) -> Vec<f32> {
    (0..d)
        .map(|_| StandardNormal.sample(rng))
        .map(|v: f64| v as f32)
        .collect()
}

/// Conditional mean `E[y | x]` by binning `x` (from a large simulated sample), evaluated at `q`.
fn binned_mean(xs: &[f64], ys: &[f64], q: &[f64], bins: usize) -> Vec<f64> {
    let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w = ((hi - lo) / bins as f64).max(1e-12);
    let bin = |x: f64| (((x - lo) / w) as usize).min(bins - 1);
    let mut s = vec![0.0; bins];
    let mut c = vec![0usize; bins];
    for (x, y) in xs.iter().zip(ys) {
        s[bin(*x)] += y;
        c[bin(*x)] += 1;
    }
    let all = ys.iter().sum::<f64>() / ys.len() as f64;
    q.iter()
        .map(|x| {
            let b = bin(x.clamp(lo, hi));
            if c[b] > 0 {
                s[b] / c[b] as f64
            } else {
                all
            }
        })
        .collect()
}

fn ceiling(name: &str, pred: &[f64], label: &[f64]) -> Ceiling {
    let mae = crate::metrics::mae(pred, label);
    let nz: Vec<(f64, f64)> = pred
        .iter()
        .zip(label)
        .filter(|(_, l)| **l != 0.0)
        .map(|(p, l)| (*p, *l))
        .collect();
    let acc2 = nz.iter().filter(|(p, l)| (*p > 0.0) == (*l > 0.0)).count() as f64 / nz.len() as f64;
    Ceiling {
        name: name.into(),
        mae,
        acc2,
    }
}

/// Generates the synthetic MOSI-shaped dataset from `seed` (same seed, same bytes).
pub fn generate(seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let classes = WeightedIndex::new(facts::ROUNDED_COUNTS).expect("positive weights");
    let [dt, da, dv] = DIMS;
    let a_t = directions(&mut rng, dt);
    let b_a = directions(&mut rng, da);
    let b_a2 = directions(&mut rng, da);
    let b_v = directions(&mut rng, dv);
    let sd = 1.57f32; // MOSI label standard deviation
    let make = |n: usize, tag: &str, rng: &mut ChaCha8Rng| -> (Split, Vec<Latent>) {
        let mut s = Split::default();
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            let l = draw_latent(rng, &classes);
            let w = (l.y_star * if l.sarcastic { -1.0 } else { 1.0 }) as f32 / sd;
            let cue = if l.sarcastic { 1.0f32 } else { -1.0 };
            let inten = l.y_star.abs() as f32 / sd;
            for t in 0..T_MAX {
                let valid = t < l.len;
                let on = valid && rng.random::<f64>() < 0.5;
                for &a in &a_t {
                    let e: f32 = if valid {
                        StandardNormal.sample(rng)
                    } else {
                        0.0
                    };
                    s.text.push(
                        if on { w * a } else { 0.0 } + if valid { NOISE as f32 * e } else { 0.0 },
                    );
                }
                for j in 0..da {
                    let e: f32 = if valid {
                        StandardNormal.sample(rng)
                    } else {
                        0.0
                    };
                    s.audio.push(if valid {
                        cue * b_a[j] + inten * b_a2[j] + NOISE as f32 * e
                    } else {
                        0.0
                    });
                }
                for &b in &b_v {
                    let e: f32 = if valid {
                        StandardNormal.sample(rng)
                    } else {
                        0.0
                    };
                    s.vision.push(if valid {
                        cue * b + NOISE as f32 * e
                    } else {
                        0.0
                    });
                }
            }
            s.ids.push(format!("syn-{tag}-{i}"));
            s.lengths.push(l.len);
            s.labels.push(l.label as f32);
            lat.push(l);
        }
        (s, lat)
    };
    let [ntr, nva, nte] = facts::SPLITS;
    let (train, lat_tr) = make(ntr, "train", &mut rng);
    let (valid, _) = make(nva, "valid", &mut rng);
    let (test, lat_te) = make(nte, "test", &mut rng);

    // Bayes predictors from the latents, conditional means from 200k simulated clips
    let sim: Vec<Latent> = (0..200_000)
        .map(|_| draw_latent(&mut rng, &classes))
        .collect();
    let w_of = |l: &Latent| l.y_star * if l.sarcastic { -1.0 } else { 1.0 };
    let ys: Vec<f64> = sim.iter().map(|l| l.y_star).collect();
    let label: Vec<f64> = lat_te.iter().map(|l| l.label).collect();
    let oracle: Vec<f64> = lat_te.iter().map(|l| l.y_star).collect();
    let text_only = binned_mean(
        &sim.iter().map(w_of).collect::<Vec<_>>(),
        &ys,
        &lat_te.iter().map(w_of).collect::<Vec<_>>(),
        240,
    );
    // audio+vision: |y*| and c; c is independent of y*, so E[y* | |y*|, c] = E[y* | |y*|]
    let av_only = binned_mean(
        &sim.iter().map(|l| l.y_star.abs()).collect::<Vec<_>>(),
        &ys,
        &lat_te.iter().map(|l| l.y_star.abs()).collect::<Vec<_>>(),
        120,
    );
    let mean = lat_tr.iter().map(|l| l.label).sum::<f64>() / lat_tr.len() as f64;
    let ceilings = vec![
        ceiling("oracle: all latents (y*)", &oracle, &label),
        ceiling("text latents only: E[y* given w]", &text_only, &label),
        ceiling(
            "audio+vision latents only: E[y* given abs(y*), c]",
            &av_only,
            &label,
        ),
        ceiling("train-mean predictor", &vec![mean; label.len()], &label),
    ];
    Dataset {
        task: crate::data::Task::Regression,
        name: "mosi".into(),
        tier: Tier::Synthetic,
        dims: DIMS,
        t_max: T_MAX,
        train,
        valid,
        test,
        description: format!(
            "synthetic MOSI-shaped data (seed {seed}): splits 1284/229/686, label histogram of MOSI, \
             15% sarcastic clips whose text polarity is flipped and whose cue is in audio/vision"
        ),
        ceilings,
    }
}
