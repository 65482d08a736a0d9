#!/usr/bin/python3
"""Replication figures with three real processes (docs/replication.md, "Replication in
the server"): write throughput and latency at replication factor 1, 2 and 3 with
consistency `one` and `quorum`, how far behind the replicas are under load, how long a
kill -9 of the primary stops writes, and the cost of TLS on the peer bus.

For each factor (and once more at factor 3 with mutual TLS on the peer bus, certificates
made with the openssl CLI as in runbooks/cluster.md) it starts a cluster of three
`mnemo serve` on 127.0.0.1 (tests/integration/conftest.py's MnemoServer, [cluster]
enabled, SWIM profile "fast", peer port 0); all clusters stay up together, and each
measurement writes to a fresh space created on the node placement names its primary:

- **cells**: for --seconds, --writers threads write to the primary with consistency
  `one` (acknowledged after the primary's fsync) or `quorum` (after a majority of the
  copies has the entry). Every cell runs --rounds times, interleaved across clusters and
  levels, so that other load on the machine falls on all cells alike; prints writes/s
  and the client-side latency p50/p99 of one write, pooled over the rounds, with ratios
  against factor 1 of the same run (TLS against plain factor 3);
- **lag** (factor >= 2): for --lag-seconds, writers at `one` while a poller per copy (the
  primary's included) reads that copy's last lsn every --poll-ms; the lag of an lsn is the
  time from the poll that first saw it on the primary to the first that saw it on a
  replica, so it includes up to one poll period on each side;
- **failover** (plain factor 3): kill -9 of the primary under writes, then the time until
  a survivor's placement table names a new primary and until a survivor takes a write
  (SWIM's detection, the election and the client's retries included).

Prints figures; asserts nothing. Keep runs short on a shared machine (the defaults take
about three minutes; 12 processes at once).

  MNEMO_BIN=build/mnemo PYTHONPATH=clients/python /usr/bin/python3 bench/cluster_repl.py
"""
import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from conftest import MnemoServer, wait_until  # noqa: E402
from mnemo_client import MnemoError  # noqa: E402

SWIM_RE = re.compile(r"swim: node (\S+) listening on (\S+):(\d+)")
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
NODE_EXT = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth,clientAuth\n")


def node_env(seeds, rf, tls):
    env = {"MNEMO_CLUSTER_ENABLED": "true", "MNEMO_CLUSTER_BIND": "127.0.0.1",
           "MNEMO_CLUSTER_SWIM_PORT": "0", "MNEMO_CLUSTER_PEER_PORT": "0",
           "MNEMO_CLUSTER_PROFILE": "fast", "MNEMO_CLUSTER_KEY": "bench-key",
           "MNEMO_CLUSTER_REPLICATION_FACTOR": str(rf), "MNEMO_CLUSTER_SEEDS": ",".join(seeds)}
    env.update(tls or {})
    return env


