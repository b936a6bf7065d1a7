//! Dense symmetric positive-definite algebra of the Newton step: the small per-slice inverses,
//! the pair system's solve (a blocked Cholesky factorisation with a ridge when rounding makes it
//! indefinite) and a reproducible dot product.

/// In-place inverse of a small symmetric positive-definite row-major matrix (Cholesky, then
/// `L⁻ᵀ L⁻¹`). A pivot that lost its precision is lifted to a tiny positive value: the
/// directions it stands for carry vanishing probability mass.
pub(super) fn invert_spd(a: &mut [f64], d: usize, l: &mut Vec<f64>) {
    if d == 0 {
        return;
    }
    let max_diag = (0..d).map(|i| a[i * d + i]).fold(0.0_f64, f64::max);
    let floor = (max_diag * 1e-300).max(f64::MIN_POSITIVE);
    l.clear();
    l.resize(d * d, 0.0);
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= l[j * d + k] * l[j * d + k];
        }
        let piv = s.max(floor).sqrt();
        l[j * d + j] = piv;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            l[i * d + j] = s / piv;
        }
    }
    // L⁻¹ in place of the lower triangle (column by column), then A⁻¹ = L⁻ᵀ L⁻¹
    let mut inv = vec![0.0; d * d];
    for j in 0..d {
        inv[j * d + j] = 1.0 / l[j * d + j];
        for i in j + 1..d {
            let mut s = 0.0;
            for k in j..i {
                s -= l[i * d + k] * inv[k * d + j];
            }
            inv[i * d + j] = s / l[i * d + i];
        }
    }
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (i..d).map(|k| inv[k * d + i] * inv[k * d + j]).sum();
            a[i * d + j] = s;
            a[j * d + i] = s;
        }
    }
}

/// Solves `T w = r` in place of `r` for the symmetric positive-definite pair system (row-major,
/// lower triangle) by [`cholesky_lower_in_place`]; if rounding made `T` indefinite, a growing ridge
/// is added until it factorises. Returns false when nothing helps.
pub(super) fn solve_spd(t: &mut [f64], n: usize, r: &mut [f64], copy: &mut Vec<f64>) -> bool {
    let max_diag = (0..n).map(|i| t[i * n + i].abs()).fold(0.0_f64, f64::max);
    copy.clear();
    copy.extend_from_slice(t);
    let mut ridge = 0.0;
    while !cholesky_lower_in_place(t, n) {
        ridge = if ridge == 0.0 {
            max_diag * 1e-15
        } else {
            ridge * 100.0
        };
        if !ridge.is_finite() || ridge > max_diag {
            return false;
        }
        t.copy_from_slice(copy);
        for i in 0..n {
            t[i * n + i] += ridge;
        }
    }
    // L y = r, then Lᵀ w = y
    for i in 0..n {
        r[i] = (r[i] - dot(&t[i * n..i * n + i], &r[..i])) / t[i * n + i];
    }
    for i in (0..n).rev() {
        let v = r[i] / t[i * n + i];
        r[i] = v;
        for (k, rk) in r[..i].iter_mut().enumerate() {
            *rk -= t[i * n + k] * v;
        }
    }
    r.iter().all(|v| v.is_finite())
}

/// `Σ aᵢ bᵢ` with four independent partial sums (vectorisable; a fixed order, so reproducible).
pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a4, b4) = (a[..n].chunks_exact(4), b[..n].chunks_exact(4));
    let (ra, rb) = (a4.remainder(), b4.remainder());
    let mut acc = [0.0; 4];
    for (x, y) in a4.zip(b4) {
        for ((s, u), v) in acc.iter_mut().zip(x).zip(y) {
            *s += u * v;
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Blocked right-looking Cholesky `A = L Lᵀ` of a row-major `n × n` matrix, in place of its lower
/// triangle (the upper one is used as scratch). Panels of 32 columns are factorised by scalar
/// loops; the trailing updates, where the flops are, go through the `gemm` crate (its
/// AVX-512/AVX2/FMA kernels are chosen at run time; single-threaded, so bit-reproducible).
/// Returns false on a non-positive pivot.
fn cholesky_lower_in_place(a: &mut [f64], n: usize) -> bool {
    const NB: usize = 32;
    let mut k0 = 0;
    while k0 < n {
        let kb = NB.min(n - k0);
        let k1 = k0 + kb;
        // columns k0..k1 of every row i ≥ k0 (row by row: a row needs only rows above it);
        // earlier columns were already subtracted by the trailing updates
        for i in k0..n {
            let (head, tail) = a.split_at_mut(i * n);
            let ri = &mut tail[..n];
            for j in k0..k1.min(i) {
                let rj = &head[j * n..j * n + n];
                ri[j] = (ri[j] - dot(&ri[k0..j], &rj[k0..j])) / rj[j];
            }
            if i < k1 {
                let d = ri[i] - dot(&ri[k0..i], &ri[k0..i]);
                if !(d > 0.0 && d.is_finite()) {
                    return false;
                }
                ri[i] = d.sqrt();
            }
        }
        if k1 < n {
            let m = n - k1;
            // A22 −= P Pᵀ with P = A[k1.., k0..k1]
            // SAFETY: P (columns k0..k1) and A22 (columns k1..n) of rows k1..n are disjoint
            // elements of `a`; all strides and extents stay inside the n × n buffer.
            unsafe {
                let base = a.as_mut_ptr();
                let p = base.add(k1 * n + k0) as *const f64;
                gemm::gemm(
                    m,
                    m,
                    kb,
                    base.add(k1 * n + k1),
                    1,
                    n as isize,
                    true,
                    p,
                    1,
                    n as isize,
                    p,
                    n as isize,
                    1,
                    1.0,
                    -1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
        k0 = k1;
    }
    true
}
