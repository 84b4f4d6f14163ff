#!/usr/bin/env bash
# The second command to run: installs dependencies, builds everything with g++
# (build/gcc) and with clang++ 14 (build/clang), and runs every test in both;
# then the sanitizer builds (g++): every test under AddressSanitizer +
# UndefinedBehaviorSanitizer (build-asan), and the tests of padhook's own
# synchronization under ThreadSanitizer (build-tsan; tests/CMakeLists.txt says
# which tests and why).
# Exits non-zero if any build or test fails. Used by CI (.ci/run).
#
#   scripts/test.sh                 all four configurations
#   scripts/test.sh asan tsan       only these (any of: gcc clang asan tsan)
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh || exit 1

if command -v clang++-14 >/dev/null 2>&1; then
  clang_cc=clang-14 clang_cxx=clang++-14
else
  clang_cc=clang clang_cxx=clang++
fi
jobs=$(nproc 2>/dev/null || echo 2)

configs=("$@")
[[ ${#configs[@]} -eq 0 ]] && configs=(gcc clang asan tsan)

declare -A result
failed=0
failed_dirs=()

# run_config <name> <build dir> <CC> <CXX> [cmake options...]
run_config() {
  local name=$1 dir=$2 cc=$3 cxx=$4
  shift 4
  local start=$SECONDS
  echo "==> [$name] configure + build ($cxx${*:+ $*})"
  if ! CC=$cc CXX=$cxx cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null ||
     ! cmake --build "$dir" -j "$jobs"; then
    result[$name]="build FAILED"
    failed=1
    return
  fi
  local built=$((SECONDS - start))
  echo "==> [$name] ctest"
  if ctest --test-dir "$dir" --output-on-failure -j2; then
    result[$name]="ok"
  else
    result[$name]="tests FAILED"
    failed=1
    failed_dirs+=("$name:$dir")
  fi
  result[$name]+=" (build ${built}s, tests $((SECONDS - start - built))s)"
}

for config in "${configs[@]}"; do
  case $config in
    gcc) run_config gcc build/gcc gcc g++ ;;
    clang) run_config clang build/clang "$clang_cc" "$clang_cxx" ;;
    # Sanitizer builds skip the benchmarks (built and timed by the two above).
    asan) run_config asan build-asan gcc g++ -DPADHOOK_SANITIZE=address,undefined -DPADHOOK_BUILD_BENCH=OFF ;;
    tsan) run_config tsan build-tsan gcc g++ -DPADHOOK_SANITIZE=thread -DPADHOOK_BUILD_BENCH=OFF ;;
    *) echo "test.sh: unknown configuration '$config' (gcc, clang, asan, tsan)" >&2; exit 2 ;;
  esac
done

# CI shows only the end of this script's output, so repeat what failed there:
# the names, then each failed test's own output (ctest's log of the run).
for entry in "${failed_dirs[@]}"; do
  name=${entry%%:*} dir=${entry#*:}
  echo "==> [$name] failed tests:"
  sed 's/^[0-9]*:/  /' "$dir/Testing/Temporary/LastTestsFailed.log" 2>/dev/null
  python3 scripts/failed-test-output.py "$dir/Testing/Temporary/LastTest.log" 2>/dev/null | tail -n 60
done

summary=
for config in "${configs[@]}"; do summary+="$config: ${result[$config]}; "; done
echo "test.sh: ${summary}$([[ $failed == 0 ]] && echo PASS || echo FAIL)"
exit $failed
