//! A bidirectional one-layer LSTM ([`BiLstm`]) on padded batches, and the per-sequence time
//! reversal it reads the backward direction through ([`Reversal`]). MISA's utterance encoder and
//! MMIM's audio/vision encoders.

use super::{fast_lstm, FastLstm};
use crate::data::SeqBatch;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// A bidirectional one-layer LSTM on padded batches (`B × T × d`, padding at the end): two
/// [`FastLstm`]s (candle-nn's parameter names and initialisation) that run each sequence's valid
/// steps only, as PyTorch's packed sequences do.
pub(crate) struct BiLstm {
    fwd: FastLstm,
    bwd: FastLstm,
}

impl BiLstm {
    pub(crate) fn new(d: usize, h: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            fwd: fast_lstm(d, h, vb.pp("fwd"))?,
            bwd: fast_lstm(d, h, vb.pp("bwd"))?,
        })
    }

    /// Per-step outputs (`[h→_t, h←_t]`; at padded steps the frozen final states, which nothing
    /// downstream reads) and the final hidden states `h→` (at the last valid step) and `h←` (after
    /// reading back to step 0).
    ///
    /// # Shapes
    /// * `x`: `B × T × d`, `p` built for the same batch
    /// * returns `(out, h→, h←)`: `B × T × 2h`, `B × h`, `B × h`
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        p: &Reversal,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let (of, hf, _) = self.fwd.seq_masked(x, &p.lengths)?;
        let (ob, hb, _) = self.bwd.seq_masked(&p.reverse(x)?, &p.lengths)?;
        let out = Tensor::cat(&[of, p.reverse(&ob)?], 2)?;
        Ok((out, hf, hb))
    }
}

/// A batch's lengths as the index that reverses each sequence within its valid length (padded
/// steps stay in place).
pub(crate) struct Reversal {
    rev: Tensor,
    /// Valid lengths clamped to `1..=T` (an empty clip reads its first, padded, step).
    lengths: Vec<usize>,
    b: usize,
    t: usize,
}

impl Reversal {
    pub(crate) fn new(batch: &SeqBatch) -> candle_core::Result<Self> {
        let (b, t) = batch.mask.dims2()?;
        let mut idx = Vec::with_capacity(b * t);
        let lengths: Vec<usize> = batch.lengths.iter().map(|&l| l.clamp(1, t)).collect();
        for (r, &l) in lengths.iter().enumerate() {
            for s in 0..t {
                let src = if s < l { l - 1 - s } else { s };
                idx.push((r * t + src) as u32);
            }
        }
        Ok(Self {
            rev: Tensor::from_vec(idx, b * t, batch.mask.device())?,
            lengths,
            b,
            t,
        })
    }

    /// `y[b, s] = x[b, l_b − 1 − s]` for `s < l_b`, `x[b, s]` otherwise (an involution).
    fn reverse(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let d = x.dim(2)?;
        x.reshape((self.b * self.t, d))?
            .index_select(&self.rev, 0)?
            .reshape((self.b, self.t, d))
    }
}
