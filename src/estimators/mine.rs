//! MINE-style KL estimation (Belghazi et al., 2018): maximise the Donsker–Varadhan bound over a
//! small MLP critic, then report the bound on **held-out** samples.
//!
//! The critic is `T(x) = w₃ᵀ tanh(W₂ᵀ tanh(W₁ᵀ x̃ + b₁) + b₂) + b₃` on standardised inputs `x̃`
//! (mean/std of the pooled training split), trained by Adam on minibatches with the plain
//! gradient of `−DV = −mean T(x) + ln mean exp T(y)` (no moving-average bias correction). Both
//! samples are shuffled and split with the seed; the critic never sees the held-out rows, so the
//! reported value is a lower bound on KL(P‖Q) in expectation (up to the held-out sampling error).
//! Everything is a function of the seed: the same input and seed give the same number.

use super::bounds::{dv_bound, log_mean_exp};
use crate::error::{EstimatorError, Result};
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

/// Settings of [`mine_kl`]; validated when used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MineParams {
    /// Width of the two hidden layers.
    pub hidden: usize,
    /// Adam steps.
    pub steps: usize,
    /// Minibatch size per sample (drawn with replacement).
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Fraction of each sample held out for the reported bound, in (0, 1).
    pub holdout: f64,
    /// Seed of the split, the initialisation and the minibatches.
    pub seed: u64,
}

impl Default for MineParams {
    fn default() -> Self {
        Self {
            hidden: 64,
            steps: 1000,
            batch: 256,
            lr: 1e-3,
            holdout: 0.5,
            seed: 0,
        }
    }
}

/// Outcome of [`mine_kl`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MineResult {
    /// DV bound of the trained critic on the held-out rows (the estimate).
    pub value: f64,
    /// DV bound on the training rows (optimistic).
    pub train_value: f64,
    /// Steps taken.
    pub steps: usize,
}

impl MineParams {
    fn check(&self) -> Result<()> {
        let bad = |name: &'static str, reason: &str| {
            Err(EstimatorError::InvalidParameter {
                name,
                reason: reason.into(),
            })
        };
        if self.hidden == 0 {
            return bad("hidden", "must be >= 1");
        }
        if self.steps == 0 {
            return bad("steps", "must be >= 1");
        }
        if self.batch == 0 {
            return bad("batch", "must be >= 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", "must be finite and > 0");
        }
        if !(self.holdout > 0.0 && self.holdout < 1.0) {
            return bad("holdout", "must be in (0, 1)");
        }
        Ok(())
    }
}

struct Layer {
    w: Array2<f64>,
    b: Array1<f64>,
    // Adam moments
    mw: Array2<f64>,
    vw: Array2<f64>,
    mb: Array1<f64>,
    vb: Array1<f64>,
}

impl Layer {
    fn new(inp: usize, out: usize, rng: &mut ChaCha8Rng) -> Self {
        let std = (2.0 / (inp + out) as f64).sqrt();
        let normal = Normal::new(0.0, std).expect("positive std");
        Self {
            w: Array2::from_shape_fn((inp, out), |_| normal.sample(rng)),
            b: Array1::zeros(out),
            mw: Array2::zeros((inp, out)),
            vw: Array2::zeros((inp, out)),
            mb: Array1::zeros(out),
            vb: Array1::zeros(out),
        }
    }

    fn adam(&mut self, gw: &Array2<f64>, gb: &Array1<f64>, lr: f64, t: i32) {
        let (b1, b2, eps) = (0.9_f64, 0.999_f64, 1e-8);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        ndarray::Zip::from(&mut self.w)
            .and(&mut self.mw)
            .and(&mut self.vw)
            .and(gw)
            .for_each(|w, m, v, g| {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
            });
        ndarray::Zip::from(&mut self.b)
            .and(&mut self.mb)
            .and(&mut self.vb)
            .and(gb)
            .for_each(|w, m, v, g| {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
            });
    }
}

struct Critic {
    layers: [Layer; 3],
    mean: Array1<f64>,
    std: Array1<f64>,
}

impl Critic {
    /// Forward pass keeping activations: returns (inputs to each layer, output).
    fn forward(&self, x: &ArrayView2<f64>) -> (Vec<Array2<f64>>, Array1<f64>) {
        let x0 = (x - &self.mean) / &self.std;
        let h1 = (x0.dot(&self.layers[0].w) + &self.layers[0].b).mapv(f64::tanh);
        let h2 = (h1.dot(&self.layers[1].w) + &self.layers[1].b).mapv(f64::tanh);
        let out = h2.dot(&self.layers[2].w).column(0).to_owned() + self.layers[2].b[0];
        (vec![x0, h1, h2], out)
    }

