#!/usr/bin/python3
"""HTTP benchmark of mnemo, with the same operations run in-process as the peer.

Starts a real `mnemo serve` on a free loopback port with a temp data dir, then:
  remember, one memory per request, N connections (keep-alive)
  remember, batches of 100, N connections
  recall at R x DIM (k=10, no spreading), one connection: p50/p99, measured once
  the background index thread has caught up, twice: the exact scan ("exact":
  true, the oracle) and the default path (HNSW above engine.hnsw_threshold,
  2,000; the path each took is printed), and the default path under a filter of the
  filter language that 10% and then 1% of the memories pass ({"metadata.b": {"lt": 10}}
  and {"lt": 1}, b = the memory's number mod 100), printed as ratios to the unfiltered
  default path of the same run (and in-process, with recall@10 against the exact
  filtered scan; the path printed is the last query's: the planner scans instead of
  searching the graph when its sample finds the filter selective)
Runs bench/bench_engine.c (mn_bench_engine) with the same sizes and prints the
HTTP figures, the in-process figures and their ratios. Request bodies are
encoded before the clock starts, so the Python client measures the server.
Everything is seeded; every loop is bounded.
"""
import argparse
import http.client
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

import numpy as np


def start_server(binary, data_dir):
    env = dict(os.environ)
    env.update({"MNEMO_HTTP_PORT": "0", "MNEMO_STORAGE_DATA_DIR": data_dir,
                "MNEMO_LOG_LEVEL": "info"})
    proc = subprocess.Popen([binary, "serve"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    port = None
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError("mnemo exited with %s" % proc.returncode)
            continue
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        proc.kill()
        raise RuntimeError("mnemo did not report its port within 30 s")
    # keep draining stderr so the server never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, port


def request(conn, method, path, body=None):
    headers = {"content-type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise RuntimeError("%s %s -> %d %s" % (method, path, resp.status, data[:200]))
    return json.loads(data) if data else None


def vec_json(v):
    return "[" + ",".join("%.6f" % x for x in v) + "]"


def memory_body(v, i, bucket=False):
    meta = ',"metadata":{"b":"%d"}' % (i % 100) if bucket else ""
    return ('{"content":"the user said they prefer window seats on long flights %d",'
            '"embedding":%s%s}' % (i, vec_json(v), meta))


def pct(lat, q):
    s = sorted(lat)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] * 1000.0


def write_phase(port, space, bodies_per_conn):
    lats = []
    lock = threading.Lock()
    errors = []

    def worker(bodies):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        try:
            for b in bodies:
                t0 = time.perf_counter()
                request(conn, "POST", "/v1/spaces/%s/memories" % space, b)
                mine.append(time.perf_counter() - t0)
        except Exception as e:  # reported below
            errors.append(e)
        conn.close()
        with lock:
            lats.extend(mine)

    threads = [threading.Thread(target=worker, args=(b,)) for b in bodies_per_conn]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return secs, lats


def run_inproc(inproc, args):
    d = tempfile.mkdtemp(prefix="mnemo-bench-inproc-")
    try:
        out = subprocess.run([inproc, "--dir", d + "/db", "--dim", str(args.dim),
                              "--threads", str(args.conns), "--singles", str(args.singles),
                              "--batches", str(args.batches), "--recall-n", str(args.recall_n),
                              "--queries", str(args.queries)],
                             check=True, capture_output=True, text=True, timeout=1800).stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)
    figures = {}
    for line in out.splitlines():
        k, v = line.split()
        try:
            figures[k] = float(v)
        except ValueError:
            figures[k] = v
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--inproc", required=True)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--singles", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--recall-n", type=int, default=10000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()

    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="mnemo-bench-http-")
    proc, port = start_server(args.bin, tmp + "/db")
    res = {}
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for name in ("bench-w", "bench-r"):
            request(c, "POST", "/v1/spaces", json.dumps({"name": name, "dim": args.dim}))

        per = args.singles // args.conns
        bodies = [[memory_body(rng.standard_normal(args.dim), i) for i in range(per)]
                  for _ in range(args.conns)]
        secs, lats = write_phase(port, "bench-w", bodies)
        res["http_remember_single_memories_per_s"] = per * args.conns / secs
        res["http_remember_single_p50_ms"] = pct(lats, 0.5)
        res["http_remember_single_p99_ms"] = pct(lats, 0.99)

        per = args.batches // args.conns
        bodies = [['{"memories":[' + ",".join(memory_body(v, i) for i, v in
                                              enumerate(rng.standard_normal((100, args.dim)))) + "]}"
                   for _ in range(per)] for _ in range(args.conns)]
        secs, lats = write_phase(port, "bench-w", bodies)
        res["http_remember_batch100_memories_per_s"] = per * args.conns * 100 / secs
        res["http_remember_batch100_p50_ms"] = pct(lats, 0.5)
        res["http_remember_batch100_p99_ms"] = pct(lats, 0.99)

        for b in range(args.recall_n // 100):
            body = '{"memories":[' + ",".join(memory_body(v, i, True) for i, v in
                                              enumerate(rng.standard_normal((100, args.dim)))) + "]}"
            request(c, "POST", "/v1/spaces/bench-r/memories", body)
        # recall is measured once the background index thread has caught up
        t0 = time.perf_counter()
        deadline = t0 + 1800
        while time.perf_counter() < deadline:
            ix = request(c, "GET", "/v1/spaces/bench-r/stats")["index"]
            if ix["state"] != "catching_up":
                break
            time.sleep(0.5)
        res["http_index_catch_up_s"] = time.perf_counter() - t0
        qs = rng.standard_normal((args.queries, args.dim))
        for mode, extra in (("exact", ',"exact":true'), ("hnsw", ""),
                            ("filter10", ',"filter":{"metadata.b":{"lt":10}}'),
                            ("filter1", ',"filter":{"metadata.b":{"lt":1}}')):
            queries = ['{"embedding":%s,"k":10,"spread":false%s}' % (vec_json(q), extra)
                       for q in qs]
            lats = []
            for q in queries:
                t0 = time.perf_counter()
                r = request(c, "POST", "/v1/spaces/bench-r/recall", q)
                lats.append(time.perf_counter() - t0)
                assert len(r["results"]) == 10
                res["recall_%s_path" % mode] = r["path"]
            res["http_recall_%s_p50_ms" % mode] = pct(lats, 0.5)
            res["http_recall_%s_p99_ms" % mode] = pct(lats, 0.99)
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    inp = run_inproc(args.inproc, args)
    print("mnemo benchmark: dim=%d conns=%d singles=%d batches=%d recall_n=%d queries=%d"
          % (args.dim, args.conns, args.singles, args.batches, args.recall_n, args.queries))
    print("%-40s %12s %12s %8s" % ("figure", "http", "in-process", "ratio"))
    pairs = [("remember_single_memories_per_s", "inproc_remember_single_memories_per_s"),
             ("remember_single_p50_ms", "inproc_remember_single_p50_ms"),
             ("remember_single_p99_ms", "inproc_remember_single_p99_ms"),
             ("remember_batch100_memories_per_s", "inproc_remember_batch100_memories_per_s"),
             ("remember_batch100_p50_ms", "inproc_remember_batch100_p50_ms"),
             ("remember_batch100_p99_ms", "inproc_remember_batch100_p99_ms"),
             ("recall_exact_p50_ms", "inproc_recall_exact_p50_ms"),
             ("recall_exact_p99_ms", "inproc_recall_exact_p99_ms"),
             ("recall_hnsw_p50_ms", "inproc_recall_hnsw_p50_ms"),
             ("recall_hnsw_p99_ms", "inproc_recall_hnsw_p99_ms"),
             ("recall_filter10_p50_ms", "inproc_recall_filter10_p50_ms"),
             ("recall_filter10_p99_ms", "inproc_recall_filter10_p99_ms"),
             ("recall_filter1_p50_ms", "inproc_recall_filter1_p50_ms"),
             ("recall_filter1_p99_ms", "inproc_recall_filter1_p99_ms")]
    for h, i in pairs:
        hv, iv = res["http_" + h], inp.get(i, float("nan"))
        print("%-40s %12.3f %12.3f %8.2f" % (h, hv, iv, hv / iv if iv else float("nan")))
    print("recall paths: exact rows http %s, in-process %s; hnsw rows http %s, in-process %s"
          % (res.get("recall_exact_path"), inp.get("inproc_recall_exact_path"),
             res.get("recall_hnsw_path"), inp.get("inproc_recall_hnsw_path")))
    print("filtered recall / unfiltered recall (default path, same run):")
    for sel in ("filter10", "filter1"):
        for q in ("p50", "p99"):
            hf, hu = res["http_recall_%s_%s_ms" % (sel, q)], res["http_recall_hnsw_%s_ms" % q]
            i_f = inp.get("inproc_recall_%s_%s_ms" % (sel, q), float("nan"))
            i_u = inp.get("inproc_recall_hnsw_%s_ms" % q, float("nan"))
            print("  %-9s %s  http %8.2f   in-process %8.2f" % (
                {"filter10": "10% pass", "filter1": "1% pass"}[sel], q, hf / hu,
                i_f / i_u if i_u else float("nan")))
        print("  %-9s paths: http %s, in-process %s; in-process recall@10 vs the exact filtered "
              "scan %.3f" % ({"filter10": "10% pass", "filter1": "1% pass"}[sel],
                              res.get("recall_%s_path" % sel),
                              inp.get("inproc_recall_%s_path" % sel),
                              inp.get("inproc_recall_%s_recall_at_10" % sel, float("nan"))))
    print("index caught up after the load in %.1f s (http), %.1f s (in-process)"
          % (res["http_index_catch_up_s"], inp.get("inproc_index_catch_up_s", float("nan"))))
    print("(ratio = http / in-process; Engram's targets for reference: write p99 5 ms, "
          "read p99 10 ms, 10K ops/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
