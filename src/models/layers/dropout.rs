//! Dropout with reproducible masks ([`SeededDropout`]): every model's dropout layers, and the
//! masks of the fused ops that apply dropout themselves (TFN's fusion, MFN's gate networks).

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::Cell;

/// Inverted dropout with masks drawn from a seeded stream (candle's own dropout uses an unseeded
/// generator, which would make CPU runs irreproducible).
#[derive(Debug)]
pub struct SeededDropout {
    p: f64,
    seed: u64,
    calls: Cell<u64>,
}

impl SeededDropout {
    /// Drop probability `p ∈ [0, 1)`.
    pub fn new(p: f64, seed: u64) -> Self {
        Self {
            p,
            seed,
            calls: Cell::new(0),
        }
    }

    /// Applies dropout when `train`; identity otherwise.
    ///
    /// # Shapes
    /// * `x`: any shape; returns the same shape
    pub fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let Some(m) = self.keep_mask(x.elem_count(), train) else {
            return Ok(x.clone());
        };
        let mask = Tensor::from_vec(m, x.shape(), &Device::Cpu)?
            .to_dtype(x.dtype())?
            .to_device(x.device())?;
        x * mask
    }

    /// The keep-mask [`forward`](Self::forward) would multiply `n` values by (`0` or `1/(1−p)`
    /// each, row-major), drawn from the same stream and advancing it the same way; `None` (and no
    /// draw) when not `train` or `p = 0`. For ops that apply the mask themselves
    /// ([`crate::kernels::outer3`]).
    pub(crate) fn keep_mask(&self, n: usize, train: bool) -> Option<Vec<f32>> {
        if !train || self.p == 0.0 {
            return None;
        }
        let c = self.calls.get();
        self.calls.set(c + 1);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let keep = (1.0 / (1.0 - self.p)) as f32;
        // The stream of `rng.random::<f64>() < p` (kept identical), without its per-call cost:
        // rand's f64 is `(w >> 11) · 2⁻⁵³` of the next u64 word `w`, and `p · 2⁵³` is exact, so the
        // test is `(w >> 11) < ⌈p · 2⁵³⌉`; the words are drawn in one `fill` (the same sequence as
        // one `next_u64` per element). 15 % of a TFN step was this loop's per-element f64 draw.
        let threshold = (self.p * 2f64.powi(53)).ceil() as u64;
        let mut words = vec![0u64; n];
        rng.fill(&mut words[..]);
        Some(
            words
                .iter()
                .map(|&w| if (w >> 11) < threshold { 0.0 } else { keep })
                .collect(),
        )
    }
}
