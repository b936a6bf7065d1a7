"""Side by side: the cvxpy BROJA estimator of Liang et al. (NeurIPS 2023, "Quantifying & Modeling
Multimodal Interactions") and `synergy pid`, on the same n = 10^4 samples with alphabets of k = 20.

Not run in CI. `benches/pid_compare/run.sh` builds the binary, makes a throwaway venv under /tmp
and runs this script; it prints each estimator's decomposition (bits) and wall time.

The Python side re-implements (in our own code) the formulation of the public estimator: one
k1 x k2 cvxpy variable per y and one for the (x1, x2) mass, the marginal constraints written
element by element, the objective sum_y rel_entr(Q_y, sum_y' Q_y' / ky), `prob.solve()` with
cvxpy's default solver and SCS as its fallback, then the decomposition from Q in nats (converted to
bits here). It is timed end to end (building the problem, solving, reading off the PID), as a user
of that estimator would experience it; `synergy pid` is timed end to end as a process (reading the
three .npy files, solving, printing).
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import cvxpy as cp
import numpy as np

N = int(os.environ.get("PID_N", "10000"))
K = int(os.environ.get("PID_K", "20"))
SEED = int(os.environ.get("PID_SEED", "0"))
REPS = int(os.environ.get("PID_REPS", "3"))


def liang_style_q(p):
    """argmin over Q of sum_y KL-type objective, as in the public cvxpy estimator."""
    k1, k2, ky = p.shape
    p1y = p.sum(axis=1)
    p2y = p.sum(axis=0)
    q = [cp.Variable((k1, k2), nonneg=True) for _ in range(ky)]
    qx = [cp.Variable((k1, k2), nonneg=True) for _ in range(ky)]
    cons = [cp.sum([cp.sum(v) for v in q]) == 1]
    for a in range(k1):
        for c in range(ky):
            cons.append(cp.sum([q[c][a, b] for b in range(k2)]) == p1y[a, c])
    for b in range(k2):
        for c in range(ky):
            cons.append(cp.sum([q[c][a, b] for a in range(k1)]) == p2y[b, c])
    cons += [cp.sum(q) / ky == qx[c] for c in range(ky)]
    obj = cp.sum([cp.sum(cp.rel_entr(q[c], qx[c])) for c in range(ky)])
    prob = cp.Problem(cp.Minimize(obj), cons)
    try:
        prob.solve(verbose=False, max_iters=10000)
        solver = prob.solver_stats.solver_name
    except Exception:  # the default solver rejects max_iters: the public code falls back to SCS
        prob.solve(solver=cp.SCS, verbose=False, max_iters=10000)
        solver = "SCS (fallback)"
    return np.stack([v.value for v in q], axis=2), solver


def mi_nats(pxy):
    a = pxy.sum(axis=1, keepdims=True)
    b = pxy.sum(axis=0, keepdims=True)
    m = pxy > 0
    return float((pxy[m] * np.log(pxy[m] / (a @ b)[m])).sum())


def pid_from(p, q):
    """The public estimator's read-out: R = CoI(Q), U_i = I_Q(Y; X_i | X_j), S = I_P − I_Q (nats)."""
    k1, k2, ky = p.shape
    flat = lambda d: d.transpose(2, 0, 1).reshape(ky, k1 * k2)
    q = np.maximum(q, 0.0)
    q = q / q.sum()
    coi = mi_nats(q.sum(axis=1)) + mi_nats(q.sum(axis=0)) - mi_nats(flat(q).T)
    u1 = sum(q[:, j, :].sum() * mi_nats(q[:, j, :] / q[:, j, :].sum()) for j in range(k2) if q[:, j, :].sum() > 0)
    u2 = sum(q[i, :, :].sum() * mi_nats(q[i, :, :] / q[i, :, :].sum()) for i in range(k1) if q[i, :, :].sum() > 0)
    syn = mi_nats(flat(p).T) - mi_nats(flat(q).T)
    return {"redundancy": coi, "unique_x1": u1, "unique_x2": u2, "synergy": syn, "mutual_information": mi_nats(flat(p).T)}


def main(binary):
    rng = np.random.default_rng(SEED)
    x1 = rng.integers(0, K, N)
    x2 = rng.integers(0, K, N)
    # a target with all four kinds of information: a synergistic sum, copies of each input
    # through a coarse map, and noise
    mode = rng.integers(0, 4, N)
    y = np.select(
        [mode == 0, mode == 1, mode == 2],
        [(x1 + x2) % K, x1 // 2, (x2 // 2) + K // 2],
        rng.integers(0, K, N),
    )
    p = np.zeros((K, K, K))
    np.add.at(p, (x1, x2, y), 1.0)
    p /= N
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, v in (("x1", x1), ("x2", x2), ("y", y)):
            path = os.path.join(d, f"{name}.npy")
            np.save(path, v.astype(np.int64))
            paths.append(path)
        cmd = [binary, "pid", "--x1", paths[0], "--x2", paths[1], "--y", paths[2], "--json"]
        rust_t = []
        for _ in range(REPS):
            s = time.perf_counter()
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rust_t.append(time.perf_counter() - s)
        rust = json.loads(out)
    s = time.perf_counter()
    q, solver = liang_style_q(p)
    py = {k: v / math.log(2) for k, v in pid_from(p, q).items()}
    py_t = time.perf_counter() - s
    print(f"n = {N}, k = {K} (x1, x2, y), seed {SEED}; {os.cpu_count()} CPUs")
    print(f"{'':22s} {'python (cvxpy, ' + solver + ')':>30s} {'synergy pid':>14s} {'difference':>11s}")
    for k in ("redundancy", "unique_x1", "unique_x2", "synergy", "mutual_information"):
        print(f"{k:22s} {py[k]:30.6f} {rust[k]:14.6f} {py[k] - rust[k]:11.2e}")
    print(f"{'wall time (s)':22s} {py_t:30.2f} {min(rust_t):14.3f}   (synergy pid: best of {REPS})")
    print(f"speed-up: {py_t / min(rust_t):.0f}x")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/release/synergy")
