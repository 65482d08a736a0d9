#!/usr/bin/python3
"""What exact-duplicate detection costs a remember (docs/api.md, "Duplicates").

Starts `mnemo serve` (tests/integration/conftest.py's MnemoServer, semantic linking off)
on a temp data dir and remembers the same workload into spaces made with "dedup": "off"
and "exact", alternating, --rounds times each: --batches batches of 500 distinct
ephemeral memories (no fsync, so the CPU cost shows) of --size bytes of content. Prints
the best time of each and their ratio; figures only, nothing is asserted.

  MNEMO_BIN=build/mnemo PYTHONPATH=clients/python /usr/bin/python3 bench/dedup_remember.py
"""
import argparse
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from conftest import MnemoServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--size", type=int, default=2000)
    a = ap.parse_args()
    s = MnemoServer(pathlib.Path(tempfile.mkdtemp()), env={"MNEMO_ENGINE_LINK_MAX": "0"}).start()
    c = s.client()
    best = {}
    try:
        for r in range(a.rounds):
            for mode in ("off", "exact"):
                name = "bench-%s-%d" % (mode, r)
                c.create_space(name, 8, dedup=mode)
                text = "x" * a.size
                t0 = time.perf_counter()
                for b in range(a.batches):
                    c.remember_batch(name, [
                        {"content": "%s %d %d" % (text, b, i), "lifecycle": "ephemeral",
                         "embedding": [1, 2, 3, 4, 5, 6, 7, float(i)]} for i in range(500)])
                took = time.perf_counter() - t0
                best[mode] = min(best.get(mode, took), took)
    finally:
        c.close()
        s.stop()
    n = a.batches * 500
    print("%d remembers of %d bytes (batches of 500, ephemeral), best of %d: dedup off %.3f s, "
          "exact %.3f s, exact/off %.2f" % (n, a.size, a.rounds, best["off"], best["exact"],
                                             best["exact"] / best["off"]))


if __name__ == "__main__":
    main()
