#!/usr/bin/python3
"""Peak memory of a real mnemo server while it reads large request bodies (issue 14, section
4): what one in-flight body byte costs, old binary against new.

Each case runs against a fresh server (so VmHWM, the peak RSS, is the case's own) on
loopback. It prints the server's VmRSS before, its VmHWM after the answers and its VmRSS
then, from /proc/PID/status, the bodies' bytes, and the ratio
(VmHWM - VmRSS before) / bytes of the bodies in flight: the body buffers themselves count.

  recall-16m      one recall of an embedding of ~16 MiB of short numbers (-1, 0, 1: the most
                  values a byte of text can hold) into a space of dim 768
  recall-16m-x16  16 of them at once (the default http.worker_threads)
  batch-zeros     a remember batch of 1000 memories of 4096 zeros ("0.0"), 16 MB, into a
                  space of dim 4096: every value is read, then the engine refuses the zero
                  vectors (the costliest body the limits accept: 4 float bytes a value)
  batch-tags      1000 memories of 250 one-letter tags, 1 MB: just under the node limit,
                  then the engine refuses the tag count (the most nodes a body may make)
  mcp-16m-x4      four MCP tools/call recall with a ~16 MiB embedding each, at once
  mcp-100k-x4     four MCP recalls with a 4096-d embedding printed %.17g (~100 KB), at once:
                  accepted, answered

  /usr/bin/python3 bench/body_mem.py --bin build/mnemo [--old /tmp/old/mnemo] [--case NAME]

Prints one line per binary and case: "case binary body_mib rss_before_mib hwm_mib
rss_after_mib peak_per_body_byte status". The server is bench/mem/run.py's (auth on; the
requests carry its admin key) with the defaults (http.max_body_bytes 16 MiB, 16 worker
threads, mcp.max_body_bytes 1 MiB where it exists).
"""

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "mem"))
import run as mem_bench  # noqa: E402  bench/mem/run.py: the server with an admin key

MIB = 1 << 20
BODY_MAX = 16 * MIB


class Server(mem_bench.Server):
    """bench/mem/run.py's server (auth on, a read and an admin key, space "m" of dim 3);
    requests here carry the admin key."""

    def post(self, path, body, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            h = {"Content-Type": "application/json", "Accept": "application/json",
                 "Authorization": "Bearer " + mem_bench.ADMIN}
            h.update(headers or {})
            conn.request("POST", path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, r.getheader("mcp-session-id"), r.read()
        finally:
            conn.close()

    def mib(self, field):
        return mem_bench.status_kib(self.proc.pid, field) / 1024


def numbers(count, fmt, rng):
    return ",".join(fmt % (rng.random() * 2 - 1) for _ in range(count)).encode()


def fill_embedding(prefix, suffix, fmt, rng):
    """prefix + numbers + suffix, as many numbers as fit in BODY_MAX."""
    one = len(fmt % 0.5) + 2  # a value, its comma, a sign now and then
    count = (BODY_MAX - len(prefix) - len(suffix)) // one
    body = prefix + numbers(count, fmt, rng) + suffix
    assert len(body) <= BODY_MAX, len(body)
    return body


def mcp_session(srv):
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "1"}}}
    status, sid, raw = srv.post("/mcp", json.dumps(init).encode())
    assert status == 200 and sid, raw
    return {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}


def mcp_recall(space, embedding_text):
    return (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"recall",'
            b'"arguments":{"space":"' + space + b'","embedding":[' + embedding_text + b"]}}}")


def case_bodies(name, srv, rng):
    """Sets up the server for case name; returns (path, bodies, headers)."""
    def space(n, dim):
        s, _, raw = srv.post("/v1/spaces", json.dumps({"name": n, "dim": dim}).encode())
        assert s == 201, raw

    if name.startswith("recall-16m"):
        space("r", 768)
        body = fill_embedding(b'{"embedding":[', b"]}", "%.0f", rng)
        return "/v1/spaces/r/recall", [body] * (16 if name.endswith("x16") else 1), {}
    if name == "batch-zeros":
        space("z", 4096)
        one = b'{"content":"z","embedding":[' + b",".join([b"0.0"] * 4096) + b"]}"
        return "/v1/spaces/z/memories", [b'{"memories":[' + b",".join([one] * 1000) + b"]}"], {}
    if name == "batch-tags":
        space("t", 8)
        one = b'{"content":"t","tags":[' + b",".join([b'"t"'] * 250) + b"]}"
        return "/v1/spaces/t/memories", [b'{"memories":[' + b",".join([one] * 1000) + b"]}"], {}
    if name == "mcp-16m-x4":
        space("mc", 768)
        head = mcp_session(srv)
        prefix = (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"recall",'
                  b'"arguments":{"space":"mc","embedding":[')
        return "/mcp", [fill_embedding(prefix, b"]}}}", "%.0f", rng)] * 4, head
    if name == "mcp-100k-x4":
        space("mc", 4096)
        head = mcp_session(srv)
        return "/mcp", [mcp_recall(b"mc", numbers(4096, "%.17g", rng))] * 4, head
    raise SystemExit("unknown case " + name)


CASES = ["recall-16m", "recall-16m-x16", "batch-zeros", "batch-tags", "mcp-16m-x4",
         "mcp-100k-x4"]


def run(binary, name, label):
    srv = Server(binary)
    try:
        path, bodies, headers = case_bodies(name, srv, random.Random(14))
        time.sleep(0.5)  # let start-up settle before the baseline
        before = srv.mib("VmRSS")
        statuses = [None] * len(bodies)

        def send(i):
            statuses[i] = srv.post(path, bodies[i], headers)[0]

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        hwm, after = srv.mib("VmHWM"), srv.mib("VmRSS")
        total = sum(len(b) for b in bodies)
        print("%-15s %-8s %8.1f %8.1f %8.1f %8.1f %8.2f %s" % (
            name, label, total / MIB, before,
            hwm, after, (hwm - before) * MIB / total, ",".join(sorted(set(map(str, statuses))))),
            flush=True)
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the mnemo binary to measure")
    ap.add_argument("--old", help="a second binary (e.g. built from an older commit)")
    ap.add_argument("--case", choices=CASES, action="append", help="one case (repeatable)")
    a = ap.parse_args()
    print("%-15s %-8s %8s %8s %8s %8s %8s %s" % ("case", "binary", "body_MiB", "rss0_MiB",
                                                 "hwm_MiB", "rss1_MiB", "per_byte", "status"))
    for name in a.case or CASES:
        for b, label in ([(a.old, "old")] if a.old else []) + [(a.bin, "new")]:
            run(os.path.abspath(b), name, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
