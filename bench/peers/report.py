#!/usr/bin/env python3
"""The table of bench/peers.sh: reads RAW (the runner's raw outputs), writes
OUT/table.txt, OUT/table.json and the data files of the plots
(OUT/plot_*.dat, drawn by plots.gnuplot). Prints the table.

usage: report.py RAW OUT

Every figure is computed here from the raw outputs of the same run; nothing is
carried over from elsewhere. Targets are the ones the issues set (issue 3:
live patching and the global trampoline; issue 4: exit handlers; issue 5: the
tracer).
"""
import glob
import json
import os
import re
import statistics
import sys

raw, out = sys.argv[1], sys.argv[2]
SCHEMA = "padhook-peers/1"

# Columns: padhook, then the peers, in this order.
PEERS = [
    ("xray", "XRay"),
    ("uftrace_pg", "uftrace -pg"),
    ("uftrace_p5", "uftrace -P ."),
    ("uprobes", "uprobes"),
    ("finstr", "-finstr-fn"),
    ("hash_map", "hash map"),
    ("sorted", "sorted array"),
]
PEER_NAMES = dict(PEERS)


def kv(tokens):
    return {tokens[i]: tokens[i + 1] for i in range(0, len(tokens) - 1, 2)}


def read_lines(name):
    p = os.path.join(raw, name)
    return open(p).read().splitlines() if os.path.exists(p) else []


env = {}
for line in read_lines("env.txt"):
    k, _, v = line.partition(" ")
    env[k] = v
skipped = {}
for line in read_lines("skipped.txt"):
    _, tool, why = line.split(" ", 2)
    skipped[tool] = why

# ---- wall clock samples: job -> key -> [per round] ----
rounds = {}  # job -> {round: {key: value}}
for line in read_lines("time.txt"):
    t = line.split()
    r, job, d = int(t[1]), t[3], kv(t[4:])
    rounds.setdefault(job, {})[r] = d


def per_round(job, key="ns_per_call"):
    return {r: float(d[key]) for r, d in rounds.get(job, {}).items() if key in d}


# call_overhead_benchmark, one process per round
gb = {}  # state -> {round: ns}
for p in glob.glob(os.path.join(raw, "call_overhead.*.json")):
    r = int(p.split(".")[-2])
    for b in json.load(open(p)).get("benchmarks", []):
        if b.get("run_type") == "iteration" and "ns_per_call" in b:
            v = b["ns_per_call"]
            gb.setdefault(b["run_name"], {})[r] = v * 1e9 if v < 1e-3 else v
lookup_ns = {}  # "padding/random" -> {round: ns}
for p in glob.glob(os.path.join(raw, "lookup.*.json")):
    r = int(p.split(".")[-2])
    for b in json.load(open(p)).get("benchmarks", []):
        if b.get("run_type") == "iteration" and "ns_per_lookup" in b:
            v = b["ns_per_lookup"]
            name = b["run_name"].split("/", 1)[1]
            lookup_ns.setdefault(name, {})[r] = v * 1e9 if v < 1e-3 else v

attach = {}  # (kind, mode, n) -> {round: {key: float}}
for line in read_lines("attach.txt"):
    t = line.split()
    r, kind, d = int(t[1]), t[2], kv(t[3:])
    n = int(d.get("batch", 1))
    attach.setdefault((kind, d["mode"], n), {})[r] = {k: float(v) for k, v in d.items() if k != "mode"}
xpatch = {}  # kind -> {round: {key: float}}
for line in read_lines("xray_patch.txt"):
    t = line.split()
    xpatch.setdefault(t[2], {})[int(t[1])] = {k: float(v) for k, v in kv(t[3:]).items()}

# ---- callgrind ----
cg = {}
cg_calls = None
for line in read_lines("callgrind.txt"):
    t = line.split()
    if t[0] == "cg":
        cg[t[1]] = float(t[3])
    elif t[0] == "cg_calls":
        cg_calls = float(t[1])
co_cg = {}  # padhook STATE -> (per_call, above_b, above_a)
for line in read_lines("call_overhead_callgrind.txt"):
    t = line.split()
    if len(t) == 6 and t[0] == "padhook" and t[2].isdigit():
        co_cg[t[1]] = (float(t[3]), float(t[4]), float(t[5]))
