"""A small, self-contained decoder of padhook traces (docs/trace-format.md),
for the record tests. Not the readers' implementation: it checks the format
strictly and raises on anything unexpected."""
import glob
import json
import os
import struct

HEADER = struct.Struct("<8sIIIIQQQ16s")
MAGIC = b"PHEVENT1"


class TraceError(Exception):
    pass


def read_functions(path):
    """{id: name} and {module_id: path} from a .functions file."""
    functions, modules = {}, {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith("\n"):
                raise TraceError(f"{path}:{number}: line not terminated")
            fields = line[:-1].split("\t")
            if fields[0] == "M" and len(fields) == 4:
                modules[int(fields[1])] = fields[3]
                int(fields[2], 16)
            elif fields[0] == "F" and len(fields) == 6:
                fid, mid = int(fields[1]), int(fields[2])
                if mid not in modules:
                    raise TraceError(f"{path}:{number}: module {mid} not defined before use")
                if fid >= 1 << 22:
                    raise TraceError(f"{path}:{number}: id {fid} out of range")
                int(fields[3], 16)
                int(fields[4])
                functions[fid] = fields[5]
            else:
                raise TraceError(f"{path}:{number}: bad line {line!r}")
    return functions, modules


def read_events(path):
    """(header dict, [(kind, id, time_ns)], [lost counts]) of an .events file.
    kind: 'entry', 'exit', 'unwound'."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 64:
        raise TraceError(f"{path}: shorter than its header")
    magic, version, size, pid, tid, base, lost, flags, name = HEADER.unpack_from(data, 0)
    if magic != MAGIC or version != 1 or size != 64:
        raise TraceError(f"{path}: bad header")
    header = dict(pid=pid, tid=tid, base_ns=base, events_lost=lost, closed=bool(flags & 1),
                  name=name.rstrip(b"\0").decode(), size=len(data))
    events, losts = [], []
    now = base
    offset = 64
    pending_time = False
    while offset + 8 <= len(data):
        (word,) = struct.unpack_from("<Q", data, offset)
        offset += 8
        if pending_time:
            now = word
            pending_time = False
            continue
        if word == 0:
            break
        kind = word & 3
        if kind == 0:
            sub = (word >> 2) & 0xFF
            if sub == 1:
                pending_time = True
            elif sub == 2:
                losts.append(word >> 24)
            else:
                raise TraceError(f"{path}: unknown special {sub} at {offset - 8}")
            continue
        now += word >> 24
        events.append(({1: "entry", 2: "exit", 3: "unwound"}[kind], (word >> 2) & 0x3FFFFF, now))
    if header["closed"] and offset < len(data) and any(data[offset:]):
        raise TraceError(f"{path}: closed file with data after its end")
    header["data_end"] = offset
    return header, events, losts


class Image:
    def __init__(self, directory, key):
        self.key = key
        with open(os.path.join(directory, key + ".process.json")) as f:
            self.process = json.load(f)
        fpath = os.path.join(directory, key + ".functions")
        self.functions, self.modules = read_functions(fpath) if os.path.exists(fpath) else ({}, {})
        self.threads = {}
        for path in glob.glob(os.path.join(directory, glob.escape(key) + "-*.events")):
            header, events, losts = read_events(path)
            for _, fid, _ in events:
                if fid not in self.functions:
                    raise TraceError(f"{path}: event refers to undefined id {fid}")
            self.threads[header["tid"]] = (header, events, losts)

    def name(self, fid):
        full = self.functions[fid]
        return full.split("(")[0] if "(" in full and not full.startswith("(") else full

    def calls(self, tid):
        """[(name, depth, kind_of_end)] in entry order, matched like the readers do."""
        header, events, _ = self.threads[tid]
        stack, out = [], []
        for kind, fid, t in events:
            if kind == "entry":
                out.append([self.name(fid), len(stack), None, t, None])
                stack.append(len(out) - 1)
            else:
                if not stack:
                    continue  # exit without entry (fork child): skipped
                i = stack.pop()
                if out[i][0] != self.name(fid):
                    raise TraceError(f"exit of {self.name(fid)} closes {out[i][0]}")
                out[i][2] = kind
                out[i][4] = t
        return out

    def sequence(self, tid):
        """['+f', '-f', '!f' (unwound)] of one thread."""
        _, events, _ = self.threads[tid]
        sym = {"entry": "+", "exit": "-", "unwound": "!"}
        return [sym[k] + self.name(fid) for k, fid, _ in events]


def images(directory):
    keys = sorted(os.path.basename(p)[: -len(".process.json")]
                  for p in glob.glob(os.path.join(directory, "*.process.json")))
    return {key: Image(directory, key) for key in keys}
