#!/usr/bin/env bash
# Instructions per ip -> metadata lookup, by method, counted by callgrind over
# one pass of 100,000 lookups (only the loop function is collected).
#   usage: bench/lookup_callgrind.sh [BUILD_DIR]   (default: build)
set -euo pipefail
build=${1:-build}
bin=$build/bench/lookup_benchmark
[ -x "$bin" ] || { echo "no $bin: build the project first" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-14s %12s %10s\n' method instructions per_lookup
for m in padding padding_call hash_map sorted; do
  case $m in
    padding) fn=LoopPadding;; padding_call) fn=LoopPaddingCall;;
    hash_map) fn=LoopHashMap;; sorted) fn=LoopSorted;;
  esac
  valgrind --tool=callgrind --smc-check=all --callgrind-out-file="$out/$m.out" \
    "--toggle-collect=*${fn}*" "$bin" --count "$m" > "$out/$m.log" 2>&1
  n=$(awk '/^lookups/ {print $2}' "$out/$m.log")
  ir=$(callgrind_annotate "$out/$m.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  awk -v m="$m" -v ir="$ir" -v n="$n" 'BEGIN { printf "%-14s %12d %10.1f\n", m, ir, ir / n }'
done
