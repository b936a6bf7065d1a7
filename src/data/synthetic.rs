//! The `synthetic` tier: seeded generators with the split sizes and label shape of MOSI, MOSEI
//! or UR-FUNNY and a known information structure, including a synergistic part that needs two
//! modalities. Nothing here reads `../shared`: the real facts are constants
//! ([`super::mosi_facts`], [`super::mosei_facts`], [`super::urfunny_facts`]).
//!
//! # MOSI- and MOSEI-shaped ([`generate`], [`generate_mosei`])
//!
//! Per clip: a label `y ∈ [−3, 3]` drawn from the corpus's label histogram (MOSI: its rounded-label
//! histogram with uniform jitter within ±0.5 of the class and 4.4 % of all labels exactly 0;
//! MOSEI: the histogram of its labels, which all lie on the 1/6 grid, drawn exactly), the latent
//! sentiment the clip expresses `y* = clip(y + N(0, 0.25²), −3, 3)` (annotator noise), and a
//! sarcasm flag `c ~ Bernoulli(0.15)`. With `σ_y` the corpus's label standard deviation (MOSI 1.57,
//! MOSEI 1.1154):
//! * **text** (300-d): the words express `w = y*·(1 − 2c)` — sarcasm flips the polarity. At each
//!   valid step, with probability ½ the step carries `w/σ_y · a_T`, otherwise nothing; plus
//!   `N(0, 2²)` noise per feature.
//! * **audio** (74-d): the sarcasm cue `(2c − 1)·b_A` and the intensity `|y*|/σ_y · b'_A`, plus
//!   `N(0, 2²)` noise, at every valid step.
//! * **vision** (35-d): the sarcasm cue `(2c − 1)·b_V` plus `N(0, 2²)` noise.
//!
//! `a_T, b_A, b'_A, b_V` are fixed N(0, 1) directions drawn from the seed. Lengths follow the
//! corpus's transcript lengths (log-normal with its median and mean words: MOSI 10 / 12.6, MOSEI
//! 17 / 19.7; capped at 50 = `T_MAX`). So text carries most of the label but cannot tell sarcasm;
//! audio/vision alone carry no polarity; recovering the sign of sarcastic clips needs text **and**
//! audio or vision. The generator reports, on the test split, the Bayes predictors from the
//! latents: all latents (`y*`), text only (`E[y* | w]`) and audio+vision only
//! (`E[y* | |y*|, c]`), and the train-mean predictor.
//!
//! Memory: splits are stored padded to `T_MAX` = 50 steps (as MMSA's `aligned_50` pickles), i.e.
//! `N · 50 · 409 · 4` bytes: 45 MB for MOSI, 1.87 GB for MOSEI (22856 clips), allocated once
//! (capacities reserved up front).
//!
//! # UR-FUNNY-shaped ([`generate_urfunny`])
//!
//! See [`generate_urfunny`]: a binary humour label whose cue is the *incongruity* between the
//! words' sentiment and the delivery's, so text alone and audio+vision alone are at chance.

use super::{mosei_facts, mosi_facts, urfunny_facts};
use super::{Ceiling, Dataset, DatasetName, Split, Task, TestSubset, Tier};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::weighted::WeightedIndex;
use rand_distr::{Distribution, Normal, StandardNormal};

/// Widths of text, audio, vision (as the issue fixes them: GloVe-300-like text, COVAREP 74, FACET 35).
pub(crate) const DIMS: [usize; 3] = [300, 74, 35];
/// Padded length.
pub const T_MAX: usize = 50;
/// Probability of a sarcastic (polarity-flipped) clip.
pub const SARCASM: f64 = 0.15;
/// Annotator noise on the label.
pub(crate) const LABEL_NOISE: f64 = 0.25;
/// Feature noise standard deviation.
pub(crate) const NOISE: f64 = 2.0;

