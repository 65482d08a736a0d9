"""One chaos run: nodes in namespaces, a seeded fault schedule, a workload
with a history, the heal, the final reads and the checker's report.

    /usr/bin/python3 tests/cluster/chaos.py --bin build/mnemo --seed 7 --duration 60 --out DIR
        [--nodes 3] [--spaces-per-node 2] [--clients-per-node 2] [--think-ms 100]
        [--converge-bound-s 60] [--stale-bound-s 5] [--env KEY=VALUE ...] [--deadline-s S]

Writes DIR/history.jsonl (every op, fault, the heal, convergence, final reads),
DIR/report.json (checker.py's report), DIR/node<i>.log; prints the seed first,
then a one-line summary; on a violation the replay command (this run's own
arguments, --out left to choose) and exit 1; exit 2 when the run itself could
not be made (no namespaces, no nft, a binary that does not start, a harness
error before the report) or passed its deadline (`deadline_s()`, from the
arguments: SIGALRM raises `Deadline`, and the exits of Cluster and Net stop the
nodes and remove the namespaces on the way out).

Each space is created through a node and lives where the cluster places it
(its primary and replicas, read from GET /v1/cluster/spaces once every node
agrees); the clients of a node work on the spaces that node leads, through
that node. Partitions, loss and duplication reach SWIM and the peer port
between nodes, never the harness's own HTTP path to a node. After the heal,
`--holders all` asks each holder for its own copy: its applied lsn from its
own placement table, and its lists with read=nearest (served by the copy
asked, once it is in rotation), so every holder is judged, replicas
included (a forked copy is healed by snapshots, so such runs converge:
tests/cluster/README.md, "Figures"). `--holders primary` (the default, and
`make test`'s short run) asks each space's first primary node, which forwards
to the space's primary of the moment: the checker judges what the cluster
answers.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

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
SETUP_S = 60 + PLACEMENT_WAIT_S + 30  # nodes up and agreeing, spaces made and placed


class Deadline(BaseException):
    """The run's overall deadline passed (SIGALRM, in the main thread). Not an Exception, so
    the polls and cleanups that catch Exception let it through to the context managers,
    whose exits stop the nodes and remove the namespaces."""


def deadline_s(a):
    """The most a whole run may take, generously: setup, the schedule (its last episode may
    overrun) and the clients' join, heal and convergence, the final reads (a get per
    forgotten id and holder: they grow with the run), the nodes' stop, and a margin. Below
    ctest's 600 s for make test's 70 s run, so the run cleans up before ctest kills it."""
    return int(SETUP_S + 1.5 * a.duration + CLIENT_JOIN_S + a.converge_bound_s
               + 20 * a.nodes + 120)


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
    ap.add_argument("--deadline-s", type=int, default=None,
                    help="the whole run's bound (default: computed from the other arguments, "
                         "deadline_s()); past it the run stops, cleans up and exits 2")
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


def converge(cluster, placement, history, bound_s, own=False, roots_expected=True):
    """Polls until views agree, no hint is pending, holders' lsns are equal and every node
    has the same Merkle root of each space's gossiped semantic memories (gossip.scope
    "cluster": every node keeps them), or bound_s passes; the time is counted from the end
    of the heal (every fault undone, every node up). roots_expected (consolidation on):
    a node answering no gossip (404) is not equal, and the poll goes on; else roots are
    compared where the nodes answer them."""
    t0 = time.monotonic()
    rec = {"op": "converge", "bound_s": bound_s, "converged": False,
           "roots_expected": roots_expected}
    while True:
        try:
            why = not_converged(cluster, placement, own, roots_expected, rec)
            if why is None:
                rec.update({"converged": True, "views_agree": True, "lsns_equal": True})
                rec.pop("why", None)
                break
            rec["why"] = why
        except Exception as e:  # noqa: BLE001 - a node still starting: poll again
            rec["last_error"] = rec["why"] = repr(e)
        if time.monotonic() - t0 >= bound_s:
            rec["views"] = cluster.views()
            try:  # what the last poll did not get to: the lsns and roots, as they are
                if "lsns" not in rec:
                    rec["lsns"] = last_lsns(cluster, placement, own)
                if "roots" not in rec:
                    rec["roots"] = gossip_roots(cluster, placement)
            except Exception as e:  # noqa: BLE001 - a node not answering: say so
                rec["lsns_error"] = repr(e)
            rec["copies"] = copies_of(cluster, rec.get("lsns"))
            break
        time.sleep(0.1)
    rec["convergence_s"] = round(time.monotonic() - t0, 3)
    history.add(rec)
    return rec


def copies_of(cluster, lsns):
    """{space: {node: its placement entry, with the "copy" its replication core reports}}
    for each space whose holders' lsns differ: what a run that did not converge needs to
    tell a copy still catching up from one stuck (reconciled or not, its log's base and
    end, when it last heard its primary, the peers the primary's core ships to)."""
    out = {}
    for space, by in (lsns or {}).items():
        if None not in by.values() and len(set(by.values())) == 1:
            continue
        out[space] = {}
        for nd in cluster.nodes:
            try:
                spaces, _ = table(nd)
                out[space][str(nd.i)] = spaces.get(space)
            except (RuntimeError, OSError) as e:
                out[space][str(nd.i)] = {"error": repr(e)}
    if out:  # and each node's replication and peer-bus counters (dropped frames, events)
        out["_counters"] = {str(nd.i): counters(nd) for nd in cluster.nodes}
    return out


def counters(node):
    """node's mnemo_repl_* and mnemo_peer_* counters from GET /metrics, as lines."""
    try:
        with W.urllib.request.urlopen(node.url + "/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError as e:
        return [repr(e)]
    return [ln for ln in text.splitlines()
            if ln.startswith(("mnemo_repl_", "mnemo_peer_")) and "_bucket" not in ln]


def not_converged(cluster, placement, own, roots_expected, rec):
    """None when converged, else what is not yet; the lsns and roots this poll saw go into
    rec (an earlier poll's are dropped: they no longer hold)."""
    for k in ("lsns", "roots", "roots_equal"):
        rec.pop(k, None)
    if not views_agree(cluster):
        return "views differ"  # the views themselves are recorded at the bound
    rec["lsns"] = lsns = last_lsns(cluster, placement, own)
    if not all(None not in by.values() and len(set(by.values())) == 1 for by in lsns.values()):
        return "lsns differ"
    rec["roots"] = roots = gossip_roots(cluster, placement)
    if roots is None:
        rec["roots_equal"] = False if roots_expected else None
        if roots_expected:
            return "a node answers no gossip (404) though consolidation is on"
    else:
        rec["roots_equal"] = all(len(set(by.values())) == 1 for by in roots.values())
        if not rec["roots_equal"]:
            return "gossip roots differ"
    pending = hints_pending(cluster)
    if pending:
        return "%d hints pending" % pending
    return None


def list_all(node, space, own=False):
    """Every memory of space that node lists (suppressed ones too), page by page."""
    mems, cursor = [], None
    while True:
        q = "/v1/spaces/%s/memories?limit=1000&include_suppressed=true" % space
        if own:
            q += "&read=nearest"
        if cursor:
            q += "&cursor=" + W.urllib.request.quote(cursor, safe="")
        st, doc = W.http(node.url + q, timeout=10)
        if st != 200:
            raise RuntimeError("final list of %s on node %d: %s %s" % (space, node.i, st, doc))
        mems += doc["memories"]
        cursor = doc.get("next")
        if not cursor:
            return mems


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
                mems = list_all(nd, space, own)
            except (RuntimeError, OSError) as e:
                # a holder without its copy (not converged): judged as having no final list,
                # and the run goes on to its report
                history.add({"op": "harness_error", "error": "final list: %s" % e})
                continue
            # the episodes apart, each with the token its content carries: the checker
            # judges them against the remembers (phantoms, one key stored twice, holders
            # that differ); semantic memories are consolidation's, no remember made them
            history.add({"op": "final_list", "space": space, "node": i,
                         "ids": [m["id"] for m in mems],
                         "episodes": {m["id"]: W.token_in(m.get("content")) for m in mems
                                      if m.get("kind") == "episodic"}})
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
    report_path = os.path.join(a.out, "report.json")
    if os.path.exists(report_path):
        os.remove(report_path)  # an earlier run's: no report is this run's until it ends
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
                             "consolidate_every_s": a.consolidate_every_s,
                             "prefix": net.prefix})
                workload_and_faults(a, cluster, placement, history)
                own = a.holders == "all"
                # consolidation on: semantic memories are made and gossiped, so equal roots
                # are part of convergence and a node without gossip is not converged
                converge(cluster, placement, history, a.converge_bound_s, own,
                         roots_expected=a.consolidate_every_s > 0)
                final_reads(cluster, placement, history, hist_path, own)
                stop_nodes(cluster, history)
                fd_misuse(cluster, history)
                history.close()
            finally:
                for nd in cluster.nodes:
                    if os.path.exists(nd.log_path):
                        shutil.copy(nd.log_path, os.path.join(a.out, "node%d.log" % nd.i))
    report = checker.check(checker.load(hist_path), a.stale_bound_s)
    with open(report_path, "w") as f:
        json.dump(report, f, indent=1)
    return report


