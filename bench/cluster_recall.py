#!/usr/bin/python3
"""Latency of a recall over many spaces across five real nodes (POST /v1/recall, issue 19),
against the same recall on a single node, in the same script.

Starts one single-node `mnemo serve` and a cluster of five (tests/integration's helpers:
loopback, profile "fast", auth on, replication factor --rf, default 2), and loads the same
--total memories (random --dim vectors) into each in three layouts: one space, 10 spaces,
100 spaces. Then it sends --rounds recalls of random cues (k = 10, spread off, read
nearest, timeout_ms --timeout-ms) of each layout to the single node and to one cluster
node, and again with one other cluster node stalled (SIGSTOP; SIGCONT after): its spaces
are hedged to their other copy after min(p95, 3 medians), then sent to the other copy
first while it stays overdue or SWIM suspects it; with no other copy (--rf 1) they are
missing at the deadline, or at once (reason suspect) once SWIM suspects the node. Prints
p50 / p99 in ms, the ratios to the single node, the spaces missing, and the node asked's
counts of mnemo_query_remote_total while one node was stalled; asserts nothing.

  MNEMO_BIN=build/mnemo PYTHONPATH=clients/python /usr/bin/python3 bench/cluster_recall.py
      [--total 4000] [--dim 32] [--rounds 100] [--timeout-ms 1000] [--seed 19] [--rf 2]
"""
import argparse
import os
import pathlib
import random
import re
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import test_cluster_recall as tc  # noqa: E402
from conftest import MnemoServer  # noqa: E402


def vec(rng, dim):
    return [round(rng.uniform(-1, 1), 4) for _ in range(dim)]


def layouts():
    return {"1": ["one"], "10": ["s10-%02d" % i for i in range(10)],
            "100": ["s100-%03d" % i for i in range(100)]}


def load(c, rng, names, total, dim, cluster_entry=None):
    per = total // len(names)
    for name in names:
        if cluster_entry is not None:
            tc.DIM = dim
            tc.DEADLINE_S = 120.0  # placement settles slowly on a busy machine
            tc.make_space(cluster_entry, name)
        else:
            r = c.raw("POST", "/v1/spaces", {"name": name, "dim": dim})
            assert r.status == 201, r.body
        for at in range(0, per, 1000):
            mems = [{"content": "note %d of %s" % (i, name), "embedding": vec(rng, dim)}
                    for i in range(at, min(per, at + 1000))]
            body = {"memories": mems}
            if cluster_entry is not None:  # the primary's ack: a busy machine lags its copies
                body["consistency"] = "one"
            r = c.raw("POST", "/v1/spaces/%s/memories" % name, body)
            assert r.status in (200, 201), r.body


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def measure(server, rng, dim, rounds, names, timeout_ms):
    with server.client(timeout=120) as c:  # a fresh connection: an idle one may be closed
        return measure_on(c, rng, dim, rounds, names, timeout_ms)


def measure_on(c, rng, dim, rounds, names, timeout_ms):
    times, missing = [], 0
    for _ in range(rounds):
        body = {"embedding": vec(rng, dim), "k": 10, "spread": False, "read": "nearest",
                "spaces": names, "timeout_ms": timeout_ms}
        t0 = time.perf_counter()
        r = c.raw("POST", "/v1/recall", body)
        times.append((time.perf_counter() - t0) * 1000.0)
        assert r.status == 200, r.body
        missing += len(r.json["missing"])
    return pct(times, 50), pct(times, 99), missing


def events(server):
    """The node's mnemo_query_remote_total counters by event."""
    with server.client(timeout=30) as c:
        text = c.raw("GET", "/metrics").body.decode()
    return {m.group(1): int(float(m.group(2))) for m in re.finditer(
        r'mnemo_query_remote_total\{event="(\w+)"\} (\S+)', text)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--total", type=int, default=4000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--timeout-ms", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--rf", type=int, default=2,
                    help="the cluster's replication factor (1: a stalled node's spaces have "
                         "no other copy)")
    a = ap.parse_args()
    base = pathlib.Path(tempfile.mkdtemp(prefix="mnemo-bench-cq-"))
    made = []

    def factory(env):
        s = tc.KeyedServer(base / ("n%d" % len(made)), env=env)
        made.append(s)
        return s.start()

    try:
        single = MnemoServer(base / "single").start()
        made.append(single)
        nodes, ids = tc.start_cluster(factory, 5, a.rf)
        rng = random.Random(a.seed)
        with single.client(timeout=600) as c, nodes[0].client(timeout=600) as cc:
            for names in layouts().values():
                load(c, rng, names, a.total, a.dim)
                load(cc, rng, names, a.total, a.dim, cluster_entry=nodes[0])
            rows = []
            for label, names in layouts().items():
                for server in (single, nodes[0]):  # warm up
                    measure(server, rng, a.dim, 10, names, a.timeout_ms)
                one = measure(single, rng, a.dim, a.rounds, names, a.timeout_ms)
                five = measure(nodes[0], rng, a.dim, a.rounds, names, a.timeout_ms)
                rows.append((label, one, five))
            slow = nodes[3]
            before = events(nodes[0])
            os.kill(slow.proc.pid, signal.SIGSTOP)
            try:
                stalled = {label: measure(nodes[0], rng, a.dim, a.rounds, names, a.timeout_ms)
                           for label, names in layouts().items()}
            finally:
                os.kill(slow.proc.pid, signal.SIGCONT)
            after = events(nodes[0])
        print("%-7s %9s %9s | %9s %9s %6s %6s | %9s %9s %6s %6s %7s" % (
            "spaces", "1n_p50", "1n_p99", "5n_p50", "5n_p99", "x_p50", "x_p99",
            "slow_p50", "slow_p99", "x_p50", "x_p99", "missing"))
        for label, one, five in rows:
            s = stalled[label]
            print("%-7s %9.2f %9.2f | %9.2f %9.2f %6.2f %6.2f | %9.2f %9.2f %6.2f %6.2f %7d" % (
                label, one[0], one[1], five[0], five[1], five[0] / one[0], five[1] / one[1],
                s[0], s[1], s[0] / one[0], s[1] / one[1], s[2]))
        print("(%d rounds each, k = 10, spread off, read nearest, timeout_ms %d; %d memories "
              "(dim %d) per layout; 5 nodes, factor %d, one node stalled by SIGSTOP in 'slow'; "
              "ratios against the single node)" % (a.rounds, a.timeout_ms, a.total, a.dim, a.rf))
        print("while stalled, the node asked: %s" % ", ".join(
            "%s %d" % (k, after.get(k, 0) - before.get(k, 0))
            for k in ("sent", "hedged", "rerouted", "timed_out", "rerouted_suspect", "suspect",
                      "hedge_refused")))
    finally:
        for s in made:
            if s.proc and s.proc.poll() is None:
                os.kill(s.proc.pid, signal.SIGCONT)
                s.stop()


if __name__ == "__main__":
    main()
