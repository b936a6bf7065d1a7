#!/usr/bin/env python3
"""Prints the facts about the real label files that the synthetic tiers embed as constants
(`src/data/mod.rs`: `mosei_facts`, `urfunny_facts`). Python standard library only; reads
`../shared/data` (or the folder given as the first argument):

    python3 scripts/data_facts.py ../shared/data

The `data_tiers` tests recompute every constant from the same files (with the crate's own CSV and
pickle readers) when SYNERGY_SHARED is set, so an edit here that is not copied there fails a test.
"""
import csv
import pickle
import statistics
import sys

data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"


def tokenize(text):
    """The real-text tier's tokenizer: lower-case, whitespace split, trim everything but
    alphanumerics and apostrophes from both ends, drop empty tokens."""
    out = []
    for t in text.lower().split():
        keep = lambda c: c.isalnum() or c == "'"
        i, j = 0, len(t)
        while i < j and not keep(t[i]):
            i += 1
        while j > i and not keep(t[j - 1]):
            j -= 1
        if i < j:
            out.append(t[i:j])
    return out


rows = list(csv.DictReader(open(f"{data}/mosei/label.csv", newline="", encoding="utf-8")))
labels = [float(r["label"]) for r in rows]
counts = [0] * 37
for y in labels:
    counts[round(6 * y) + 18] += 1
words = sorted(len(tokenize(r["text"])) for r in rows)
print("// mosei_facts")
print(f"pub const LABEL_COUNTS: [f64; 37] = [{', '.join(f'{c}.0' for c in counts)}];")
print(f"pub const LABEL_SD: f64 = {statistics.pstdev(labels):.4f};")
print(f"pub const MEDIAN_WORDS: f64 = {statistics.median(words):.1f};")
print(f"pub const MEAN_WORDS: f64 = {statistics.mean(words):.2f};")
print(f"// clips {len(rows)}; labels not on the 1/6 grid: "
      f"{sum(1 for y in labels if abs(6 * y - round(6 * y)) > 1e-4)}")

folds = pickle.load(open(f"{data}/urfunny/v1/data_folds.pkl", "rb"))
humour = pickle.load(open(f"{data}/urfunny/v1/humor_label_sdk.pkl", "rb"))
print("// urfunny_facts")
print(f"pub const FOLDS: [usize; 3] = [{', '.join(str(len(folds[k])) for k in ('train', 'dev', 'test'))}];")
print("pub const HUMOROUS: [usize; 3] = ["
      + ", ".join(str(sum(int(humour[i]) for i in folds[k])) for k in ("train", "dev", "test")) + "];")
