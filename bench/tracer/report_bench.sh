#!/usr/bin/env bash
# Times `padhook report` on a synthetic trace of CALLS calls (default 10
# million: one thread, 100 functions nested up to 8 deep, written by
# tests/tracer/synth_trace in the format of docs/trace-format.md) and prints
# the median, min and max wall time of RUNS runs (default 7) after one warm-up
# run (the trace is then in the page cache, as right after `padhook record`).
#
#   bench/tracer/report_bench.sh [--build DIR] [--calls N] [--runs N] [-- REPORT-ARGS...]
#
# The build directory must hold padhook and synth_trace (cmake --build DIR
# --target padhook_cli synth_trace). Target (issue 5): <= 0.5 s for 10M calls.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=build calls=10000000 runs=7
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "report_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
padhook=$build/tools/padhook/padhook
synth=$build/tests/tracer/synth_trace
for tool in "$padhook" "$synth"; do
  [[ -x $tool ]] || { echo "report_bench.sh: $tool missing (build padhook_cli and synth_trace)" >&2; exit 1; }
done

trace=$build/bench-tracer/calls-$calls.data
if [[ ! -f $trace/record.json ]]; then
  echo "==> writing $trace ($calls calls)"
  rm -rf "$trace"
  "$synth" bench "$trace" "$calls"
fi
du -sh "$trace" | sed 's/^/==> trace size: /'

command=("$padhook" report -i "$trace" "$@")
echo "==> command: ${command[*]}"
"${command[@]}" >/dev/null  # warm-up
times=()
for ((i = 0; i < runs; i++)); do
  start=$(date +%s%N)
  "${command[@]}" >/dev/null
  end=$(date +%s%N)
  times+=("$(( (end - start) / 1000 ))")
done
printf '%s\n' "${times[@]}" | sort -n | awk -v calls="$calls" -v runs="$runs" '
  { t[NR] = $1 }
  END {
    median = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
    printf "report on %d calls: median %.3f s (min %.3f, max %.3f, %d runs)\n",
           calls, median / 1e6, t[1] / 1e6, t[NR] / 1e6, runs
  }'
