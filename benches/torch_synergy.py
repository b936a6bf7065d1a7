"""PyTorch eager implementation of `synergy check-device --bench`'s workload, op for op, for the
side-by-side GPU comparison (run on the lent GPU machine in the same call as the Candle binary).

Workload per iteration (f32): unbiased MMD² between X and Y with five fixed bandwidths (σ_med of the
first batch × {0.25, 0.5, 1, 2, 4}), L_κ of X with a fixed precision matrix (the streaming
estimator's (S + ridge·I)⁻¹ after one batch, ridge 1e-3), and the DV bound of the linear critic
t = Xw; forward + backward to X and Y. Prints one JSON object.
"""
import json
import math
import sys
import time

import torch


def sqd(a, b):
    na = (a * a).sum(1, keepdim=True)
    nb = (b * b).sum(1, keepdim=True).T
    return (na + nb - 2.0 * (a @ b.T)).clamp_min(0.0)


def kern(d, sigmas):
    return sum(torch.exp(d * (-0.5 / (s * s))) for s in sigmas) / len(sigmas)


def mmd2_unbiased(x, y, sigmas):
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = kern(sqd(x, x), sigmas), kern(sqd(y, y), sigmas), kern(sqd(x, y), sigmas)
    sxx = kxx.sum() - kxx.diagonal().sum()
    syy = kyy.sum() - kyy.diagonal().sum()
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * kxy.sum() / (n * m)


def kurtosis(z, p):
    d = z - z.mean(0, keepdim=True)
    q = ((d @ p) * d).sum(1)
    return (q * q).mean()


def dv(tp, tq):
    return tp.mean() - (torch.logsumexp(tq.flatten(), 0) - math.log(tq.numel()))


def median_sigma(x, y):
    z = torch.cat([x, y]).double()
    d = sqd(z, z)
    iu = torch.triu_indices(len(z), len(z), 1)
    v = d[iu[0], iu[1]].sort().values
    c = v.numel()
    med = v[c // 2] if c % 2 else 0.5 * (v[c // 2 - 1] + v[c // 2])
    return float(med.sqrt())


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    dev = torch.device("cuda")
    g = torch.Generator().manual_seed(0)
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "timings": []}
    for batch in (64, 256):
        d = 128
        x0 = torch.randn(batch, d, generator=g, dtype=torch.float64)
        y0 = torch.randn(batch, d, generator=g, dtype=torch.float64)
        s = median_sigma(x0, y0)
        sigmas = [c * s for c in (0.25, 0.5, 1.0, 2.0, 4.0)]
        dc = x0 - x0.mean(0)
        cov = dc.T @ dc / batch + 1e-3 * torch.eye(d, dtype=torch.float64)
        p = torch.linalg.inv(cov).float().to(dev)
        w = torch.randn(d, 1, generator=g).to(dev)
        x = x0.float().to(dev).requires_grad_(True)
        y = y0.float().to(dev).requires_grad_(True)

        def run():
            loss = mmd2_unbiased(x, y, sigmas) + kurtosis(x, p) + dv(x @ w, y @ w)
            gx, gy = torch.autograd.grad(loss, (x, y))
            return gx, gy

        for _ in range(5):
            run()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            run()
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3 / iters
        out["timings"].append({"batch": batch, "dim": d, "dtype": "f32", "ms_per_iter": ms, "iters": iters})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
