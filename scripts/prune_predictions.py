#!/usr/bin/env python3
"""Drop the saved predictions of runs that no table uses, to keep a committed results folder small.

usage: scripts/prune_predictions.py results/<folder> [...]

Reads the folder's rendered table.json (render it first: `reproduce-paper report --from DIR`).
For every (model, variant, seed) whose grid point was selected there, the other runs of that seed
lose `test_predictions` and `dropped[].predictions` (set to null); their configuration, metrics,
validation scores and wall times stay. Selection never changes to a run that lost the
selection once (adding runs only adds candidates), so every table re-renders identically;
runs of seeds still incomplete keep everything. The file is rewritten atomically.
"""
import json
import os
import sys


def ident(result):
    return json.dumps(result["config"], sort_keys=True)


def prune(folder):
    table = json.load(open(os.path.join(folder, "table.json")))
    selected = {}
    for s in table["selected_runs"]:
        c = s["result"]["config"]
        selected[(c["model"]["model"], c["variant"], c["seed"])] = ident(s["result"])
    path = os.path.join(folder, "results.jsonl")
    out, pruned = [], 0
    for line in open(path):
        if not line.strip():
            continue
        rec = json.loads(line)
        r = rec["result"]
        c = r["config"]
        sel = selected.get((c["model"]["model"], c["variant"], c["seed"]))
        if sel is not None and sel != ident(r) and r.get("test_predictions") is not None:
            r["test_predictions"] = None
            for d in r.get("dropped") or []:
                d["predictions"] = None
            pruned += 1
        out.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, path)
    print(f"{path}: {pruned} runs' predictions dropped, {os.path.getsize(path)} bytes")


for folder in sys.argv[1:]:
    prune(folder)
