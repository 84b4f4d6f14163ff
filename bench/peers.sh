#!/usr/bin/env bash
# padhook and its peers, side by side, in one command (issue 6):
#
#   bench/peers.sh [--quick | --tiny] [--out DIR] [--build DIR] [--rounds N]
#                  [--no-build] [--no-install] [--report-only]
#
#   (default)     the full run: 7 rounds, 5 M calls per timing, 10 M-call traces
#                 (measured: 373 s of measuring on 2 cores, plus the build)
#   --quick       5 rounds, smaller loops and traces (measured: 389 s from an
#                 empty build directory on 2 cores, build included, while
#                 another build ran; bound: 10 min)
#   --tiny        1 round of tiny loops: checks that everything runs (the ctest
#                 peers_runner_smoke); its numbers mean nothing
#   --out DIR     where the table (table.txt), its JSON (table.json), the plots
#                 and the raw outputs (raw/) go; default BUILD/peers
#   --build DIR   build directory (default: build-peers next to bench/),
#                 configured with -DPADHOOK_BUILD_TESTS=OFF if it has no cache
#   --no-build    use the binaries already in the build directory
#   --no-install  do not install missing Debian packages
#   --report-only measure nothing: print the table from OUT/raw again
#   --check       then check the shape of table.json (bench/peers/check_table.py)
#   env PADHOOK_CLI=PATH   the `padhook` whose record/report fill the tracer
#                 rows (default: BUILD/tools/padhook/padhook)
#
# What runs (sources in bench/; the table says which row comes from where):
#   bench/peers/peer_*          one workload (peer_leaf.cc) built by clang++
#                               with each tool's flags: plain, padhook, XRay,
#                               -finstrument-functions, -pg (uftrace), and
#                               -fpatchable-function-entry=5 (uftrace -P ., uprobes)
#   call_overhead_benchmark     k clients on one function, per-call cost with
#                               other functions / clients attached elsewhere
#   attach_benchmark            batch attach/detach, 1 to 100,000 functions
#   xray/xray_driver            __xray_patch()/__xray_unpatch() of 10,001 functions
#   lookup_benchmark            padding index vs hash map vs sorted array
#   padhook record              the tracer rows, only once `padhook record` exists
# Two measures: callgrind instructions (--smc-check=all; deterministic, one
# run each) and wall-clock ns: every round runs every program once, in an
# order rotated by one each round; a figure is the median over rounds
# (min/max beside it), and figures "above" a baseline are taken per round
# against that round's baseline. Peers that are not installed, or uprobes
# when not root, are skipped with a message and show as "-".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cmdline="bench/peers.sh${*:+ $*}"

mode=full
out=""
build=""
rounds=""
do_build=1
do_install=1
report_only=0
check=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) mode=quick; shift ;;
    --tiny) mode=tiny; shift ;;
    --out) out=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --no-install) do_install=0; shift ;;
    --report-only) report_only=1; do_build=0; do_install=0; shift ;;
    --check) check=1; shift ;;
    -h | --help) sed -n 2,43p "$0"; exit 0 ;;
    *) echo "peers.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done

# Sizes per mode. calls: per timed loop; reps: timed loops per process (the
# process reports their median); tcalls: calls in one traced run (tracer rows);
# cg: calls per callgrind count.
case $mode in
  full) rounds=${rounds:-7} calls=5000000 reps=3 upcalls=300000 tcalls=10000000 cg=100000
        attach_ns="1 10 100 1000 10000 100000" cold_ns="1000 10000 100000" steady_reps=5
        gb_min=0.2 cg_attach_ns="1 100 1000 10000 100000" strict=1 ;;
  quick) rounds=${rounds:-5} calls=2000000 reps=3 upcalls=100000 tcalls=2000000 cg=20000
        attach_ns="1 10 100 1000 10000 100000" cold_ns="1000 10000 100000" steady_reps=3
        gb_min=0.05 cg_attach_ns="1 10000" strict=0 ;;
  tiny) rounds=${rounds:-1} calls=20000 reps=1 upcalls=2000 tcalls=20000 cg=2000
        attach_ns="1 1000" cold_ns="1000" steady_reps=1
        gb_min=0.01 cg_attach_ns="1" strict=0 ;;
