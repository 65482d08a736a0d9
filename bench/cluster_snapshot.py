#!/usr/bin/python3
"""Catch-up speed of a returning replica, by WAL shipping and by snapshot, with three real
processes (docs/replication.md, "Snapshots in the server").

For each mode it starts three `mnemo serve` (bench/cluster_repl.py's cluster: [cluster]
enabled, profile "fast", factor 3), creates a space (dim --dim), writes a few entries,
stops one replica (SIGTERM), writes --entries more at the primary (--writers threads, one
memory per entry, consistency one), then starts the replica again and times from its start
(the process listening) to its copy reaching the primary's lsn. Mode `wal` keeps the whole
WAL (storage.wal_retain_entries = 10 000 000), so the replica catches up by shipping; mode
`snapshot` keeps 100 entries, so it needs a snapshot. The time includes what both modes
pay alike: SWIM's rejoin, placement, the core's reconciliation. Bytes are what the
replica's peer bus received (mnemo_peer_bytes_total) and, for a snapshot, its chunks
(mnemo_repl_snapshot_bytes_total). Prints figures and the ratio; asserts nothing.

  MNEMO_BIN=build/mnemo PYTHONPATH=clients/python /usr/bin/python3 bench/cluster_snapshot.py
"""
import argparse
import os
import pathlib
import random
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(__file__))
from cluster_repl import SPACE, doc, lsn_of, start_cluster  # noqa: E402
from conftest import wait_until  # noqa: E402


def metric(s, name, label):
    with s.client(timeout=5) as c:
        text = c.raw("GET", "/metrics").body.decode()
    m = re.search(r'^%s\{[^}]*"%s"\} (\d+)' % (name, label), text, re.M)
    return int(m.group(1)) if m else 0


def write_many(primary, n, writers, dim):
    rnd = random.Random(7)
    vecs = [[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(64)]

    def one(i):
        with primary.client(timeout=30) as c:
            c.request("POST", "/v1/spaces/%s/memories" % SPACE,
                      body={"content": "memory %d: %s" % (i, "words about the day " * 8),
                            "embedding": vecs[i % 64], "tags": ["t%d" % (i % 10)],
                            "consistency": "one"})
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(one, range(n)))


def run(mode, entries, writers, dim):
    os.environ["MNEMO_STORAGE_WAL_RETAIN_ENTRIES"] = "100" if mode == "snapshot" else "10000000"
    base = pathlib.Path(tempfile.mkdtemp())
    nodes, ids = start_cluster(base)
    try:
        pid = doc(nodes[0], SPACE)["spaces"][0]["primary"]
        primary = nodes[ids.index(pid)]
        with primary.client() as c:
            c.create_space(SPACE, dim=dim)
        replica = next(s for s in nodes if s is not primary)
        with primary.client(timeout=30) as c:  # a few entries every copy has
            for i in range(20):
                c.remember(SPACE, "seed %d" % i, embedding=[0.5] * dim)
        wait_until(lambda: (lsn_of(replica) or 0) >= 21 and lsn_of(replica) == lsn_of(primary),
                   60, what="the replica's copy")
        before = lsn_of(replica)
        assert replica.stop() == 0
        write_many(primary, entries, writers, dim)
        want = lsn_of(primary)
        t0 = time.monotonic()
        replica.start()
        wait_until(lambda: (lsn_of(replica) or 0) >= want, 600, what="the replica caught up")
        secs = time.monotonic() - t0
        peer = metric(replica, "mnemo_peer_bytes_total", "received")
        snap = metric(replica, "mnemo_repl_snapshot_bytes_total", "received")
        installed = metric(replica, "mnemo_repl_snapshots_total", "installed")
        n = want - before
        print("%-8s %6d entries behind: caught up in %6.2f s  %8.0f entries/s  %6.1f MB/s "
              "(peer bytes %.1f MB, snapshot chunks %.1f MB, snapshots installed %d)"
              % (mode, n, secs, n / secs, peer / 1e6 / secs, peer / 1e6, snap / 1e6, installed),
              flush=True)
        return secs
    finally:
        for s in nodes:
            s.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--dim", type=int, default=64)
    a = ap.parse_args()
    wal = run("wal", a.entries, a.writers, a.dim)
    snap = run("snapshot", a.entries, a.writers, a.dim)
    print("snapshot / wal catch-up time: %.2f" % (snap / wal))


if __name__ == "__main__":
    main()
