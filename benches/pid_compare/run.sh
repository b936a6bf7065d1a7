#!/usr/bin/env bash
# Side by side (not run in CI): the cvxpy BROJA estimator of Liang et al. and `synergy pid` on the
# same n = 10^4, k = 20 inputs. Builds the binary, makes a throwaway venv under /tmp (never in the
# repository) and runs compare.py. PID_N, PID_K, PID_SEED and PID_REPS override the sizes.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin synergy
VENV=${PID_VENV:-/tmp/pid-compare-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy scipy cvxpy
fi
exec "$VENV/bin/python" benches/pid_compare/compare.py target/release/synergy
