#!/usr/bin/python3
"""Benchmark of the embedding provider path: a real `mnemo serve` with [embedding] pointed at
the local stand-in (bench/embed/standin.py), on free loopback ports and a temp data dir.

  1. remember N text-only memories (batches of 100 per request) and time how long until the
     last of them has its vector (mnemo_embedding_embedded_total == N): the background
     throughput of the provider path at embedding.batch_size;
  2. recall Q text-only cues (k=10, no spreading), one connection: p50/p99 of the whole
     request, which includes embedding the cue at the provider ("exact+keyword"), then the
     same cues with the provider stopped (words only, "keyword", after the fallback's failed
     connection).

The stand-in computes its vectors in pure Python, so the figures bound mnemo's side from
above: a real model is slower per text, and that cost is the provider's. Seeded texts.

Usage: bench/embed/run.py [--mnemo build/mnemo] [--n 2000] [--q 200] [--dim 64]
                          [--batch 32] [--vectors FILE]
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORDS = ("apple river stone cloud music paper garden window summer letter engine story "
         "silver forest coffee planet market bridge candle winter doctor island mirror "
         "thunder harbor castle pencil rocket valley lantern meadow").split()


def start(cmd, env, pattern, deadline_s=60):
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        line = p.stdout.readline()
        if not line:
            break
        m = re.search(pattern, line)
        if m:
            return p, int(m.group(1))
    p.kill()
    raise SystemExit("%s did not start" % cmd[0])


def call(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit("%s %s: %d %s" % (method, path, r.status, data[:200]))
    return json.loads(data) if r.getheader("Content-Type", "").startswith("application/json") \
        else data.decode()


def metric(conn, name):
    for line in call(conn, "GET", "/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnemo", default=os.path.join(HERE, "..", "..", "build", "mnemo"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--q", type=int, default=200)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vectors", help="fastText .vec file for the stand-in")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(a.n)]
    cues = [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(a.q)]
    tmp = tempfile.mkdtemp(prefix="mnemo-embed-bench-")
    procs = []
    try:
        sargs = ["/usr/bin/python3", os.path.join(HERE, "standin.py"), "--dim", str(a.dim)]
        if a.vectors:
            sargs += ["--vectors", a.vectors]
        sp, sport = start(sargs, dict(os.environ), r"listening on [\d.]+:(\d+)")
        procs.append(sp)
        dim = a.dim
        if a.vectors:
            with open(a.vectors) as f:
                dim = int(f.readline().split()[1])
        env = dict(os.environ, MNEMO_HTTP_PORT="0", MNEMO_GRPC_ENABLED="false",
                   MNEMO_STORAGE_DATA_DIR=os.path.join(tmp, "data"),
                   MNEMO_ENGINE_CONSOLIDATE_INTERVAL_S="0",
                   MNEMO_EMBEDDING_URL="http://127.0.0.1:%d/v1/embeddings" % sport,
                   MNEMO_EMBEDDING_MODEL="standin", MNEMO_EMBEDDING_DIM=str(dim),
                   MNEMO_EMBEDDING_BATCH_SIZE=str(a.batch),
                   MNEMO_EMBEDDING_MAX_BACKLOG=str(max(a.n, 1)),
                   MNEMO_EMBEDDING_TIMEOUT_MS="10000")
        mp, mport = start([a.mnemo, "serve"], env, r"listening on http://[^:]+:(\d+)")
        procs.append(mp)
        conn = http.client.HTTPConnection("127.0.0.1", mport, timeout=120)
        call(conn, "POST", "/v1/spaces", {"name": "bench", "dim": dim})
        t0 = time.monotonic()
        for i in range(0, a.n, 100):
            call(conn, "POST", "/v1/spaces/bench/memories",
                 {"memories": [{"content": t} for t in texts[i:i + 100]]})
        t_ack = time.monotonic() - t0
        while metric(conn, "mnemo_embedding_embedded_total") < a.n:
            if time.monotonic() - t0 > 600:
                raise SystemExit("vectors did not arrive within 600 s")
            time.sleep(0.05)
        t_vec = time.monotonic() - t0
        print("remember %d text-only memories: acknowledged in %.2f s; all vectors written "
              "after %.2f s (%.0f memories/s through the provider, batch %d, dim %d)"
              % (a.n, t_ack, t_vec, a.n / t_vec, a.batch, dim))
        for label in ("provider up", "provider down"):
            lat, paths = [], set()
            for cue in cues:
                t = time.monotonic()
                r = call(conn, "POST", "/v1/spaces/bench/recall",
                         {"text": cue, "k": 10, "spread": False})
                lat.append((time.monotonic() - t) * 1000)
                paths.add(r["path"])
            print("recall by text, %s: p50 %.2f ms, p99 %.2f ms over %d cues (path %s)"
                  % (label, pct(lat, 0.5), pct(lat, 0.99), len(cues), ",".join(sorted(paths))))
            if label == "provider up":
                sp.terminate()
                sp.wait(timeout=30)
        print("recall fallbacks counted: %d"
              % metric(conn, "mnemo_embedding_recall_fallbacks_total"))
        conn.close()
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