lk_cg = {}
for line in read_lines("lookup_callgrind.txt"):
    t = line.split()
    if len(t) == 3 and t[0] != "method":
        lk_cg[t[0]] = float(t[2])


# ---- statistics ----
def stat(samples):
    """{round: value} or [values] -> {value: median, min, max, n} or None."""
    v = list(samples.values()) if isinstance(samples, dict) else list(samples)
    v = [x for x in v if x is not None]
    if not v:
        return None
    return {"value": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def delta(a, b, scale=1.0):
    """Per-round a - b (same round only), scaled."""
    return {r: (a[r] - b[r]) * scale for r in a if r in b}


def ratio_rounds(a, b):
    return {r: a[r] / b[r] for r in a if r in b and b[r]}


def single(v):
    return None if v is None else {"value": v, "min": v, "max": v, "n": 1}


def cg_per_call(name, base):
    if name in cg and base in cg and cg_calls:
        return single((cg[name] - cg[base]) / cg_calls)
    return None


rows = []


def row(section, measure, unit, kind, padhook, peers=None, vs=None, target=None, source="", note=""):
    """target: (text, op, value, issue) with op one of <=, <=~ (rounded to 0.01), ratio<=, abs<=."""
    peers = {k: v for k, v in (peers or {}).items() if v is not None}
    ratio = None
    if vs and padhook and vs in peers and peers[vs]["value"]:
        ratio = {"vs": vs, "value": padhook["value"] / peers[vs]["value"]}
    met = None
    tgt = None
    if target:
        text, op, value, issue = target
        tgt = {"text": text, "op": op, "value": value, "issue": issue}
        if padhook is not None:
            if op == "<=":
                met = padhook["value"] <= value
            elif op == "<=~":  # per-call sizes: the fixed part of a trace (headers, function
                # table: a few KB per run) amortized over millions of calls is below 0.005 B
                met = round(padhook["value"], 2) <= value
            elif op == "ratio<=" and ratio is not None:
                met = ratio["value"] <= value
            elif op == "abs<=":
                met = abs(padhook["value"]) <= value
    rows.append({"section": section, "measure": measure, "unit": unit, "kind": kind, "padhook": padhook,
                 "peers": peers, "ratio": ratio, "target": tgt, "met": met, "source": source, "note": note})


T = {}  # shorthand: job -> per-round ns
for job in rounds:
    T[job] = per_round(job)

S_CALL = "per call: a tiny leaf, same source (bench/peers/peer_leaf.cc), clang++ -O2"
src_cg = "callgrind over bench_call_loop: commands cg_<program state> in raw/commands.txt"
src_ns = "peer_driver --time, one process per tool per round (commands: job names in raw/commands.txt)"

# 1. unpatched
row(S_CALL, "unpatched instrumented call, above uninstrumented", "instructions/call", "instructions",
    cg_per_call("padhook_unpatched", "plain"),
    {"xray": cg_per_call("xray_unpatched", "plain"), "uftrace_p5": cg_per_call("patch5", "plain")},
    vs="xray", source=src_cg, note="uftrace -P . column: the -fpatchable-function-entry=5 build, not traced")
row(S_CALL, "unpatched instrumented call, above uninstrumented", "ns/call", "wall",
    stat(delta(T.get("padhook_unpatched", {}), T.get("plain", {}))),
    {"xray": stat(delta(T.get("xray_unpatched", {}), T.get("plain", {}))),
     "uftrace_p5": stat(delta(T.get("patch5", {}), T.get("plain", {})))},
    vs="xray", source=src_ns)
host = os.path.basename(env.get("host_compiler", "the host compiler"))
row(S_CALL, f"unpatched, never patched, {host} build (its own NOPs), above uninstrumented", "instructions/call",
    "instructions", single(co_cg["unpatched_fresh"][2]) if "unpatched_fresh" in co_cg else None,
    source="bench/call_overhead_callgrind.sh (call_overhead_benchmark, built by the host compiler)",
    note="g++ emits a run of 1-byte NOPs until the first patch in the module converts it")
row(S_CALL, f"unpatched, never patched, {host} build (its own NOPs), above uninstrumented", "ns/call", "wall",
    stat(delta(gb.get("unpatched_fresh", {}), gb.get("uninstrumented", {}))),
    source="call_overhead_benchmark (Google Benchmark), one process per round")
# 2. entry handler
row(S_CALL, "empty entry handler, above unpatched", "instructions/call", "instructions",
    cg_per_call("padhook_entry", "padhook_unpatched"), {"xray": cg_per_call("xray_patched", "xray_unpatched")},
    vs="xray", target=("<= 30", "<=", 30, 3), source=src_cg,
    note="XRay patches entry and exit together: its figure is its empty handler on both")
row(S_CALL, "empty entry handler, above unpatched", "ns/call", "wall",
    stat(delta(T.get("padhook_entry", {}), T.get("padhook_unpatched", {}))),
    {"xray": stat(delta(T.get("xray_patched", {}), T.get("xray_unpatched", {}))),
     "uprobes": stat(delta(T.get("uprobe", {}), T.get("patch5_up", {})))},
    vs="xray", source=src_ns, note="uprobes: bpftrace empty uprobe on the 5-byte NOP of the patchable=5 build")
row(S_CALL, "same, client passes PADHOOK_HOOKS_NO_VECTOR", "instructions/call", "instructions",
    cg_per_call("padhook_entry_nv", "padhook_unpatched"), {"xray": cg_per_call("xray_patched", "xray_unpatched")},
    vs="xray", target=("<= 30", "<=", 30, 3), source=src_cg)
row(S_CALL, "same, client passes PADHOOK_HOOKS_NO_VECTOR", "ns/call", "wall",
    stat(delta(T.get("padhook_entry_nv", {}), T.get("padhook_unpatched", {}))),
    {"xray": stat(delta(T.get("xray_patched", {}), T.get("xray_unpatched", {})))}, vs="xray", source=src_ns)
# 3. entry + exit
row(S_CALL, "empty entry+exit handlers, above unpatched", "instructions/call", "instructions",
    cg_per_call("padhook_entry_exit", "padhook_unpatched"),
    {"xray": cg_per_call("xray_patched", "xray_unpatched"), "finstr": cg_per_call("finstr", "plain")},
    vs="xray", target=("<= 50", "<=", 50, 4), source=src_cg,
    note="-finstrument-functions: above the uninstrumented build (it has no unpatched state)")
pad_ee = delta(T.get("padhook_entry_exit", {}), T.get("padhook_unpatched", {}))
xr_ee = delta(T.get("xray_patched", {}), T.get("xray_unpatched", {}))
row(S_CALL, "empty entry+exit handlers, above unpatched", "ns/call", "wall", stat(pad_ee),
    {"xray": stat(xr_ee), "finstr": stat(delta(T.get("finstr", {}), T.get("plain", {})))},
    vs="xray", target=("<= 60% of XRay", "ratio<=", 0.6, "3, 4"), source=src_ns)

# 4. tracer
S_TR = "tracer: record every call of the same leaf (entry and exit, with timestamps)"
tr_note = "padhook: `padhook record`, run only once it exists (issue 5)"
row(S_TR, "traced call, above the untraced build", "instructions/call", "instructions",
    cg_per_call("padhook_record", "padhook_unpatched"),
    {"uftrace_pg": cg_per_call("uftrace_pg", "plain"), "uftrace_p5": cg_per_call("uftrace_p5", "patch5")},
    vs="uftrace_p5", source=src_cg + "; the traced process only (not uftrace's recorder)", note=tr_note)
row(S_TR, "traced call, above the untraced build", "ns/call", "wall",
    stat(delta(T.get("padhook_record", {}), T.get("padhook_unpatched_t", {}))),
    {"uftrace_pg": stat(delta(T.get("uftrace_pg", {}), T.get("plain_t", {}))),
     "uftrace_p5": stat(delta(T.get("uftrace_p5", {}), T.get("patch5_t", {})))},
    vs="uftrace_p5", target=("<= 40", "<=", 40, 5), source=src_ns + "; -pg against the plain build")


def bytes_per_call(job):
    d = rounds.get(job, {})
    return stat({r: float(x["trace_bytes"]) / float(x["trace_calls"]) for r, x in d.items() if "trace_bytes" in x})


row(S_TR, "trace size", "bytes/call", "size", bytes_per_call("padhook_record"),
    {"uftrace_pg": bytes_per_call("uftrace_pg"), "uftrace_p5": bytes_per_call("uftrace_p5")},
    vs="uftrace_p5", target=("<= 16", "<=~", 16, 5),
    source="data files of the traced run / calls traced (met: rounded to 0.01 B, the fixed part of a "
           "trace amortized)")
row(S_TR, "record start-up, empty program, above running it directly", "instructions", "instructions",
    single(cg["startup_padhook_record"] - cg["startup_direct"]) if "startup_padhook_record" in cg else None,
    {"uftrace_pg": single(cg["startup_uftrace"] - cg["startup_direct"]) if "startup_uftrace" in cg and "startup_direct" in cg else None},
    vs="uftrace_pg", source="callgrind, every process of the command")
row(S_TR, "record start-up, empty program, above running it directly", "ms", "wall",
    stat(delta(per_round("startup_padhook_record", "ns"), per_round("startup_direct", "ns"), 1e-6)),
    {"uftrace_pg": stat(delta(per_round("startup_uftrace", "ns"), per_round("startup_direct", "ns"), 1e-6))},
    vs="uftrace_pg", target=("<= 5", "<=", 5, 5), source="wall time of the whole command, per round")


def report_ns(job):
    d = rounds.get(job, {})
    return stat({r: float(x["report_ns"]) / float(x["trace_calls"]) for r, x in d.items() if "report_ns" in x})


def report_ins(name):
    return single(cg[name] / (cg_calls + 1000)) if name in cg and cg_calls else None


row(S_TR, "report (per-function summary), per recorded call", "instructions", "instructions",
    report_ins("padhook_report"), {"uftrace_p5": report_ins("uftrace_report")}, vs="uftrace_p5",
    source="callgrind of the report command over the callgrind run's trace")
row(S_TR, "report (per-function summary), per recorded call", "ns", "wall", report_ns("padhook_record"),
    {"uftrace_pg": report_ns("uftrace_pg"), "uftrace_p5": report_ns("uftrace_p5")}, vs="uftrace_p5",
    target=("<= 50 (0.5 s per 10 M calls)", "<=", 50, 5), source="wall time of the report command / calls traced")

# 5. clients and flatness (padhook only: XRay has one global handler)
S_CL = "clients and scale (padhook only: XRay has one global handler, no clients)"
src_gb = "call_overhead_benchmark (Google Benchmark), one process per round (command: call_overhead)"
base_gb = gb.get("unpatched", {})
for k in (1, 2, 10, 100):
    st = f"clients/{k}"
    row(S_CL, f"{k} client(s) with an empty entry handler on one function, above unpatched", "instructions/call",
        "instructions", single(co_cg[st][1]) if st in co_cg else None, source="bench/call_overhead_callgrind.sh")
    row(S_CL, f"{k} client(s) with an empty entry handler on one function, above unpatched", "ns/call", "wall",
        stat(delta(gb.get(st, {}), base_gb)), source=src_gb)
if "clients/1" in co_cg and "clients/100" in co_cg:
    row(S_CL, "each extra client on the same function (1 -> 100)", "instructions/call", "instructions",
        single((co_cg["clients/100"][0] - co_cg["clients/1"][0]) / 99), source="bench/call_overhead_callgrind.sh")
row(S_CL, "each extra client on the same function (1 -> 100)", "ns/call", "wall",
    stat(delta(gb.get("clients/100", {}), gb.get("clients/1", {}), 1.0 / 99)),
    target=("<= 2", "<=", 2, 3), source=src_gb)
flat = [("one_client/others_1k", "1,000 other functions attached"),
        ("one_client/others_10k", "10,000 other functions attached"),
        ("one_client/others_100k", "100,000 other functions attached"),
        ("one_client/other_clients_1", "1 other client attached elsewhere"),
        ("one_client/other_clients_10", "10 other clients attached elsewhere"),
        ("one_client/other_clients_100", "100 other clients attached elsewhere"),
        ("one_client/both", "100,000 functions and 100 clients attached elsewhere")]
for st, label in flat:
    row(S_CL, f"one client, {label}: minus alone", "instructions/call", "instructions",
        single(co_cg[st][0] - co_cg["clients/1"][0]) if st in co_cg and "clients/1" in co_cg else None,
        target=("0 (flat)", "abs<=", 0.5, 3), source="bench/call_overhead_callgrind.sh")
    row(S_CL, f"one client, {label}: over alone", "ratio", "wall",
        stat(ratio_rounds(gb.get(st, {}), gb.get("clients/1", {}))), target=("<= 1.10 (flat)", "<=", 1.10, 3),
        source=src_gb, note="issue 3 says flat; 10% is this runner's noise allowance")

# 6. attach / detach
S_AT = "attach / detach: one client, empty entry handler, batches of many_functions (fast write mode)"
src_at = ("attach_benchmark and xray_driver (steady: median of the rounds of one process; first: one fresh "
          "process; commands: attach, xray_patch)")
xr_steady = xpatch.get("patch_all", {})
xr_n = int(next(iter(xr_steady.values()))["functions"]) if xr_steady else None


def att(kind, mode, n, key):
    return {r: d[key] for r, d in attach.get((kind, mode, n), {}).items() if key in d}


def xr(kind, key):
    return {r: d[key] for r, d in xpatch.get(kind, {}).items() if key in d}


def cgv(name, scale=1.0):
    return single(cg[name] * scale) if name in cg else None


# The 10,000-function rows carry issue 3's targets: always in the table.
for n in sorted({k[2] for k in attach if k[0] == "steady" and k[1] == "fast"} | {10000}):
    is10k = n == 10000
    for way, xkey, cgop, xop in (("attach", "patch_us", "attach", "patch_all"),
                                 ("detach", "unpatch_us", "detach", "unpatch_all")):
        peers = {"xray": stat(xr("patch_all", xkey))} if is10k else {}
        tgt = ("<= 150", "<=", 150, 3) if is10k else None
        row(S_AT, f"{way} {n:,} function{'s' if n > 1 else ''}, steady", "us", "wall", stat(att("steady", "fast", n, way + "_us")), peers,
            vs="xray", target=tgt, source=src_at,
            note=f"XRay: __xray_{'patch' if way == 'attach' else 'unpatch'}() of {xr_n:,} functions" if is10k and xr_n else "")
        if f"attach_{cgop}_{n}" in cg or is10k:
            row(S_AT, f"{way} {n:,} function{'s' if n > 1 else ''}, steady", "instructions", "instructions", cgv(f"attach_{cgop}_{n}"),
                {"xray": cgv(f"xray_{xop}")} if is10k else {}, vs="xray", source="attach_benchmark --count")
for n in sorted({k[2] for k in attach if k[0] == "cold" and k[1] == "fast"} | {10000}):
    is10k = n == 10000
    row(S_AT, f"FIRST attach of {n:,} functions in a process", "us", "wall", stat(att("cold", "fast", n, "attach_us")),
        {"xray": stat(xr("patch_all", "cold_patch_us"))} if is10k else {}, vs="xray",
        target=("<= 1000", "<=", 1000, 3) if is10k else None, source=src_at)
    if f"attach_cold_attach_{n}" in cg or is10k:
        row(S_AT, f"FIRST attach of {n:,} functions in a process", "instructions", "instructions",
            cgv(f"attach_cold_attach_{n}"), {"xray": cgv("xray_cold_patch_all")} if is10k else {}, vs="xray",
            source="attach_benchmark --count")
row(S_AT, "single-function attach", "us", "wall", stat(att("single", "fast", 1, "attach_us")),
    {"xray": stat(xr("patch_one", "patch_us"))}, vs="xray", target=("<= 2", "<=", 2, 3), source=src_at)
row(S_AT, "single-function attach", "instructions", "instructions", cgv("attach_attach_1"),
    {"xray": cgv("xray_patch_one")}, vs="xray", source="attach_benchmark --count fast 1 attach")
row(S_AT, "single-function detach", "us", "wall", stat(att("single", "fast", 1, "detach_us")),
    {"xray": stat(xr("patch_one", "unpatch_us"))}, vs="xray", source=src_at)
if ("steady", "strict", 1000) in attach:
    row(S_AT, "[strict W^X mode] attach 1,000 functions, steady", "us", "wall",
        stat(att("steady", "strict", 1000, "attach_us")), source=src_at)
    row(S_AT, "[strict W^X mode] single-function attach", "us", "wall", stat(att("single", "strict", 1, "attach_us")),
        source=src_at)

# 7. lookup
S_LK = "metadata lookup over 100,000 functions: padhook's padding index vs the usual alternatives"
if lk_cg:
    row(S_LK, "ip -> metadata, random order", "instructions/lookup", "instructions", single(lk_cg.get("padding")),
        {"hash_map": single(lk_cg.get("hash_map")), "sorted": single(lk_cg.get("sorted"))}, vs="hash_map",
        source="bench/lookup_callgrind.sh")
for pat in ("random", "hot"):
    if f"padding/{pat}" in lookup_ns:
        row(S_LK, f"ip -> metadata, {pat}", "ns/lookup", "wall", stat(lookup_ns[f"padding/{pat}"]),
            {"hash_map": stat(lookup_ns.get(f"hash_map/{pat}", {})), "sorted": stat(lookup_ns.get(f"sorted/{pat}", {}))},
            vs="hash_map", source="lookup_benchmark (Google Benchmark), one process per round")

# ---- output ----
commands = {}
for line in read_lines("commands.txt"):
    k, _, v = line.partition(": ")
    commands[k] = v
doc = {"schema": SCHEMA, "env": env, "skipped": skipped, "peers": PEER_NAMES, "commands": commands,
       "callgrind_calls": cg_calls, "rows": rows}


def fmt(v, kind):
    if v is None:
        return "-"
    x = v["value"]
    prec = 0 if abs(x) >= 1000 else 1 if abs(x) >= 10 else 2
    s = f"{x:.{prec}f}"
    if kind == "wall" and v.get("n", 1) > 1:
        s += f" ({v['min']:.{prec}f}..{v['max']:.{prec}f})"
    return s


lines = []
sections = []
for rw in rows:
    if rw["section"] not in sections:
        sections.append(rw["section"])
for sec in sections:
    rs = [rw for rw in rows if rw["section"] == sec]
    cols = [k for k, _ in PEERS if any(k in rw["peers"] for rw in rs)]
    hdr = ["measure", "unit", "padhook"] + [PEER_NAMES[k] for k in cols] + ["ratio", "target", "met"]
    table = []
    for rw in rs:
        ratio = f"{rw['ratio']['value']:.2f} vs {PEER_NAMES[rw['ratio']['vs']]}" if rw["ratio"] else "-"
        tgt = f"{rw['target']['text']} (#{rw['target']['issue']})" if rw["target"] else "-"
        met = "-" if rw["met"] is None else ("yes" if rw["met"] else "NO")
        table.append([rw["measure"], rw["unit"], fmt(rw["padhook"], rw["kind"])] +
                     [fmt(rw["peers"].get(k), rw["kind"]) for k in cols] + [ratio, tgt, met])
    w = [max(len(x[i]) for x in table + [hdr]) for i in range(len(hdr))]
    lines.append(f"== {sec}")
    lines.append(" | ".join(h.ljust(w[i]) if i < 2 else h.rjust(w[i]) for i, h in enumerate(hdr)))
    lines.append("-+-".join("-" * x for x in w))
    for x in table:
        lines.append(" | ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(x)))
    lines.append("")
lines.append("wall figures: median over rounds (min..max); 'above' figures are per-round differences.")
lines.append("the exact command behind every figure: raw/commands.txt (job and callgrind names as in 'source').")
for tool, why in skipped.items():
    lines.append(f"skipped {tool}: {why}")
for k in ("command", "mode", "rounds", "date", "commit", "cpu", "kernel", "compiler", "host_compiler", "uftrace",
          "bpftrace", "valgrind", "loadavg_start", "loadavg_end", "seconds"):
    if k in env:
        lines.append(f"{k} {env[k]}")
text = "\n".join(lines) + "\n"
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "table.txt"), "w").write(text)
json.dump(doc, open(os.path.join(out, "table.json"), "w"), indent=1)

