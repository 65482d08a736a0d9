"""One chaos run: nodes in namespaces, a seeded fault schedule, a workload
with a history, the heal, the final reads and the checker's report.

    /usr/bin/python3 tests/cluster/chaos.py --bin build/mnemo --seed 7 --duration 60 --out DIR
        [--nodes 3] [--spaces-per-node 2] [--clients-per-node 2] [--think-ms 100]
        [--converge-bound-s 60] [--stale-bound-s 5] [--env KEY=VALUE ...]

Writes DIR/history.jsonl (every op, fault, the heal, convergence, final reads),
DIR/report.json (checker.py's report), DIR/node<i>.log; prints a one-line
summary and the seed to replay; exits 1 on any violation, 2 when the run
itself could not be made (no namespaces, no nft, a binary that does not start).

Each space is created through a node and lives where the cluster places it
(its primary and replicas, read from GET /v1/cluster/spaces once every node
agrees); the clients of a node work on the spaces that node leads, through
that node. Partitions, loss and duplication reach SWIM and the peer port
between nodes, never the harness's own HTTP path to a node. After the heal,
`--holders all` asks each holder for its own copy: its applied lsn from its
own placement table, and its lists with read=nearest (served by the copy
asked, once it is in rotation), so every holder is judged, replicas
included. What it still finds (issue 16): an old primary cut off in a
minority wrote entries that never reached the others; its copy forked and
stays behind until WAL truncation and snapshots are built (seed 204, 70 s, at
replication factor 3: converged False, nothing lost or resurrected). `--holders primary` (the default, and `make test`'s short run)
asks each space's first primary node, which forwards to the space's primary
of the moment: the checker judges what the cluster answers.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import checker  # noqa: E402
import faults as F  # noqa: E402
import netns  # noqa: E402
import schedule  # noqa: E402
import workload as W  # noqa: E402
from nodes import Cluster  # noqa: E402

PLACEMENT_WAIT_S = 30
CLIENT_JOIN_S = W.REMEMBER_BUDGET_S + 3 * W.OP_TIMEOUT_S + 10


def parse(argv):
    ap = argparse.ArgumentParser(description="one seeded chaos run of mnemo nodes")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True, help="seconds of faults and workload")
    ap.add_argument("--out", required=True)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--spaces-per-node", type=int, default=2)
    ap.add_argument("--clients-per-node", type=int, default=2)
    ap.add_argument("--think-ms", type=float, default=100.0, help="max pause between a client's ops")
    ap.add_argument("--converge-bound-s", type=float, default=60.0)
    ap.add_argument("--stale-bound-s", type=float, default=5.0)
    ap.add_argument("--replication-factor", type=int, default=1,
                    help="cluster.replication_factor of the nodes. 1 (the default, and make "
                         "test's short run); 3 with --holders all judges every copy (forks "
                         "are healed by snapshots)")
    ap.add_argument("--holders", choices=("primary", "all"), default="primary",
                    help="whose copies the convergence check and the final reads judge: each "
                         "space's primary, or every holder (replicas too; issue 16 has gaps "
                         "this finds: see docs/replication.md)")
    ap.add_argument("--partition-writes", choices=("reject", "accept"), default="reject",
                    help="cluster.partition_writes of the nodes: with accept, a remember whose "
                         "primary is unreachable is answered 202 (a hint) and judged as an "
                         "acknowledged write (docs/gossip.md, \"Partition mode\")")
    ap.add_argument("--fdtrace", default=None, metavar="LIB",
                    help="preload LIB (the build's tests/libmn_fdtrace.so) in every node: a "
                         "descriptor closed twice is reported in the node's log and counted "
                         "as a violation (fd_misuse)")
    ap.add_argument("--consolidate-every-s", type=int, default=5,
                    help="engine.consolidate_interval_s of the nodes: each primary consolidates "
                         "its spaces this often, so semantic memories are made, gossiped and "
                         "judged by the convergence (equal Merkle roots everywhere); 0 = never")
    ap.add_argument("--forget-semantic", action=argparse.BooleanOptionalAction, default=True,
                    help="clients also forget semantic memories (workload.py; on by default: "
                         "tests/cluster/README.md, \"Found and fixed: forgotten semantic "
                         "memories came back\"); --no-forget-semantic leaves them out")
    ap.add_argument("--env", action="append", default=[],
                    help="KEY=VALUE for every node (e.g. the TEST ONLY MNEMO_TEST_DROP_ACKED=5)")
    a = ap.parse_args(argv)
    if a.nodes < 1 or a.duration <= 0 or a.consolidate_every_s < 0:
        ap.error("--nodes >= 1, --duration > 0 and --consolidate-every-s >= 0")
    return a


def make_spaces(cluster, per_node):
    """Creates per_node spaces through every node; {space: [holder]} (primary first) once
    every node's placement table agrees on each space's primary and replicas."""
    names = []
    for nd in cluster.nodes:
        for k in range(per_node):
            name = "n%ds%d" % (nd.i, k)
            st, doc = W.http(nd.url + "/v1/spaces", "POST", {"name": name, "dim": W.DIM},
                             timeout=10)
            if st != 201:
                raise RuntimeError("cannot create space %s on node %d: %s %s"
                                   % (name, nd.i, st, doc))
            names.append(name)
    deadline = time.monotonic() + PLACEMENT_WAIT_S
    while True:
        placement = agreed_holders(cluster, names)
        if placement:
            return placement
        if time.monotonic() > deadline:
            raise RuntimeError("the nodes did not agree on where the spaces live within %d s"
                               % PLACEMENT_WAIT_S)
        time.sleep(0.2)


def table(node):
    """node's placement table: {space: entry}, and node's own id."""
    st, doc = W.http(node.url + "/v1/cluster/spaces", timeout=2)
    if st != 200:
        raise RuntimeError("GET /v1/cluster/spaces on node %d: %s %s" % (node.i, st, doc))
    return {e["name"]: e for e in doc["spaces"]}, doc["self"]


def agreed_holders(cluster, names):
    """{space: [node index]} when every node lists each space with the same primary and
    replicas (no copy catching up), else None."""
    index = {nd.id: nd.i for nd in cluster.nodes}
    seen = {}
    for nd in cluster.nodes:
        spaces, _ = table(nd)
        for name in names:
            e = spaces.get(name)
            if not e or not e.get("primary") or e["primary"] not in index:
                return None
            if any(h["role"] == "catching_up" for h in e["holders"]):
                return None
            ids = [e["primary"]] + sorted(e["replicas"])
            if seen.setdefault(name, ids) != ids or any(i not in index for i in ids):
                return None
    return {name: [index[i] for i in ids] for name, ids in seen.items()}


def views_agree(cluster):
    """Every node sees every node alive."""
    ids = {nd.id for nd in cluster.nodes}
    for nd in cluster.nodes:
        v = nd.view(timeout=1.0)
        if set(v) != ids or any(s != "alive" for s in v.values()):
            return False
    return True


def last_lsns(cluster, placement, own=False):
    """{space: {node: last_lsn}}. own: each holder's own copy, as its own placement table
    reports it from its engine (a local answer, never forwarded); else the space's stats
    as the node asked answers them (forwarded to the primary)."""
    out = {}
    for space, holders in placement.items():
        out[space] = {}
        for i in holders:
            if own:
                spaces, me = table(cluster.nodes[i])
                e = spaces.get(space)
                h = e and next((h for h in e["holders"] if h["node"] == me), None)
                out[space][i] = h and h.get("applied_lsn")
                continue
            st, doc = W.http("%s/v1/spaces/%s/stats" % (cluster.nodes[i].url, space), timeout=2)
            out[space][i] = doc.get("last_lsn") if st == 200 else None
    return out


def hints_pending(cluster):
    """Memories held as hints (partition writes) on all nodes, not merged yet."""
    n = 0
    for nd in cluster.nodes:
        st, doc = W.http(nd.url + "/v1/cluster/hints", timeout=2)
        if st != 200:
            raise RuntimeError("GET /v1/cluster/hints on node %d: %s %s" % (nd.i, st, doc))
        n += doc["pending"]
    return n


def gossip_roots(cluster, placement):
    """{space: {node: Merkle root of its gossiped semantic memories}} (docs/gossip.md); a
    space a node lists no records of has the root "" there. None when the nodes run no gossip
    (404)."""
    roots = {space: {} for space in placement}
    for nd in cluster.nodes:
        st, doc = W.http(nd.url + "/v1/cluster/gossip", timeout=2)
        if st == 404:
            return None
        if st != 200:
            raise RuntimeError("GET /v1/cluster/gossip on node %d: %s %s" % (nd.i, st, doc))
        have = {e["name"]: e["root"] if e.get("records") else "" for e in doc["spaces"]}
        for space in placement:
            roots[space][str(nd.i)] = have.get(space, "")
    return roots


def converge(cluster, placement, history, bound_s, own=False):
    """Polls until views agree, no hint is pending, holders' lsns are equal and every node
    has the same Merkle root of each space's gossiped semantic memories (gossip.scope
    "cluster": every node keeps them), or bound_s passes; the time is counted from the end
    of the heal (every fault undone, every node up)."""
    t0 = time.monotonic()
    rec = {"op": "converge", "bound_s": bound_s, "converged": False}
    while True:
        try:
            lsns = last_lsns(cluster, placement, own)
            equal = all(None not in by.values() and len(set(by.values())) == 1
                        for by in lsns.values())
            roots = gossip_roots(cluster, placement) if equal else None
            same_roots = roots is None or all(len(set(by.values())) == 1
                                              for by in roots.values())
            if views_agree(cluster) and equal and same_roots and hints_pending(cluster) == 0:
                rec.update({"converged": True, "views_agree": True, "lsns_equal": True,
                            "lsns": lsns, "roots_equal": roots is not None and same_roots,
                            "roots": roots})
                break
        except Exception as e:  # noqa: BLE001 - a node still starting: poll again
            rec["last_error"] = repr(e)
        if time.monotonic() - t0 >= bound_s:
            rec["why"] = "views %s" % cluster.views()
            try:
                rec["lsns"] = last_lsns(cluster, placement, own)
                rec["roots"] = gossip_roots(cluster, placement)
            except Exception as e:  # noqa: BLE001 - a node not answering: say so
                rec["lsns_error"] = repr(e)
            break
        time.sleep(0.1)
    rec["convergence_s"] = round(time.monotonic() - t0, 3)
    history.add(rec)
    return rec


def list_all(node, space, own=False):
    ids, cursor = [], None
    while True:
        q = "/v1/spaces/%s/memories?limit=1000&include_suppressed=true" % space
        if own:
            q += "&read=nearest"
        if cursor:
            q += "&cursor=" + W.urllib.request.quote(cursor, safe="")
        st, doc = W.http(node.url + q, timeout=10)
        if st != 200:
            raise RuntimeError("final list of %s on node %d: %s %s" % (space, node.i, st, doc))
        ids += [m["id"] for m in doc["memories"]]
        cursor = doc.get("next")
        if not cursor:
            return ids


def final_reads(cluster, placement, history, hist_path, own=False):
    """Every holder's full list of each space; a get of every id a forget named."""
    forgotten = {}
    with open(hist_path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("op") == "forget":
                forgotten.setdefault(r["space"], set()).add(r["id"])
    for space, holders in sorted(placement.items()):
        for i in holders:
            nd = cluster.nodes[i]
            try:
                ids = list_all(nd, space, own)
            except (RuntimeError, OSError) as e:
                # a holder without its copy (not converged): judged as having no final list,
                # and the run goes on to its report
                history.add({"op": "harness_error", "error": "final list: %s" % e})
                continue
            history.add({"op": "final_list", "space": space, "node": i, "ids": ids})
            for mid in sorted(forgotten.get(space, ())):
                st, doc = W.http("%s/v1/spaces/%s/memories/%s%s" % (
                    nd.url, space, mid, "?read=nearest" if own else ""), timeout=10)
                history.add({"op": "final_get", "space": space, "node": i, "id": mid,
                             "status": st, "code": W.error_code(doc)})


FDTRACE_RE = re.compile(r"fdtrace: begin: .*?fdtrace: end\n", re.S)


def fd_misuse(cluster, history):
    """Every fdtrace report in the nodes' logs (a descriptor closed twice: --fdtrace), with
    the mnemo frames named where the binary's symbols allow (addr2line)."""
    for nd in cluster.nodes:
        for block in FDTRACE_RE.findall(nd.log()):
            history.add({"op": "fd_misuse", "node": nd.i, "report": symbolize(nd.binary, block)})


def symbolize(binary, block):
    """block with `(+0x..)` frames of binary followed by the function they are in."""
    offs = re.findall(r"%s\(\+(0x[0-9a-f]+)\)" % re.escape(os.path.basename(binary)), block)
    if not offs or not shutil.which("addr2line"):
        return block
    try:
        out = subprocess.run(["addr2line", "-f", "-C", "-e", binary] + offs, capture_output=True,
                             text=True, timeout=30).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return block
    names = dict(zip(offs, out[0::2]))
    return re.sub(r"\(\+(0x[0-9a-f]+)\)",
                  lambda m: "(+%s %s)" % (m.group(1), names.get(m.group(1), "?")), block)


def stop_nodes(cluster, history):
    """SIGTERM to every node: each must exit 0 (a sanitizer's report, a crash on the way
    down or a hang is a `node_exit` record the checker counts as a violation)."""
    for nd in cluster.nodes:
        try:
            nd.stop()
            rc = nd.proc.returncode
        except Exception as e:  # noqa: BLE001
            rc = repr(e)
        history.add({"op": "node_exit", "node": nd.i, "code": rc})


def workload_and_faults(a, cluster, placement, history):
    """The schedule in this thread while the clients run; then the heal."""
    f = F.Faults(cluster)
    runner = schedule.Runner(f, history)
    why = schedule.probe_delay(f)
    if why:
        history.add({"op": "unavailable", "kind": "delay", "why": why})
    stop = threading.Event()
    by_node = {}
    for space, holders in placement.items():
        by_node.setdefault(holders[0], []).append(space)
    # partition writes: remembers go to the node after the primary, so they are forwarded,
    # and kept as hints when the primary is cut off (reads still ask the primary)
    shift = 0 if a.partition_writes == "reject" else 1
    clients = W.run_clients(by_node, lambda i: cluster.nodes[i].url, history, a.seed,
                            a.clients_per_node, a.think_ms / 1000.0, stop,
                            lambda i: cluster.nodes[(i + shift) % a.nodes].url,
                            forget_semantic=a.forget_semantic)
    try:
        runner.run(schedule.plan(a.seed, a.nodes, a.duration), a.duration, stop)
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=CLIENT_JOIN_S)
        stuck = [c.name for c in clients if c.is_alive()]
        for e in runner.errors:
            history.add({"op": "harness_error", "error": e})
        if stuck:
            history.add({"op": "harness_error", "error": "clients still running: %s" % stuck})
        runner.reap_deaths()  # one that died during the last episode
        rec = {"op": "heal", "at_s": history.now()}
        try:
            f.heal()
        except Exception as e:  # noqa: BLE001 - a node that does not come back: the checker says so
            history.add({"op": "harness_error", "error": "heal: %r" % e})
        rec["done_s"] = history.now()
        history.add(rec)