esac
# Tiny mode leaves out the states that attach 100,000 functions.
if [ $mode = tiny ]; then
  gb_filter='^(uninstrumented|unpatched|clients/.*|no_vector/1|entry_exit/1|one_client/others_1k|one_client/other_clients_.*)$'
  cg_states="clients/1 clients/2 entry_exit/1 one_client/others_1k one_client/other_clients_1"
else
  gb_filter='.'
  cg_states="unpatched_fresh clients/1 clients/2 clients/10 clients/100 no_vector/1 no_vector/100 entry_exit/1
    one_client/others_1k one_client/others_10k one_client/others_100k one_client/other_clients_1
    one_client/other_clients_10 one_client/other_clients_100 one_client/both"
fi

build=${build:-$root/build-peers}
out=${out:-$build/peers}
raw=$out/raw
log() { echo "[peers] $*" >&2; }

if [ $do_install = 1 ]; then
  "$root/scripts/install-deps.sh" --peers
fi
if [ $do_build = 1 ]; then
  if [ ! -f "$build/CMakeCache.txt" ]; then
    log "configuring $build"
    cmake -S "$root" -B "$build" -G Ninja -DPADHOOK_BUILD_TESTS=OFF -DPADHOOK_BUILD_EXAMPLES=OFF > /dev/null
  fi
  log "building (ninja -j2)"
  ninja -C "$build" -j2 call_overhead_benchmark attach_benchmark lookup_benchmark padhook_cli \
    xray_comparison peers_programs > "$build/peers-build.log" 2>&1 ||
    { tail -30 "$build/peers-build.log" >&2; exit 1; }
fi

B=$build/bench
P=$B/peers
cli=${PADHOOK_CLI:-$build/tools/padhook/padhook}  # the tracer rows' `padhook`
have() { command -v "$1" > /dev/null 2>&1; }

if [ $report_only = 0 ]; then
for p in peer_plain peer_padhook peer_xray peer_finstr peer_pg peer_patch5; do
  [ -x "$P/$p" ] || { echo "peers.sh: no $P/$p (build target peers_programs; needs clang++)" >&2; exit 1; }
done
mkdir -p "$raw"
rm -rf "${raw:?}"/* "$out/tmp"
tmp=$out/tmp
mkdir -p "$tmp"
start=$SECONDS

# ---- which peers run ----
skip() { echo "skip $1 $2" >> "$raw/skipped.txt"; log "skipping $1: $2"; }
has_uftrace=0; has_bpftrace=0; has_record=0
if have uftrace; then has_uftrace=1; else skip uftrace "uftrace not installed (scripts/install-deps.sh --peers)"; fi
if [ "$(id -u)" != 0 ]; then
  skip uprobes "not root: uprobes through bpftrace need root"
elif ! have bpftrace; then
  skip uprobes "bpftrace not installed (scripts/install-deps.sh --peers)"
else
  has_bpftrace=1
fi
# The tracer row: runs only once `padhook record` exists (issue 5).
if [ -x "$cli" ] && "$cli" --help 2> /dev/null | grep -qE '^ +record( |$)'; then
  has_record=1
else
  skip padhook_record "\`padhook record\` does not exist yet in this build (the tracer issue)"
fi

{
  echo "mode $mode"
  echo "rounds $rounds calls $calls reps $reps upcalls $upcalls tcalls $tcalls cg $cg steady_reps $steady_reps"
  echo "command $cmdline"
  echo "date $(date -u +%FT%TZ)"
  echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null) dirty_files $(git -C "$root" status --porcelain 2>/dev/null | wc -l)"
  echo "cpu $(lscpu | sed -n 's/^Model name: *//p' | head -1) x $(nproc)"
  echo "kernel $(uname -r)"
  echo "compiler $(clang++ --version | head -1)"
  echo "host_compiler $(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")"
  [ $has_uftrace = 1 ] && echo "uftrace $(uftrace --version | head -1)"
  [ $has_bpftrace = 1 ] && echo "bpftrace $(bpftrace --version | head -1)"
  echo "valgrind $(valgrind --version)"
  echo "loadavg_start $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$raw/env.txt"
