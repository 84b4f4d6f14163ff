#!/usr/bin/env python3
"""Checks `padhook export --format chrome` on the golden synthetic trace:
the output parses as JSON, every thread's B/E events nest and go forward in
time, every call is closed, and the marked ends are where the trace has them.

usage: check_chrome.py PADHOOK TRACE_DIR"""
import collections
import json
import subprocess
import sys


def main():
    padhook, trace = sys.argv[1], sys.argv[2]
    out = subprocess.run([padhook, "export", "--format", "chrome", "--no-progress", "-i", trace],
                         check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    events = data["traceEvents"]
    assert data["displayTimeUnit"] == "ns"

    names = {(e["pid"], e["tid"], e["name"]): e["args"]["name"] for e in events if e["ph"] == "M"}
    assert names[(1000, 1000, "process_name")] == "/opt/app/app", names
    assert names[(1000, 1001, "thread_name")] == "worker", names
    assert names[(1002, 1002, "process_name")] in ("/opt/app/app", "/usr/bin/tool"), names

    stacks = collections.defaultdict(list)
    last_ts = {}
    begins = collections.Counter()
    ends = collections.Counter()
    for e in events:
        if e["ph"] not in ("B", "E"):
            continue
        thread = (e["pid"], e["tid"])
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0, e
        assert e["ts"] >= last_ts.get(thread, 0), ("time goes back", e)
        last_ts[thread] = e["ts"]
        if e["ph"] == "B":
            stacks[thread].append(e["name"])
            begins[e["name"]] += 1
        else:
            assert stacks[thread], ("E without B", e)
            name = stacks[thread].pop()
            for mark in e.get("args", {}):
                ends[(name, mark)] += 1
    for thread, stack in stacks.items():
        assert not stack, ("calls left open", thread, stack)

    assert begins["fib(int)"] == 5, begins
    assert begins["lex"] == 3, begins
    assert begins["compute(double)"] == 3, begins
    assert ends[("risky()", "unwound")] == 1 and ends[("check(int)", "unwound")] == 1, ends
    assert ends[("lex", "exit_lost")] == 1, ends
    assert ends[("worker", "unfinished")] == 1 and ends[("tool_main", "unfinished")] == 1, ends
    main_begin = next(e for e in events if e["ph"] == "B" and e["name"] == "main")
    assert main_begin["ts"] == 0.1, main_begin  # 100 ns after the recording started
    lost = [e for e in events if e["ph"] == "i"]
    assert len(lost) == 1 and lost[0]["args"]["count"] == 3, lost
    print("chrome export ok: %d events" % len(events))


if __name__ == "__main__":
    main()