def make_certs(d, n):
    """A CA and n node certificates in d, with the openssl CLI; the env of each node."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)
    run("req", "-x509", *EC, "-days", "2", "-subj", "/CN=bench CA", "-keyout", "ca.key",
        "-out", "ca.crt")
    (d / "node.ext").write_text(NODE_EXT)
    envs = []
    for i in range(n):
        run("req", *EC, "-subj", "/CN=n%d" % i, "-keyout", "n%d.key" % i, "-out", "n%d.csr" % i)
        run("x509", "-req", "-in", "n%d.csr" % i, "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "node.ext", "-out", "n%d.crt" % i)
        envs.append({"MNEMO_CLUSTER_TLS_CERT": str(d / ("n%d.crt" % i)),
                     "MNEMO_CLUSTER_TLS_KEY": str(d / ("n%d.key" % i)),
                     "MNEMO_CLUSTER_TLS_CA": str(d / "ca.crt")})
    return envs


def swim_of(s):
    m = wait_until(lambda: SWIM_RE.search(s.log()), 30, what="swim line")
    return m.group(1), int(m.group(3))


def doc(s, names=None):
    with s.client(timeout=5) as c:
        return c.request("GET", "/v1/cluster/spaces", query={"names": names} if names else None)


def own_lsn(d, space):
    """This node's own copy's last lsn, from its /v1/cluster/spaces answer (never routed)."""
    e = next((x for x in d["spaces"] if x["name"] == space), None)
    h = e and next((h for h in e["holders"] if h["node"] == d["self"]), None)
    return h and h["applied_lsn"]


def lsn_of(s, space):
    try:
        return own_lsn(doc(s), space)
    except (MnemoError, OSError):
        return None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else float("nan")


class Cluster:
    """Three nodes at factor rf (tls: one env per node, or None); each measurement writes
    to a space of its own (a fresh space each: the same engine work per write in every
    cell), created on the node placement names its primary."""

    def __init__(self, base, rf, tls=None):
        self.rf = rf
        tls = tls or [None] * 3
        first = MnemoServer(base / "n0", env=node_env([], rf, tls[0])).start()
        seeds = ["127.0.0.1:%d" % swim_of(first)[1]]
        self.nodes = [first] + [MnemoServer(base / ("n%d" % i), env=node_env(seeds, rf, tls[i]))
                                .start() for i in (1, 2)]
        self.ids = [swim_of(s)[0] for s in self.nodes]
        wait_until(lambda: all(len(doc(s)["members"]) == 3 for s in self.nodes), 60,
                   what="3 members")

    def space(self, name):
        """Creates name on its primary; sets self.space_name, self.primary, self.replicas."""
        e = doc(self.nodes[0], name)["spaces"][0]
        self.space_name = name
        self.primary = self.nodes[self.ids.index(e["primary"])]
        holders = set(h["node"] for h in e["holders"])
        self.replicas = [s for s, i in zip(self.nodes, self.ids)
                         if i in holders and s is not self.primary]
        with self.primary.client() as c:
            c.create_space(name, dim=4)
        wait_until(lambda: all(lsn_of(s, name) == lsn_of(self.primary, name)
                               for s in self.replicas), 60, what="the replicas holding " + name)
        # the first quorum write waits for the copies to open: one before measuring
        wait_until(lambda: self.write_once("warm-up", "quorum"), 60, what="a quorum write")

    def write_once(self, text, consistency):
        try:
            with self.primary.client(timeout=10) as c:
                return c.remember(self.space_name, text, embedding=[1.0, 0.5, 0.2, 0.1],
                                  consistency=consistency)
        except (MnemoError, OSError):
            return None

    def stop(self):
        for s in self.nodes:
            s.kill()


def writers_run(primary, space, seconds, writers, consistency, stop=None):
    """Writes from `writers` threads for `seconds` (or until stop is set); returns
    (acknowledged writes, latencies in ms, failures)."""
    lat, failed = [], [0]
    lock = threading.Lock()
    stop = stop or threading.Event()

    def write(k):
        i = 0
        with primary.client(timeout=10) as c:
            while not stop.is_set():
                i += 1
                t = time.monotonic()
                try:
                    c.remember(space, "w%d-%d" % (k, i), embedding=[1.0, 0.5, float(i % 5), 0.1],
                               consistency=consistency)
                except (MnemoError, OSError):
                    with lock:
                        failed[0] += 1
                    continue
                with lock:
                    lat.append((time.monotonic() - t) * 1000)

    ts = [threading.Thread(target=write, args=(k,), daemon=True) for k in range(writers)]
    for t in ts:
        t.start()
    if seconds:
        time.sleep(seconds)
        stop.set()
    for t in ts:
        t.join(timeout=30)
    return len(lat), lat, failed[0]


def lag_run(cl, seconds, writers, poll_ms):
    """Replication lag samples (ms) under a load of `one` writes."""
    seen = [dict() for _ in range(1 + len(cl.replicas))]  # copy -> {lsn: first time seen}
    stop = threading.Event()
    copies = [cl.primary] + cl.replicas

    def poll(k):
        with copies[k].client(timeout=10) as c:
            while not stop.is_set():
                try:
                    lsn = own_lsn(c.request("GET", "/v1/cluster/spaces"), cl.space_name) or 0
                except (MnemoError, OSError):
                    continue
                seen[k].setdefault(lsn, time.monotonic())
                time.sleep(poll_ms / 1000.0)

    ps = [threading.Thread(target=poll, args=(k,), daemon=True) for k in range(len(copies))]
    for t in ps:
        t.start()
    writers_run(cl.primary, cl.space_name, seconds, writers, "one")
    time.sleep(0.5)  # the replicas' last entries
    stop.set()
    for t in ps:
        t.join(timeout=30)
    lags = []
    for k in range(1, len(copies)):
        firsts = sorted(seen[k].items())
        for lsn, t in seen[0].items():
            at = next((when for l, when in firsts if l >= lsn), None)
            if at is not None and lsn:
                lags.append(max(0.0, at - t) * 1000)
    return lags


def failover(cl, writers):
    """ms from the kill to a new primary in a survivor's table, and to a survivor's write."""
    survivors = [s for s in cl.nodes if s is not cl.primary]
    space = cl.space_name
    old = doc(survivors[0], space)["spaces"][0]
    stop = threading.Event()
    load = threading.Thread(target=writers_run,
                            args=(cl.primary, space, 0, writers, "quorum", stop), daemon=True)
    load.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    cl.primary.kill()
    stop.set()
    promoted = wrote = None
    i = 0
    while time.monotonic() - t0 < 60 and (wrote is None or promoted is None):
        for s in survivors:
            i += 1
            if promoted is None:
                try:
                    e = next(x for x in doc(s)["spaces"] if x["name"] == space)
                    if e["primary"] not in (None, old["primary"]) and e["epoch"] > old["epoch"]:
                        promoted = (time.monotonic() - t0) * 1000
                except (MnemoError, OSError, StopIteration):
                    pass
            if wrote is None:
                try:
                    with s.client(timeout=2) as c:
                        c.remember(space, "after %d" % i, embedding=[0.1, 0.2, 0.3, 0.4])
                    wrote = (time.monotonic() - t0) * 1000
                except (MnemoError, OSError):
                    pass
        time.sleep(0.01)
    load.join(timeout=30)
    return promoted, wrote


def rejoin(cl, node):
    """Starts the killed node again on its data dir, seeded with the others, and waits until
    every node sees three members again (the next failover round needs all three)."""
    others = [s for s in cl.nodes if s is not node]
    node.extra_env["MNEMO_CLUSTER_SEEDS"] = ",".join(
        "127.0.0.1:%d" % swim_of(s)[1] for s in others)
    node.start()
    wait_until(lambda: all(len(doc(s)["members"]) == 3 and
                           not any(m["suspect"] for m in doc(s)["members"]) for s in cl.nodes),
               60, what="three members in every view again")


def cell(cl, a, label, consistency, rnd, acc):
    """One throughput cell on a fresh space; pools its figures into acc[(label, rf, c)]."""
    cl.space("bench-%s-%d" % (consistency, rnd))
    n, lat, failed = writers_run(cl.primary, cl.space_name, a.seconds, a.writers, consistency)
    r = acc.setdefault((label, cl.rf, consistency), {"n": 0, "lat": [], "failed": 0, "s": 0.0})
    r["n"] += n
    r["lat"] += lat
    r["failed"] += failed
    r["s"] += a.seconds
    print("  round %d  %-5s RF %d %-6s %7.0f writes/s  p50 %6.1f ms  p99 %6.1f ms  (%d failed)"
          % (rnd, label, cl.rf, consistency, n / a.seconds, pct(lat, 50), pct(lat, 99), failed),
          flush=True)


def rounds(clusters, a):
    """Every cell --rounds times, interleaved (cluster after cluster, the two levels in
    alternating order), so that the machine's other load falls on every cell alike."""
    acc = {}
    for rnd in range(a.rounds):
        for label, cl in clusters:
            levels = ("one", "quorum") if rnd % 2 == 0 else ("quorum", "one")
            for consistency in levels:
                cell(cl, a, label, consistency, rnd, acc)
    return [{"run": k[0], "rf": k[1], "consistency": k[2], "rate": r["n"] / r["s"],
             "p50": pct(r["lat"], 50), "p99": pct(r["lat"], 99), "failed": r["failed"]}
            for k, r in acc.items()]