lscpu > "$raw/lscpu.txt"

# ---- wall clock: jobs, alternating over rounds ----
# Each job appends `round R job NAME <the program's key value line>` to
# raw/time.txt (or to its own file for multi-line outputs).
ns() { date +%s%N; }
# raw/commands.txt: the exact command behind every figure (first round only).
cmd() { [ "$r" != 1 ] || echo "$1: ${*:2}" >> "$raw/commands.txt"; }
trace_calls=$((tcalls / 10 > 0 ? tcalls / 10 + tcalls : tcalls))  # warm-up + timed loop

job_time() {  # job_time NAME BINARY STATE [CALLS]
  local name=$1 bin=$2 state=$3 n=${4:-$calls} line
  cmd "$name" "$bin" --time "$state" "$n" "$reps"
  line=$("$bin" --time "$state" "$n" "$reps" | grep '^state') || { log "$name failed"; return 0; }
  echo "round $r job $name $line" >> "$raw/time.txt"
}
job_uftrace() {  # job_uftrace NAME BINARY [uftrace options]: traced loop, trace size, report time
  local name=$1 bin=$2 line t0 t1 bytes
  shift 2
  cmd "$name" uftrace record "$@" -d DIR "$bin" --time run "$tcalls" 1 "&& du of DIR/*.dat && uftrace report -d DIR"
  rm -rf "$tmp/uftrace.data"
  line=$(timeout 600 uftrace record "$@" -d "$tmp/uftrace.data" "$bin" --time run "$tcalls" 1 2> "$tmp/uftrace.err" |
         grep '^state') || { log "$name: uftrace record failed: $(tail -2 "$tmp/uftrace.err")"; return 0; }
  bytes=$(cat "$tmp"/uftrace.data/*.dat 2> /dev/null | wc -c)
  t0=$(ns)
  timeout 600 uftrace report -d "$tmp/uftrace.data" > /dev/null 2>&1 || log "$name: uftrace report failed"
  t1=$(ns)
  echo "round $r job $name $line trace_bytes $bytes trace_calls $trace_calls report_ns $((t1 - t0))" >> "$raw/time.txt"
  rm -rf "$tmp/uftrace.data"
}
job_startup() {  # empty program: directly, under uftrace record, under padhook record
  local t0 t1 t2 t3 t4 t5
  cmd startup "$P/peer_plain --empty, against: uftrace record -d DIR $P/peer_pg --empty;" \
    "$cli record -o DIR -- $P/peer_padhook --empty"
  t0=$(ns); "$P/peer_plain" --empty; t1=$(ns)
  echo "round $r job startup_direct ns $((t1 - t0))" >> "$raw/time.txt"
  if [ $has_uftrace = 1 ]; then
    rm -rf "$tmp/uftrace.empty"
    t2=$(ns); uftrace record -d "$tmp/uftrace.empty" "$P/peer_pg" --empty > /dev/null 2>&1 || true; t3=$(ns)
    echo "round $r job startup_uftrace ns $((t3 - t2))" >> "$raw/time.txt"
  fi
  if [ $has_record = 1 ]; then
    rm -rf "$tmp/padhook.empty"
    t4=$(ns); "$cli" record -o "$tmp/padhook.empty" -- "$P/peer_padhook" --empty > /dev/null 2>&1 || true; t5=$(ns)
    echo "round $r job startup_padhook_record ns $((t5 - t4))" >> "$raw/time.txt"
  fi
}
job_uprobe() {
  local line
  cmd uprobe bpftrace -e "'uprobe:$P/peer_patch5:peer_leaf { }'" -c "'$P/peer_patch5 --time run $upcalls $reps'"
  line=$(timeout 300 bpftrace -e "uprobe:$P/peer_patch5:peer_leaf { }" \
         -c "$P/peer_patch5 --time run $upcalls $reps" 2> "$tmp/bpftrace.err" | grep '^state') ||
    { log "uprobes: bpftrace failed: $(tail -2 "$tmp/bpftrace.err")"; return 0; }
  echo "round $r job uprobe $line" >> "$raw/time.txt"
}
# ---- the tracer row (issue 5): padhook record, same workload as uftrace ----
# Untested against the real tracer (it is being built on another branch): the
# options used are the ones issue 5 specifies (record -o DIR -- PROGRAM,
# report -i DIR). It runs only when `padhook --help` lists a record subcommand.
job_padhook_record() {
  local line t0 t1 bytes
  cmd padhook_record "$cli" record -o DIR -- "$P/peer_padhook" --time run "$tcalls" 1 "&& $cli report -i DIR"
  rm -rf "$tmp/padhook.data"
  line=$(timeout 600 "$cli" record -o "$tmp/padhook.data" -- "$P/peer_padhook" --time run "$tcalls" 1 \
         2> "$tmp/record.err" | grep '^state') ||
    { log "padhook record failed: $(tail -2 "$tmp/record.err")"; return 0; }
  bytes=$(du -sb "$tmp/padhook.data" | cut -f1)
  t0=$(ns)
  timeout 600 "$cli" report -i "$tmp/padhook.data" > /dev/null 2>&1 || log "padhook report failed"
  t1=$(ns)
  echo "round $r job padhook_record $line trace_bytes $bytes trace_calls $trace_calls report_ns $((t1 - t0))" \
    >> "$raw/time.txt"
  rm -rf "$tmp/padhook.data"
}
job_gbench() {  # call_overhead_benchmark, all states once
  cmd call_overhead "$B/call_overhead_benchmark" "--benchmark_filter='$gb_filter'" --benchmark_min_time=$gb_min
  "$B/call_overhead_benchmark" --benchmark_filter="$gb_filter" --benchmark_min_time=$gb_min \
    --benchmark_format=json --benchmark_out="$raw/call_overhead.$r.json" > /dev/null 2>&1 ||
    log "call_overhead_benchmark failed"
}
job_attach() {
  local n
  cmd attach "$B/attach_benchmark --steady fast N $steady_reps (N: $attach_ns);" \
    "--cold fast N (N: $cold_ns); --single fast $((steady_reps * 100 + 1))"
  for n in $attach_ns; do
    "$B/attach_benchmark" --steady fast "$n" "$steady_reps" | sed "s/^/round $r /" | grep steady >> "$raw/attach.txt"
  done
  for n in $cold_ns; do  # the first attach of a process: one fresh process each
    "$B/attach_benchmark" --cold fast "$n" | sed "s/^/round $r /" | grep cold >> "$raw/attach.txt"
  done
  "$B/attach_benchmark" --single fast $((steady_reps * 100 + 1)) | sed "s/^/round $r /" | grep single >> "$raw/attach.txt"
  if [ $strict = 1 ]; then
    "$B/attach_benchmark" --steady strict 1000 "$steady_reps" | sed "s/^/round $r /" | grep steady >> "$raw/attach.txt"
    "$B/attach_benchmark" --single strict $((steady_reps * 20 + 1)) | sed "s/^/round $r /" | grep single >> "$raw/attach.txt"
  fi
}
job_xray_patch() {
  cmd xray_patch "$B/xray/xray_driver" --patch-all "$steady_reps; $B/xray/xray_driver" --patch-one $((steady_reps * 100 + 1))
  "$B/xray/xray_driver" --patch-all "$steady_reps" | sed "s/^/round $r /" >> "$raw/xray_patch.txt"
  "$B/xray/xray_driver" --patch-one $((steady_reps * 100 + 1)) | sed "s/^/round $r /" >> "$raw/xray_patch.txt"
}
job_lookup() {
  cmd lookup "$B/lookup_benchmark" --benchmark_min_time=$gb_min
  "$B/lookup_benchmark" --benchmark_min_time=$gb_min --benchmark_format=json \
    --benchmark_out="$raw/lookup.$r.json" > /dev/null 2>&1 || log "lookup_benchmark failed"
}

jobs=(
  "job_time plain $P/peer_plain run"
  "job_time padhook_unpatched $P/peer_padhook unpatched"
  "job_time padhook_entry $P/peer_padhook entry"
  "job_time padhook_entry_nv $P/peer_padhook entry_nv"
  "job_time padhook_entry_exit $P/peer_padhook entry_exit"
  "job_time xray_unpatched $P/peer_xray unpatched"
  "job_time xray_patched $P/peer_xray patched"
  "job_time finstr $P/peer_finstr run"
  "job_time patch5 $P/peer_patch5 run"
  "job_time plain_up $P/peer_plain run $upcalls"
  "job_time patch5_up $P/peer_patch5 run $upcalls"
  "job_time plain_t $P/peer_plain run $tcalls"
  "job_time patch5_t $P/peer_patch5 run $tcalls"
  "job_time padhook_unpatched_t $P/peer_padhook unpatched $tcalls"
  "job_startup"
  "job_gbench"
  "job_attach"
  "job_xray_patch"
  "job_lookup"
)
[ $has_uftrace = 1 ] && jobs+=("job_uftrace uftrace_pg $P/peer_pg" "job_uftrace uftrace_p5 $P/peer_patch5 -P .")
[ $has_bpftrace = 1 ] && jobs+=("job_uprobe")
[ $has_record = 1 ] && jobs+=("job_padhook_record")

njobs=${#jobs[@]}
for r in $(seq "$rounds"); do
  log "round $r/$rounds ($njobs programs, load $(cut -d' ' -f1 /proc/loadavg), ${SECONDS}s)"
  for ((k = 0; k < njobs; ++k)); do
    j=${jobs[$(((k + r - 1) % njobs))]}
    $j
  done
done

# ---- callgrind: instructions, one deterministic run each ----
log "callgrind: per-call instructions (${SECONDS}s)"
cgrun() {  # cgrun NAME TOGGLE CMD...: instructions collected, summed over all processes
  local name=$1 toggle=$2 f total opts
  shift 2
  mkdir -p "$tmp/cg"
  rm -f "$tmp/cg/$name".*
  echo "cg_$name: valgrind --tool=callgrind --smc-check=all --trace-children=yes ${toggle:+--instr-atstart=no --toggle-collect='$toggle' }$*" \
    >> "$raw/commands.txt"
  # TOGGLE "": everything the command runs; else only inside that function
  # (the programs start instrumentation right before it: set-up is not counted)
  opts=(--instr-atstart=yes)
  [ -n "$toggle" ] && opts=(--instr-atstart=no "--toggle-collect=$toggle")
  if ! valgrind --tool=callgrind --smc-check=all --trace-children=yes "${opts[@]}" \
       --callgrind-out-file="$tmp/cg/$name.%p" "$@" > "$tmp/cg/$name.log" 2>&1; then
    log "callgrind $name failed: $(tail -3 "$tmp/cg/$name.log")"
    return 0
  fi
  total=0
  for f in "$tmp/cg/$name".[0-9]*; do
    total=$((total + $(sed -n 's/^totals: *//p' "$f" | head -1)))
  done
  echo "cg $name instructions $total" >> "$raw/callgrind.txt"
}
loop='*bench_call_loop*'
cgrun plain "$loop" "$P/peer_plain" --count run "$cg"
for s in unpatched entry entry_nv entry_exit; do cgrun "padhook_$s" "$loop" "$P/peer_padhook" --count "$s" "$cg"; done
cgrun xray_unpatched "$loop" "$P/peer_xray" --count unpatched "$cg"
cgrun xray_patched "$loop" "$P/peer_xray" --count patched "$cg"
cgrun finstr "$loop" "$P/peer_finstr" --count run "$cg"
cgrun patch5 "$loop" "$P/peer_patch5" --count run "$cg"
if [ $has_uftrace = 1 ]; then
  # The traced process only (the toggle); uftrace's recorder process runs
  # beside it and is not counted.
  cgrun uftrace_pg "$loop" uftrace record -d "$tmp/uftrace.cg" "$P/peer_pg" --count run "$cg"
  rm -rf "$tmp/uftrace.cg"
  cgrun uftrace_p5 "$loop" uftrace record -P . -d "$tmp/uftrace.cg" "$P/peer_patch5" --count run "$cg"
  # uftrace report over that trace of cg + 1000 calls: every instruction
  cgrun uftrace_report '' uftrace report -d "$tmp/uftrace.cg"
  rm -rf "$tmp/uftrace.cg" "$tmp/uftrace.empty"
  cgrun startup_uftrace '' uftrace record -d "$tmp/uftrace.empty" "$P/peer_pg" --empty
fi
cgrun startup_direct '' "$P/peer_plain" --empty
if [ $has_record = 1 ]; then
  cgrun padhook_record "$loop" "$cli" record -o "$tmp/padhook.cg" -- "$P/peer_padhook" --count run "$cg"
  cgrun padhook_report '' "$cli" report -i "$tmp/padhook.cg"
  rm -rf "$tmp/padhook.cg" "$tmp/padhook.empty"
  cgrun startup_padhook_record '' "$cli" record -o "$tmp/padhook.empty" -- "$P/peer_padhook" --empty
fi
echo "cg_calls $cg" >> "$raw/callgrind.txt"

log "callgrind: clients and scaling states (${SECONDS}s)"
# shellcheck disable=SC2086
PADHOOK_CG_STATES="$(echo $cg_states)" PADHOOK_CG_XRAY=0 \
  "$here/call_overhead_callgrind.sh" "$build" "$cg" > "$raw/call_overhead_callgrind.txt" 2> "$tmp/cg_co.err" ||
  log "call_overhead_callgrind.sh failed: $(head -c 600 "$tmp/cg_co.err")"
echo "cg_call_overhead: PADHOOK_CG_STATES='$(echo $cg_states)' PADHOOK_CG_XRAY=0 bench/call_overhead_callgrind.sh $build $cg" \
  >> "$raw/commands.txt"

log "callgrind: attach/detach and XRay patching (${SECONDS}s)"
for n in $cg_attach_ns; do
  for op in cold_attach attach detach; do
    cgrun "attach_${op}_$n" '*CountedOp*' "$B/attach_benchmark" --count fast "$n" "$op"
  done
done
for op in cold_patch_all patch_all unpatch_all patch_one; do
  cgrun "xray_$op" '*CountedOp*' "$B/xray/xray_driver" --count-patch "$op"
done

if [ $mode != tiny ]; then
  log "callgrind: metadata lookup (${SECONDS}s)"
  "$here/lookup_callgrind.sh" "$build" > "$raw/lookup_callgrind.txt" 2> "$tmp/cg_lookup.err" ||
    log "lookup_callgrind.sh failed: $(head -c 600 "$tmp/cg_lookup.err")"
  echo "cg_lookup: bench/lookup_callgrind.sh $build" >> "$raw/commands.txt"
fi
rm -rf "$tmp"
echo "loadavg_end $(cut -d' ' -f1-3 /proc/loadavg)" >> "$raw/env.txt"
echo "seconds $((SECONDS - start))" >> "$raw/env.txt"
fi

python3 "$here/peers/report.py" "$raw" "$out"
if have gnuplot && [ -f "$out/plot_calls.dat" ]; then
  gnuplot -e "dir='$out'" "$here/peers/plots.gnuplot" 2> "$out/gnuplot.log" || log "gnuplot failed (see $out/gnuplot.log)"
fi
log "table: $out/table.txt, JSON: $out/table.json"
if [ $check = 1 ]; then
  python3 "$here/peers/check_table.py" "$out/table.json"
fi
