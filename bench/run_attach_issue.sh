#!/usr/bin/env bash
# The attach issue's figures, padhook and LLVM XRay side by side, in one table:
#   row | padhook | XRay (same run) | ratio padhook/XRay | target | met
#
#   usage: bench/run_attach_issue.sh [BUILD_DIR] [--reps N] [--no-build]
#     BUILD_DIR   default: build-attach-issue next to bench/ (configured with
#                 -G Ninja -DPADHOOK_BUILD_TESTS=OFF if it has no CMakeCache.txt)
#     --reps N    repetitions behind every median (default 5; the machine is
#                 noisy: medians of >= 5, ratios from the same run)
#     --no-build  use the binaries already in BUILD_DIR
#     --report-only  measure nothing: print the table from BUILD_DIR/attach_issue/
#
# Sources of each figure:
#   bench/xray/xray_driver --calls        ns per call, padhook and XRay rounds
#                                         alternating in one process
#   bench/call_overhead_callgrind.sh      instructions per call (callgrind)
#   bench/call_overhead_benchmark         ns per call by state (Google Benchmark,
#                                         medians of N repetitions)
#   bench/attach_benchmark                attach/detach (cold: one fresh process
#                                         per sample; steady: medians)
#   bench/xray/xray_driver --patch-*      __xray_patch/__xray_unpatch of 10,001
#                                         functions (cold: fresh processes) and
#                                         __xray_patch_function of one
# Raw outputs are kept in BUILD_DIR/attach_issue/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=""
reps=5
do_build=1
report_only=0
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift 2;;
    --no-build) do_build=0; shift;;
    --report-only) report_only=1; do_build=0; shift;;
    -h|--help) sed -n 2,26p "$0"; exit 0;;
    *) build=$1; shift;;
  esac
done
build=${build:-$root/build-attach-issue}
raw=$build/attach_issue
if [ $do_build = 1 ]; then
  [ -f "$build/CMakeCache.txt" ] || cmake -S "$root" -B "$build" -G Ninja -DPADHOOK_BUILD_TESTS=OFF > /dev/null
  targets="call_overhead_benchmark attach_benchmark"
  if ninja -C "$build" -t targets all 2>/dev/null | grep -q '^xray_comparison:'; then
    targets="$targets xray_comparison"
  fi
  ninja -C "$build" $targets > /dev/null
