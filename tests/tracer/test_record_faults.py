#!/usr/bin/env python3
"""Fault injection in `padhook record` (issue 7): the runtime's system calls
and padhook's, and the runtime's start-up allocations, fail one at a time
(PADHOOK_TRACE_FAULT=kind:nth, read by libpadhook-trace.so; src/fault/fault.h).

For every kind and nth = 1, 2, ... until the nth call is not reached (the
runtime says at exit how many calls of the kind it saw and whether one
failed), for trace_target's `threads`, `fork` and `dlopen_busy` scenarios (the
last dlopen()s a plugin while another thread runs traced code: with GCC's NOP
runs, padhook stops that thread with tgkill to convert the plugin's sites):
  - the program runs to completion with its normal output and exit status;
  - when a call failed on purpose, stderr says what failed (a padhook-trace
    message), unless the failure had a fallback (then nothing was lost and
    every function was traced);
  - events lost are counted (the summary's "N lost"), never silently dropped:
    a thread whose buffer could not be made loses events, and they show;
  - the trace (when one was written) is readable by `padhook info` and
    `padhook report`.
Whether the code is fully patched or fully restored after each failure is
checked byte for byte by fault_test (the same fault points, in-process).

Usage: test_record_faults.py --padhook PADHOOK --target TRACE_TARGET --plugin PLUGIN --work DIR
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import unittest

ARGS = None

# Kinds whose every call has a fallback: a failure there must cost nothing.
FALLBACK = {"membarrier"}
# (kind, mode): strict W^X (PADHOOK_STRICT_WX=1) writes code through
# /proc/self/mem, the only mode that opens it and calls pwrite.
KINDS = [("open", "fast"), ("open", "strict"), ("mmap", "fast"), ("ftruncate", "fast"),
         ("mprotect", "fast"), ("pwrite", "strict"), ("sigaction", "fast"), ("tgkill", "fast"),
         ("membarrier", "fast"), ("alloc", "fast")]
MODE_ENV = {"fast": {}, "strict": {"PADHOOK_STRICT_WX": "1"}}
REPORT = re.compile(r"padhook-trace: PADHOOK_TRACE_FAULT=(\S+): (\d+) calls of (\S+) seen, "
                    r"(it failed on purpose|not reached)")
SUMMARY = re.compile(r"padhook record: (\d+) functions, (\d+) events, (\d+) lost")
TOTALS = {}  # kind -> [cases, injected]


def environment(extra=None):
    env = dict(os.environ)
    env.pop("PADHOOK_TRACE_FAULT", None)
    if os.environ.get("PADHOOK_TEST_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["PADHOOK_TEST_PRELOAD"]
    env.update(extra or {})
    return env


class RecordFaultTest(unittest.TestCase):
    @staticmethod
    def command(scenario):
        return [ARGS.target, scenario] + ([ARGS.plugin] if scenario == "dlopen_busy" else [])

    def record(self, trace, scenario, fault=None, mode="fast"):
        shutil.rmtree(trace, ignore_errors=True)
        extra = dict(MODE_ENV[mode])
        if fault:
            extra["PADHOOK_TRACE_FAULT"] = fault
        return subprocess.run([ARGS.padhook, "record", "-o", trace, "--", *self.command(scenario)],
                              cwd=ARGS.work, env=environment(extra), capture_output=True,
                              text=True, timeout=120)

    def check_readable(self, trace, what):
        for command in ("info", "report"):
            result = subprocess.run([ARGS.padhook, command, "-i", trace], capture_output=True,
                                    text=True, timeout=120, env=environment())
            self.assertEqual(result.returncode, 0,
                             f"{what}: padhook {command} failed:\n{result.stderr}")

    def run_scenario(self, scenario):
        work = os.path.join(ARGS.work, scenario)
        os.makedirs(work, exist_ok=True)
        plain = subprocess.run(self.command(scenario), cwd=ARGS.work, env=environment(),
                               capture_output=True, text=True, timeout=120)
        trace = os.path.join(work, "padhook.data")
        base = self.record(trace, scenario)
        base_summary = SUMMARY.search(base.stderr)
        self.assertIsNotNone(base_summary, base.stderr)
        base_functions = int(base_summary.group(1))
        self.assertGreater(base_functions, 0, base.stderr)
        for kind, mode in KINDS:
            nth = 1
            while True:
                fault = f"{kind}:{nth}"
                what = f"{scenario} {fault} ({mode} mode)"
                result = self.record(trace, scenario, fault, mode)
                # The program: as without padhook.
                self.assertEqual(result.returncode, plain.returncode, f"{what}:\n{result.stderr}")
                self.assertEqual(result.stdout, plain.stdout, f"{what}:\n{result.stderr}")
                reports = REPORT.findall(result.stderr)
                self.assertTrue(reports, f"{what}: the runtime did not report the fault:\n"
                                         f"{result.stderr}")
                injected = any(r[3] == "it failed on purpose" for r in reports)
                summary = SUMMARY.search(result.stderr)
                self.assertIsNotNone(summary, f"{what}: no summary:\n{result.stderr}")
                functions, lost = int(summary.group(1)), int(summary.group(3))
                messages = [line for line in result.stderr.splitlines()
                            if line.startswith("padhook-trace:") and not REPORT.match(line)]
                counts = TOTALS.setdefault(f"{kind} ({mode})", [0, 0])
                counts[0] += 1
                if injected:
                    counts[1] += 1
                    if kind in FALLBACK or not messages:
                        # Silent only when nothing was lost: a fallback.
                        self.assertEqual(lost, 0, f"{what}: events lost without a word:\n"
                                                  f"{result.stderr}")
                        self.assertEqual(functions, base_functions,
                                         f"{what}: functions not traced without a word:\n"
                                         f"{result.stderr}")
                    if any("counted as lost" in m for m in messages) and os.path.isdir(trace):
                        self.assertGreater(lost, 0, f"{what}: events said lost, none counted:\n"
                                                    f"{result.stderr}")
                if os.path.isdir(trace) and functions > 0:
                    self.check_readable(trace, what)
                if not injected:
                    break
                # Allocations: every one of the first 30, then a sample.
                nth += 1 if kind != "alloc" or nth < 30 else max(1, nth // 4)
                self.assertLess(nth, 5000, f"{what}: never completed")

    def test_threads(self):
        self.run_scenario("threads")

    def test_fork(self):
        self.run_scenario("fork")

    def test_dlopen_busy(self):
        self.run_scenario("dlopen_busy")


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--padhook", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--work", required=True)
    ARGS, rest = parser.parse_known_args()
    os.makedirs(ARGS.work, exist_ok=True)
    program = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    for kind, (cases, injected) in TOTALS.items():
        print(f"{kind}: {cases} recordings, {injected} faults injected and survived"
              if program.result.wasSuccessful() else f"{kind}: {cases} recordings, {injected} "
              f"faults injected")
    sys.exit(0 if program.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
