#!/usr/bin/python3
"""Load benchmark of mnemo: HTTP and gRPC against the same operations in-process.

Starts a real `mnemo serve` (fsync on, temp data dir, free loopback ports) and drives it
with mn_load (bench/load/mn_load.c), a closed-loop C load generator with CONNS
connections:
  batch     remember in batches of 100: loads the recall space (half over HTTP, half over
            gRPC) to N memories of DIM floats
  remember  one memory per request, over HTTP and over gRPC (spaces of their own)
  recall    k = 10 at N x DIM, over HTTP and over gRPC, once the HNSW index has caught up
Between phases it waits until every space's index has caught up (a write's graph insert
and semantic links run in the background: a phase must not inherit another's backlog, nor
leave one behind for the next). Then stops the server and runs the same operations
in-process on the same data dir (mn_load inproc:DIR, CONNS threads calling the engine,
which also waits for its background work before the clock starts), and prints throughput
and latency percentiles per target with the ratios HTTP/in-process and gRPC/in-process.
The server runs CONNS handler threads for HTTP and for gRPC, so all three targets make
the same number of concurrent engine calls and the difference is the protocol's.
The goal: protocol overhead <= 1.5x the in-process cost at p99. The load generator
shares the machine with the server; every request is encoded before the clock starts.
Seeded; every phase is bounded (N requests, a deadline on the index catch-up).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def start_server(binary, data_dir, extra_env):
    env = dict(os.environ)
    env.update({"MNEMO_HTTP_PORT": "0", "MNEMO_GRPC_PORT": "0", "MNEMO_STORAGE_DATA_DIR": data_dir,
                "MNEMO_LOG_LEVEL": "info", "MNEMO_ENGINE_CONSOLIDATE_INTERVAL_S": "0"})
    env.update(extra_env)
    proc = subprocess.Popen([binary, "serve"], env=env, stderr=subprocess.PIPE, text=True)
    ports = {}
    deadline = time.time() + 60
    while time.time() < deadline and "http" not in ports:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError("mnemo exited with %s" % proc.returncode)
            continue
        m = re.search(r"grpc listening on [^\s]+:(\d+)", line)
        if m:
            ports["grpc"] = int(m.group(1))
        m = re.search(r"listening on http://[^\s]+:(\d+)", line)
        if m:
            ports["http"] = int(m.group(1))
    if "http" not in ports or "grpc" not in ports:
        proc.kill()
        raise RuntimeError("mnemo did not report its ports within 60 s")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, ports


def http_json(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def settle(port, deadline_s):
    """Waits until no space has index work pending; returns the seconds it took."""
    t0 = time.time()
    while time.time() - t0 < deadline_s:
        busy = [s["name"] for s in http_json(port, "GET", "/v1/spaces")["spaces"]
                if http_json(port, "GET", "/v1/spaces/%s/stats" % s["name"])["index"]["state"]
                == "catching_up"]
        if not busy:
            return time.time() - t0
        time.sleep(1)
    raise RuntimeError("the index did not catch up within %d s" % deadline_s)


def load(tool, target, op, space, conns, requests, dim, seed, create=False):
    cmd = [tool, "--target", target, "--op", op, "--space", space, "--conns", str(conns),
           "--requests", str(requests), "--dim", str(dim), "--seed", str(seed)]
    if create:
        cmd.append("--create")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError("mn_load failed (%s): %s %s" % (" ".join(cmd), p.stdout, p.stderr[-2000:]))
    r = json.loads(p.stdout.strip().splitlines()[-1])
    print("  %-7s %-9s %7d req %8.0f req/s %9.0f items/s   p50 %8.3f  p99 %8.3f  p99.9 %8.3f ms"
          % (r["target"], r["op"], r["requests"], r["requests_per_s"], r["items_per_s"],
             r["p50_ms"], r["p99_ms"], r["p999_ms"]), flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/mnemo")
    ap.add_argument("--load", default="build/bench/load/mn_load")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--n", type=int, default=100000, help="memories in the recall space")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--singles", type=int, default=20000, help="remember requests per target")
    ap.add_argument("--queries", type=int, default=20000, help="recall requests per target")
    ap.add_argument("--workers", type=int, default=0,
                    help="server handler threads, http.worker_threads and grpc.threads "
                         "(default: --conns, the in-process concurrency)")
    ap.add_argument("--dir", default=None, help="data dir (default: a temp dir, removed)")
    ap.add_argument("--index-deadline-s", type=int, default=3600)
    args = ap.parse_args()
    batches = args.n // 100
    args.workers = args.workers or args.conns
    tmp = args.dir or tempfile.mkdtemp(prefix="mnemo-load-")
    print("mnemo load benchmark: %d x %d, %d connections, %d singles, %d queries, %d handler "
          "threads, data %s" % (args.n, args.dim, args.conns, args.singles, args.queries,
                                args.workers, tmp), flush=True)
    results = {}
    extra = {"MNEMO_HTTP_WORKER_THREADS": str(args.workers), "MNEMO_GRPC_THREADS": str(args.workers)}
    proc, ports = start_server(args.bin, tmp, extra)
    try:
        for s in ("recall", "single-http", "single-grpc"):
            http_json(ports["http"], "POST", "/v1/spaces", {"name": s, "dim": args.dim})
        H, G = "http://127.0.0.1:%d" % ports["http"], "grpc://127.0.0.1:%d" % ports["grpc"]
        print("server (HTTP :%d, gRPC :%d)" % (ports["http"], ports["grpc"]))
        results["http", "batch"] = load(args.load, H, "batch", "recall", args.conns, batches // 2,
                                        args.dim, 1)
        print("  settled in %.1f s" % settle(ports["http"], args.index_deadline_s), flush=True)
        results["grpc", "batch"] = load(args.load, G, "batch", "recall", args.conns,
                                        batches - batches // 2, args.dim, 2)
        wait = settle(ports["http"], args.index_deadline_s)
        st = http_json(ports["http"], "GET", "/v1/spaces/recall/stats")
        print("  index caught up %.1f s after the load (%d nodes, %d memories)" % (
            wait, st["index"]["nodes"], st["memories"]), flush=True)
        results["http", "remember"] = load(args.load, H, "remember", "single-http", args.conns,
                                           args.singles, args.dim, 3)
        print("  settled in %.1f s" % settle(ports["http"], args.index_deadline_s), flush=True)
        results["grpc", "remember"] = load(args.load, G, "remember", "single-grpc", args.conns,
                                           args.singles, args.dim, 4)
        print("  settled in %.1f s" % settle(ports["http"], args.index_deadline_s), flush=True)
        results["http", "recall"] = load(args.load, H, "recall", "recall", args.conns,
                                         args.queries, args.dim, 5)
        results["grpc", "recall"] = load(args.load, G, "recall", "recall", args.conns,
                                         args.queries, args.dim, 5)
    finally:
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=1800)
        print("  server stopped in %.1f s" % (time.time() - t0), flush=True)
    print("in-process on the same data dir (%d threads)" % args.conns)
    I = "inproc:" + tmp
    results["inproc", "batch"] = load(args.load, I, "batch", "batch-inproc", args.conns, batches // 2,
                                      args.dim, 1, create=True)
    results["inproc", "remember"] = load(args.load, I, "remember", "single-inproc", args.conns,
                                         args.singles, args.dim, 3, create=True)
    results["inproc", "recall"] = load(args.load, I, "recall", "recall", args.conns, args.queries,
                                       args.dim, 5)

    print()
    print("%-9s %-7s %10s %10s %10s %10s   %s" % ("op", "target", "req/s", "p50 ms", "p99 ms",
                                                  "p99.9 ms", "ratio to in-process (p50 / p99)"))
    worst = 0.0
    for op in ("remember", "batch", "recall"):
        base = results["inproc", op]
        for t in ("inproc", "http", "grpc"):
            r = results[t, op]
            ratio = ""
            if t != "inproc":
                r50, r99 = r["p50_ms"] / base["p50_ms"], r["p99_ms"] / base["p99_ms"]
                worst = max(worst, r99)
                ratio = "%.2fx / %.2fx" % (r50, r99)
            print("%-9s %-7s %10.0f %10.3f %10.3f %10.3f   %s" % (
                op, t, r["requests_per_s"], r["p50_ms"], r["p99_ms"], r["p999_ms"], ratio))
    print()
    print("goal: protocol p99 <= 1.5x in-process p99: worst %.2fx -> %s"
          % (worst, "met" if worst <= 1.5 else "NOT met"))
    if not args.dir:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