def table(rows):
    base = {(r["consistency"]): r for r in rows if r["run"] == "plain" and r["rf"] == 1}
    rf3 = {(r["consistency"]): r for r in rows if r["run"] == "plain" and r["rf"] == 3}
    print("\n| run | RF | consistency | writes/s | vs RF 1 | p50 ms | p99 ms | p99 vs RF 1 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = (rf3 if r["run"] == "tls" else base).get(r["consistency"])
        ratio = r["rate"] / ref["rate"] if ref and ref["rate"] else float("nan")
        p99r = r["p99"] / ref["p99"] if ref and ref["p99"] else float("nan")
        print("| %s | %d | `%s` | %.0f | %.2f%s | %.1f | %.1f | %.2f |"
              % (r["run"], r["rf"], r["consistency"], r["rate"], ratio,
                 " (vs plain RF 3)" if r["run"] == "tls" else "", r["p50"], r["p99"], p99r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4, help="per throughput cell and round")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every cell")
    ap.add_argument("--lag-seconds", type=float, default=5)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--poll-ms", type=float, default=3)
    ap.add_argument("--rf", default="1,2,3", help="replication factors to run")
    ap.add_argument("--no-tls", action="store_true", help="skip the TLS run")
    ap.add_argument("--failovers", type=int, default=1,
                    help="kill -9 rounds at RF 3 (the killed node rejoins between rounds)")
    a = ap.parse_args()
    base = pathlib.Path(tempfile.mkdtemp(prefix="mnemo-bench-repl-"))
    lags, fo, clusters = {}, None, []
    try:
        for rf in [int(x) for x in a.rf.split(",")]:
            clusters.append(("plain", Cluster(base / ("rf%d" % rf), rf)))
        if not a.no_tls:
            d = base / "pki"
            d.mkdir()
            clusters.append(("tls", Cluster(base / "tls3", 3, make_certs(d, 3))))
        print("%d clusters of three nodes up" % len(clusters), flush=True)
        rows = rounds(clusters, a)
        for label, cl in clusters:
            if label == "plain" and cl.rf >= 2:
                cl.space("bench-lag")
                lags[cl.rf] = lag_run(cl, a.lag_seconds, a.writers, a.poll_ms)
        fo = []
        for label, cl in clusters:
            if label == "plain" and cl.rf == 3:
                for r in range(a.failovers):
                    if r:
                        rejoin(cl, cl.primary)
                    cl.space("bench-failover-%d" % r)
                    fo.append(failover(cl, a.writers))
                    print("failover round %d: new primary %s ms, first write %s ms" % (
                        r + 1, *("%.0f" % x if x is not None else "-" for x in fo[-1])),
                        flush=True)
    finally:
        for _, cl in clusters:
            cl.stop()
        shutil.rmtree(base, ignore_errors=True)
    table(rows)
    for rf, xs in sorted(lags.items()):
        print("replication lag at RF %d under `one` load (%d writers, poll %.0f ms): p50 %.1f ms "
              "p99 %.1f ms" % (rf, a.writers, a.poll_ms, pct(xs, 50), pct(xs, 99)))
    if fo:
        done = [w for _, w in fo if w is not None]
        print("kill -9 of the primary (RF 3, profile fast), %d rounds: first write after "
              "p50 %.0f ms, max %.0f ms; %d of %d rounds never wrote within 60 s"
              % (len(fo), pct(done, 50) if done else -1, max(done) if done else -1,
                 len(fo) - len(done), len(fo)))


if __name__ == "__main__":
    main()
