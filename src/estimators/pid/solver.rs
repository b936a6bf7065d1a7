//! The primal log-barrier interior-point method on `Δ_p`: centring by damped Newton steps on
//! `φ_t(q) = t·f(q) − Σ ln q(c)`, `t` multiplied by 100 until the certified duality gap is within
//! tolerance, and the structured Newton step (per-pair rank-one parts, per-slice constraint
//! blocks, one dense pair system) with its buffers.

use super::layout::Layout;
use super::spd::{dot, invert_spd, solve_spd};
use super::{PidError, PidOptions, Result, LN2, NONE};

/// What the interior-point method returns.
pub(super) struct Solved {
    pub(super) q: Vec<f64>,
    /// `min f = −max H_q(Y | X1, X2)` at the returned `q` (upper bound), nats.
    pub(super) f: f64,
    pub(super) gap: f64,
    pub(super) newton_steps: usize,
}

impl Layout {
    /// The barrier method; see the `pid` module's documentation (its section *Solver*).
    pub(super) fn solve(&self, opts: &PidOptions) -> Result<Solved> {
        let n_cells = self.key.len();
        let n_rows = self.target.len();
        let mut ws = Workspace::new(self);
        let mut q = self.q0.clone();
        let mut nu = vec![0.0; n_rows];
        let mut qm = vec![0.0; self.n_pairs()];
        let tol = opts.tol_bits * LN2;
        let f0 = self.objective(&q, &mut qm);
        let gap0 = (f0 - self.dual_bound(&nu)).max(1e-3);
        let mut t = n_cells as f64 / gap0;
        let mut steps = 0usize;
        let mut best = (f64::INFINITY, f64::INFINITY, q.clone());
        loop {
            // centring: Newton's method on φ_t over Δ_p
            for _ in 0..200 {
                if steps >= opts.max_newton {
                    break;
                }
                let lam2 = self.newton(&q, &nu, t, &mut ws);
                steps += 1;
                if !lam2.is_finite() {
                    break;
                }
                let mut a = 1.0_f64;
                for (v, d) in q.iter().zip(&ws.dq) {
                    if *d < 0.0 {
                        a = a.min(-0.99 * v / d);
                    }
                }
                if lam2 > 1e-2 {
                    let m0 = self.merit(&q, &nu, t, &mut qm);
                    loop {
                        for ((tr, v), d) in ws.trial.iter_mut().zip(&q).zip(&ws.dq) {
                            *tr = v + a * d;
                        }
                        let m1 = self.merit(&ws.trial, &nu, t, &mut qm);
                        if m1 <= m0 - 0.01 * a * lam2 || a < 1e-12 {
                            break;
                        }
                        a *= 0.5;
                    }
                    if a < 1e-12 {
                        break; // no progress possible at this t
                    }
                }
                for (v, d) in q.iter_mut().zip(&ws.dq) {
                    *v += a * d;
                }
                for (v, d) in nu.iter_mut().zip(&ws.dnu) {
                    *v += a * d;
                }
                if lam2 < 1e-9 {
                    break;
                }
            }
            let f = self.objective(&q, &mut qm);
            let gap = f - self.dual_bound(&nu);
            let gap = if gap.is_finite() {
                gap.max(0.0)
            } else {
                f64::INFINITY
            };
            if gap < best.1 {
                best = (f, gap, q.clone());
            }
            if gap <= tol || steps >= opts.max_newton || t > 1e18 {
                break;
            }
            t *= 100.0;
        }
        let (f, gap, q) = best;
        // a gap a thousand times the tolerance is still far below any reported digit; beyond
        // that the answer is refused
        if gap.is_nan() || gap > tol.max(1e-7 * LN2) {
            return Err(PidError::NotConverged {
                gap_bits: gap / LN2,
                newton_steps: steps,
            });
        }
        Ok(Solved {
            q,
            f,
            gap,
            newton_steps: steps,
        })
    }

