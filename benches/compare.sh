#!/usr/bin/env bash
# `make compare`: builds the Rust timing example, makes a venv with numpy and scipy, runs compare.py.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example timings
VENV=.venv-bench
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy scipy
fi
exec "$VENV/bin/python" benches/compare.py target/release/examples/timings
