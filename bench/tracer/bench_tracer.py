#!/usr/bin/env python3
"""bench/tracer/bench_tracer.py: `padhook record` against `uftrace record`.

Measures, on the same workload (bench/tracer/workload.cc: one leaf called N
times in a loop, built with padhook's flags and with -pg by the same
compiler):

  ns per traced call   the program times its own loop (wall and thread CPU
                       time); median (min..max) of
                       --rounds rounds, the order of the three runs rotated
                       each round: unpatched (the padhook build run directly),
                       `padhook record`, `uftrace record`
  bytes per call       the trace directory's size / N
  start-up             wall time of `padhook record` / `uftrace record` of an
                       empty program (int main(){}) above running it directly,
                       median of rounds; plus the runtime's own start-up
                       (PADHOOK_TRACE_VERBOSE=1: constructor to attached)
  padhook+xmm          `padhook record` with PADHOOK_TRACE_SAVE_VECTORS=1: the
                       hooks without PADHOOK_HOOKS_NO_VECTOR (what the
                       handlers' -mgeneral-regs-only promise saves)
  instructions/call    callgrind (--smc-check=all, --trace-children=yes: the
                       launcher, uftrace's recorder and the program), at N and
                       2N calls: (I(2N) - I(N)) / N

Usage: bench/tracer/bench_tracer.py [--build DIR] [--rounds R] [--calls N]
                                    [--cg-calls N] [--work DIR] [--no-callgrind]
                                    [--startup-only]
--startup-only measures the start-up alone (and, with callgrind, the
instructions of every process of `padhook record` of the empty program against
the empty program run directly): for work on the start-up, in seconds.
Build first: cmake --build DIR --target tracer_bench_programs
Traces go to --work (default: a fresh directory in /dev/shm when it exists,
so that the disk's speed and fill level stay out of the figures).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(command, env=None, check=True):
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        sys.exit(f"bench_tracer: {' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    return result


def ns_per_call(stdout, key="ns_per_call"):
    match = re.search(rf"^{key} ([0-9.]+)", stdout, re.M)
    if not match:
        sys.exit(f"bench_tracer: no {key} in:\n{stdout}")
    return float(match.group(1))


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def summary(values):
    return f"{statistics.median(values):.1f} ({min(values):.1f}..{max(values):.1f})"


def print_startup(start):
    """The start-up rows (both modes print them)."""
    print("\nstart-up, empty program (ms, median (min..max))")
    print(f"  direct     {summary(start['direct'])}")
    for name in ("padhook", "uftrace"):
        above = statistics.median(start[name]) - statistics.median(start["direct"])
        print(f"  {name:10} {summary(start[name])}   above direct: {above:.1f}")
    if start["runtime"]:
        print(f"  padhook runtime's own (constructor to attached): {summary(start['runtime'])}")
    print("  target: padhook <= 5 ms above direct")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--cg-calls", type=int, default=100_000)
    parser.add_argument("--work")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--startup-only", action="store_true",
                        help="only the start-up (wall time, and instructions with callgrind)")
    parser.add_argument("--indirect", action="store_true",
                        help="call the leaf through a pointer (stack aligned at every call; "
                             "direct calls from GCC -O2 code are made with it 8 bytes off)")
    args = parser.parse_args()

    build = os.path.abspath(args.build)
    padhook = os.path.join(build, "tools/padhook/padhook")
    library = os.path.join(build, "tools/padhook/libpadhook-trace.so")
    workload = os.path.join(build, "bench/tracer/tracer_workload")
    workload_pg = os.path.join(build, "bench/tracer/tracer_workload_pg")
    empty = os.path.join(build, "bench/tracer/tracer_empty")
    empty_pg = os.path.join(build, "bench/tracer/tracer_empty_pg")
    for path in (padhook, library, workload, workload_pg, empty, empty_pg):
        if not os.path.exists(path):
            sys.exit(f"bench_tracer: {path} missing: cmake --build {args.build} --target tracer_bench_programs")
    if shutil.which("uftrace") is None:
        sys.exit("bench_tracer: uftrace not installed (scripts/install-deps.sh --peers)")
    base = args.work or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    work = tempfile.mkdtemp(prefix="padhook-bench-tracer-", dir=base)
    pdir, udir = os.path.join(work, "padhook.data"), os.path.join(work, "uftrace.data")
    n = str(args.calls)
    mode = ["indirect"] if args.indirect else []
    print(f"bench_tracer: {args.rounds} rounds of {args.calls} {'indirect' if args.indirect else 'direct'}"
          f" calls; traces in {work}")
    print(f"  uftrace: {run(['uftrace', '--version']).stdout.splitlines()[0]}")

    # ---- per call, alternating ----
    save_vectors = dict(os.environ, PADHOOK_TRACE_SAVE_VECTORS="1")
    runs = {
        "unpatched": lambda: run([workload, n, *mode]).stdout,
        "padhook": lambda: run([padhook, "record", "-o", pdir, "--", workload, n, *mode]).stdout,
        "uftrace": lambda: run(["uftrace", "record", "-d", udir, workload_pg, n, *mode]).stdout,
        "padhook+xmm": lambda: run([padhook, "record", "-o", pdir, "--", workload, n, *mode],
                                   env=save_vectors).stdout,
    }
    order = list(runs)
    times = {name: [] for name in runs}
    cpu_times = {name: [] for name in runs}
    sizes = {}
    for r in range(0 if args.startup_only else args.rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:
            shutil.rmtree(pdir, ignore_errors=True)
            shutil.rmtree(udir, ignore_errors=True)
            stdout = runs[name]()
            times[name].append(ns_per_call(stdout))
            cpu_times[name].append(ns_per_call(stdout, "cpu_ns_per_call"))
            if name.startswith("padhook"):
                sizes[name] = dir_bytes(pdir)
            elif name == "uftrace":
                sizes[name] = dir_bytes(udir)
    shutil.rmtree(pdir, ignore_errors=True)
    shutil.rmtree(udir, ignore_errors=True)

    # ---- start-up ----
    def wall(command, env=None):
        t0 = time.perf_counter_ns()
        run(command, env=env)
        return (time.perf_counter_ns() - t0) / 1e6

    start = {"direct": [], "padhook": [], "uftrace": [], "runtime": []}
    env = dict(os.environ, PADHOOK_TRACE_VERBOSE="1")
    for r in range(args.rounds):
        start["direct"].append(wall([empty]))
        shutil.rmtree(pdir, ignore_errors=True)
        t0 = time.perf_counter_ns()
        result = run([padhook, "record", "-o", pdir, "--", empty], env=env)
        start["padhook"].append((time.perf_counter_ns() - t0) / 1e6)
        match = re.search(r"start-up ([0-9.]+) ms", result.stderr)
        if match:
            start["runtime"].append(float(match.group(1)))
        shutil.rmtree(udir, ignore_errors=True)
        start["uftrace"].append(wall(["uftrace", "record", "-d", udir, empty_pg]))
    shutil.rmtree(pdir, ignore_errors=True)
    shutil.rmtree(udir, ignore_errors=True)

    # ---- callgrind ----
    # Every process of the command (the launcher, uftrace's recorder, the
    # program), at N and 2N calls: (I(2N) - I(N)) / N is the cost of one call,
    # whatever the fixed start-up and finalization cost.
    instructions = {}
    if not args.no_callgrind and shutil.which("valgrind"):
        def collected(command, tag, env=None):
            out = os.path.join(work, f"cg.{tag}")
            os.makedirs(out, exist_ok=True)
            run(["valgrind", "--tool=callgrind", "--smc-check=all", "--trace-children=yes",
                 f"--callgrind-out-file={out}/cg.%p", *command], env=env)
            total = 0
            for f in os.listdir(out):
                with open(os.path.join(out, f)) as fh:
                    match = re.search(r"^totals: *(\d+)", fh.read(), re.M)
                    total += int(match.group(1)) if match else 0
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(pdir, ignore_errors=True)
            shutil.rmtree(udir, ignore_errors=True)
            return total

        for name in () if args.startup_only else ("unpatched", "padhook", "uftrace", "padhook+xmm"):
            counts = []
            for calls in (args.cg_calls, 2 * args.cg_calls):
                command = {
                    "unpatched": [workload, str(calls), *mode],
                    "padhook": [padhook, "record", "-o", pdir, "--", workload, str(calls), *mode],
                    "uftrace": ["uftrace", "record", "-d", udir, workload_pg, str(calls), *mode],
                    "padhook+xmm": [padhook, "record", "-o", pdir, "--", workload, str(calls), *mode],
                }[name]
                env = save_vectors if name == "padhook+xmm" else None
                counts.append(collected(command, f"{name}.{calls}", env))
            instructions[name] = (counts[1] - counts[0]) / args.cg_calls
        if args.startup_only:
            start_instructions = {
                "direct": collected([empty], "direct"),
                "padhook": collected([padhook, "record", "-o", pdir, "--", empty], "padhook"),
            }
    shutil.rmtree(work, ignore_errors=True)

    if args.startup_only:
        print_startup(start)
        if not args.no_callgrind and shutil.which("valgrind"):
            d, p = start_instructions["direct"], start_instructions["padhook"]
            print("instructions, all processes (callgrind)")
            print(f"  direct     {d}")
            print(f"  padhook    {p}   above direct: {p - d}")
        return

    unpatched = statistics.median(times["unpatched"])
    print("\nper traced call (ns, median (min..max); 'above' = minus the unpatched median)")
    for name in ("unpatched", "padhook", "uftrace", "padhook+xmm"):
        above = statistics.median(times[name]) - unpatched
        extra = f"   above unpatched: {above:.1f}" if name != "unpatched" else ""
        print(f"  {name:10} {summary(times[name])}{extra}")
    ratio = (statistics.median(times["padhook"]) - unpatched) / max(
        statistics.median(times["uftrace"]) - unpatched, 1e-9)
    print(f"  padhook / uftrace (above unpatched): {ratio:.2f}   target: <= 40 ns above unpatched")
    cpu_unpatched = statistics.median(cpu_times["unpatched"])
    print("per traced call, the program thread's CPU time (ns; steadier on a loaded machine)")
    for name in ("unpatched", "padhook", "uftrace", "padhook+xmm"):
        above = statistics.median(cpu_times[name]) - cpu_unpatched
        extra = f"   above unpatched: {above:.1f}" if name != "unpatched" else ""
        print(f"  {name:11} {summary(cpu_times[name])}{extra}")
    print("\ntrace bytes per call (whole trace directory / calls)")
    for name in ("padhook", "uftrace"):
        print(f"  {name:10} {sizes[name] / args.calls:.2f}")
    print("  target: <= 16")
    print_startup(start)
    if instructions:
        print(f"\ninstructions per call, all processes (callgrind, {args.cg_calls} -> "
              f"{2 * args.cg_calls} calls)")
        for name in ("unpatched", "padhook", "uftrace", "padhook+xmm"):
            print(f"  {name:11} {instructions[name]:.1f}   above unpatched: "
                  f"{instructions[name] - instructions['unpatched']:.1f}")


if __name__ == "__main__":
    main()
