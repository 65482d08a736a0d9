#!/usr/bin/python3
"""Side-by-side ANN benchmark: mnemo's HNSW vs hnswlib vs FAISS IndexHNSWFlat.

Builds seeded clustered Gaussian data once per size (fvecs under a temp dir),
computes the exact top-k with FAISS IndexFlatL2, then runs each system
single-threaded on the same files, each in its own process (so memory is
measured cleanly): build seconds, bytes per vector (RSS growth over the build),
and recall@k / queries per second for an ef sweep. Prints a table per data set
and the ratios mnemo/hnswlib and mnemo/faiss for QPS at the smallest ef that
reaches recall >= 0.95, and for build time.

Installs nothing: needs python3-numpy, python3-hnswlib, python3-faiss (Debian)
and the driver built by CMake (target mn_ann_driver).

  /usr/bin/python3 bench/ann/run.py --driver build/bench/ann/mn_ann_driver
  /usr/bin/python3 bench/ann/run.py --sizes 20000x768,50000x128 --nq 500   # quick
  /usr/bin/python3 bench/ann/run.py --churn 0.3 --sizes 38000x128 --nq 1000  # deletes

--churn F: mnemo only. For each size N, makes N (1 + F) points, builds the index
over the first N, removes F N of them at random and inserts the rest into the
freed slots, then prints recall@k per ef beside a fresh build of the final N
points (exact ground truth by the driver) and the difference.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGET_RECALL = 0.95


def write_vecs(path, x):
    x = np.ascontiguousarray(x)
    n, d = x.shape
    out = np.empty((n, d + 1), dtype="<i4")
    out[:, 0] = d
    out[:, 1:] = x.view("<i4")
    out.tofile(path)


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype="<i4")
    d = int(raw[0])
    return raw.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def make_data(n, d, nq, seed, clusters, sigma):
    """Points around `clusters` N(0, 1) centres with N(0, sigma^2) spread;
    queries are fresh draws from the same mixture."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d), dtype=np.float32)

    def draw(m):
        out = np.empty((m, d), dtype=np.float32)
        step = 50000
        for i in range(0, m, step):
            k = min(step, m - i)
            c = rng.integers(0, clusters, k)
            out[i:i + k] = centres[c] + sigma * rng.standard_normal((k, d), dtype=np.float32)
        return out

    return draw(n), draw(nq)


def ground_truth(x, q, k):
    import faiss
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    _, ids = index.search(q, k)
    return ids.astype(np.int32)


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def recall(ids, gt, k):
    hit = 0
    for a, b in zip(ids, gt):
        hit += len(set(a[:k].tolist()) & set(b[:k].tolist()))
    return hit / (len(gt) * k)


def worker(args):
    """Runs one peer library in this process and prints a JSON line."""
    x = read_vecs(args.base, np.float32)
    q = read_vecs(args.queries, np.float32)
    gt = read_vecs(args.gt, np.int32)
    n, d = x.shape
    efs = [int(e) for e in args.efs.split(",")]
    runs = []
    r0 = rss_bytes()
    if args.worker == "hnswlib":
        import hnswlib
        index = hnswlib.Index(space="l2", dim=d)
        index.init_index(max_elements=n, ef_construction=args.efc, M=args.M, random_seed=1)
        index.set_num_threads(1)
        t0 = time.perf_counter()
        index.add_items(x, np.arange(n), num_threads=1)
        build = time.perf_counter() - t0
        r1 = rss_bytes()
        for ef in efs:
            index.set_ef(ef)
            secs = None
            for _ in range(args.reps):  # best of reps: the machine may be shared
                t0 = time.perf_counter()
                ids, _ = index.knn_query(q, k=args.k, num_threads=1)
                t = time.perf_counter() - t0
                secs = t if secs is None else min(secs, t)
            runs.append({"ef": ef, "recall": recall(ids, gt, args.k), "qps": len(q) / secs})
    else:
        import faiss
        faiss.omp_set_num_threads(1)
        index = faiss.IndexHNSWFlat(d, args.M)
        index.hnsw.efConstruction = args.efc
        t0 = time.perf_counter()
        index.add(x)
        build = time.perf_counter() - t0
        r1 = rss_bytes()
        for ef in efs:
            index.hnsw.efSearch = ef
            secs = None
            for _ in range(args.reps):
                t0 = time.perf_counter()
                _, ids = index.search(q, args.k)
                t = time.perf_counter() - t0
                secs = t if secs is None else min(secs, t)
            runs.append({"ef": ef, "recall": recall(ids, gt, args.k), "qps": len(q) / secs})
    print(json.dumps({"system": args.worker, "n": n, "dim": d, "build_s": build,
                      "rss_delta_bytes": r1 - r0, "runs": runs}))