/// How a corpus's labels are drawn.
#[derive(Debug, Clone, Copy)]
enum LabelDist {
    /// MOSI: counts of the rounded label −3..3, uniform jitter within the class, a share of
    /// exact zeros.
    Rounded {
        counts: &'static [f64; 7],
        exact_zero: f64,
    },
    /// MOSEI: counts of `6·label` for −18..18 (the label itself is drawn).
    Sixths { counts: &'static [f64; 37] },
}

/// What a MOSI/MOSEI-shaped generator takes from its corpus.
#[derive(Debug, Clone, Copy)]
struct Shape {
    corpus: DatasetName,
    label: &'static str,
    splits: [usize; 3],
    labels: LabelDist,
    median_words: f64,
    mean_words: f64,
    label_sd: f64,
}

const MOSI: Shape = Shape {
    corpus: DatasetName::Mosi,
    label: "MOSI",
    splits: mosi_facts::SPLITS,
    labels: LabelDist::Rounded {
        counts: &mosi_facts::ROUNDED_COUNTS,
        exact_zero: mosi_facts::EXACT_ZERO,
    },
    median_words: mosi_facts::MEDIAN_WORDS,
    mean_words: mosi_facts::MEAN_WORDS,
    label_sd: 1.57,
};

const MOSEI: Shape = Shape {
    corpus: DatasetName::Mosei,
    label: "MOSEI",
    splits: mosei_facts::SPLITS,
    labels: LabelDist::Sixths {
        counts: &mosei_facts::LABEL_COUNTS,
    },
    median_words: mosei_facts::MEDIAN_WORDS,
    mean_words: mosei_facts::MEAN_WORDS,
    label_sd: mosei_facts::LABEL_SD,
};

impl LabelDist {
    fn classes(self) -> WeightedIndex<f64> {
        match self {
            LabelDist::Rounded { counts, .. } => WeightedIndex::new(counts.iter().copied()),
            LabelDist::Sixths { counts } => WeightedIndex::new(counts.iter().copied()),
        }
        .expect("positive weights")
    }
}

/// A log-normal length with the given median and mean, rounded and clamped to `2..=t_max`.
fn draw_len(rng: &mut ChaCha8Rng, median: f64, mean: f64, t_max: usize) -> usize {
    let sigma = (2.0 * (mean / median).ln()).sqrt();
    let ln: f64 = Normal::new(median.ln(), sigma).expect("valid").sample(rng);
    (ln.exp().round() as usize).clamp(2, t_max)
}

struct Latent {
    y_star: f64,
    sarcastic: bool,
    label: f64,
    len: usize,
}

fn draw_latent(rng: &mut ChaCha8Rng, classes: &WeightedIndex<f64>, shape: &Shape) -> Latent {
    let label = match shape.labels {
        LabelDist::Rounded { counts, exact_zero } => {
            let k = classes.sample(rng) as f64 - 3.0;
            // exact zeros are part of MOSI's rounded-0 class
            let share0 = counts[3] / counts.iter().sum::<f64>();
            let zero = k == 0.0 && rng.random::<f64>() < exact_zero / share0;
            // the label keeps MOSI's rounded histogram exactly; the latent sentiment the
            // modalities express is the label plus annotator noise
            if zero {
                0.0
            } else {
                (k + rng.random::<f64>() - 0.5).clamp(-3.0, 3.0)
            }
        }
        LabelDist::Sixths { .. } => (classes.sample(rng) as f64 - 18.0) / 6.0,
    };
    let sarcastic = rng.random::<f64>() < SARCASM;
    let noise: f64 = StandardNormal.sample(rng);
    let y_star = (label + LABEL_NOISE * noise).clamp(-3.0, 3.0);
    let len = draw_len(rng, shape.median_words, shape.mean_words, T_MAX);
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

/// Generates the synthetic MOSI-shaped dataset from `seed` (same seed, same bytes).
pub fn generate(seed: u64) -> Dataset {
    generate_shaped(&MOSI, seed)
}

/// Generates the synthetic MOSEI-shaped dataset from `seed`: splits 16326/1871/4659, widths
/// 300/74/35, MOSEI's label histogram and transcript lengths (see the module docs).
pub fn generate_mosei(seed: u64) -> Dataset {
    generate_shaped(&MOSEI, seed)
}

/// The synthetic dataset of a corpus.
pub fn generate_for(dataset: DatasetName, seed: u64) -> Dataset {
    match dataset {
        DatasetName::Mosi => generate(seed),
        DatasetName::Mosei => generate_mosei(seed),
        DatasetName::UrFunny => generate_urfunny(seed),
    }
}

fn generate_shaped(shape: &Shape, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let classes = shape.labels.classes();
    let [dt, da, dv] = DIMS;
    let a_t = directions(&mut rng, dt);
    let b_a = directions(&mut rng, da);
    let b_a2 = directions(&mut rng, da);
    let b_v = directions(&mut rng, dv);
    let sd = shape.label_sd as f32;
    let make = |n: usize, tag: &str, rng: &mut ChaCha8Rng| -> (Split, Vec<Latent>) {
        let mut s = Split::with_capacity(n, T_MAX, DIMS);
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            let l = draw_latent(rng, &classes, shape);
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
    let [ntr, nva, nte] = shape.splits;
    let (train, lat_tr) = make(ntr, "train", &mut rng);
    let (valid, _) = make(nva, "valid", &mut rng);
    let (test, lat_te) = make(nte, "test", &mut rng);

    // Bayes predictors from the latents, conditional means from 200k simulated clips
    let sim: Vec<Latent> = (0..200_000)
        .map(|_| draw_latent(&mut rng, &classes, shape))
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
        Ceiling::regression("oracle: all latents (y*)", &oracle, &label),
        Ceiling::regression("text latents only: E[y* given w]", &text_only, &label),
        Ceiling::regression(
            "audio+vision latents only: E[y* given abs(y*), c]",
            &av_only,
            &label,
        ),
        Ceiling::regression("train-mean predictor", &vec![mean; label.len()], &label),
    ];
    let label = shape.label; // the corpus's name (the test labels are in `ceilings`)
    Dataset {
        task: Task::Regression,
        name: shape.corpus.name().into(),
        tier: Tier::Synthetic,
        dims: DIMS,
        t_max: T_MAX,
        train,
        valid,
        test,
        description: format!(
            "synthetic {label}-shaped data (seed {seed}): splits {ntr}/{nva}/{nte}, label histogram \
             of {label}, 15% sarcastic clips whose text polarity is flipped and whose cue is in \
             audio/vision"
        ),
        ceilings,
        test_subsets: vec![
            TestSubset {
                name: "sarcastic".into(),
                why: "the words' polarity is flipped: the sign needs text and the audio/vision \
                      sarcasm cue together (synergy)"
                    .into(),
                members: lat_te.iter().map(|l| l.sarcastic).collect(),
            },
            TestSubset {
                name: "not sarcastic".into(),
                why: "the words carry the sign; audio carries intensity (redundant or unique \
                      information, no synergy needed)"
                    .into(),
                members: lat_te.iter().map(|l| !l.sarcastic).collect(),
            },
        ],
    }
}

/// Padded punchline length of the UR-FUNNY-shaped tier (UR-FUNNY's own data loader keeps 20 words
/// per sentence).
pub const URFUNNY_T_MAX: usize = 20;
/// Share of clips whose delivery's (in)congruity disagrees with their humour label (annotation
/// noise: the Bayes accuracy from all latents is about 1 − this).
pub const URFUNNY_FLIP: f64 = 0.1;
/// Median and mean punchline words. Assumed, not measured: no UR-FUNNY transcripts are available
/// here (only folds and labels).
pub(crate) const URFUNNY_WORDS: (f64, f64) = (9.0, 10.0);

struct Joke {
    humour: bool,
    /// The delivery contradicts the words (humour cue; = `humour` except for [`URFUNNY_FLIP`]).
    incongruent: bool,
    /// The words' sentiment polarity (±1) and intensity (U(0.5, 1.5)).
    polarity: f32,
    intensity: f32,
    len: usize,
}

fn draw_joke(rng: &mut ChaCha8Rng, humour: bool) -> Joke {
    let incongruent = humour ^ (rng.random::<f64>() < URFUNNY_FLIP);
    let polarity = if rng.random::<bool>() { 1.0 } else { -1.0 };
    let intensity = 0.5 + rng.random::<f32>();
    let len = draw_len(rng, URFUNNY_WORDS.0, URFUNNY_WORDS.1, URFUNNY_T_MAX);
    Joke {
        humour,
        incongruent,
        polarity,
        intensity,
        len,
    }
}

/// Accuracy of 0/1 predictions.
fn accuracy(pred: &[bool], truth: &[bool]) -> f64 {
    pred.iter().zip(truth).filter(|(p, t)| p == t).count() as f64 / truth.len().max(1) as f64
}

/// The Bayes classifier of `h` given a discrete feature `x` (from simulated pairs), at `q`.
fn bayes_binary(xs: &[i64], hs: &[bool], q: &[i64]) -> Vec<bool> {
    let mut table: std::collections::HashMap<i64, (usize, usize)> = Default::default();
    for (x, h) in xs.iter().zip(hs) {
        let e = table.entry(*x).or_default();
        e.0 += 1;
        e.1 += usize::from(*h);
    }
    let prior = hs.iter().filter(|h| **h).count() * 2 >= hs.len();
    q.iter()
        .map(|x| table.get(x).map_or(prior, |&(n, k)| 2 * k >= n))
        .collect()
}

/// Generates the synthetic UR-FUNNY-shaped dataset from `seed`: a binary humour label (task
/// [`Task::Binary`]) in UR-FUNNY V1's official fold sizes with each fold's exact number of
/// humorous clips ([`urfunny_facts`]), widths 300 / 81 / 75 (GloVe, COVAREP, OpenFace V1),
/// punchlines padded to [`URFUNNY_T_MAX`] words.
///
/// Per clip: the humour label `h` (the fold's labels, shuffled); the incongruity
/// `g = h` except for a [`URFUNNY_FLIP`] share of clips where `g = 1 − h`; the words' sentiment
/// polarity `p = ±1` (fair coin) with intensity `m ~ U(0.5, 1.5)`; the delivery's polarity
/// `d = p` if `g = 0` and `d = −p` if `g = 1` (a humorous punchline is delivered against its
/// words).
/// * **text**: at each valid step, with probability ½ the step carries `p·m·a_T`, plus `N(0, 2²)`;
/// * **audio**: `d·b_A + N(0, 2²)` at every valid step; **vision**: `d·b_V + N(0, 2²)`.
///
/// `p` and `d` are each independent of `h` (both are fair coins whatever `h`), so text alone and
/// audio+vision alone carry **no** information about humour; `h` agrees with `[p ≠ d]` on 90 % of
/// clips, which needs text **and** audio or vision. Reference predictors on the test split (Bayes
/// classifiers from the latents, conditional frequencies from 200k simulated clips): all latents
/// (`[p ≠ d]`, ≈ 90 %), text latents only (`p`), audio+vision latents only (`d`), and the train
/// majority class — the last three at chance.
pub fn generate_urfunny(seed: u64) -> Dataset {
    use rand::seq::SliceRandom;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dims = urfunny_facts::DIMS;
    let [dt, da, dv] = dims;
    let t_max = URFUNNY_T_MAX;
    let a_t = directions(&mut rng, dt);
    let b_a = directions(&mut rng, da);
    let b_v = directions(&mut rng, dv);
    let noise = NOISE as f32;
    let make = |f: usize, tag: &str, rng: &mut ChaCha8Rng| -> (Split, Vec<Joke>) {
        let n = urfunny_facts::FOLDS[f];
        let mut labels: Vec<bool> = (0..n).map(|i| i < urfunny_facts::HUMOROUS[f]).collect();
        labels.shuffle(rng);
        let mut s = Split::with_capacity(n, t_max, dims);
        let mut jokes = Vec::with_capacity(n);
        for (i, &h) in labels.iter().enumerate() {
            let j = draw_joke(rng, h);
            let d = if j.incongruent {
                -j.polarity
            } else {
                j.polarity
            };
            let w = j.polarity * j.intensity;
            let e = |rng: &mut ChaCha8Rng| -> f32 {
                let z: f32 = StandardNormal.sample(rng);
                noise * z
            };
            for t in 0..t_max {
                if t < j.len {
                    let on = rng.random::<f64>() < 0.5;
                    for &a in &a_t {
                        let x = e(rng);
                        s.text.push(if on { w * a } else { 0.0 } + x);
                    }
                    for &b in &b_a {
                        let x = e(rng);
                        s.audio.push(d * b + x);
                    }
                    for &b in &b_v {
                        let x = e(rng);
                        s.vision.push(d * b + x);
                    }
                } else {
                    s.text.extend(std::iter::repeat_n(0.0, dt));
                    s.audio.extend(std::iter::repeat_n(0.0, da));
                    s.vision.extend(std::iter::repeat_n(0.0, dv));
                }
            }
            s.ids.push(format!("syn-urfunny-{tag}-{i}"));
            s.lengths.push(j.len);
            s.labels.push(if h { 1.0 } else { 0.0 });
            jokes.push(j);
        }
        (s, jokes)
    };
    let (train, j_tr) = make(0, "train", &mut rng);
    let (valid, _) = make(1, "dev", &mut rng);
    let (test, j_te) = make(2, "test", &mut rng);

    let p_train = urfunny_facts::HUMOROUS[0] as f64 / urfunny_facts::FOLDS[0] as f64;
    let sim: Vec<Joke> = (0..200_000)
        .map(|_| {
            let h = rng.random::<f64>() < p_train;
            draw_joke(&mut rng, h)
        })
        .collect();
    let hs: Vec<bool> = sim.iter().map(|j| j.humour).collect();
    let truth: Vec<bool> = j_te.iter().map(|j| j.humour).collect();
    let sign = |x: f32| i64::from(x > 0.0);
    let delivery = |j: &Joke| {
        if j.incongruent {
            -j.polarity
        } else {
            j.polarity
        }
    };
    let bayes = |f: &dyn Fn(&Joke) -> i64| {
        let xs: Vec<i64> = sim.iter().map(f).collect();
        let q: Vec<i64> = j_te.iter().map(f).collect();
        accuracy(&bayes_binary(&xs, &hs, &q), &truth)
    };
    let all = bayes(&|j| sign(j.polarity) * 2 + sign(delivery(j)));
    let text_only = bayes(&|j| sign(j.polarity));
    let av_only = bayes(&|j| sign(delivery(j)));
    let majority = j_tr.iter().filter(|j| j.humour).count() * 2 >= j_tr.len();
    let ceil = |name: &str, acc: f64| Ceiling {
        name: name.into(),
        mae: None,
        acc2: acc,
    };
    let ceilings = vec![
        ceil("oracle: all latents (words' vs delivery's polarity)", all),
        ceil("text latents only: words' polarity", text_only),
        ceil("audio+vision latents only: delivery's polarity", av_only),
        ceil(
            "train-majority predictor",
            accuracy(&vec![majority; truth.len()], &truth),
        ),
    ];
    let [ntr, nva, nte] = urfunny_facts::FOLDS;
    Dataset {
        name: DatasetName::UrFunny.name().into(),
        tier: Tier::Synthetic,
        task: Task::Binary,
        dims,
        t_max,
        train,
        valid,
        test,
        description: format!(
            "synthetic UR-FUNNY-shaped data (seed {seed}): folds {ntr}/{nva}/{nte} with UR-FUNNY \
             V1's humour counts, binary humour cued by the incongruity of the words' and the \
             delivery's polarity (text alone and audio/vision alone at chance; 10% label noise)"
        ),
        ceilings,
        // every clip's label is the incongruity of words and delivery: all of it is synergy
        test_subsets: Vec::new(),
    }
}
