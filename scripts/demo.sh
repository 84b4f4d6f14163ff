#!/usr/bin/env bash
# The first command to run: installs dependencies, builds padhook into build/,
# shows what padhook finds in the bundled demo program and its library, then
# records a run of the demo with `padhook record` (trace in build/demo-trace/)
# and shows `padhook report` on it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "==> configure + build (build/, RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build

padhook=build/tools/padhook/padhook
demo=build/examples/demo/padhook-demo
lib=build/examples/demo/libpadhook-demo-util.so

echo
echo "==> the demo program runs (its output is deterministic)"
"$demo"

for file in "$demo" "$lib"; do
  echo
  echo "==> $padhook list $file"
  "$padhook" list "$file"
done

trace=build/demo-trace
echo
echo "==> $padhook record -o $trace -- $demo --threads 4"
"$padhook" record -o "$trace" -- "$demo" --threads 4 > /dev/null
# (the summary line above comes from padhook record, on stderr)

echo
echo "==> $padhook report -i $trace   (the 30 functions with the most total time; all: $trace.report.txt)"
"$padhook" report -i "$trace" > "$trace.report.txt"
head -n 32 "$trace.report.txt"
echo
echo "More: $padhook info|replay|graph -i $trace, $padhook export -i $trace -f chrome -o trace.json"