def run_system(name, files, args):
    base, queries, gt = files
    common = ["--efs", args.efs, "--reps", str(args.reps)]
    if name.startswith("mnemo"):
        cmd = [args.driver, "--base", base, "--queries", queries, "--gt", gt, "--M", str(args.M),
               "--efc", str(args.efc), "--k", str(args.k)] + common
        if name == "mnemo-int8":
            cmd += ["--int8", "--ext"]
        if args.save_load and name == "mnemo":
            cmd += ["--save", os.path.join(os.path.dirname(base), "graph.hnsw")]
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--base", base,
               "--queries", queries, "--gt", gt, "--M", str(args.M), "--efc", str(args.efc),
               "--k", str(args.k)] + common
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    res = json.loads(out.strip().splitlines()[-1])
    res["system"] = name
    return res


def run_churn(files, args):
    base, queries, _ = files
    cmd = [args.driver, "--base", base, "--queries", queries, "--M", str(args.M),
           "--efc", str(args.efc), "--k", str(args.k), "--efs", args.efs, "--reps",
           str(args.reps), "--churn", str(args.churn)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report_churn(label, res, args):
    print(f"\n=== {label}: {res['n']} points, {res['removed']} removed and as many inserted "
          f"(M={args.M}, efC={args.efc}) ===")
    print(f"build {res['build_s']:.1f} s, removals {res['remove_s']:.2f} s, "
          f"re-inserts {res['reinsert_s']:.1f} s")
    print(f"{'ef':>4} {'after churn':>11} {'fresh':>8} {'diff':>8} {'QPS churn':>10} {'QPS fresh':>10}")
    for r in res["runs"]:
        print(f"{r['ef']:>4} {r['recall']:>11.4f} {r['fresh_recall']:>8.4f} "
              f"{r['recall'] - r['fresh_recall']:>+8.4f} {r['qps']:>10.0f} {r['fresh_qps']:>10.0f}")


def first_reaching(res, target):
    for r in res["runs"]:
        if r["recall"] >= target:
            return r
    return None


def bytes_per_vector(res):
    if res["system"].startswith("mnemo"):
        # exact accounting; int8 runs keep floats outside the index (the engine's array)
        return res["index_bytes"] / res["n"]
    return res["rss_delta_bytes"] / res["n"]


def report(label, results, dim):
    raw = 4 * dim
    print(f"\n=== {label}: single thread, M={results[0].get('M', 16)}, efC=200 ===")
    print(f"{'system':<12} {'build s':>9} {'bytes/vec':>10} {'x raw':>6}  "
          f"{'ef':>4} {'recall@10':>9} {'QPS':>10}")
    for res in results:
        bpv = bytes_per_vector(res)
        for i, r in enumerate(res["runs"]):
            head = (f"{res['system']:<12} {res['build_s']:>9.1f} {bpv:>10.0f} {bpv / raw:>6.2f}"
                    if i == 0 else " " * 40)
            print(f"{head}  {r['ef']:>4} {r['recall']:>9.4f} {r['qps']:>10.0f}")
        if "load_s" in res:
            print(f"{'':<12} save {res['save_s']:.2f} s, load {res['load_s']:.2f} s")
    by = {r["system"]: r for r in results}
    m = by.get("mnemo")
    if not m:
        return
    mr = first_reaching(m, TARGET_RECALL)
    for peer in ("hnswlib", "faiss"):
        p = by.get(peer)
        if not p:
            continue
        pr = first_reaching(p, TARGET_RECALL)
        if mr and pr:
            qps = (f"QPS ratio {mr['qps'] / pr['qps']:.2f} (mnemo ef {mr['ef']} "
                   f"recall {mr['recall']:.3f} vs {peer} ef {pr['ef']} recall {pr['recall']:.3f})")
        else:
            qps = "QPS ratio n/a (recall 0.95 not reached in the sweep)"
        print(f"mnemo/{peer}: {qps}; build time ratio {m['build_s'] / p['build_s']:.2f}; "
              f"memory ratio {bytes_per_vector(m) / bytes_per_vector(p):.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100000x768,500000x128", help="NxD list")
    ap.add_argument("--nq", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--efs", default="16,32,64,128,256")
    ap.add_argument("--reps", type=int, default=3, help="search passes per ef; best counts")
    ap.add_argument("--systems", default="mnemo,hnswlib,faiss",
                    help="any of mnemo, mnemo-int8, hnswlib, faiss")
    ap.add_argument("--clusters", type=int, default=0, help="0 = n / 100")
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--driver", default="build/bench/ann/mn_ann_driver")
    ap.add_argument("--dir", default=None, help="data dir (default: a temp dir, removed after)")
    ap.add_argument("--save-load", action="store_true", help="also time mnemo save + load")
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument("--churn", type=float, default=0,
                    help="measure deletes: remove this share and insert as many (mnemo only)")
    ap.add_argument("--worker", choices=["hnswlib", "faiss"], help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--queries", help=argparse.SUPPRESS)
    ap.add_argument("--gt", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    systems = ["mnemo"] if args.churn > 0 else args.systems.split(",")
    if any(s.startswith("mnemo") for s in systems) and not os.access(args.driver, os.X_OK):
        sys.exit(f"driver {args.driver} not found: build the mn_ann_driver target")
    tmp = args.dir or tempfile.mkdtemp(prefix="mnemo-ann-")
    os.makedirs(tmp, exist_ok=True)
    everything = []
    try:
        for size in args.sizes.split(","):
            n, d = (int(v) for v in size.lower().split("x"))
            label = f"{n}x{d}"
            total = int(round(n * (1 + args.churn)))
            if args.churn > 0:
                label += f"-churn{args.churn:g}"
            files = tuple(os.path.join(tmp, f"{label}.{s}") for s in ("base.fvecs", "query.fvecs",
                                                                      "gt.ivecs"))
            if not all(os.path.exists(f) for f in files[:2 if args.churn > 0 else 3]):
                t0 = time.perf_counter()
                x, q = make_data(total, d, args.nq, args.seed + d,
                                 args.clusters or max(1, n // 100), args.sigma)
                write_vecs(files[0], x)
                write_vecs(files[1], q)
                if args.churn <= 0:
                    write_vecs(files[2], ground_truth(x, q, args.k))
                del x, q
                print(f"[{label}] data in {time.perf_counter() - t0:.1f} s", flush=True)
            if args.churn > 0:
                res = run_churn(files, args)
                report_churn(label, res, args)
                everything.append({"data": label, "results": [res]})
                continue
            results = []
            for s in systems:
                t0 = time.perf_counter()
                res = run_system(s, files, args)
                results.append(res)
                print(f"[{label}] {s} done in {time.perf_counter() - t0:.0f} s", flush=True)
            report(label, results, d)
            everything.append({"data": label, "results": results})
    finally:
        if not args.dir:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1)


if __name__ == "__main__":
    main()
