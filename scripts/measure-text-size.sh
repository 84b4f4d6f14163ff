#!/usr/bin/env bash
# Measures what padhook's patch-area layouts cost in code size: builds the
# bundled demo (program + shared library) with g++ and clang++ at -O2 (and -O0)
# without instrumentation, with the plain layout and with the landing-pad
# layout, and prints `size -A`'s .text for each and the growth in percent.
#
# The program is compiled as one translation unit (every .cc #included into
# one file), as examples/demo/CMakeLists.txt does for g++: GCC 12 mishandles
# __patchable_function_entries across COMDAT copies in separate objects (see
# docs/layout.md, "Known toolchain problems"). Only .text is counted: the
# __patchable_function_entries table (8 bytes per function) is reported apart.
#
#   scripts/measure-text-size.sh [OUTDIR]     (default: build/text-size)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/text-size}
mkdir -p "$out"
out=$(cd "$out" && pwd)
demo=examples/demo

declare -A variant_flags=(
  [none]=""
  [plain]="-fpatchable-function-entry=13,8 -falign-functions=16"
  [landing-pads]="-fpatchable-function-entry=17,12 -falign-functions=16 -fcf-protection=full"
)
# -fcf-protection=full alone (no padhook) is the baseline for landing-pads.
variant_flags[cf-only]="-fcf-protection=full"
variants=(none plain cf-only landing-pads)

unity="$out/demo_all.cc"
{
  for f in main pipeline log_source record query json thread_pool; do echo "#include \"$PWD/$demo/$f.cc\""; done
} >"$unity"

text_size() { size -A "$1" | awk '$1 == ".text" { print $2 }'; }
pfe_size() { size -A "$1" | awk '$1 == "__patchable_function_entries" { print $2 }'; }

printf '%-8s %-4s %-13s %10s %8s %10s %8s %9s\n' compiler opt layout "prog.text" "+%" "lib.text" "+%" "entries"
for cxx in g++ clang++; do
  for opt in -O2 -O0; do
    declare -A prog=() lib=()
    for v in "${variants[@]}"; do
      dir="$out/$cxx$opt-$v"
      mkdir -p "$dir"
      # shellcheck disable=SC2086  # flags are meant to split
      $cxx -std=c++20 $opt -fPIC ${variant_flags[$v]} -shared -o "$dir/libpadhook-demo-util.so" "$demo/util/demo_util.cc"
      # shellcheck disable=SC2086
      $cxx -std=c++20 $opt ${variant_flags[$v]} -I"$demo" -I"$demo/util" -pthread -o "$dir/padhook-demo" "$unity" \
        -L"$dir" -lpadhook-demo-util -Wl,-rpath,"$dir"
      "$dir/padhook-demo" --lines 2000 >"$dir/output.txt"
      prog[$v]=$(text_size "$dir/padhook-demo")
      lib[$v]=$(text_size "$dir/libpadhook-demo-util.so")
      pfe=$(pfe_size "$dir/padhook-demo"); pfe_lib=$(pfe_size "$dir/libpadhook-demo-util.so")
      base=none; [[ $v == landing-pads ]] && base=cf-only
      pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", (a - b) * 100.0 / b }'; }
      printf '%-8s %-4s %-13s %10d %8s %10d %8s %9s\n' "$cxx" "$opt" "$v" "${prog[$v]}" "$(pct "${prog[$v]}" "${prog[$base]}")" \
        "${lib[$v]}" "$(pct "${lib[$v]}" "${lib[$base]}")" "$(( ${pfe:-0} / 8 ))+$(( ${pfe_lib:-0} / 8 ))"
    done
    # Every variant must compute the same thing.
    for v in "${variants[@]}"; do
      cmp -s "$out/$cxx$opt-none/output.txt" "$out/$cxx$opt-$v/output.txt" ||
        { echo "measure-text-size: $cxx $opt $v: the demo's output differs" >&2; exit 1; }
    done
  done
done
echo "(+% is against 'none'; landing-pads is against cf-only, i.e. -fcf-protection=full without padhook." \
     "entries = __patchable_function_entries records, program+library.)"