def summary(r):
    return ("seed %s: %d nodes, %d faults, %d ops, %d acked writes, %d lost (%d `one` writes "
            "seen late), %d resurrected, converged %s in %ss, stale p99.9 %.3fs (%d of %d "
            "reads stale)"
            % (r["seed"], r["nodes"], len(r["faults"]), r["ops"], r["acked_writes"],
               r["lost_acked_writes"], r.get("late_one_writes", 0), r["resurrected"],
               r["converged"], r["convergence_s"], r["stale_read_p999_s"], r["stale_reads"],
               r["reads"]))


def replay(argv):
    """The command that replays a run: its own arguments, all of them, the output directory
    left to choose."""
    out = []
    for i, x in enumerate(argv):
        if i and argv[i - 1] == "--out":
            x = "DIR"
        elif x.startswith("--out="):
            x = "--out=DIR"
        out.append(shlex.quote(x))
    return "replay: %s %s %s" % (sys.executable, shlex.quote(os.path.relpath(__file__)),
                                 " ".join(out))


def on_alarm(signum, frame):
    raise Deadline()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse(argv)
    limit = a.deadline_s or deadline_s(a)
    # the seed first: a run that hangs or is killed has said what to replay
    print("chaos: seed %d, deadline %d s" % (a.seed, limit), flush=True)
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    try:
        r = run(a)
    except (netns.NetError, F.FaultUnavailable, FileNotFoundError) as e:
        print("chaos: cannot run (seed %d): %s" % (a.seed, e), file=sys.stderr)
        print(replay(argv))
        return 2
    except Deadline:
        print("chaos: the run passed its deadline of %d s (seed %d); nodes stopped, namespaces "
              "removed" % (limit, a.seed), file=sys.stderr)
        print(replay(argv))
        return 2
    except Exception:  # noqa: BLE001 - a run that could not be made: say which, exit 2
        traceback.print_exc()
        print("chaos: the run could not be made (seed %d)" % a.seed, file=sys.stderr)
        print(replay(argv))
        return 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    print(summary(r))
    if r["unavailable"]:
        print("unavailable here: %s" % r["unavailable"])
    if r["violations"]:
        print("VIOLATIONS: %s" % "; ".join(r["violations"]))
        print(replay(argv))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
