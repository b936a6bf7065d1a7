//! Multivariate kurtosis: Mardia's `b₂,p` and the paper's streaming regularised estimator `L_κ`.

use super::linalg::{centred_gram, centred_mahalanobis_sq, cholesky_lower, inv_lower, mean_rows};
use crate::error::{EstimatorError, Result};
use ndarray::{Array2, ArrayView2};
use serde::Serialize;

/// Mardia's multivariate kurtosis and its normal-theory z statistic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mardia {
    /// `b₂,p = (1/n) Σᵢ (dᵢᵀ S⁻¹ dᵢ)²`.
    pub b2: f64,
    /// `(b₂,p − p(p+2)) / sqrt(8p(p+2)/n)`.
    pub z: f64,
    /// Rows.
    pub n: usize,
    /// Dimensions.
    pub p: usize,
}

/// Mardia's kurtosis: `b₂,p = (1/n) Σᵢ (dᵢᵀ S⁻¹ dᵢ)²` with `dᵢ = xᵢ − x̄` and the ML covariance
/// `S = (1/n) Σ dᵢ dᵢᵀ`, through its Cholesky factor `S = L Lᵀ` (`dᵢᵀ S⁻¹ dᵢ = ‖L⁻¹dᵢ‖²`; `S⁻¹` is
/// never formed), plus the normal-theory statistic
/// `z = (b₂,p − p(p+2)) / sqrt(8p(p+2)/n)` (asymptotically N(0,1) for Gaussian data).
///
/// Facts: `b₂,p ≥ p²` (Jensen, since `mean(mᵢ) = p`) and invariance under invertible
/// affine maps `x ↦ Ax + c`. Needs `n > p` and a non-singular `S`.
///
/// # Example
///
/// Jensen's bound `b₂,p ≥ p²` holds for every sample, with equality when every point is at the
/// same Mahalanobis distance (here: the four corners of a square):
///
/// ```
/// use neural_synergy::estimators::mardia_kurtosis;
///
/// let corners = ndarray::array![[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]];
/// assert!((mardia_kurtosis(&corners.view())? - 4.0).abs() < 1e-12);
/// # Ok::<(), neural_synergy::EstimatorError>(())
/// ```
pub fn mardia(x: &ArrayView2<f64>) -> Result<Mardia> {
    super::check_matrix("x", x)?;
    let (n, p) = x.dim();
    if n <= p {
        return Err(EstimatorError::TooFewSamples {
            what: "Mardia kurtosis",
            need: format!("more rows than dimensions (n > p = {p})"),
            got: n,
        });
    }
    let mu = mean_rows(x);
    let s = centred_gram(x, &mu, f64::INFINITY) / n as f64;
    let l = cholesky_lower(&s, "x", n)?;
    let m = centred_mahalanobis_sq(x, &mu, &l);
    let b2 = m.iter().map(|v| v * v).sum::<f64>() / n as f64;
    let pp = (p * (p + 2)) as f64;
    let z = (b2 - pp) / (8.0 * pp / n as f64).sqrt();
    Ok(Mardia {
        b2: super::finite("Mardia kurtosis", b2)?,
        z,
        n,
        p,
    })
}

/// `b₂,p` alone; see [`mardia`].
pub fn mardia_kurtosis(x: &ArrayView2<f64>) -> Result<f64> {
    Ok(mardia(x)?.b2)
}

/// The z statistic alone; see [`mardia`].
pub fn mardia_z(x: &ArrayView2<f64>) -> Result<f64> {
    Ok(mardia(x)?.z)
}

/// Configuration of the streaming regularised kurtosis (validated by [`Self::init`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct StreamingKurtosisParams {
    /// EMA decay `α ∈ [0, 1)` of the covariance.
    pub alpha: f64,
    /// Ridge `c ≥ 0` added to the diagonal before inversion.
    pub ridge: f64,
    /// Maximum norm of a centred row in the covariance update (`> 0`, `+∞` disables clipping).
    pub clip: f64,
}

impl Default for StreamingKurtosisParams {
    fn default() -> Self {
        Self {
            alpha: 0.9,
            ridge: 1e-3,
            clip: f64::INFINITY,
        }
    }
}

impl StreamingKurtosisParams {
    /// Validates the parameters and returns an empty estimator.
    pub fn init(self) -> Result<StreamingKurtosis> {
        if !(self.alpha.is_finite() && (0.0..1.0).contains(&self.alpha)) {
            return Err(EstimatorError::InvalidParameter {
                name: "alpha",
                reason: format!("must be in [0, 1), got {}", self.alpha),
            });
        }
        if !(self.ridge.is_finite() && self.ridge >= 0.0) {
            return Err(EstimatorError::InvalidParameter {
                name: "ridge",
                reason: format!("must be finite and >= 0, got {}", self.ridge),
            });
        }
        if self.clip.is_nan() || self.clip <= 0.0 {
            return Err(EstimatorError::InvalidParameter {
                name: "clip",
                reason: format!("must be > 0 (inf disables clipping), got {}", self.clip),
            });
        }
        Ok(StreamingKurtosis {
            params: self,
            s: None,
            steps: 0,
        })
    }
}

