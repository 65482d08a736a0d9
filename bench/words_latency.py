#!/usr/bin/python3
"""Latency of words-only recall (keyword search, no spreading) over HTTP.

Starts `mnemo serve` on a free loopback port with a temp data dir, remembers every
turn of the REALTALK conversations given (content = the turn's text, context.who = its
speaker) into ONE space, then recalls each question's text (k = 10, "spread": false)
--rounds times on one keep-alive connection and prints p50/p99 in ms. Use it to compare
two binaries on the same machine, one after the other.

  /usr/bin/python3 bench/words_latency.py --bin build/mnemo --data /tmp/realtalk
"""
import argparse
import glob
import http.client
import json
import os
import shutil
import tempfile
import time

import mnemo_proc
from mnemo_proc import call


def load(paths):
    turns, questions = [], []
    for p in sorted(paths):
        d = json.load(open(p))
        for key, sess in d.items():
            if key.startswith("session_") and isinstance(sess, list):
                for t in sess:
                    text = (t.get("clean_text") or t.get("text") or "").strip()
                    if text:
                        turns.append({"content": text[:60000],
                                      "context": {"who": [t.get("speaker") or "x"]}})
        for q in d.get("qa", []):
            if q.get("question"):
                questions.append(q["question"])
    return turns, questions


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", required=True, help="directory of REALTALK Chat_*.json")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    turns, questions = load(glob.glob(os.path.join(a.data, "Chat_*.json")))
    tmp = tempfile.mkdtemp(prefix="mnemo-words-lat-")
    proc, port = mnemo_proc.start(a.bin, tmp)
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        call(c, "POST", "/v1/spaces", {"name": "w", "dim": 2})
        for i in range(0, len(turns), 500):
            call(c, "POST", "/v1/spaces/w/memories", {"memories": turns[i:i + 500]})
        lat = []
        for _ in range(a.rounds):
            for q in questions:
                t0 = time.perf_counter()
                call(c, "POST", "/v1/spaces/w/recall", {"text": q, "k": 10, "spread": False})
                lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        print("words recall over %d memories, %d queries: p50 %.3f ms, p99 %.3f ms"
              % (len(turns), len(lat), lat[len(lat) // 2], lat[int(len(lat) * 0.99)]))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
