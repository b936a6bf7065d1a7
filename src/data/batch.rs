//! Batches for training: [`Dataset::batch`] gathers rows of a split on the host into a
//! [`SeqBatch`]; [`DeviceSplit`] uploads a split once and gathers its batches on the device.

use super::{bert::tokens, Dataset, Split};
use candle_core::{DType, Device, Tensor};

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct SeqBatch {
    /// `B × T × d_m` for text, audio, vision (`T` = the batch's longest valid length).
    pub inputs: [Tensor; 3],
    /// Valid lengths (≥ 1).
    pub lengths: Vec<usize>,
    /// `B × T` one-hot of the last valid step.
    pub last: Tensor,
    /// `B × T` 1 on valid steps, 0 on padding.
    pub mask: Tensor,
    /// `B` labels.
    pub label: Tensor,
    /// BERT tokens with word-aligned audio/vision, when the split carries tokens
    /// ([`tokens::TokenBatch`]); `None` otherwise.
    pub tokens: Option<tokens::TokenBatch>,
}

impl Dataset {
    /// The valid lengths of rows `idx` of `split` (clamped to `1..=t_max`) and the batch's step
    /// count, its longest length — padding is at the end, so a batch needs only those steps.
    fn batch_lengths(&self, split: &Split, idx: &[usize]) -> (Vec<usize>, usize) {
        let lengths: Vec<usize> = idx
            .iter()
            .map(|&i| split.lengths[i].clamp(1, self.t_max))
            .collect();
        let t = lengths.iter().copied().max().unwrap_or(1);
        (lengths, t)
    }

    /// A batch of the rows `idx` of `split`, with modalities in `drop` replaced by zeros
    /// (0 = text, 1 = audio, 2 = vision).
    pub fn batch(
        &self,
        split: &Split,
        idx: &[usize],
        drop: &[usize],
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<SeqBatch> {
        let tm = self.t_max;
        let b = idx.len();
        let (lengths, t) = self.batch_lengths(split, idx);
        let gather = |src: &[f32], d: usize, m: usize| -> candle_core::Result<Tensor> {
            let mut v = Vec::with_capacity(b * t * d);
            if drop.contains(&m) {
                v.resize(b * t * d, 0.0);
            } else {
                for &i in idx {
                    v.extend_from_slice(&src[i * tm * d..i * tm * d + t * d]);
                }
            }
            Tensor::from_vec(v, (b, t, d), device)?.to_dtype(dtype)
        };
        let [dt, da, dv] = self.dims;
        let mut last = vec![0f32; b * t];
        let mut mask = vec![0f32; b * t];
        for (r, &l) in lengths.iter().enumerate() {
            last[r * t + l - 1] = 1.0;
            for s in 0..l {
                mask[r * t + s] = 1.0;
            }
        }
        let labels: Vec<f32> = idx.iter().map(|&i| split.labels[i]).collect();
        Ok(SeqBatch {
            inputs: [
                gather(&split.text, dt, 0)?,
                gather(&split.audio, da, 1)?,
                gather(&split.vision, dv, 2)?,
            ],
            lengths,
            last: Tensor::from_vec(last, (b, t), device)?.to_dtype(dtype)?,
            mask: Tensor::from_vec(mask, (b, t), device)?.to_dtype(dtype)?,
            label: Tensor::from_vec(labels, b, device)?.to_dtype(dtype)?,
            tokens: split
                .tokens
                .as_ref()
                .map(|tk| tokens::token_batch(self, split, tk, idx, drop, dtype, device))
                .transpose()?,
        })
    }
}

/// A split's sequences and labels uploaded once to a device, so that a training step on a GPU
/// gathers its batch there ([`DeviceSplit::batch`]) instead of assembling it on the host and
/// copying `B × T × (d_t + d_a + d_v)` floats per step: per batch only the `B` row indices and
/// lengths travel (the valid-step mask and last-step one-hot are built on the device). Equal to
/// [`Dataset::batch`], tensor for tensor (tested on the CPU). BERT tokens, where a split carries
/// them, are still gathered on the host.
#[derive(Debug, Clone)]
pub struct DeviceSplit {
    /// `N × T_max × d_m` per modality.
    inputs: [Tensor; 3],
    /// `N` labels.
    labels: Tensor,
}

impl DeviceSplit {
    /// Uploads `split` of `ds` to `device` in `dtype`.
    pub fn upload(
        ds: &Dataset,
        split: &Split,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let (n, tm) = (split.len(), ds.t_max);
        let up = |src: &[f32], d: usize| -> candle_core::Result<Tensor> {
            if src.len() != n * tm * d {
                candle_core::bail!(
                    "split holds {} values, {n} clips × {tm} steps × {d} expected",
                    src.len()
                );
            }
            Tensor::from_slice(src, (n, tm, d), device)?.to_dtype(dtype)
        };
        let [dt, da, dv] = ds.dims;
        Ok(Self {
            inputs: [
                up(&split.text, dt)?,
                up(&split.audio, da)?,
                up(&split.vision, dv)?,
            ],
            labels: Tensor::from_slice(&split.labels, n, device)?.to_dtype(dtype)?,
        })
    }

    /// The batch of rows `idx` (of the uploaded `split`), modalities in `drop` zeroed — what
    /// [`Dataset::batch`] returns, gathered on the device.
    pub fn batch(
        &self,
        ds: &Dataset,
        split: &Split,
        idx: &[usize],
        drop: &[usize],
    ) -> candle_core::Result<SeqBatch> {
        let device = self.labels.device();
        let dtype = self.labels.dtype();
        let b = idx.len();
        let (lengths, t) = ds.batch_lengths(split, idx);
        let rows = Tensor::from_vec(
            idx.iter().map(|&i| i as u32).collect::<Vec<u32>>(),
            b,
            device,
        )?;
        let gather = |m: usize| -> candle_core::Result<Tensor> {
            let d = self.inputs[m].dim(2)?;
            if drop.contains(&m) {
                Tensor::zeros((b, t, d), dtype, device)
            } else {
                self.inputs[m]
                    .index_select(&rows, 0)?
                    .narrow(1, 0, t)?
                    .contiguous()
            }
        };
        let steps = Tensor::arange(0u32, t as u32, device)?.unsqueeze(0)?;
        // the last valid step of each row (lengths are ≥ 1); valid steps are those ≤ it
        let last_step = Tensor::from_vec(
            lengths.iter().map(|&l| l as u32 - 1).collect::<Vec<u32>>(),
            (b, 1),
            device,
        )?;
        let mask = steps.broadcast_le(&last_step)?.to_dtype(dtype)?;
        let last = steps.broadcast_eq(&last_step)?.to_dtype(dtype)?;
        Ok(SeqBatch {
            inputs: [gather(0)?, gather(1)?, gather(2)?],
            lengths,
            last,
            mask,
            label: self.labels.index_select(&rows, 0)?,
            tokens: split
                .tokens
                .as_ref()
                .map(|tk| tokens::token_batch(ds, split, tk, idx, drop, dtype, device))
                .transpose()?,
        })
    }
}