    /// One Newton step of `φ_t` at `q` (with the multiplier estimate `nu`): writes the step
    /// `ws.dq` and the multiplier correction `ws.dnu`, returns the Newton decrement `λ²`.
    ///
    /// The system `[∇²φ/t  Aᵀ; A  0]` is solved as follows (`s = 1/(t q)`, `d = (1 + s)/q`):
    /// `∇²φ/t = diag(d) − Σ_m (1/q_m) 1_m 1_mᵀ`; with `w_m = 1_mᵀΔq / q_m` the step is
    /// `Δq = D⁻¹(h + E w + AᵀΔν)`, where `(ρ + Zᵀ K⁻¹ Z) w = Zᵀ K⁻¹ g₂ + Eᵀ D⁻¹ h`,
    /// `K = A D⁻¹ Aᵀ` (block-diagonal over `y`), `Z = A D⁻¹ E`, `ρ_m = Σ_{c∈m} q s/(1 + s)`,
    /// `g₂ = −(A q − b) − A D⁻¹ h`, `Δν = K⁻¹(g₂ − Z w)` and `h = −(ln q(y|x1,x2) − α − β) + s`.
    fn newton(&self, q: &[f64], nu: &[f64], t: f64, ws: &mut Workspace) -> f64 {
        let np = self.n_pairs();
        self.pair_mass(q, &mut ws.qm);
        ws.rho.iter_mut().for_each(|v| *v = 0.0);
        ws.rhs_t.iter_mut().for_each(|v| *v = 0.0);
        for (c, &v) in q.iter().enumerate() {
            let m = self.pair_of[c];
            let s = 1.0 / (t * v);
            let ell = (v / ws.qm[m]).ln();
            ws.h[c] = -(ell - self.nu_sum(nu, c)) + s;
            ws.dinv[c] = v / (1.0 + s);
            ws.rho[m] += v / (t * v + 1.0);
            ws.rhs_t[m] += ws.dinv[c] * ws.h[c];
        }
        let tm = &mut ws.t;
        tm.iter_mut().for_each(|v| *v = 0.0);
        for m in 0..np {
            tm[m * np + m] = ws.rho[m];
        }
        // per slice: K, its inverse, g2, and the slice's share of T and of its right-hand side
        for (yy, cells) in self.slice_cells.iter().enumerate() {
            let off = self.row_off[yy];
            let dim = self.row_off[yy + 1] - off;
            let nc = cells.len();
            let k = &mut ws.kinv[yy];
            k.iter_mut().for_each(|v| *v = 0.0);
            let g2 = &mut ws.g2[off..off + dim];
            g2.copy_from_slice(&self.target[off..off + dim]); // −(Aq − b) accumulates below
                                                              // local rows of the cells (b = a for the implied row: its column of V is e_a only)
            ws.la.clear();
            ws.lb.clear();
            ws.lp.clear();
            ws.ld.clear();
            for &c in cells {
                let a = self.row_a[c] - off;
                let di = ws.dinv[c];
                let add = q[c] + di * ws.h[c];
                k[a * dim + a] += di;
                g2[a] -= add;
                let b = self.row_b[c];
                let b = if b == NONE {
                    NONE
                } else {
                    let b = b - off;
                    k[b * dim + b] += di;
                    k[a * dim + b] += di;
                    k[b * dim + a] += di;
                    g2[b] -= add;
                    b
                };
                ws.la.push(a);
                ws.lb.push(b);
                ws.lp.push(self.pair_of[c]);
                ws.ld.push(di);
            }
            invert_spd(k, dim, &mut ws.scratch);
            // kg2 = K⁻¹ g2
            let kg2 = &mut ws.kg2[off..off + dim];
            for r in 0..dim {
                kg2[r] = dot(&k[r * dim..(r + 1) * dim], g2);
            }
            // Ut[r, l] = dinv_l (K⁻¹[r, a_l] + K⁻¹[r, b_l]): row r of K⁻¹ V, contiguous in l
            ws.ut.resize(dim * nc, 0.0);
            for r in 0..dim {
                let kr = &k[r * dim..(r + 1) * dim];
                let ur = &mut ws.ut[r * nc..(r + 1) * nc];
                for (l, u) in ur.iter_mut().enumerate() {
                    let b = ws.lb[l];
                    let v = kr[ws.la[l]] + if b == NONE { 0.0 } else { kr[b] };
                    *u = ws.ld[l] * v;
                }
            }
            // T[m(l), m(l2)] += dinv_l (Ut[a_l, l2] + Ut[b_l, l2]) for l2 ≤ l: the cells of a
            // slice belong to distinct pairs, in increasing order, so this is the lower triangle
            let runs = &self.slice_runs[yy];
            for l in 0..nc {
                let m = ws.lp[l];
                let di = ws.ld[l];
                let ua = &ws.ut[ws.la[l] * nc..ws.la[l] * nc + l + 1];
                let row = &mut tm[m * np..(m + 1) * np];
                let b = ws.lb[l];
                let ub = if b == NONE {
                    None
                } else {
                    Some(&ws.ut[b * nc..b * nc + l + 1])
                };
                // contiguous runs of pairs: vectorisable slices of the row of T
                for &(l0, m0, len) in runs {
                    if l0 > l {
                        break;
                    }
                    let len = len.min(l + 1 - l0);
                    let dst = &mut row[m0..m0 + len];
                    let ua = &ua[l0..l0 + len];
                    match ub {
                        None => {
                            for (d, &u) in dst.iter_mut().zip(ua) {
                                *d += di * u;
                            }
                        }
                        Some(ub) => {
                            for ((d, &u), &v) in dst.iter_mut().zip(ua).zip(&ub[l0..l0 + len]) {
                                *d += di * (u + v);
                            }
                        }
                    }
                }
                let v = kg2[ws.la[l]] + if b == NONE { 0.0 } else { kg2[b] };
                ws.rhs_t[m] += di * v;
            }
        }
        let w = &mut ws.w;
        w.copy_from_slice(&ws.rhs_t);
        if !solve_spd(tm, np, w, &mut ws.tcopy) {
            return f64::NAN;
        }
        // Δν = K⁻¹ (g2 − Z w) per slice, then Δq
        for (yy, cells) in self.slice_cells.iter().enumerate() {
            let off = self.row_off[yy];
            let dim = self.row_off[yy + 1] - off;
            let zr = &mut ws.zr[off..off + dim];
            zr.copy_from_slice(&ws.g2[off..off + dim]);
            for &c in cells {
                let v = ws.dinv[c] * w[self.pair_of[c]];
                zr[self.row_a[c] - off] -= v;
                if self.row_b[c] != NONE {
                    zr[self.row_b[c] - off] -= v;
                }
            }
            let k = &ws.kinv[yy];
            for r in 0..dim {
                ws.dnu[off + r] = dot(&k[r * dim..(r + 1) * dim], zr);
            }
        }
        let mut lam2 = 0.0;
        for c in 0..q.len() {
            let d = ws.dinv[c] * (ws.h[c] + w[self.pair_of[c]] + self.nu_sum(&ws.dnu, c));
            ws.dq[c] = d;
            lam2 += ws.h[c] * d;
        }
        t * lam2
    }
}

