#!/usr/bin/env bash
# Instructions per call of a tiny leaf, state by state (the attach issue),
# counted by callgrind over CALLS calls: only bench_call_loop and what it calls
# is collected (--toggle-collect), and the set-up (attaching, up to 100,000
# functions) runs uninstrumented (--instr-atstart=no; the binaries start
# instrumentation right before the loop).
#   usage: bench/call_overhead_callgrind.sh [BUILD_DIR] [CALLS]   (default: build 100000)
#   env: PADHOOK_CG_STATES="clients/1 ..."  count only these padhook states
#        (default: all; the per-extra-client lines need clients/1, clients/100,
#        no_vector/1 and no_vector/100); PADHOOK_CG_XRAY=0 skips xray_driver
# Prints: state, instructions, per call, above unpatched (b), above
# uninstrumented (a). padhook states come from bench/call_overhead_benchmark,
# XRay states from bench/xray/xray_driver (when built), each against its own
# (a) and (b).
set -euo pipefail
build=${1:-build}
calls=${2:-100000}
pad=$build/bench/call_overhead_benchmark
xray=$build/bench/xray/xray_driver
[ -x "$pad" ] || { echo "no $pad: build the project first" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

count() {  # count BINARY STATE -> instructions in bench_call_loop (inclusive)
  local bin=$1 state=$2 f
  f=$out/$(echo "$state" | tr '/' '_')
  valgrind --tool=callgrind --smc-check=all --instr-atstart=no --callgrind-out-file="$f.out" \
    '--toggle-collect=*bench_call_loop*' "$bin" --count "$state" "$calls" > "$f.log" 2>&1 ||
    { echo "callgrind failed for $state; log:" >&2; cat "$f.log" >&2; exit 1; }
  n=$(awk '/^calls/ {print $2}' "$f.log")
  [ "$n" = "$calls" ] || { echo "$state: no 'calls' line" >&2; cat "$f.log" >&2; exit 1; }
  callgrind_annotate "$f.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'
}

row() {  # row STATE IR BASE_B_IR BASE_A_IR
  awk -v s="$1" -v ir="$2" -v b="$3" -v a="$4" -v n="$calls" \
    'BEGIN { printf "%-38s %12d %9.2f %9.2f %9.2f\n", s, ir, ir / n, (ir - b) / n, (ir - a) / n }'
}

printf '%-38s %12s %9s %9s %9s\n' state instructions per_call above_b above_a
declare -A ir
states=${PADHOOK_CG_STATES:-uninstrumented unpatched_fresh unpatched clients/1 clients/2 clients/10 clients/100 \
  one_client/others_100k one_client/other_clients_100 one_client/both no_vector/1 no_vector/100 entry_exit/1 entry_exit/promises}
# The baselines of the above_b / above_a columns are always counted.
for s in uninstrumented unpatched $states; do
  [ -n "${ir[$s]:-}" ] || ir[$s]=$(count "$pad" "$s")
done
for s in $states; do
  row "padhook $s" "${ir[$s]}" "${ir[unpatched]}" "${ir[uninstrumented]}"
done
if [ -n "${ir[clients/100]:-}" ] && [ -n "${ir[clients/1]:-}" ]; then
  awk -v a="${ir[clients/1]}" -v b="${ir[clients/100]}" -v n="$calls" \
    'BEGIN { printf "%-38s %12s %9.2f\n", "padhook per extra client", "", (b - a) / n / 99 }'
fi
if [ -n "${ir[no_vector/100]:-}" ] && [ -n "${ir[no_vector/1]:-}" ]; then
  awk -v a="${ir[no_vector/1]}" -v b="${ir[no_vector/100]}" -v n="$calls" \
    'BEGIN { printf "%-38s %12s %9.2f\n", "padhook per extra no_vector client", "", (b - a) / n / 99 }'
fi
if [ -x "$xray" ] && [ "${PADHOOK_CG_XRAY:-1}" != 0 ]; then
  for s in plain xray_unpatched xray_patched padhook_unpatched padhook_one; do
    ir[x_$s]=$(count "$xray" "$s")
  done
  row "xray_driver plain" "${ir[x_plain]}" "${ir[x_plain]}" "${ir[x_plain]}"
  for s in xray_unpatched xray_patched; do
    row "xray_driver $s" "${ir[x_$s]}" "${ir[x_xray_unpatched]}" "${ir[x_plain]}"
  done
  for s in padhook_unpatched padhook_one; do
    row "xray_driver $s" "${ir[x_$s]}" "${ir[x_padhook_unpatched]}" "${ir[x_plain]}"
  done
fi
