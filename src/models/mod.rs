//! Fusion models (one file each). Each returns the unimodal representations, the fused
//! representation and the prediction ([`ModelOutput`](crate::synergy::ModelOutput)), so any of them
//! trains with or without the C-network.

pub mod ef_lstm;

use candle_core::{DType, Device, Tensor};
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
    pub fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let c = self.calls.get();
        self.calls.set(c + 1);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let keep = 1.0 / (1.0 - self.p);
        let m: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if rng.random::<f64>() < self.p {
                    0.0
                } else {
                    keep as f32
                }
            })
            .collect();
        let mask = Tensor::from_vec(m, x.shape(), &Device::Cpu)?
            .to_dtype(x.dtype())?
            .to_device(x.device())?;
        x * mask
    }
}

/// Masked time-mean `Σ_t mask_t x_t / Σ_t mask_t` of `B × T × d` features.
pub fn masked_mean(x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.unsqueeze(2)?;
    let s = x.broadcast_mul(&m)?.sum(1)?;
    s.broadcast_div(&mask.sum_keepdim(1)?)
}

/// The floating type used for training.
pub const TRAIN_DTYPE: DType = DType::F32;
