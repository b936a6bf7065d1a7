#!/usr/bin/env bash
# The one prepared script for a GPU session (issue 11): run ON THE GPU MACHINE from the repository
# root, with `.gpu/` carried (see ../shared/gpu/README.md and the README's "CUDA training"):
#   .gpu/reproduce-paper.xz, .gpu/train_throughput.xz  (built here with --features cuda)
#   .gpu/on-gpu-env.sh                                  (copied from ../shared/gpu/)
# Writes everything under $OUT (default ./gpu-out): the smoke profile on CPU and on CUDA with the
# comparison, throughput numbers (Candle CUDA vs PyTorch CUDA, and both on the CPU
# for reference) and the logs. Each part has its own time limit so one slow part cannot eat the
# whole budget.
set -u
OUT="${OUT:-./gpu-out}"
mkdir -p "$OUT"
cd .gpu || exit 2
. ./on-gpu-env.sh | tee "$OUT/gpu.txt"
for b in reproduce-paper train_throughput; do
  python3 -c "import lzma,shutil,sys;shutil.copyfileobj(lzma.open(sys.argv[1]),open(sys.argv[2],'wb'))" "$b.xz" "$b"
  chmod +x "$b"
done
cd ..
RP=.gpu/reproduce-paper
TT=.gpu/train_throughput
SMOKE=(--profile smoke --models flstm,tfn,lmf,mfn --variants nll,nll-skl,nll-smmd --quiet)
# 1. smoke profile: CUDA vs CPU (same plan, separate folders)
timeout 240 "$RP" "${SMOKE[@]}" --device cuda --out "$OUT/smoke-cuda" > "$OUT/smoke-cuda.md" 2> "$OUT/smoke-cuda.err"
echo "cuda smoke rc=$?" | tee -a "$OUT/summary.txt"
timeout 240 "$RP" "${SMOKE[@]}" --device cpu --jobs 8 --out "$OUT/smoke-cpu" > "$OUT/smoke-cpu.md" 2> "$OUT/smoke-cpu.err"
echo "cpu smoke rc=$?" | tee -a "$OUT/summary.txt"
python3 scripts/gpu/compare_devices.py "$OUT/smoke-cpu" "$OUT/smoke-cuda" | tee "$OUT/compare.txt" | tail -n 1 | tee -a "$OUT/summary.txt"
# 2. throughput: Candle vs PyTorch eager, one training epoch at MOSI shapes, on CUDA
PY=python3; [ -x /opt/torch/.venv/bin/python3 ] && PY=/opt/torch/.venv/bin/python3
DEVICE=cuda MODELS="flstm tfn mfn" VARIANTS="nll smmd" REPEATS=2 timeout 240 "$PY" benches/train_compare.py "$TT" > "$OUT/compare-train-cuda.md" 2> "$OUT/compare-train-cuda.err"
echo "compare-train cuda rc=$?" | tee -a "$OUT/summary.txt"
cat "$OUT/compare-train-cuda.md" | tee -a "$OUT/summary.txt"
# 3. the cost plan with a measured GPU epoch: one-epoch quick runs per model on CUDA
timeout 120 "$RP" --profile quick --models flstm,tfn,lmf,mfn,misa --variants nll,nll-smmd --max-epochs 1 --device cuda --quiet --out "$OUT/epoch-cuda" > "$OUT/epoch-cuda.md" 2> "$OUT/epoch-cuda.err"
echo "one-epoch cuda rc=$?" | tee -a "$OUT/summary.txt"
grep -A 20 "s / epoch" "$OUT/epoch-cuda.md" | head -n 14 | tee -a "$OUT/summary.txt"
# 4. the paper profile's cost plan, its GPU column filled from the one-epoch CUDA runs of part 3
timeout 60 "$RP" --profile paper --models flstm,tfn,lmf,mfn,misa --plan --out "$OUT/epoch-cuda" > "$OUT/plan-paper.md" 2> "$OUT/plan-paper.err"
echo "plan rc=$?" | tee -a "$OUT/summary.txt"
cat "$OUT/plan-paper.md" | tee -a "$OUT/summary.txt"
