//! Pooling a padded sequence batch over time: the masked mean ([`masked_mean`]) and the state at
//! each sequence's last valid step ([`last_valid`]).

use candle_core::Tensor;

/// Masked time-mean `Σ_t mask_t x_t / Σ_t mask_t` of features.
///
/// # Shapes
/// * `x`: `B × T × d`, `mask`: `B × T` (1 at valid steps, 0 at padding)
/// * returns: `B × d`
pub fn masked_mean(x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.unsqueeze(2)?;
    let s = x.broadcast_mul(&m)?.sum(1)?;
    s.broadcast_div(&mask.sum_keepdim(1)?)
}

/// The hidden state at each sequence's last valid step: `Σ_t last_t h_t`.
///
/// # Shapes
/// * `h`: `B × T × d`, `last`: `B × T` (the one-hot of each sequence's last valid step)
/// * returns: `B × d`
pub fn last_valid(h: &Tensor, last: &Tensor) -> candle_core::Result<Tensor> {
    h.broadcast_mul(&last.unsqueeze(2)?)?.sum(1)
}
