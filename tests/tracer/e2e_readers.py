#!/usr/bin/env python3
"""End-to-end tests of the trace readers on real traces, in the style of
uftrace's test suite: record a small program (tests/tracer/e2e_*.cc) with
`padhook record`, run report, replay, graph, export and info on the trace,
normalize what changes from run to run (durations, tids, pids, paths), and
compare with the expected outputs in tests/tracer/e2e_expected/<name>.<what>.

usage: e2e_readers.py --padhook P --program PROG --name NAME --expected DIR
                      --work DIR [--update] [--killed]

--update writes the expected files instead of comparing (review the diff).
"""
import argparse
import collections
import difflib
import json
import os
import re
import shutil
import subprocess
import sys

DURATION = re.compile(r"\d+\.\d{3} (?:us|ms)|\d+\.\d{3}  s|\d+  s")


def run(cmd, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        sys.exit("command failed (%d): %s\nstdout:\n%s\nstderr:\n%s" %
                 (result.returncode, " ".join(cmd), result.stdout, result.stderr))
    return result.stdout


def normalize_report(text):
    out = []
    for line in text.splitlines():
        line = DURATION.sub("D", line)
        out.append(re.sub(r" +", " ", line).strip())
    return "\n".join(out) + "\n"


def normalize_replay(text, ids):
    """Per-thread blocks with tids and durations replaced, blocks sorted (the
    order of threads in a trace depends on scheduling only through their
    start times, which we do not test)."""
    blocks, current = [], None
    for line in text.splitlines():
        if line.startswith("# DURATION"):
            continue
        if line.startswith("# process"):
            current = [normalize_label(line, ids)]
            blocks.append(current)
            continue
        m = re.match(r"^(.{10}) \[\s*(\d+)\] \| (.*)$", line)
        if not m or current is None:
            current.append("?? " + line)
            continue
        duration = "D" if m.group(1).strip() else "-"
        current.append("%s [%s] | %s" % (duration, ids.get(m.group(2), "TID"), m.group(3)))
    return "\n\n".join("\n".join(b) for b in sorted(blocks)) + "\n"


def normalize_label(line, ids):
    def repl(m):
        return ids.get(m.group(0), "N")
    return re.sub(r"\b\d+(\.\d+)?\b", repl, normalize_names(line))


def normalize_names(text):
    """The program's name (and the 15 characters a thread name keeps of it)
    differs between its -O0 and -O2 builds; the trace's path between runs."""
    name = os.path.basename(ARGS.program)
    text = text.replace(ARGS.work, "WORK")
    return text.replace(name, "PROG").replace(name[:15], "PROG")


def normalize_graph(text):
    out = []
    for line in text.splitlines():
        line = DURATION.sub("D", line)
        line = re.sub(r"^ +D :", "D :", line)
        line = re.sub(r"^ +:", "  :", line)
        out.append(line.rstrip())
    return "\n".join(out) + "\n"


def thread_ids(trace):
    """Stable names for the pids and tids of a trace: P1, P2... in order of
    their process keys' start, T1, T2... in order of the threads' names."""
    info = json.loads(run([ARGS.padhook, "info", "--format", "json", "-i", trace]))
    ids = {}
    for n, process in enumerate(info["processes"], 1):
        ids.setdefault(str(process["pid"]), "P%d" % n)
        ids.setdefault(process["key"], "K%d" % n)
        for thread in process["threads"]:
            if str(thread["tid"]) == str(process["pid"]):
                ids.setdefault(str(thread["tid"]), ids[str(process["pid"])])
    for process in info["processes"]:
        names = sorted((t["name"], t["tid"]) for t in process["threads"]
                       if t["tid"] != process["pid"])
        for k, (name, tid) in enumerate(names, 1):
            ids.setdefault(str(tid), "T%d" % k)
    return ids, info


def check_chrome(trace, report):
    data = json.loads(run([ARGS.padhook, "export", "--format", "chrome", "--no-progress",
                           "-i", trace]))
    stacks = collections.defaultdict(list)
    begins = collections.Counter()
    last = {}
    for e in data["traceEvents"]:
        if e["ph"] not in ("B", "E"):
            continue
        thread = (e["pid"], e["tid"])
        assert e["ts"] >= last.get(thread, 0), ("time goes back", e)
        last[thread] = e["ts"]
        if e["ph"] == "B":
            stacks[thread].append(e["name"])
            begins[e["name"]] += 1
        else:
            assert stacks[thread], ("E without B", e)
            stacks[thread].pop()
    assert all(not s for s in stacks.values()), ("open calls", stacks)
    calls = {row["function"]: row["calls"] for row in report}
    assert dict(begins) == calls, ("chrome and report disagree", dict(begins), calls)


def main():
    trace = os.path.join(ARGS.work, "padhook.data")
    shutil.rmtree(ARGS.work, ignore_errors=True)
    os.makedirs(ARGS.work)
    environment = dict(os.environ)
    if os.environ.get("PADHOOK_TEST_PRELOAD"):  # sanitizer builds (tests/tracer/CMakeLists.txt)
        environment["LD_PRELOAD"] = os.environ["PADHOOK_TEST_PRELOAD"]
    record = subprocess.run([ARGS.padhook, "record", "-o", trace, "-F", "e2e::*", "-F", "main",
                             "--", ARGS.program], capture_output=True, text=True, cwd=ARGS.work,
                            env=environment)
    expected_status = 128 + 9 if ARGS.killed else 0
    if record.returncode != expected_status:
        sys.exit("padhook record exited %d, expected %d:\n%s\n%s" %
                 (record.returncode, expected_status, record.stdout, record.stderr))

    ids, info = thread_ids(trace)
    assert info["events_lost"] == 0 and info["exits_lost"] == 0, info
    if ARGS.killed:
        assert info["ended_abnormally"], info
        assert info["signal"] == 9, info
        assert any("signal 9" in reason for reason in info["abnormal_reasons"]), info
        assert info["unfinished_calls"] > 0, info
        text = run([ARGS.padhook, "info", "-i", trace])
        assert "ended:             ABNORMALLY" in text, text
    else:
        assert not info["ended_abnormally"], info["abnormal_reasons"]
        assert info["unfinished_calls"] == 0, info

    report = json.loads(run([ARGS.padhook, "report", "--format", "json", "-i", trace]))
    for row in report:
        assert row["self_ns"] <= row["total_ns"] or row["calls"] > 1, row
        assert row["min_ns"] <= row["avg_ns"] <= row["max_ns"], row
        assert row["unfinished"] == 0 or ARGS.killed, row
    check_chrome(trace, report)

    outputs = {
        "report": normalize_report(run([ARGS.padhook, "report", "--sort", "calls", "-i", trace])),
        "replay": normalize_replay(run([ARGS.padhook, "replay", "-i", trace]), ids),
        "graph": normalize_graph(normalize_names(run([ARGS.padhook, "graph", "-i", trace]))),
        "folded": "".join(sorted(run([ARGS.padhook, "export", "--format", "folded", "--value",
                                      "count", "-i", trace]).splitlines(True))),
    }
    failed = False
    for what, text in outputs.items():
        path = os.path.join(ARGS.expected, "%s.%s" % (ARGS.name, what))
        if ARGS.update:
            with open(path, "w") as f:
                f.write(text)
            continue
        with open(path) as f:
            expected = f.read()
        if text != expected:
            failed = True
            sys.stdout.writelines(difflib.unified_diff(
                expected.splitlines(True), text.splitlines(True), path, "actual"))
    if failed:
        sys.exit("e2e %s: outputs differ from %s" % (ARGS.name, ARGS.expected))
    print("e2e %s: ok (%d processes, %d events)" % (ARGS.name, len(info["processes"]),
                                                   info["events"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--padhook", required=True)
    parser.add_argument("--program", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--expected", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--update", action="store_true")
    parser.add_argument("--killed", action="store_true",
                        help="the program kills itself with SIGKILL")
    ARGS = parser.parse_args()
    ARGS.padhook, ARGS.program, ARGS.work = (os.path.abspath(p) for p in (
        ARGS.padhook, ARGS.program, ARGS.work))
    main()
