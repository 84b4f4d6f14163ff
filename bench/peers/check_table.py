#!/usr/bin/env python3
"""Checks the shape of bench/peers.sh's table.json, not its numbers: the schema,
every row's fields and types, and that every target the attach (3), exit
(4) and tracer (5) issues set has its row. Used by the ctest
peers_runner_smoke (bench/peers.sh --tiny --check).

usage: check_table.py OUT/table.json
"""
import json
import sys

# (measure, unit) of every row that carries an issue's target.
REQUIRED = [
    ("empty entry handler, above unpatched", "instructions/call"),
    ("empty entry+exit handlers, above unpatched", "instructions/call"),
    ("empty entry+exit handlers, above unpatched", "ns/call"),
    ("traced call, above the untraced build", "ns/call"),
    ("trace size", "bytes/call"),
    ("record start-up, empty program, above running it directly", "ms"),
    ("report (per-function summary), per recorded call", "ns"),
    ("each extra client on the same function (1 -> 100)", "ns/call"),
    ("one client, 100,000 other functions attached: minus alone", "instructions/call"),
    ("one client, 100 other clients attached elsewhere: over alone", "ratio"),
    ("attach 10,000 functions, steady", "us"),
    ("detach 10,000 functions, steady", "us"),
    ("FIRST attach of 10,000 functions in a process", "us"),
    ("single-function attach", "us"),
]
TARGET_ISSUES = {"3", "4", "5", "3, 4"}


def fail(msg):
    print(f"check_table: {msg}")
    sys.exit(1)


def is_stat(v):
    return v is None or (isinstance(v, dict) and all(isinstance(v.get(k), (int, float))
                                                     for k in ("value", "min", "max", "n")))


doc = json.load(open(sys.argv[1]))
if doc.get("schema") != "padhook-peers/1":
    fail(f"schema is {doc.get('schema')!r}")
for key in ("env", "skipped", "peers", "rows"):
    if key not in doc:
        fail(f"no {key}")
rows = doc["rows"]
if not rows:
    fail("no rows")
for i, r in enumerate(rows):
    for key in ("section", "measure", "unit", "kind", "padhook", "peers", "ratio", "target", "met", "source"):
        if key not in r:
            fail(f"row {i} has no {key}")
    if r["kind"] not in ("instructions", "wall", "size"):
        fail(f"row {i}: kind {r['kind']!r}")
    if not is_stat(r["padhook"]) or not all(is_stat(v) for v in r["peers"].values()):
        fail(f"row {i} ({r['measure']}): a figure is not {{value, min, max, n}}")
    if any(k not in doc["peers"] for k in r["peers"]):
        fail(f"row {i}: unknown peer in {list(r['peers'])}")
    if r["met"] not in (None, True, False):
        fail(f"row {i}: met {r['met']!r}")
    if r["target"] is not None and str(r["target"].get("issue")) not in TARGET_ISSUES:
        fail(f"row {i}: target without an issue")
have = {(r["measure"], r["unit"]) for r in rows}
for m in REQUIRED:
    if m not in have:
        fail(f"no row {m}")
if not any(r["target"] and r["target"]["issue"] == 5 for r in rows):
    fail("no tracer target")
measured = sum(1 for r in rows if r["padhook"] is not None)
print(f"check_table: {len(rows)} rows, {measured} with a padhook figure, skipped: {sorted(doc['skipped'])}: ok")
