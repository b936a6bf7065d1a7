#!/usr/bin/env bash
# Submits a reproduce-paper grid as a Slurm job array of N shards plus the report job that runs
# once every shard has succeeded (--dependency=afterok). Prints "ARRAY_JOB_ID REPORT_JOB_ID".
#
#   scripts/slurm/submit.sh -n 20 -o results/paper-mosi [-c 4] [-s "sbatch options"] -- \
#       --profile paper --tier synthetic
#
#   -n N        shards (array tasks 0..N-1)
#   -o OUT      shared output folder (on a file system every node sees)
#   -c CPUS     CPUs per task = runs trained in parallel per shard (default 1)
#   -s OPTS     extra sbatch options for both jobs (e.g. "--partition=cpu --time=24:00:00")
#   after --     reproduce-paper's flags (not --out/--shard/--jobs: set here)
# Environment: REPRODUCE_PAPER = the binary (default target/release/reproduce-paper here).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
n="" out="" cpus=1 extra=""
while getopts "n:o:c:s:h" opt; do
  case "$opt" in
    n) n="$OPTARG" ;;
    o) out="$OPTARG" ;;
    c) cpus="$OPTARG" ;;
    s) extra="$OPTARG" ;;
    *) sed -n '2,15p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ -z "$out" ]; then
  echo "submit.sh: need -n N (>= 1) and -o OUT" >&2
  exit 2
fi
export REPRODUCE_PAPER="${REPRODUCE_PAPER:-$PWD/target/release/reproduce-paper}"
if [ ! -x "$REPRODUCE_PAPER" ]; then
  echo "submit.sh: $REPRODUCE_PAPER is not an executable (cargo build --release, or set REPRODUCE_PAPER)" >&2
  exit 2
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
# shellcheck disable=SC2086
array=$(sbatch --parsable --export=ALL $extra --array="0-$((n - 1))" --cpus-per-task="$cpus" \
  --output="$out/slurm-%A_%a.out" "$here/reproduce.sbatch" "$out" "$@")
array="${array%%;*}"
# shellcheck disable=SC2086
report=$(sbatch --parsable --export=ALL $extra --dependency="afterok:$array" \
  --output="$out/slurm-report-%j.out" "$here/report.sbatch" "$out")
report="${report%%;*}"
echo "$array $report"