/// Buffers of the Newton step.
struct Workspace {
    qm: Vec<f64>,
    h: Vec<f64>,
    dinv: Vec<f64>,
    rho: Vec<f64>,
    rhs_t: Vec<f64>,
    kinv: Vec<Vec<f64>>,
    g2: Vec<f64>,
    kg2: Vec<f64>,
    zr: Vec<f64>,
    ut: Vec<f64>,
    la: Vec<usize>,
    lb: Vec<usize>,
    lp: Vec<usize>,
    ld: Vec<f64>,
    scratch: Vec<f64>,
    /// The pair system (row-major `np × np`, lower triangle), a copy for retries, its solution.
    t: Vec<f64>,
    tcopy: Vec<f64>,
    w: Vec<f64>,
    dq: Vec<f64>,
    dnu: Vec<f64>,
    trial: Vec<f64>,
}

impl Workspace {
    fn new(l: &Layout) -> Self {
        let nc = l.key.len();
        let np = l.n_pairs();
        let nr = l.target.len();
        let kinv = (0..l.slice_cells.len())
            .map(|y| {
                let d = l.row_off[y + 1] - l.row_off[y];
                vec![0.0; d * d]
            })
            .collect();
        Self {
            qm: vec![0.0; np],
            h: vec![0.0; nc],
            dinv: vec![0.0; nc],
            rho: vec![0.0; np],
            rhs_t: vec![0.0; np],
            kinv,
            g2: vec![0.0; nr],
            kg2: vec![0.0; nr],
            zr: vec![0.0; nr],
            ut: Vec::new(),
            la: Vec::new(),
            lb: Vec::new(),
            lp: Vec::new(),
            ld: Vec::new(),
            scratch: Vec::new(),
            t: vec![0.0; np * np],
            tcopy: Vec::new(),
            w: vec![0.0; np],
            dq: vec![0.0; nc],
            dnu: vec![0.0; nr],
            trial: vec![0.0; nc],
        }
    }
}
