#!/usr/bin/python3
"""Forget by filter of many memories while recalls and writes go on (issue 20's evidence).

Starts `mnemo serve` on a free loopback port with a temp data dir, remembers --keep
memories tagged "keep" and --doomed memories tagged "doomed" (random vectors of --dim,
batches of 1000), then measures, on their own keep-alive connections:
  - recall latency (vector cue, k = 10), one recall after another, and
  - remember latency (one memory per request, --write-interval-ms apart),
in three phases: before (for --phase-s seconds), during the forget by filter of every
"doomed" memory (POST /v1/spaces/{s}/forget, which answers with a job; the phase lasts
until the job ends), and after (--phase-s seconds). Prints p50 / p99 / max and counts per
phase, the ratios of during and after against before, and the delete's rate. Run it
against a Release build:

  /usr/bin/python3 bench/forget_filter.py --bin build/mnemo --doomed 100000
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time


def start(binary, data_dir):
    env = dict(os.environ)
    env.update({"MNEMO_HTTP_PORT": "0", "MNEMO_HTTP_BIND": "127.0.0.1", "MNEMO_GRPC_PORT": "0",
                "MNEMO_STORAGE_DATA_DIR": data_dir, "MNEMO_LOG_LEVEL": "info",
                "MNEMO_ENGINE_CONSOLIDATE_INTERVAL_S": "0", "MNEMO_ENGINE_LINK_MAX": "0"})
    proc = subprocess.Popen([binary, "serve"], env=env, stderr=subprocess.PIPE, text=True)
    port = []
    ready = threading.Event()

    def drain():
        for line in proc.stderr:
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m and not port:
                port.append(int(m.group(1)))
                ready.set()
    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(60):
        proc.kill()
        raise RuntimeError("mnemo did not report its port")
    return proc, port[0]


def call(conn, method, path, body=None, ok=(200, 201, 202)):
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"content-type": "application/json"})
    r = conn.getresponse()
    out = r.read()
    if r.status not in ok:
        raise RuntimeError("%s %s: %d %s" % (method, path, r.status, out[:200]))
    return json.loads(out) if out else None


def vec(rng, dim):
    return [rng.gauss(0, 1) for _ in range(dim)]


def seed(conn, space, n, tag, dim, rng):
    for lo in range(0, n, 1000):
        batch = [{"content": "%s memory %d about topic %d" % (tag, i, i % 97),
                  "embedding": vec(rng, dim), "tags": [tag]}
                 for i in range(lo, min(n, lo + 1000))]
        call(conn, "POST", "/v1/spaces/%s/memories" % space, {"memories": batch})


class Load:
    """Recalls back to back and paced remembers, each on its own connection; latencies go to
    the phase current when the request started."""

    def __init__(self, port, space, dim, write_interval_s):
        self.port, self.space, self.dim = port, space, dim
        self.write_interval_s = write_interval_s
        self.phase = "warmup"
        self.lat = {}
        self.stop = threading.Event()
        self.errors = []
        self.lock = threading.Lock()

    def note(self, kind, phase, ms):
        with self.lock:
            self.lat.setdefault((kind, phase), []).append(ms)

    def recalls(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        rng = random.Random(1)
        while not self.stop.is_set():
            body = {"embedding": vec(rng, self.dim), "k": 10}
            phase = self.phase
            t0 = time.perf_counter()
            try:
                call(conn, "POST", "/v1/spaces/%s/recall" % self.space, body)
            except Exception as e:  # reported at the end; the bench goes on
                self.errors.append("recall: %s" % e)
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                continue
            self.note("recall", phase, (time.perf_counter() - t0) * 1000)

    def writes(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        rng = random.Random(2)
        i = 0
        while not self.stop.is_set():
            body = {"content": "new memory %d" % i, "embedding": vec(rng, self.dim),
                    "tags": ["new"]}
            phase = self.phase
            t0 = time.perf_counter()
            try:
                call(conn, "POST", "/v1/spaces/%s/memories" % self.space, body)
            except Exception as e:
                self.errors.append("remember: %s" % e)
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                continue
            self.note("remember", phase, (time.perf_counter() - t0) * 1000)
            i += 1
            self.stop.wait(self.write_interval_s)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else float("nan")


def report(load, phases):
    print("\n%-9s %-7s %8s %9s %9s %9s" % ("kind", "phase", "count", "p50 ms", "p99 ms",
                                          "max ms"))
    base = {}
    for kind in ("recall", "remember"):
        for ph in phases:
            xs = load.lat.get((kind, ph), [])
            p50, p99 = pct(xs, 50), pct(xs, 99)
            if ph == "before":
                base[kind] = (p50, p99)
            print("%-9s %-7s %8d %9.2f %9.2f %9.2f" % (kind, ph, len(xs), p50, p99,
                                                       max(xs) if xs else float("nan")))
        for ph in phases[1:]:
            xs = load.lat.get((kind, ph), [])
            b50, b99 = base[kind]
            print("%-9s %-7s p50 x%.2f, p99 x%.2f of before" % (kind, ph, pct(xs, 50) / b50,
                                                                 pct(xs, 99) / b99))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/mnemo")
    ap.add_argument("--doomed", type=int, default=100000, help="memories the filter forgets")
    ap.add_argument("--keep", type=int, default=20000, help="memories it leaves")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--phase-s", type=float, default=10.0)
    ap.add_argument("--write-interval-ms", type=float, default=20.0)
    ap.add_argument("--mode", default="delete", choices=("delete", "suppress"))
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="mnemo-bench-forget-")
    proc, port = start(args.bin, data)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        space = "bench"
        call(conn, "POST", "/v1/spaces", {"name": space, "dim": args.dim})
        rng = random.Random(7)
        t0 = time.time()
        seed(conn, space, args.keep, "keep", args.dim, rng)
        seed(conn, space, args.doomed, "doomed", args.dim, rng)
        print("seeded %d + %d memories (dim %d) in %.1f s" % (args.keep, args.doomed, args.dim,
                                                              time.time() - t0))
        t0 = time.time()
        while call(conn, "GET", "/v1/spaces/%s/stats" % space)["index"]["pending"]:
            if time.time() - t0 > 1800:
                raise RuntimeError("the vector index did not catch up in 30 min")
            time.sleep(0.5)
        print("vector index caught up in %.1f s" % (time.time() - t0))
        load = Load(port, space, args.dim, args.write_interval_ms / 1000.0)
        threads = [threading.Thread(target=load.recalls), threading.Thread(target=load.writes)]
        for t in threads:
            t.start()
        time.sleep(min(5.0, args.phase_s))  # warm up: the index thread catches up
        load.phase = "before"
        time.sleep(args.phase_s)
        load.phase = "during"
        t0 = time.time()
        r = call(conn, "POST", "/v1/spaces/%s/forget" % space,
                 {"tags_any": ["doomed"], "mode": args.mode})
        job = r.get("job")
        answered = time.time() - t0
        final = r
        while job:
            final = call(conn, "GET", "/v1/spaces/%s/jobs/%s" % (space, job))
            if final["state"] != "running":
                break
            time.sleep(0.2)
        took = time.time() - t0
        load.phase = "after"
        time.sleep(args.phase_s)
        load.stop.set()
        for t in threads:
            t.join()
        stats = call(conn, "GET", "/v1/spaces/%s/stats" % space)
        n = final.get("forgotten", 0)
        print("forget by filter (%s): answered in %.3f s with %s; %s %d of %d in %.1f s "
              "(%.0f memories/s); space now holds %d memories" %
              (args.mode, answered, "a job" if job else "the count", final.get("state", "done"),
               n, final.get("total", final.get("count", 0)), took, n / took if took else 0,
               stats.get("memories", -1)))
        report(load, ["before", "during", "after"])
        if load.errors:
            print("\n%d request errors, first: %s" % (len(load.errors), load.errors[0]))
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
