//! Building blocks of the C-network: the paper's four-layer LeakyReLU MLP, fixed random
//! (Johnson–Lindenstrauss) projections and an invertible affine-coupling network.

use super::Result;
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Negative slope of the LeakyReLU activations (PyTorch's default; the paper does not say).
pub(crate) const LEAKY_SLOPE: f64 = 0.01;

/// Four linear layers with LeakyReLU between them: `in → h → h → h → out` (Appendix C: "a four
/// layer MLP with LeakyRelu activation" for `Q` and `g`).
#[derive(Debug, Clone)]
pub struct Mlp {
    /// `(weight out × in, bias out)` of each layer, as candle-nn's `linear` creates them.
    layers: [(Tensor, Tensor); 4],
}

impl Mlp {
    /// Creates the MLP's variables under `vb`.
    pub fn new(vb: VarBuilder, input: usize, hidden: usize, output: usize) -> Result<Self> {
        let layer = |i: usize, o: usize, name: &str| -> Result<(Tensor, Tensor)> {
            let vb = vb.pp(name);
            // candle-nn's `linear` names and initialises them; both are variables under `vb`.
            let l: Linear = linear(i, o, vb.clone())?;
            Ok((l.weight().clone(), vb.get(o, "bias")?))
        };
        Ok(Self {
            layers: [
                layer(input, hidden, "l0")?,
                layer(hidden, hidden, "l1")?,
                layer(hidden, hidden, "l2")?,
                layer(hidden, output, "l3")?,
            ],
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // Each layer is one fused op (`ops::dense`: gemm, bias and LeakyReLU; the composed
        // candle ops off the CPU), the same values as `Linear` followed by `leaky_relu`.
        let mut h = x.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = crate::kernels::dense(&h, w, b, (i < 3).then_some(LEAKY_SLOPE))?;
        }
        Ok(h)
    }
}

/// A fixed random projection `x ↦ x R`, `R ∈ ℝ^{in×k}` with i.i.d. `N(0, 1/k)` entries drawn from a
/// seeded ChaCha8 stream. Not trained (a constant tensor, not a variable).
#[derive(Debug, Clone)]
pub struct RandomProjection {
    r: Tensor,
}

impl RandomProjection {
    /// `in → k` projection from `seed`.
    pub fn new(input: usize, k: usize, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scale = 1.0 / (k as f64).sqrt();
        let v: Vec<f64> = (0..input * k)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                z * scale
            })
            .collect();
        let r = Tensor::from_vec(v, (input, k), device)?.to_dtype(dtype)?;
        Ok(Self { r })
    }

    /// The matrix `R`.
    pub fn matrix(&self) -> &Tensor {
        &self.r
    }
}

impl Module for RandomProjection {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.r)
    }
}

/// One affine coupling layer (RealNVP): the input is split into halves `(a, b)`; `a` passes
/// unchanged and `b ↦ b ⊙ exp(s(a)) + t(a)` with `s = tanh(·)` of an MLP output, so the inverse is
/// exact: `b = (y_b − t(a)) ⊙ exp(−s(a))`. `flip` swaps which half conditions.
#[derive(Debug, Clone)]
pub struct AffineCoupling {
    net: Mlp,
    split: usize,
    dim: usize,
    flip: bool,
}

impl AffineCoupling {
    /// A coupling layer on `dim ≥ 2` features.
    pub fn new(vb: VarBuilder, dim: usize, hidden: usize, flip: bool) -> Result<Self> {
        if dim < 2 {
            return Err(crate::error::ParamError::new(
                "dim",
                format!("must be >= 2 for an affine coupling layer, got {dim}"),
            )
            .into());
        }
        let split = dim / 2;
        let (na, nb) = if flip {
            (dim - split, split)
        } else {
            (split, dim - split)
        };
        Ok(Self {
            net: Mlp::new(vb, na, hidden, 2 * nb)?,
            split,
            dim,
            flip,
        })
    }

    fn halves(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let lo = x.narrow(D::Minus1, 0, self.split)?;
        let hi = x.narrow(D::Minus1, self.split, self.dim - self.split)?;
        Ok(if self.flip { (hi, lo) } else { (lo, hi) })
    }