def run(a):
    os.makedirs(a.out, exist_ok=True)
    hist_path = os.path.join(a.out, "history.jsonl")
    extra = {"MNEMO_CLUSTER_REPLICATION_FACTOR": str(a.replication_factor),
             "MNEMO_CLUSTER_PARTITION_WRITES": a.partition_writes,
             "MNEMO_ENGINE_CONSOLIDATE_INTERVAL_S": str(a.consolidate_every_s)}
    extra.update(kv.split("=", 1) for kv in a.env)
    if a.fdtrace:
        if not os.access(a.fdtrace, os.R_OK):
            raise FileNotFoundError("--fdtrace: no library at %r" % a.fdtrace)
        extra["LD_PRELOAD"] = os.path.abspath(a.fdtrace)
    with netns.Net(a.nodes, seed=None) as net:
        with Cluster(net, a.bin, extra_env=extra) as cluster:
            try:
                cluster.wait_converged(60.0)
                placement = make_spaces(cluster, a.spaces_per_node)
                if a.holders == "primary":
                    placement = {s: h[:1] for s, h in placement.items()}
                history = W.History(hist_path, time.monotonic())
                history.add({"op": "meta", "seed": a.seed, "nodes": a.nodes,
                             "placement": placement, "duration_s": a.duration,
                             "clients_per_node": a.clients_per_node, "env": extra,
                             "prefix": net.prefix})
                workload_and_faults(a, cluster, placement, history)
                own = a.holders == "all"
                converge(cluster, placement, history, a.converge_bound_s, own)
                final_reads(cluster, placement, history, hist_path, own)
                stop_nodes(cluster, history)
                fd_misuse(cluster, history)
                history.close()
            finally:
                for nd in cluster.nodes:
                    if os.path.exists(nd.log_path):
                        shutil.copy(nd.log_path, os.path.join(a.out, "node%d.log" % nd.i))
    report = checker.check(checker.load(hist_path), a.stale_bound_s)
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report


def summary(r):
    return ("seed %s: %d nodes, %d faults, %d ops, %d acked writes, %d lost, %d resurrected, "
            "converged %s in %ss, stale p99.9 %.3fs (%d of %d reads stale)"
            % (r["seed"], r["nodes"], len(r["faults"]), r["ops"], r["acked_writes"],
               r["lost_acked_writes"], r["resurrected"], r["converged"], r["convergence_s"],
               r["stale_read_p999_s"], r["stale_reads"], r["reads"]))


def main(argv=None):
    a = parse(argv)
    try:
        r = run(a)
    except (netns.NetError, F.FaultUnavailable, FileNotFoundError) as e:
        print("chaos: cannot run (seed %d): %s" % (a.seed, e), file=sys.stderr)
        return 2
    print(summary(r))
    if r["unavailable"]:
        print("unavailable here: %s" % r["unavailable"])
    if r["violations"]:
        print("VIOLATIONS: %s" % "; ".join(r["violations"]))
        print("replay: /usr/bin/python3 tests/cluster/chaos.py --bin %s --seed %d --duration %g "
              "--nodes %d --out DIR%s" % (a.bin, a.seed, a.duration, a.nodes,
                                          "".join(" --env " + e for e in a.env)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
