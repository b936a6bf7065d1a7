//! Batches and predictions: where a run's batches are assembled (host or device) and a model's
//! predictions on a whole split.

use crate::data::{Dataset, Split};
use crate::models::{FusionModel, TRAIN_DTYPE};
use candle_core::{DType, Device};

/// Where a run's batches are assembled. On the CPU, on the host from the dataset's arrays (no copy
/// is needed). On any other device each split is uploaded once, the first time it is used
/// ([`crate::data::DeviceSplit`]), and batches are gathered there — a GPU step then uploads only
/// its row indices and lengths instead of the batch's sequences.
pub(crate) struct Batcher<'a> {
    pub(super) ds: &'a Dataset,
    device: Device,
    uploaded: [std::cell::OnceCell<crate::data::DeviceSplit>; 3],
}

impl<'a> Batcher<'a> {
    pub(crate) fn new(ds: &'a Dataset, device: &Device) -> Self {
        Self {
            ds,
            device: device.clone(),
            uploaded: Default::default(),
        }
    }

    /// The device the batches are made on.
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// The batch of rows `idx` of `split` (one of the dataset's three), modalities in `drop` zeroed.
    pub(crate) fn batch(
        &self,
        split: &Split,
        idx: &[usize],
        drop: &[usize],
    ) -> candle_core::Result<crate::data::SeqBatch> {
        let ds = self.ds;
        let which = [&ds.train, &ds.valid, &ds.test]
            .iter()
            .position(|s| std::ptr::eq(*s, split));
        match which {
            Some(k) if !self.device.is_cpu() => {
                let up = match self.uploaded[k].get() {
                    Some(up) => up,
                    None => {
                        let up =
                            crate::data::DeviceSplit::upload(ds, split, TRAIN_DTYPE, &self.device)?;
                        self.uploaded[k].get_or_init(|| up)
                    }
                };
                up.batch(ds, split, idx, drop)
            }
            _ => ds.batch(split, idx, drop, TRAIN_DTYPE, &self.device),
        }
    }
}

/// Predictions of `model` on a whole split (inference: no C-network, no dropout), with the
/// modalities in `drop` zeroed (0 = text, 1 = audio, 2 = vision).
pub fn predict<M: FusionModel>(
    model: &M,
    ds: &Dataset,
    split: &Split,
    drop: &[usize],
    device: &Device,
) -> crate::synergy::Result<Vec<f64>> {
    predict_with(model, split, drop, &Batcher::new(ds, device))
}

/// [`predict`] with a run's batcher (its uploaded splits are reused).
pub(crate) fn predict_with<M: FusionModel>(
    model: &M,
    split: &Split,
    drop: &[usize],
    batcher: &Batcher<'_>,
) -> crate::synergy::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(split.len());
    let idx: Vec<usize> = (0..split.len()).collect();
    for chunk in idx.chunks(128) {
        let b = batcher.batch(split, chunk, drop)?;
        let p = model.forward(&b, false)?.prediction;
        out.extend(p.to_dtype(DType::F64)?.to_vec1::<f64>()?);
    }
    Ok(out)
}

pub(crate) fn labels_f64(s: &Split) -> Vec<f64> {
    s.labels.iter().map(|v| *v as f64).collect()
}