/// Streaming regularised kurtosis — the paper's `L_κ` (Appendix D), over batches `Z_t` (`N × p`):
///
/// * `dⱼ = zⱼ − z̄` (batch mean); clipped rows `cⱼ = dⱼ · min(1, clip/‖dⱼ‖)`;
/// * `C_t = (1/N) Σⱼ cⱼ cⱼᵀ`; `S₁ = C₁`, `S_t = α S_{t−1} + (1−α) C_t`;
/// * `κ_t = (1/N) Σⱼ (dⱼᵀ (S_t + ridge·I)⁻¹ dⱼ)²` — the **unclipped** `dⱼ` in the quadratic form.
///
/// The paper writes the update as `S = α S + Σ cⱼcⱼᵀ/N`; without the `(1−α)` factor `S` converges to
/// `C/(1−α)`, which rescales κ by `(1−α)²` and couples the penalty's size to α. This is the
/// normalised (convex-combination) form of the same moving average: it keeps `S` on the scale of a
/// covariance, so that with `α = 0`, `clip = ∞`, `ridge = 0` each `κ_t` equals Mardia's `b₂,p` of
/// batch `t`.
#[derive(Debug, Clone)]
pub struct StreamingKurtosis {
    params: StreamingKurtosisParams,
    s: Option<Array2<f64>>,
    steps: usize,
}

impl StreamingKurtosis {
    /// The parameters.
    pub fn params(&self) -> StreamingKurtosisParams {
        self.params
    }

    /// Current moving-average covariance `S_t` (`None` before the first batch).
    pub fn covariance(&self) -> Option<&Array2<f64>> {
        self.s.as_ref()
    }

    /// Batches consumed.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Clipped covariance `C_t = (1/N) Σⱼ cⱼcⱼᵀ` of a batch (a helper shared with the Candle path).
    pub(crate) fn clipped_cov(z: &ArrayView2<f64>, clip: f64) -> Array2<f64> {
        let mu = mean_rows(z);
        centred_gram(z, &mu, clip) / z.nrows() as f64
    }

    /// `S_t` after seeing batch `z`, without consuming it.
    pub(crate) fn next_covariance(&self, z: &ArrayView2<f64>) -> Array2<f64> {
        let c = Self::clipped_cov(z, self.params.clip);
        match &self.s {
            None => c,
            Some(s) => s * self.params.alpha + c * (1.0 - self.params.alpha),
        }
    }

    /// Validates batch `Z_t` and computes `S_t` and the Cholesky factor of `S_t + ridge·I` without
    /// changing the state (the Candle loss uses this, then [`Self::commit`]s).
    pub fn prepare(&self, z: &ArrayView2<f64>) -> Result<KurtosisStep> {
        super::check_matrix("batch", z)?;
        let (n, p) = z.dim();
        if let Some(s) = &self.s {
            if s.nrows() != p {
                return Err(EstimatorError::DimensionMismatch {
                    x: "batch",
                    dx: p,
                    y: "previous batches",
                    dy: s.nrows(),
                });
            }
        }
        if n < 2 {
            return Err(EstimatorError::TooFewSamples {
                what: "streaming kurtosis batch",
                need: "at least 2 rows".into(),
                got: n,
            });
        }
        let s_new = self.next_covariance(z);
        let reg = &s_new + &(Array2::<f64>::eye(p) * self.params.ridge);
        let chol = cholesky_lower(&reg, "S_t + ridge·I", n)?;
        Ok(KurtosisStep {
            covariance: s_new,
            chol,
        })
    }

    /// Makes `step.covariance` the state `S_t`.
    pub fn commit(&mut self, step: KurtosisStep) {
        self.s = Some(step.covariance);
        self.steps += 1;
    }

    /// Consumes batch `Z_t` and returns `κ_t`. On error the state is unchanged.
    pub fn update(&mut self, z: &ArrayView2<f64>) -> Result<f64> {
        let step = self.prepare(z)?;
        let kappa = regularised_kurtosis(z, &step.chol)?;
        self.commit(step);
        Ok(kappa)
    }
}

/// One prepared step of [`StreamingKurtosis`]: `S_t` and the lower Cholesky factor `L` of
/// `S_t + ridge·I`.
#[derive(Debug, Clone)]
pub struct KurtosisStep {
    /// `S_t`.
    pub covariance: Array2<f64>,
    /// `L` with `L Lᵀ = S_t + ridge·I`.
    pub chol: Array2<f64>,
}

impl KurtosisStep {
    /// `(S_t + ridge·I)⁻¹ = L⁻ᵀ L⁻¹` (for the Candle loss, which multiplies on the device).
    pub fn precision(&self) -> Array2<f64> {
        let li = inv_lower(&self.chol);
        li.t().dot(&li)
    }
}

/// `κ = (1/N) Σⱼ (dⱼᵀ (L Lᵀ)⁻¹ dⱼ)²` with `dⱼ = zⱼ − z̄` (the batch mean) and a fixed factor `L` —
/// the quadratic form of the streaming estimator with `S_t` held fixed, as the gradient of the
/// Candle `L_κ` sees it.
pub fn regularised_kurtosis(z: &ArrayView2<f64>, chol: &Array2<f64>) -> Result<f64> {
    super::check_matrix("batch", z)?;
    if chol.nrows() != z.ncols() {
        return Err(EstimatorError::DimensionMismatch {
            x: "batch",
            dx: z.ncols(),
            y: "covariance factor",
            dy: chol.nrows(),
        });
    }
    let m = centred_mahalanobis_sq(z, &mean_rows(z), chol);
    super::finite(
        "streaming kurtosis",
        m.iter().map(|v| v * v).sum::<f64>() / z.nrows() as f64,
    )
}
