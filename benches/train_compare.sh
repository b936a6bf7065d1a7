#!/usr/bin/env bash
# `make compare-train`: Candle vs PyTorch eager, training steps per epoch at MOSI shapes, same machine,
# same run. Builds the Rust example, makes a throwaway venv with torch (outside CI), runs both for
# every model × variant (one thread each, alternating, best of REPEATS) and prints the ratio table.
#   MODELS="flstm tfn mfn" VARIANTS="nll smmd" REPEATS=3 THREADS=1 benches/train_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example train_throughput
VENV=benches/.venv-torch
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch numpy
fi
exec "$VENV/bin/python" benches/train_compare.py target/release/examples/train_throughput