# ---- plot data ----
with open(os.path.join(out, "plot_calls.dat"), "w") as f:
    f.write("# tool ns_added min max instructions_added  (per call of the tiny leaf, same run)\n")

    def put(label, ns, ins):
        if ns is None and ins is None:
            return
        n = ns or {"value": 0, "min": 0, "max": 0}
        f.write(f"\"{label}\" {n['value']:.3f} {n['min']:.3f} {n['max']:.3f} "
                f"{ins['value'] if ins else 'NaN'}\n")

    put("padhook entry", stat(delta(T.get("padhook_entry", {}), T.get("padhook_unpatched", {}))),
        cg_per_call("padhook_entry", "padhook_unpatched"))
    put("padhook entry (no vector)", stat(delta(T.get("padhook_entry_nv", {}), T.get("padhook_unpatched", {}))),
        cg_per_call("padhook_entry_nv", "padhook_unpatched"))
    put("padhook entry+exit", stat(pad_ee), cg_per_call("padhook_entry_exit", "padhook_unpatched"))
    put("XRay entry+exit", stat(xr_ee), cg_per_call("xray_patched", "xray_unpatched"))
    put("-finstrument-functions", stat(delta(T.get("finstr", {}), T.get("plain", {}))),
        cg_per_call("finstr", "plain"))
    put("padhook record", stat(delta(T.get("padhook_record", {}), T.get("padhook_unpatched_t", {}))),
        cg_per_call("padhook_record", "padhook_unpatched"))
    put("uftrace -pg", stat(delta(T.get("uftrace_pg", {}), T.get("plain_t", {}))), cg_per_call("uftrace_pg", "plain"))
    put("uftrace -P .", stat(delta(T.get("uftrace_p5", {}), T.get("patch5_t", {}))),
        cg_per_call("uftrace_p5", "patch5"))
    put("uprobe (bpftrace)", stat(delta(T.get("uprobe", {}), T.get("patch5_up", {}))), None)
