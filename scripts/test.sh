#!/usr/bin/env bash
# The second command to run: installs dependencies, builds everything with g++
# (build/gcc) and with clang++ 14 (build/clang), and runs every test in both.
# Exits non-zero if any build or test fails. Used by CI (.ci/run).
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh || exit 1

if command -v clang++-14 >/dev/null 2>&1; then
  clang_cc=clang-14 clang_cxx=clang++-14
else
  clang_cc=clang clang_cxx=clang++
fi
jobs=$(nproc 2>/dev/null || echo 2)

declare -A result
failed=0

# run_config <name> <CC> <CXX>
run_config() {
  local name=$1 cc=$2 cxx=$3 dir=build/$1
  echo "==> [$name] configure + build ($cxx)"
  if ! CC=$cc CXX=$cxx cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
     ! cmake --build "$dir" -j "$jobs"; then
    result[$name]="build FAILED"
    failed=1
    return
  fi
  echo "==> [$name] ctest"
  if ctest --test-dir "$dir" --output-on-failure -j2; then
    result[$name]="ok"
  else
    result[$name]="tests FAILED"
    failed=1
  fi
}

run_config gcc gcc g++
run_config clang "$clang_cc" "$clang_cxx"

echo "test.sh: gcc: ${result[gcc]}; clang: ${result[clang]}; $([[ $failed == 0 ]] && echo PASS || echo FAIL)"
exit $failed