    fn values(&self, x: &ArrayView2<f64>) -> Array1<f64> {
        self.forward(x).1
    }

    /// Backward pass for output gradients `g` (per row) and one Adam step.
    fn step(&mut self, acts: &[Array2<f64>], g: &Array1<f64>, lr: f64, t: i32) {
        let g = g.view().insert_axis(Axis(1)).to_owned(); // rows × 1
        let gw3 = acts[2].t().dot(&g);
        let gb3 = g.sum_axis(Axis(0));
        let mut d2 = g.dot(&self.layers[2].w.t());
        d2.zip_mut_with(&acts[2], |d, h| *d *= 1.0 - h * h);
        let gw2 = acts[1].t().dot(&d2);
        let gb2 = d2.sum_axis(Axis(0));
        let mut d1 = d2.dot(&self.layers[1].w.t());
        d1.zip_mut_with(&acts[1], |d, h| *d *= 1.0 - h * h);
        let gw1 = acts[0].t().dot(&d1);
        let gb1 = d1.sum_axis(Axis(0));
        self.layers[2].adam(&gw3, &gb3, lr, t);
        self.layers[1].adam(&gw2, &gb2, lr, t);
        self.layers[0].adam(&gw1, &gb1, lr, t);
    }
}

fn split(
    x: &ArrayView2<f64>,
    frac: f64,
    rng: &mut ChaCha8Rng,
    what: &'static str,
) -> Result<(Array2<f64>, Array2<f64>)> {
    let n = x.nrows();
    let held = ((n as f64) * frac).round() as usize;
    if held == 0 || held >= n {
        return Err(EstimatorError::TooFewSamples {
            what,
            need: "enough rows for a non-empty training and held-out split".into(),
            got: n,
        });
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(rng);
    let train = x.select(Axis(0), &idx[held..]);
    let test = x.select(Axis(0), &idx[..held]);
    Ok((train, test))
}

fn minibatch(x: &Array2<f64>, b: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    let idx: Vec<usize> = (0..b).map(|_| rng.random_range(0..x.nrows())).collect();
    x.select(Axis(0), &idx)
}

/// Estimates KL(P‖Q) from `x ~ P`, `y ~ Q` by training a DV critic (see the module docs).
pub fn mine_kl(
    x: &ArrayView2<f64>,
    y: &ArrayView2<f64>,
    params: &MineParams,
) -> Result<MineResult> {
    super::check_pair(x, y)?;
    params.check()?;
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let (xtr, xte) = split(x, params.holdout, &mut rng, "MINE (x)")?;
    let (ytr, yte) = split(y, params.holdout, &mut rng, "MINE (y)")?;
    let pooled = ndarray::concatenate(Axis(0), &[xtr.view(), ytr.view()]).expect("same width");
    let mean = pooled.mean_axis(Axis(0)).expect("non-empty");
    let std = pooled
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-12 { s } else { 1.0 });
    let d = x.ncols();
    let h = params.hidden;
    let mut critic = Critic {
        layers: [
            Layer::new(d, h, &mut rng),
            Layer::new(h, h, &mut rng),
            Layer::new(h, 1, &mut rng),
        ],
        mean,
        std,
    };
    let b = params.batch;
    for t in 1..=params.steps {
        let bp = minibatch(&xtr, b, &mut rng);
        let bq = minibatch(&ytr, b, &mut rng);
        let both = ndarray::concatenate(Axis(0), &[bp.view(), bq.view()]).expect("same width");
        let (acts, out) = critic.forward(&both.view());
        let tq = out.slice(s![b..]);
        if out.iter().any(|v| !v.is_finite()) {
            return Err(EstimatorError::NonFiniteResult {
                what: "MINE critic (diverged; lower the learning rate)",
                value: f64::NAN,
            });
        }
        // d(−DV)/dtP = −1/b ; d(−DV)/dtQ_j = softmax(tQ)_j
        let lme = log_mean_exp(&tq);
        let mut g = Array1::zeros(2 * b);
        g.slice_mut(s![..b]).fill(-1.0 / b as f64);
        for (gj, tj) in g.slice_mut(s![b..]).iter_mut().zip(tq.iter()) {
            *gj = (tj - lme).exp() / b as f64;
        }
        critic.step(&acts, &g, params.lr, t.min(i32::MAX as usize) as i32);
    }
    let value = dv_bound(
        &critic.values(&xte.view()).view(),
        &critic.values(&yte.view()).view(),
    )?;
    let train_value = dv_bound(
        &critic.values(&xtr.view()).view(),
        &critic.values(&ytr.view()).view(),
    )?;
    Ok(MineResult {
        value,
        train_value,
        steps: params.steps,
    })
}