with open(os.path.join(out, "plot_attach.dat"), "w") as f:
    f.write("# functions attach_us min max detach_us min max first_attach_us min max\n")
    ns_ = sorted({k[2] for k in attach if k[1] == "fast" and k[0] in ("steady", "cold")})
    for n in ns_:
        a = stat(att("steady", "fast", n, "attach_us")) or stat(att("single", "fast", n, "attach_us"))
        d = stat(att("steady", "fast", n, "detach_us")) or stat(att("single", "fast", n, "detach_us"))
        c = stat(att("cold", "fast", n, "attach_us"))
        cell = lambda s: f"{s['value']:.2f} {s['min']:.2f} {s['max']:.2f}" if s else "NaN NaN NaN"
        f.write(f"{n} {cell(a)} {cell(d)} {cell(c)}\n")
with open(os.path.join(out, "plot_attach_xray.dat"), "w") as f:
    f.write("# functions patch_us min max unpatch_us min max cold_patch_us\n")
    p, u, c = stat(xr("patch_all", "patch_us")), stat(xr("patch_all", "unpatch_us")), stat(xr("patch_all", "cold_patch_us"))
    q = stat(xr("patch_one", "patch_us"))
    if q:
        f.write(f"1 {q['value']:.2f} {q['min']:.2f} {q['max']:.2f} NaN NaN NaN NaN\n")
    if p and xr_n:
        f.write(f"{xr_n} {p['value']:.2f} {p['min']:.2f} {p['max']:.2f} {u['value']:.2f} {u['min']:.2f} "
                f"{u['max']:.2f} {c['value']:.2f}\n")
with open(os.path.join(out, "plot_flat.dat"), "w") as f:
    f.write("# label ns_per_call min max instructions_per_call  (one client on the leaf)\n")
    for st, label in [("clients/1", "alone")] + [(s, l.replace(" attached elsewhere", "").replace(" attached", ""))
                                                 for s, l in flat]:
        s = stat(gb.get(st, {}))
        if s:
            f.write(f"\"{label}\" {s['value']:.3f} {s['min']:.3f} {s['max']:.3f} "
                    f"{co_cg[st][0] if st in co_cg else 'NaN'}\n")
with open(os.path.join(out, "plot_clients.dat"), "w") as f:
    f.write("# clients ns_above_unpatched min max instructions_above_unpatched\n")
    for k in (1, 2, 10, 100):
        s = stat(delta(gb.get(f"clients/{k}", {}), base_gb))
        if s:
            f.write(f"{k} {s['value']:.3f} {s['min']:.3f} {s['max']:.3f} "
                    f"{co_cg[f'clients/{k}'][1] if f'clients/{k}' in co_cg else 'NaN'}\n")
sys.stdout.write(text)
