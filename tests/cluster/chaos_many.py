"""Many chaos runs, one per seed, and a table of what they found (`make chaos`).

    /usr/bin/python3 tests/cluster/chaos_many.py --bin build/mnemo --seeds 20 --duration 600
        --out DIR [--first-seed 1] [--nodes 3] [--jobs 1] [chaos.py options after --]

Each run writes DIR/seed-<n>/ (history.jsonl, report.json, node logs);
DIR/summary.json holds every report's figures. Exits 1 if any run had a
violation (its replay command is printed), 2 if a run could not be made.
A run bounds itself (chaos.py's deadline); one still going GRACE_S after it is
sent SIGTERM (chaos.py then removes its namespaces), SIGKILL KILL_GRACE_S later
(its namespaces then removed from here, by the prefix its history names), and
counted broken; the other seeds and the summary go on. --jobs N runs N seeds at
once (each in namespaces of its own prefix); their output is printed as each ends,
the table in seed order. More jobs than cores make each run's nodes slower, so
failure detectors see more false suspicions: a harder run, not an easier one.
"""

import argparse
import concurrent.futures
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import chaos  # noqa: E402
import netns  # noqa: E402

GRACE_S = 180       # past chaos.py's own deadline: its cleanup after the alarm
KILL_GRACE_S = 60   # after SIGTERM: chaos.py's signal handler removes the namespaces

COLS = (("seed", "%5s"), ("faults", "%6s"), ("ops", "%7s"), ("acked", "%6s"), ("lost", "%4s"),
        ("late", "%4s"), ("resurr", "%6s"), ("conv", "%5s"), ("heal_s", "%6s"), ("conv_s", "%7s"), ("stale_p999_s", "%12s"),
        ("stale_max_s", "%11s"), ("violations", "%s"))


def row(r):
    return {"seed": r["seed"], "faults": len(r["faults"]), "ops": r["ops"],
            "acked": r["acked_writes"], "lost": r["lost_acked_writes"],
            "late": r.get("late_one_writes", 0), "resurr": r["resurrected"], "conv": "yes" if r["converged"] else "NO",
            "heal_s": r.get("heal_s"), "conv_s": r["convergence_s"], "stale_p999_s": r["stale_read_p999_s"],
            "stale_max_s": r["stale_read_max_s"], "violations": len(r["violations"])}


def table(rows):
    lines = [" ".join(fmt % name for name, fmt in COLS)]
    for r in rows:
        lines.append(" ".join(fmt % (r[name],) for name, fmt in COLS))
    return "\n".join(lines)


def kinds(reports):
    out = {}
    for r in reports:
        for f in r["faults"]:
            k = f["kind"] + ("/" + f["mode"] if f.get("mode") else "")
            k += " (skipped)" if f.get("skipped") else ""
            out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def run_one(cmd, timeout_s):
    """Runs one chaos.py; (exit code or None when it had to be stopped, stdout, stderr)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout_s)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        pass
    p.send_signal(signal.SIGTERM)  # its handler kills the nodes and removes the namespaces
    try:
        out, err = p.communicate(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    err += "\nchaos_many: stopped after %d s (exit %s)\n" % (timeout_s, p.returncode)
    return None, out, err


def leftovers_removed(out):
    """Removes what a killed run left (its namespaces and links, and its nodes' data dirs
    unless MNEMO_CHAOS_KEEP, by the prefix its history's meta names); the names removed."""
    try:
        with open(os.path.join(out, "history.jsonl")) as f:
            prefix = json.loads(f.readline())["prefix"]
        removed = netns.cleanup_stale(prefix)
    except (OSError, ValueError, KeyError):
        return []
    if not os.environ.get("MNEMO_CHAOS_KEEP"):
        for d in glob.glob(os.path.join(tempfile.gettempdir(), "mnemo-chaos-%s-*" % prefix)):
            shutil.rmtree(d, ignore_errors=True)  # nodes.Cluster's data dirs
            removed.append(d)
    return removed


def main(argv=None):
    ap = argparse.ArgumentParser(description="chaos runs over many seeds")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=1, help="seeds run at once (1)")
    ap.add_argument("rest", nargs="*", help="more chaos.py options (after --)")
    a = ap.parse_args(argv)
    if a.jobs < 1:
        ap.error("--jobs >= 1")
    os.makedirs(a.out, exist_ok=True)

    def one(seed):
        out = os.path.join(a.out, "seed-%d" % seed)
        args = ["--bin", a.bin, "--seed", str(seed), "--duration", str(a.duration),
                "--nodes", str(a.nodes), "--out", out] + a.rest
        cmd = [sys.executable, os.path.join(HERE, "chaos.py")] + args
        parsed = chaos.parse(args)
        code, stdout, stderr = run_one(cmd, (parsed.deadline_s or chaos.deadline_s(parsed))
                                       + GRACE_S)
        note = ""
        if code is None:
            removed = leftovers_removed(out)
            if removed:
                note = "chaos_many: removed what seed %d left: %s\n" % (seed, removed)
        return seed, out, code, stdout, stderr + note

    results = {}
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for fut in concurrent.futures.as_completed([pool.submit(one, s) for s in seeds]):
            seed, out, code, stdout, stderr = fut.result()
            sys.stdout.write(stdout)
            sys.stderr.write(stderr)
            sys.stdout.flush()
            results[seed] = (out, code)
    reports, rows, failed, broken = [], [], [], []
    for seed in seeds:
        out, code = results[seed]
        if code in (None, 2) or not os.path.exists(os.path.join(out, "report.json")):
            broken.append(seed)
            continue
        with open(os.path.join(out, "report.json")) as f:
            r = json.load(f)
        reports.append(r)
        rows.append(row(r))
        if code != 0:
            failed.append(seed)
    print()
    print(table(rows))
    conv = sorted(r["convergence_s"] for r in reports if r["convergence_s"] is not None)
    total = {"runs": len(reports), "faults": sum(len(r["faults"]) for r in reports),
             "ops": sum(r["ops"] for r in reports),
             "acked_writes": sum(r["acked_writes"] for r in reports),
             "reads": sum(r["reads"] for r in reports),
             "violations": sum(len(r["violations"]) for r in reports),
             "late_one_writes": sum(r.get("late_one_writes", 0) for r in reports),
             "convergence_s_max": conv[-1] if conv else None,
             "convergence_s_median": conv[len(conv) // 2] if conv else None,
             "stale_read_p999_s_max": max((r["stale_read_p999_s"] for r in reports), default=None),
             "fault_kinds": kinds(reports), "failed_seeds": failed, "broken_seeds": broken,
             "unavailable": {k: v for r in reports for k, v in r["unavailable"].items()},
             "duration_s": a.duration, "nodes": a.nodes, "jobs": a.jobs}
    print("\ntotal: " + json.dumps(total, indent=1))
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump({"total": total, "runs": rows}, f, indent=1)
    if broken:
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
