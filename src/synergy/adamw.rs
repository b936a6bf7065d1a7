//! AdamW with the update of each variable fused into one in-place pass on the CPU.
//!
//! The update is candle-nn's `AdamW` (Loshchilov & Hutter; PyTorch's `AdamW` with decoupled
//! weight decay), step `t`, per element:
//!
//! `m ← β₁ m + (1 − β₁) g`, `v ← β₂ v + (1 − β₂) g²`,
//! `θ ← θ (1 − η λ) − η · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)`.
//!
//! candle-nn evaluates it as about a dozen tensor ops per variable, each allocating a tensor of the
//! variable's size; for TFN's 9 M-weight post-fusion layer that was 45 % of a training step
//! (memory traffic and page faults). Here the moments live in host vectors and one loop updates
//! `m`, `v` and `θ` in place ([`candle_core::InplaceOp2`] on the variable's storage), with the
//! **same f32/f64 operations in the same order** as candle-nn's tensor ops (the scalar factors are
//! computed in f64 and converted, as candle's `affine` does), so the parameters are bit-identical to
//! candle-nn's — tested. Variables that are not f32/f64 CPU tensors (e.g. on a GPU) use candle-nn's
//! `AdamW`.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Layout, Result, Var, WithDType};
use candle_nn::{Optimizer, ParamsAdamW};
use std::sync::Mutex;

/// First and second moments of one variable.
#[derive(Debug)]
enum Moments {
    F32(Vec<f32>, Vec<f32>),
    F64(Vec<f64>, Vec<f64>),
}

#[derive(Debug)]
struct Slot {
    var: Var,
    moments: Mutex<Moments>,
}

/// AdamW over a set of variables; see the module notes.
#[derive(Debug)]
pub struct AdamW {
    fused: Vec<Slot>,
    /// Variables the fused path cannot update (not f32/f64 on the CPU).
    other: Option<candle_nn::AdamW>,
    params: ParamsAdamW,
    step_t: usize,
}

impl AdamW {
    /// AdamW over `vars` (non-float variables are ignored, as candle-nn does).
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let mut fused = Vec::new();
        let mut other = Vec::new();
        for var in vars.into_iter().filter(|v| v.dtype().is_float()) {
            let n = var.elem_count();
            let moments = match (var.device().is_cpu(), var.dtype()) {
                (true, DType::F32) => Some(Moments::F32(vec![0.0; n], vec![0.0; n])),
                (true, DType::F64) => Some(Moments::F64(vec![0.0; n], vec![0.0; n])),
                _ => None,
            };
            match moments {
                Some(m) => fused.push(Slot {
                    var,
                    moments: Mutex::new(m),
                }),
                None => other.push(var),
            }
        }
        let other = if other.is_empty() {
            None
        } else {
            Some(candle_nn::AdamW::new(other, params.clone())?)
        };
        Ok(Self {
            fused,
            other,
            params,
            step_t: 0,
        })
    }

    /// One update of every variable that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_t += 1;
        let p = &self.params;
        let t = self.step_t as i32;
        let factors = Factors {
            beta1: p.beta1,
            beta2: p.beta2,
            scale_m: 1f64 / (1f64 - p.beta1.powi(t)),
            scale_v: 1f64 / (1f64 - p.beta2.powi(t)),
            decay: 1f64 - p.lr * p.weight_decay,
            lr: p.lr,
            eps: p.eps,
        };
        for slot in &self.fused {
            if let Some(g) = grads.get(slot.var.as_tensor()) {
                let g = g.contiguous()?;
                slot.var.as_tensor().inplace_op2(
                    &g,
                    &Update {
                        moments: &slot.moments,
                        f: factors,
                    },
                )?;
            }
        }
        if let Some(o) = &mut self.other {
            o.step(grads)?;
        }
        Ok(())
    }

    /// The learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.params.lr
    }
}

/// The step's scalar factors (f64, converted to the element type as candle's `affine` does).
#[derive(Debug, Clone, Copy)]
struct Factors {
    beta1: f64,
    beta2: f64,
    scale_m: f64,
    scale_v: f64,
    decay: f64,
    lr: f64,
    eps: f64,
}

/// `√x` of the element type.
trait Sqrt {
    fn sqrt(self) -> Self;
}

impl Sqrt for f32 {
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Sqrt for f64 {
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

struct Update<'a> {
    moments: &'a Mutex<Moments>,
    f: Factors,
}

/// The per-element update, operation for operation as candle-nn's `AdamW::step` (`x * c` is
/// candle's `affine(c, 0)`: `x · c + 0`; `x + ε` is `affine(1, ε)`: `x · 1 + ε`).
fn update<T: WithDType + Sqrt>(theta: &mut [T], g: &[T], m: &mut [T], v: &mut [T], f: &Factors) {
    let c = |x: f64| T::from_f64(x);
    let (zero, one) = (c(0.0), c(1.0));
    let (b1, omb1, b2, omb2) = (c(f.beta1), c(1.0 - f.beta1), c(f.beta2), c(1.0 - f.beta2));
    let (sm, sv, decay, lr, eps) = (c(f.scale_m), c(f.scale_v), c(f.decay), c(f.lr), c(f.eps));
    for (((th, &gi), mi), vi) in theta.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let nm = (*mi * b1 + zero) + (gi * omb1 + zero);
        let nv = (*vi * b2 + zero) + ((gi * gi) * omb2 + zero);
        let m_hat = nm * sm + zero;
        let v_hat = nv * sv + zero;
        let nt = *th * decay + zero;
        let adjusted = m_hat / (v_hat.sqrt() * one + eps);
        *th = nt - (adjusted * lr + zero);
        *mi = nm;
        *vi = nv;
    }
}

impl candle_core::InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (Some((a1, e1)), Some((a2, e2))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("fused-adamw: non-contiguous variable or gradient");
        };
        if e1 - a1 != e2 - a2 {
            candle_core::bail!("fused-adamw: {} values, gradient of {}", e1 - a1, e2 - a2);
        }
        let mut guard = self
            .moments
            .lock()
            .map_err(|_| candle_core::Error::Msg("fused-adamw: poisoned moments".into()))?;
        match (s1, s2, &mut *guard) {
            (CpuStorage::F32(th), CpuStorage::F32(g), Moments::F32(m, v)) if m.len() == e1 - a1 => {
                update(&mut th[a1..e1], &g[a2..e2], m, v, &self.f)
            }
            (CpuStorage::F64(th), CpuStorage::F64(g), Moments::F64(m, v)) if m.len() == e1 - a1 => {
                update(&mut th[a1..e1], &g[a2..e2], m, v, &self.f)
            }
            _ => candle_core::bail!("fused-adamw: dtype or size of the variable changed"),
        }
        Ok(())
    }
}
