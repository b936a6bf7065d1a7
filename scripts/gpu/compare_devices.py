"""Compares two reproduce-paper results folders of the same plan trained on different devices
(e.g. the smoke profile on the CPU and on CUDA): per run (model, variant, seed, batch, lr, weights)
the test metrics must agree within the tolerances below, and per (model, variant, seed) the
validation selection must pick the same grid point. Prints one line per run and a summary; exits 1
if anything is outside its tolerance. Standard library only (runs on the GPU machine's python3).

Usage: compare_devices.py CPU_DIR CUDA_DIR [--mae 0.05] [--acc2 3.0] [--corr 0.05]

Why tolerances and not equality: float32 sums run in a different order on the GPU (cuBLAS, CUDA
reductions), so trajectories drift apart over a few epochs; the smoke profile trains 4 epochs on
384 clips, where that drift moves test MAE by a few hundredths. The defaults are the documented
tolerance of `--device cuda` (docs/src/gpu-training.md).
"""
import json
import sys


def load(folder):
    runs = {}
    with open(f"{folder}/results.jsonl") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)["result"]
            c = r["config"]
            s = c["synergy"]
            key = (c["model"]["model"], c["variant"], c["seed"], c["batch_size"], c["lr"],
                   s["beta"], s["gamma_l2"], s["gamma_d"], s["gamma_k"])
            runs[key] = r
    return runs


def selection(runs):
    """(model, variant, seed) -> the grid point with the best validation score."""
    best = {}
    for key, r in runs.items():
        if r.get("failure") or r.get("test") is None:
            continue
        cell, point = key[:3], key[3:]
        lower = r["selection"] == "mae"
        score = r["valid_score"]
        if cell not in best or (score < best[cell][0] if lower else score > best[cell][0]):
            best[cell] = (score, point)
    return {k: v[1] for k, v in best.items()}


def main(argv):
    args = [a for a in argv[1:]]
    tol = {"mae": 0.05, "acc2": 3.0, "corr": 0.05}
    for name in list(tol):
        flag = "--" + name
        if flag in args:
            i = args.index(flag)
            tol[name] = float(args[i + 1])
            del args[i:i + 2]
    if len(args) != 2:
        print("usage: compare_devices.py CPU_DIR CUDA_DIR [--mae X] [--acc2 X] [--corr X]",
              file=sys.stderr)
        return 2
    a, b = load(args[0]), load(args[1])
    bad = 0
    if set(a) != set(b):
        print(f"different runs: {len(set(a) ^ set(b))} only in one folder")
        bad += 1
    for key in sorted(set(a) & set(b)):
        ra, rb = a[key], b[key]
        if (ra.get("failure") is None) != (rb.get("failure") is None):
            print(f"{key[:3]}: failed on one device only: {ra.get('failure')} / {rb.get('failure')}")
            bad += 1
            continue
        if ra.get("test") is None:
            continue
        ta, tb = ra["test"], rb["test"]
        d = {
            "mae": abs(ta["mae"] - tb["mae"]),
            "acc2": 100.0 * abs(ta["acc2_non0"] - tb["acc2_non0"]),
            "corr": abs(ta["corr"] - tb["corr"]),
        }
        ok = all(d[k] <= tol[k] for k in tol)
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {key[0]} {key[1]} seed {key[2]} b{key[3]} lr{key[4]}: "
              f"MAE {ta['mae']:.4f} vs {tb['mae']:.4f}, Acc2 {100 * ta['acc2_non0']:.1f} vs "
              f"{100 * tb['acc2_non0']:.1f}, Corr {ta['corr']:.4f} vs {tb['corr']:.4f}; "
              f"epochs {ra['epochs']} vs {rb['epochs']}")
    sa, sb = selection(a), selection(b)
    for cell in sorted(set(sa) | set(sb)):
        if sa.get(cell) != sb.get(cell):
            print(f"BAD selection {cell}: {sa.get(cell)} vs {sb.get(cell)}")
            bad += 1
    print(f"{len(set(a) & set(b))} runs compared, {len(sa)} selections; {bad} outside tolerance "
          f"(MAE {tol['mae']}, Acc2 {tol['acc2']} points, Corr {tol['corr']})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
