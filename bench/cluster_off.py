#!/usr/bin/python3
"""What the cluster costs a single node (docs/replication.md, "[cluster] enabled = false pays
nothing"): the same binary with [cluster] off and as a one-node cluster (factor 1, writes
acknowledged at `one`), in turns in this one script. For each mode: the server's threads and
open sockets once it serves, its resident memory after the load, remember throughput from
--writers connections for --seconds (and the CPU seconds the process and the gossip feeder
thread spent meanwhile), and recall p50/p99 from one connection. Rounds alternate
the modes (off, on, off, on ...) so the machine's drift hits both. Prints figures and the
ratio on/off; asserts nothing.

  /usr/bin/python3 bench/cluster_off.py --bin build/mnemo [--rounds 2 --seconds 5]
"""
import argparse
import http.client
import os
import random
import statistics
import tempfile
import threading
import time

import mnemo_proc

DIM = 16
SPACE = "bench-off"


def cluster_env():
    return {"MNEMO_CLUSTER_ENABLED": "true", "MNEMO_CLUSTER_BIND": "127.0.0.1",
            "MNEMO_CLUSTER_SWIM_PORT": "0", "MNEMO_CLUSTER_PEER_PORT": "0",
            "MNEMO_CLUSTER_KEY": "bench-key", "MNEMO_CLUSTER_REPLICATION_FACTOR": "1",
            "MNEMO_CLUSTER_WRITE_CONSISTENCY": "one"}


def vec(rng):
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def proc_figures(pid):
    """(threads, sockets, resident MiB) of the process now."""
    threads = len(os.listdir("/proc/%d/task" % pid))
    sockets = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            sockets += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
    return threads, sockets, rss


def create_space(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    deadline = time.monotonic() + 30
    while True:  # a cluster node places spaces once its first view settled
        try:
            mnemo_proc.call(conn, "POST", "/v1/spaces", {"name": SPACE, "dim": DIM})
            break
        except RuntimeError as e:
            if time.monotonic() > deadline or "503" not in str(e):
                raise
            time.sleep(0.1)
    conn.close()


def write_load(port, writers, seconds):
    """Remember calls per second over `writers` connections."""
    done = [0] * writers
    stop_at = time.monotonic() + seconds

    def run(i):
        rng = random.Random(i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = 0
        while time.monotonic() < stop_at:
            mnemo_proc.call(conn, "POST", "/v1/spaces/%s/memories" % SPACE,
                            {"content": "memory %d of writer %d" % (n, i), "embedding": vec(rng)})
            n += 1
        done[i] = n
        conn.close()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(done) / (time.monotonic() - t0)


def recall_load(port, n):
    """Latencies (ms) of n recalls, one at a time."""
    rng = random.Random(7)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        mnemo_proc.call(conn, "POST", "/v1/spaces/%s/recall" % SPACE,
                        {"embedding": vec(rng), "k": 10})
        lat.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return lat


def cpu_s(pid, thread=None):
    """CPU seconds (user + system) of the process, or of its thread named `thread` (0 when
    it has none)."""
    tick = os.sysconf("SC_CLK_TCK")
    if thread is None:
        paths = ["/proc/%d/stat" % pid]
    else:
        paths = []
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() == thread:
                    paths.append("/proc/%d/task/%s/stat" % (pid, tid))
    total = 0
    for path in paths:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
    return total / tick


def one_round(binary, cluster, a):
    data = tempfile.mkdtemp(prefix="mnemo-bench-off-")
    proc, port = mnemo_proc.start(binary, data, cluster_env() if cluster else None)
    try:
        create_space(port)
        threads, sockets, _ = proc_figures(proc.pid)
        cpu0, feed0 = cpu_s(proc.pid), cpu_s(proc.pid, "mn-gossip-feed")
        wps = write_load(port, a.writers, a.seconds)
        cpu = cpu_s(proc.pid) - cpu0
        feed = cpu_s(proc.pid, "mn-gossip-feed") - feed0
        lat = sorted(recall_load(port, a.recalls))
        _, _, rss = proc_figures(proc.pid)
    finally:
        mnemo_proc.stop(proc, data)
    return {"threads": threads, "sockets": sockets, "rss": rss, "wps": wps,
            "p50": statistics.median(lat), "p99": lat[int(0.99 * (len(lat) - 1))],
            "cpu": cpu, "feed": feed}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("MNEMO_BIN", "build/mnemo"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--recalls", type=int, default=300)
    a = ap.parse_args()
    runs = {False: [], True: []}
    for r in range(a.rounds):
        for cluster in (False, True):
            f = one_round(a.bin, cluster, a)
            runs[cluster].append(f)
            print("round %d %-8s threads %d sockets %d rss %.0f MiB remember %.0f/s "
                  "recall p50 %.2f ms p99 %.2f ms; CPU while writing %.2f s, of which the "
                  "gossip feeder %.3f s (%.1f %%)" % (
                      r + 1, "cluster" if cluster else "single", f["threads"], f["sockets"],
                      f["rss"], f["wps"], f["p50"], f["p99"], f["cpu"], f["feed"],
                      100 * f["feed"] / f["cpu"] if f["cpu"] else 0), flush=True)

    def med(cluster, k):
        return statistics.median(x[k] for x in runs[cluster])
    print("\n| figure | [cluster] off | one-node cluster | on / off |\n|---|---|---|---|")
    for k, name in (("threads", "threads"), ("sockets", "sockets"), ("rss", "resident MiB"),
                    ("wps", "remember/s"), ("p50", "recall p50 ms"), ("p99", "recall p99 ms")):
        off, on = med(False, k), med(True, k)
        print("| %s | %.2f | %.2f | %.2f |" % (name, off, on, on / off if off else float("nan")))


if __name__ == "__main__":
    main()
