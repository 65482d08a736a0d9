#!/usr/bin/python3
"""Replication figures with three real processes (docs/replication.md, "Replication in
the server"): how far behind the replicas are under a write load, and how long writes
stop after a kill -9 of the primary.

Starts three `mnemo serve` on 127.0.0.1 (tests/integration/conftest.py's MnemoServer,
[cluster] enabled, profile "fast", factor 3, peer port 0), creates a space on the node
placement names its primary and, for --seconds, writes to it from --writers threads
(each asking for --consistency, default one: acknowledged after the primary's fsync, so
the lag is the shipping's own) while a poller per replica reads the replica's last lsn
every --poll-ms. Each write's lag is the time from the primary's answer (the lsn it made
is at most the primary's last lsn, read right after from its GET /v1/cluster/spaces) to
the first poll that saw the replica at or past that lsn; the poll period bounds the
resolution. Then it kills the primary with SIGKILL and writes to the
survivors until one takes a write: the time from the kill to that first write (SWIM's
detection included). Prints figures; asserts nothing.

  MNEMO_BIN=build/mnemo PYTHONPATH=clients/python /usr/bin/python3 bench/cluster_repl.py
"""
import argparse
import os
import pathlib
import re
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from conftest import MnemoServer, wait_until  # noqa: E402
from mnemo_client import MnemoError  # noqa: E402

SPACE = "bench-repl"
SWIM_RE = re.compile(r"swim: node (\S+) listening on (\S+):(\d+)")


def node_env(seeds):
    return {"MNEMO_CLUSTER_ENABLED": "true", "MNEMO_CLUSTER_BIND": "127.0.0.1",
            "MNEMO_CLUSTER_SWIM_PORT": "0", "MNEMO_CLUSTER_PEER_PORT": "0",
            "MNEMO_CLUSTER_PROFILE": "fast", "MNEMO_CLUSTER_KEY": "bench-key",
            "MNEMO_CLUSTER_REPLICATION_FACTOR": "3", "MNEMO_CLUSTER_SEEDS": ",".join(seeds),
            }


def swim_of(s):
    m = wait_until(lambda: SWIM_RE.search(s.log()), 30, what="swim line")
    return m.group(1), int(m.group(3))


def doc(s, names=None):
    with s.client(timeout=5) as c:
        return c.request("GET", "/v1/cluster/spaces", query={"names": names} if names else None)


def own_lsn(d):
    """This node's own copy's last lsn, from its /v1/cluster/spaces answer (never routed)."""
    e = next((x for x in d["spaces"] if x["name"] == SPACE), None)
    h = e and next((h for h in e["holders"] if h["node"] == d["self"]), None)
    return h and h["applied_lsn"]


def lsn_of(s):
    try:
        return own_lsn(doc(s))
    except (MnemoError, OSError):
        return None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else float("nan")


def start_cluster(base):
    first = MnemoServer(base / "n0", env=node_env([])).start()
    seeds = ["127.0.0.1:%d" % swim_of(first)[1]]
    nodes = [first] + [MnemoServer(base / ("n%d" % i), env=node_env(seeds)).start()
                       for i in (1, 2)]
    ids = [swim_of(s)[0] for s in nodes]
    wait_until(lambda: all(len(doc(s)["members"]) == 3 for s in nodes), 60, what="3 members")
    return nodes, ids


def load(primary, replicas, seconds, writers, poll_ms, consistency):
    acked = []  # (lsn, time of the answer)
    seen = [dict() for _ in replicas]  # replica -> {lsn first seen: time}
    stop = threading.Event()
    lock = threading.Lock()

    def write():
        with primary.client(timeout=10) as c:
            i = 0
            while not stop.is_set():
                i += 1
                c.remember(SPACE, "load %d" % i, embedding=[1.0, 0.5, float(i % 5), 0.1],
                           consistency=consistency)
                t = time.monotonic()
                lsn = own_lsn(c.request("GET", "/v1/cluster/spaces"))
                if lsn:
                    with lock:
                        acked.append((lsn, t))

    def poll(k):
        with replicas[k].client(timeout=10) as c:
            while not stop.is_set():
                lsn = own_lsn(c.request("GET", "/v1/cluster/spaces")) or 0
                seen[k].setdefault(lsn, time.monotonic())
                time.sleep(poll_ms / 1000.0)

    ts = [threading.Thread(target=write, daemon=True) for _ in range(writers)]
    ts += [threading.Thread(target=poll, args=(k,), daemon=True) for k in range(len(replicas))]
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join(timeout=30)
    lags = []
    for k in range(len(replicas)):
        firsts = sorted(seen[k].items())
        for lsn, t in acked:
            at = next((when for l, when in firsts if l >= lsn), None)
            if at is not None:
                lags.append(max(0.0, at - t) * 1000)
    return len(acked), lags


def failover(nodes, primary):
    survivors = [s for s in nodes if s is not primary]
    t0 = time.monotonic()
    primary.kill()
    i = 0
    while time.monotonic() - t0 < 60:
        for s in survivors:
            i += 1
            try:
                with s.client(timeout=2) as c:
                    c.remember(SPACE, "after %d" % i, embedding=[0.1, 0.2, 0.3, 0.4])
                return (time.monotonic() - t0) * 1000
            except (MnemoError, OSError):
                pass
        time.sleep(0.01)
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--poll-ms", type=float, default=2)
    ap.add_argument("--consistency", default="one", choices=["one", "quorum", "all"])
    a = ap.parse_args()
    base = pathlib.Path(tempfile.mkdtemp())
    nodes, ids = start_cluster(base)
    try:
        pid = doc(nodes[0], SPACE)["spaces"][0]["primary"]
        primary = nodes[ids.index(pid)]
        with primary.client() as c:
            c.create_space(SPACE, dim=4)
        replicas = [s for s in nodes if s is not primary]
        wait_until(lambda: all(lsn_of(s) == lsn_of(primary) for s in replicas), 60,
                   what="the replicas holding the space")
        n, lags = load(primary, replicas, a.seconds, a.writers, a.poll_ms, a.consistency)
        print("writes acknowledged: %d in %.0f s (%.0f/s), %d writers, consistency %s"
              % (n, a.seconds, n / a.seconds, a.writers, a.consistency))
        print("replication lag (ms, %d samples over 2 replicas, poll every %.0f ms): "
              "p50 %.1f  p99 %.1f  max %.1f"
              % (len(lags), a.poll_ms, pct(lags, 50), pct(lags, 99), max(lags or [0])))
        ms = failover(nodes, primary)
        print("kill -9 of the primary -> first write accepted by a survivor: %.0f ms "
              "(SWIM profile fast: detection included)" % ms)
    finally:
        for s in nodes:
            s.kill()


if __name__ == "__main__":
    main()
