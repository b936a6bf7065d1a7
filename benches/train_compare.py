"""Runs the Candle example and the PyTorch script alternately for every model x variant and prints
the per-epoch time of each (best of REPEATS) and the ratio candle / torch (< 1: candle is faster).

Usage: train_compare.py PATH/TO/train_throughput  (env: MODELS, VARIANTS, REPEATS, THREADS, BATCH,
DEVICE = cpu (default) or cuda: both engines on GPU 0; needs a Candle build with --features cuda)
"""
import json
import os
import subprocess
import sys

candle = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
models = os.environ.get("MODELS", "flstm tfn mfn").split()
variants = os.environ.get("VARIANTS", "nll smmd").split()
repeats = int(os.environ.get("REPEATS", "3"))
threads = os.environ.get("THREADS", "1")
batch = os.environ.get("BATCH", "32")
device = os.environ.get("DEVICE", "cpu")


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


shapes = run([candle, "--shapes"])
dims = ",".join(str(d) for d in shapes["dims"])
rows = []
for m in models:
    for v in variants:
        best = {"candle": None, "torch": None, "candle_cpu": None, "torch_cpu": None}
        for _ in range(repeats):
            cv = v if v == "nll" else "nll-" + v
            c = run([candle, "--model", m, "--variant", cv, "--batch", batch, "--threads", threads, "--device", device, "--json"])
            t = run([sys.executable, os.path.join(here, "torch_train.py"), "--model", m, "--variant", v,
                     "--batch", batch, "--threads", threads, "--dims", dims, "--seq", str(shapes["t_max"]),
                     "--device", device, "--json"])
            for k, r in (("candle", c), ("torch", t)):
                for key, field in ((k, "seconds_per_epoch"), (k + "_cpu", "cpu_seconds_per_epoch")):
                    s = r.get(field)
                    if s is not None:
                        best[key] = s if best[key] is None else min(best[key], s)
        rows.append((m, v, best, t.get("torch", "?")))
        print(f"{m} {v}: candle {best['candle']:.2f} s, torch {best['torch']:.2f} s", file=sys.stderr)


def cell(x):
    return "—" if x is None else f"{x:.2f}"


def ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}×"


print("| model | variant | Candle s/epoch (CPU s) | PyTorch s/epoch (CPU s) | ratio wall | ratio CPU |")
print("|---|---|---|---|---|---|")
for m, v, b, _ in rows:
    print(f"| {m} | {v} | {cell(b['candle'])} ({cell(b['candle_cpu'])}) | {cell(b['torch'])} ({cell(b['torch_cpu'])}) "
          f"| {ratio(b['candle'], b['torch'])} | {ratio(b['candle_cpu'], b['torch_cpu'])} |")
print(f"\ndevice {device}, batch {batch}, {threads} thread(s) each, best of {repeats} (alternating); shapes {shapes['dims']} x "
      f"{shapes['t_max']} steps, {shapes['clips']} training clips; torch {rows[0][3] if rows else '?'}. "
      "Ratio < 1: Candle is faster.")