    fn join(&self, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        if self.flip {
            Tensor::cat(&[b, a], D::Minus1)
        } else {
            Tensor::cat(&[a, b], D::Minus1)
        }
    }

    fn scale_shift(&self, a: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let st = self.net.forward(a)?;
        let nb = st.dim(D::Minus1)? / 2;
        let s = st.narrow(D::Minus1, 0, nb)?.tanh()?;
        let t = st.narrow(D::Minus1, nb, nb)?;
        Ok((s, t))
    }

    /// The exact inverse of [`Module::forward`].
    pub fn inverse(&self, y: &Tensor) -> candle_core::Result<Tensor> {
        let (a, yb) = self.halves(y)?;
        let (s, t) = self.scale_shift(&a)?;
        let b = (yb - t)?.mul(&s.neg()?.exp()?)?;
        self.join(&a, &b)
    }
}

impl Module for AffineCoupling {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (a, b) = self.halves(x)?;
        let yb = crate::kernels::affine_couple(&b, &self.net.forward(&a)?)?;
        self.join(&a, &yb)
    }
}

/// A stack of affine coupling layers with alternating halves: an invertible map `ℝ^k → ℝ^k`.
#[derive(Debug, Clone)]
pub struct InvertibleNet {
    layers: Vec<AffineCoupling>,
}

impl InvertibleNet {
    /// `n_layers` coupling layers on `dim` features.
    pub fn new(vb: VarBuilder, dim: usize, hidden: usize, n_layers: usize) -> Result<Self> {
        let layers = (0..n_layers)
            .map(|i| AffineCoupling::new(vb.pp(format!("c{i}")), dim, hidden, i % 2 == 1))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// The exact inverse of [`Module::forward`].
    pub fn inverse(&self, y: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = y.clone();
        for l in self.layers.iter().rev() {
            x = l.inverse(&x)?;
        }
        Ok(x)
    }
}

impl Module for InvertibleNet {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            h = l.forward(&h)?;
        }
        Ok(h)
    }
}

/// Re-initialises every variable of `vars` from `seed`, so that models are reproducible on every
/// device (candle's own initialisers draw from an unseeded CPU generator). PyTorch's `nn.Linear`
/// scheme: a weight `out × in` and its bias are uniform on `±1/sqrt(in)`; other 2-D variables use
/// their second dimension as fan-in, other 1-D ones their length. Each variable draws from its own
/// ChaCha8 stream keyed by `(seed, name)`, so adding a variable does not change the others.
///
/// Left at their construction values (constants, as in PyTorch): normalisation parameters — a
/// 1-D `…weight` with no 2-D sibling (LayerNorm/BatchNorm scale, 1) and its `…bias` (0) — and
/// BatchNorm running statistics (`…running_mean`, `…running_var`).
pub fn seed_varmap(vars: &candle_nn::VarMap, seed: u64) -> Result<()> {
    let data = vars.data().lock().expect("VarMap lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            continue;
        }
        if dims.len() == 1 {
            let stem = name
                .strip_suffix("weight")
                .or_else(|| name.strip_suffix("bias"));
            if let Some(stem) = stem {
                let w = data.get(&format!("{stem}weight"));
                if w.is_some_and(|w| w.dims().len() == 1) {
                    continue; // a norm layer's scale or shift
                }
            }
        }
        let fan_in = match dims.as_slice() {
            [_, i] => *i,
            [n] => {
                // a bias takes the fan-in of its sibling weight
                let prefix = name.strip_suffix("bias").unwrap_or(name);
                data.get(&format!("{prefix}weight"))
                    .and_then(|w| w.dims().get(1).copied())
                    .unwrap_or(*n)
            }
            other => other.iter().skip(1).product(),
        }
        .max(1);
        let bound = 1.0 / (fan_in as f64).sqrt();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a of the name
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ h);
        let n: usize = dims.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|_| {
                let u: f64 = rand::Rng::random(&mut rng);
                (2.0 * u - 1.0) * bound
            })
            .collect();
        let t = Tensor::from_vec(v, dims.as_slice(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}
