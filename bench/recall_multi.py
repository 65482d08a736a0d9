#!/usr/bin/python3
"""Latency of a recall over many spaces (POST /v1/recall, issue 19) against the same data in
one space, single node.

Starts `mnemo serve` on a free loopback port with a temp data dir and loads the same --total
memories (random --dim vectors with a short text) three ways: all in one space, spread over
10 spaces, spread over 100 spaces. Then, on one keep-alive connection, it sends --rounds
recalls of random cues (k = 10, the defaults otherwise: spreading on) of each kind and prints
p50 / p99 in ms and the ratio to the single-space recall of the same data:

  single       POST /v1/spaces/one/recall                  (the peer every ratio is against)
  many-1       POST /v1/recall {"spaces": ["one"]}          (the scatter-gather's own cost)
  many-10      POST /v1/recall {"space_prefix": "s10-"}     (10 spaces of total/10)
  many-100     POST /v1/recall {"space_prefix": "s100-"}    (100 spaces of total/100)

This script measures the planner, the pool, the gather and the merge on one node; the 5-node
figures of issue 19 (spaces on other nodes, one stalled node) are bench/cluster_recall.py's.

  /usr/bin/python3 bench/recall_multi.py --bin build/mnemo [--total 20000] [--rounds 300]
                                          [--no-spread]
"""
import argparse
import http.client
import random
import tempfile
import time

import mnemo_proc
from mnemo_proc import call


def vec(rng, dim):
    return [round(rng.uniform(-1, 1), 4) for _ in range(dim)]


def load(conn, rng, names, total, dim):
    """Creates the spaces and spreads total memories over them evenly."""
    per = total // len(names)
    for name in names:
        call(conn, "POST", "/v1/spaces", {"name": name, "dim": dim})
        left = per
        while left:
            n = min(left, 1000)
            mems = [{"content": "note %d of %s" % (left - i, name), "embedding": vec(rng, dim)}
                    for i in range(n)]
            call(conn, "POST", "/v1/spaces/%s/memories" % name, {"memories": mems})
            left -= n


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def measure(conn, rng, dim, rounds, path, extra):
    times, missing = [], 0
    for _ in range(rounds):
        body = {"embedding": vec(rng, dim), "k": 10}
        body.update(extra)
        t0 = time.perf_counter()
        out = call(conn, "POST", path, body)
        times.append((time.perf_counter() - t0) * 1000.0)
        missing += len(out.get("missing", []))
        assert len(out["results"]) == 10, out
    return pct(times, 50), pct(times, 99), missing


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--total", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--no-spread", action="store_true",
                    help="recall with spread: false (rank by the cue alone)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    data = tempfile.mkdtemp(prefix="mnemo-bench-multi-")
    proc, port = mnemo_proc.start(a.bin, data)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        t0 = time.perf_counter()
        load(conn, rng, ["one"], a.total, a.dim)
        load(conn, rng, ["s10-%02d" % i for i in range(10)], a.total, a.dim)
        load(conn, rng, ["s100-%03d" % i for i in range(100)], a.total, a.dim)
        print("loaded 3 x %d memories (dim %d) in %.1f s" % (a.total, a.dim,
                                                            time.perf_counter() - t0))
        spread = {"spread": not a.no_spread}
        kinds = [("single", "/v1/spaces/one/recall", dict(spread)),
                 ("many-1", "/v1/recall", dict(spread, spaces=["one"])),
                 ("many-10", "/v1/recall", dict(spread, space_prefix="s10-", timeout_ms=60000)),
                 ("many-100", "/v1/recall",
                  dict(spread, space_prefix="s100-", timeout_ms=60000))]
        for _, path, extra in kinds:  # warm up: caches, the index thread's catching up
            measure(conn, rng, a.dim, 20, path, extra)
        rows = [(name,) + measure(conn, rng, a.dim, a.rounds, path, extra)
                for name, path, extra in kinds]
        base50, base99 = rows[0][1], rows[0][2]
        print("%-9s %9s %9s %9s %9s %8s" % ("recall", "p50_ms", "p99_ms", "p50_x", "p99_x",
                                             "missing"))
        for name, p50, p99, missing in rows:
            print("%-9s %9.3f %9.3f %9.2f %9.2f %8d" % (name, p50, p99, p50 / base50,
                                                        p99 / base99, missing))
        print("(%d rounds each, k = 10, spread %s, one connection; ratios against single; %d "
              "memories in every layout)" % (a.rounds, "off" if a.no_spread else "on", a.total))
        conn.close()
    finally:
        mnemo_proc.stop(proc, data)


if __name__ == "__main__":
    main()