fi
mkdir -p "$raw"
if [ $report_only = 0 ]; then
rm -f "$raw"/*.txt "$raw"/*.json
xray=$build/bench/xray/xray_driver
[ -x "$xray" ] || xray=""
pad_calls=$build/bench/call_overhead_benchmark
attach=$build/bench/attach_benchmark

log() { echo "[run_attach_issue] $*" >&2; }
{
  echo "date $(date -u +%FT%TZ)"
  echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null) dirty_files $(git -C "$root" status --porcelain 2>/dev/null | wc -l)"
  echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$raw/env.txt"

# 1. ns per call: padhook and XRay alternating, one process.
if [ -n "$xray" ]; then
  log "xray_driver --calls $((reps * 3)) 1000000"
  "$xray" --calls $((reps * 3)) 1000000 > "$raw/calls_side_by_side.txt"
fi
# 2. ns per call, padhook states.
log "call_overhead_benchmark --benchmark_repetitions=$reps"
"$pad_calls" --benchmark_repetitions="$reps" --benchmark_min_time=0.2 \
  --benchmark_format=json --benchmark_out="$raw/call_overhead.json" > /dev/null
# 3. instructions per call.
log "call_overhead_callgrind.sh"
"$here/call_overhead_callgrind.sh" "$build" 100000 > "$raw/callgrind.txt"
# 4. attach/detach.
for mode in fast strict; do
  for n in 1000 10000 100000; do
    log "attach_benchmark --cold $mode $n (x$reps processes), --steady $mode $n $reps"
    for r in $(seq "$reps"); do "$attach" --cold $mode $n | grep '^cold' >> "$raw/attach.txt"; done
    "$attach" --steady $mode $n "$reps" | grep '^steady' >> "$raw/attach.txt"
  done
  log "attach_benchmark --single $mode $((reps * 200 + 1))"
  "$attach" --single $mode $((reps * 200 + 1)) | grep '^single' >> "$raw/attach.txt"
done
# 5. XRay patching.
if [ -n "$xray" ]; then
  log "xray_driver --patch-all (x$reps processes), --patch-one"
  for r in $(seq "$reps"); do "$xray" --patch-all "$reps" >> "$raw/xray_patch.txt"; done
  "$xray" --patch-one $((reps * 200 + 1)) >> "$raw/xray_patch.txt"
fi
echo "loadavg_end $(cut -d' ' -f1-3 /proc/loadavg)" >> "$raw/env.txt"
fi

python3 - "$raw" <<'PY'
import json, statistics, sys, os
raw = sys.argv[1]

def kv(line):
    t = line.split()
    return {t[i]: t[i + 1] for i in range(0, len(t) - 1, 2)}

def med(v):
    return statistics.median(v) if v else None

# ns per call, side by side
side = {}
p = os.path.join(raw, "calls_side_by_side.txt")
if os.path.exists(p):
    for line in open(p):
        if line.startswith("median"):
            side = {k: float(v) for k, v in kv(line.split(None, 1)[1]).items()}
# ns per call by state (medians over repetitions)
gb = {}
for b in json.load(open(os.path.join(raw, "call_overhead.json")))["benchmarks"]:
    if b.get("aggregate_name") == "median":
        gb[b["run_name"]] = b["ns_per_call"] * 1e9 if b["ns_per_call"] < 1e-3 else b["ns_per_call"]
# instructions
ir = {}
for line in open(os.path.join(raw, "callgrind.txt")):
    t = line.split()
    if len(t) >= 4 and t[0] in ("padhook", "xray_driver") and t[2].isdigit():
        ir[(t[0], t[1])] = float(t[2])
calls = 100000
def ipc(tool, state): return ir[(tool, state)] / calls
# attach
cold, steady, single = {}, {}, {}
for line in open(os.path.join(raw, "attach.txt")):
    kind, rest = line.split(None, 1)
    d = kv(rest)
    if kind == "cold":
        cold.setdefault((d["mode"], int(d["batch"])), []).append((float(d["attach_us"]), float(d["detach_us"])))
    elif kind == "steady":
        steady[(d["mode"], int(d["batch"]))] = (float(d["attach_us"]), float(d["detach_us"]))
    elif kind == "single":
        single[d["mode"]] = (float(d["attach_us"]), float(d["detach_us"]))
xp_cold, xp_cold_un, xp_steady, xp_steady_un, xone = [], [], [], [], None
p = os.path.join(raw, "xray_patch.txt")
if os.path.exists(p):
    for line in open(p):
        kind, rest = line.split(None, 1)
        d = kv(rest)
        if kind == "patch_all":
            xp_cold.append(float(d["cold_patch_us"])); xp_cold_un.append(float(d["cold_unpatch_us"]))
            xp_steady.append(float(d["patch_us"])); xp_steady_un.append(float(d["unpatch_us"]))
            xfuncs = int(d["functions"])
        elif kind == "patch_one":
            xone = (float(d["patch_us"]), float(d["unpatch_us"]))

rows = []
def row(name, pad, xr, target, met, fmt="{:.2f}"):
    f = lambda v: "-" if v is None else (fmt.format(v) if isinstance(v, (int, float)) else str(v))
    num = lambda v: isinstance(v, (int, float))
    ratio = "{:.2f}".format(pad / xr) if num(pad) and num(xr) and xr else "-"
    rows.append((name, f(pad), f(xr), ratio, target, met))
def yn(ok): return "-" if ok is None else ("yes" if ok else "NO")

# Per call: instructions
x = ("xray_driver",)
pad_ins_b = ipc("xray_driver", "padhook_one") - ipc("xray_driver", "padhook_unpatched") if ("xray_driver", "padhook_one") in ir else ipc("padhook", "clients/1") - ipc("padhook", "unpatched")
xr_ins_b = ipc("xray_driver", "xray_patched") - ipc("xray_driver", "xray_unpatched") if ("xray_driver", "xray_patched") in ir else None
row("empty entry handler: instructions/call above unpatched (b)", pad_ins_b, xr_ins_b, "<= 30", yn(pad_ins_b <= 30), "{:.1f}")
if xr_ins_b is not None:
    row("empty entry handler: instructions/call above uninstrumented (a)",
        ipc("xray_driver", "padhook_one") - ipc("xray_driver", "plain"),
        ipc("xray_driver", "xray_patched") - ipc("xray_driver", "plain"), "-", "-", "{:.1f}")
    row("unpatched: instructions/call above uninstrumented (a)",
        ipc("xray_driver", "padhook_unpatched") - ipc("xray_driver", "plain"),
        ipc("xray_driver", "xray_unpatched") - ipc("xray_driver", "plain"), "-", "-", "{:.1f}")
row("unpatched, never patched (g++ NOP run): instructions/call above (a)",
    ipc("padhook", "unpatched_fresh") - ipc("padhook", "uninstrumented"), None, "-", "-", "{:.1f}")
# Per call: ns (same process, alternating rounds)
if side:
    pad_ns = side["padhook_one"] - side["padhook_unpatched"]
    xr_ns = side["xray_patched"] - side["xray_unpatched"]
    row("empty entry handler: ns/call above unpatched (b)", pad_ns, xr_ns, "-", "-")
    row("empty entry handler: ns/call, absolute", side["padhook_one"], side["xray_patched"], "-", "-")
    row("unpatched: ns/call above uninstrumented (a)", side["padhook_unpatched"] - side["plain"],
        side["xray_unpatched"] - side["plain"], "-", "-")
# Extra clients
if "clients/1" in gb and "clients/100" in gb:
    ns_extra = (gb["clients/100"] - gb["clients/1"]) / 99
    row("each extra client on the same function: ns/call (1 -> 100 clients)", ns_extra, "n/a (one global handler)", "<= 2", yn(ns_extra <= 2))
    row("each extra client: ns/call (1 -> 10 clients)", (gb["clients/10"] - gb["clients/1"]) / 9, None, "<= 2", yn((gb["clients/10"] - gb["clients/1"]) / 9 <= 2))
    row("each extra client: instructions/call (1 -> 100 clients)",
        (ipc("padhook", "clients/100") - ipc("padhook", "clients/1")) / 99, None, "-", "-", "{:.1f}")
# Flat
for state, label in (("one_client/others_100k", "100,000 other functions attached"),
                     ("one_client/other_clients_100", "100 other clients attached elsewhere"),
                     ("one_client/both", "both")):
    base_ns, ns = gb.get("clients/1"), gb.get(state)
    d_ins = ipc("padhook", state) - ipc("padhook", "clients/1")
    flat_ins = abs(d_ins) < 0.5
    flat_ns = ns is not None and base_ns is not None and ns <= base_ns * 1.10
    row(f"one client, {label}: instructions/call minus 1-function case", d_ins, None, "0 (flat)", yn(flat_ins), "{:+.1f}")
    if ns is not None:
        row(f"one client, {label}: ns/call (vs {base_ns:.2f} alone)", ns, None, "<= +10%", yn(flat_ns))
# Attach / detach
def us_row(name, v, xv, target=None):
    row(name, v, xv, "<= %s us" % target if target else "-", yn(v <= target) if target else "-", "{:.1f}")
for mode in ("fast", "strict"):
    for n in (1000, 10000, 100000):
        if (mode, n) in steady:
            a, d = steady[(mode, n)]
            is10k = n == 10000
            xa = med(xp_steady) if is10k and mode == "fast" else None
            xd = med(xp_steady_un) if is10k and mode == "fast" else None
            tgt = 150 if is10k and mode == "fast" else None
            us_row(f"[{mode}] attach {n:,} functions, steady (us per batch)", a, xa, tgt)
            us_row(f"[{mode}] detach {n:,} functions, steady (us per batch)", d, xd, tgt)
            row(f"[{mode}] attach / detach {n:,}, steady: ns per function", f"{a * 1000 / n:.0f} / {d * 1000 / n:.0f}",
                f"{xa * 1000 / xfuncs:.0f} / {xd * 1000 / xfuncs:.0f}" if xa else None, "-", "-")
        if (mode, n) in cold:
            ca = med([c[0] for c in cold[(mode, n)]]); cd = med([c[1] for c in cold[(mode, n)]])
            is10k = n == 10000 and mode == "fast"
            us_row(f"[{mode}] FIRST attach {n:,} functions (cold, fresh process, us)", ca,
                   med(xp_cold) if is10k else None, 1000 if is10k else None)
            us_row(f"[{mode}] first detach {n:,} functions (us)", cd, med(xp_cold_un) if is10k else None)
    if mode in single:
        a, d = single[mode]
        us_row(f"[{mode}] single-function attach (us)", a, xone[0] if xone and mode == "fast" else None,
               2 if mode == "fast" else None)
        us_row(f"[{mode}] single-function detach (us)", d, xone[1] if xone and mode == "fast" else None)

w = [max(len(r[i]) for r in rows + [("row", "padhook", "XRay", "ratio", "target", "met")]) for i in range(6)]
hdr = ("row", "padhook", "XRay", "ratio", "target", "met")
print(" | ".join(h.ljust(w[i]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(hdr)))
print("-+-".join("-" * x for x in w))
for r in rows:
    print(" | ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
print()
print(open(os.path.join(raw, "env.txt")).read().strip())
if xp_cold:
    print(f"XRay functions patched by __xray_patch(): {xfuncs:,} (10,000 many_functions + leaf_xray)")
PY
