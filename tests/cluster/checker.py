"""The chaos harness's checker: judges a history (history.jsonl) alone.

    /usr/bin/python3 tests/cluster/checker.py DIR/history.jsonl [--stale-bound-s 5]

prints the report (JSON) and exits 1 on any violation. The history holds
(workload.py for the op records):

- `meta`: seed, nodes, `placement` {space: [nodes holding it]}, run settings;
- the clients' ops, `fault` records (schedule.py), `unavailable` faults;
- `heal` (when the faults were undone), `converge` (what convergence saw);
- `final_list` (every id a holder has for a space, after the heal, and
  `episodes`: its episodic ones, each with the token its content carries) and
  `final_get` (a holder's answer for an id whose forget was invoked);
- `node_exit`: each node's exit code on the SIGTERM that ends the run (not 0:
  a violation, e.g. a sanitizer's report);
- `node_died`: a node whose process ended on its own during the run (a crash,
  an abort, a fail-stop), with its exit code and the end of its log: a
  violation (the harness starts it again so the run goes on);
- `fd_misuse`: with `--fdtrace`, a report of the preloaded fdtrace library from a
  node's log (a close, fsync or write that failed with EBADF, with the stack of
  the last close of that descriptor): a violation.

A forget "may have happened" when its outcome is `ok` or `unknown`; one refused
(`fail`: a refused connection, an error answer other than the gone codes
404 memory_forgotten / memory_not_found) did not, so it exempts its id from
nothing below (the workload asks again later).

Checks:
1. Acknowledged writes: every remember answered 201 whose id no forget that may
   have happened named is in the final list of every holder of its space,
   whatever its write level (`one`, `quorum`, `all`: no fault here loses a
   disk, and issue 16 promises `one` writes survive unless a disk is lost); and
   the first forget of an acknowledged id that was not refused does not find it
   gone already (404), except a `one` write every holder lists at the end: a cut-off
   primary's `one` writes are invisible until the new primary re-applies them
   (`late_one_writes`, not a violation). `holders(meta, space)` says who must hold it: the
   placement chaos.py recorded (the primary with `--holders primary`, every
   copy with `--holders all`).
2. No resurrection: an id whose forget was acknowledged is in no holder's
   final list and every final get of it answers 404; no read that began after
   the forget was acknowledged saw it.
3. Nothing made up, nothing twice, copies alike (from the final lists'
   `episodes`; histories without them skip these): an episodic id no remember
   produced (not an id a remember answered, nor carrying the token of a remember
   of its space whose answer was lost) is a phantom; a token (one remember, one
   idempotency key) standing for two ids (the acknowledged one and a listed one,
   or two listed) is a duplicate; with more than one holder, their sets of
   episodic ids for a space differ beyond the ids a forget may have removed:
   "holders differ". Semantic memories are consolidation's and judged by 2 and 4.
4. Convergence after the heal within the bound: every SWIM view has every node
   alive, each space's last lsn is equal across its holders, no hint is pending,
   and, when the run consolidated (semantic memories gossiped), every node
   reported the same Merkle root for each space (`roots_equal` true; a node
   answering no gossip is not equal); `convergence_s` is the time it took from
   the end of the heal, `heal_s` the heal itself (rules removed node by node,
   killed / skewed nodes restarted), during which SWIM already mends.
5. Staleness of reads: a read misses an acknowledged write when the write
   completed before the read was invoked, no forget of it that may have happened
   was invoked before the read completed, and the read does not show it; the
   read's staleness is its invocation time minus the completion of the oldest
   write it misses (0 for a read that misses nothing). The target (Engram's):
   99.9 % of reads under 5 s stale, so the p99.9 over successful reads must be
   below the bound. A recall answered in partition mode (`path` "partition":
   from gossiped semantic memories, saying the space's episodes were
   unreachable) promises no episode: it is counted (`partition_reads`), not
   judged for staleness.
"""

import argparse
import json
import math
import sys

# a forget refused for another reason than its id being gone did not happen: the workload
# asks again after it, and the checker does not count it (one rule for both)
from workload import GONE_CODES, refused  # noqa: F401

READS = ("get", "recall", "list")


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def holders(meta, space):
    """The nodes that must hold space's acknowledged writes after the heal."""
    return meta["placement"][space]


def percentile(values, q):
    """Nearest-rank percentile (q in 0..1) of a list; 0.0 for none."""
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


class Index:
    """The history by kind, with the facts the checks share."""

    def __init__(self, recs):
        self.meta = next(r for r in recs if r["op"] == "meta")
        self.ops = [r for r in recs if "client" in r and "outcome" in r]
        self.remembers = [r for r in self.ops if r["op"] == "remember"]
        self.acked = [r for r in self.remembers if r["outcome"] == "ok"]
        self.forgets = [r for r in self.ops if r["op"] == "forget"]
        self.forget_inv = {}     # id -> earliest invocation of a forget that may have happened
        self.forget_ack = {}     # id -> earliest acknowledged forget completion
        for r in self.forgets:
            # a refused forget (fail) did not happen: it leaves its id expected everywhere
            if r["outcome"] in ("ok", "unknown"):
                self.forget_inv[r["id"]] = min(r["inv"], self.forget_inv.get(r["id"], math.inf))
            if r["outcome"] == "ok":
                self.forget_ack[r["id"]] = min(r["cmp"], self.forget_ack.get(r["id"], math.inf))
        self.final_lists = {}    # (space, node) -> set of ids
        self.final_episodes = {}  # (space, node) -> {episodic id: token or None}, when recorded
        self.final_gets = []
        for r in recs:
            if r["op"] == "final_list":
                self.final_lists[(r["space"], r["node"])] = set(r["ids"])
                if "episodes" in r:  # histories before it had no kinds: those checks skipped
                    self.final_episodes[(r["space"], r["node"])] = r["episodes"]
            elif r["op"] == "final_get":
                self.final_gets.append(r)
        self.faults = [r for r in recs if r["op"] == "fault"]
        self.unavailable = [r for r in recs if r["op"] == "unavailable"]
        self.converge = next((r for r in recs if r["op"] == "converge"), None)
        self.heal = next((r for r in recs if r["op"] == "heal"), {})
        self.harness_errors = [r for r in recs if r["op"] in ("client_error", "harness_error")]
        self.bad_exits = [r for r in recs if r["op"] == "node_exit" and r["code"] != 0]
        self.deaths = [r for r in recs if r["op"] == "node_died"]
        self.fd_misuse = [r for r in recs if r["op"] == "fd_misuse"]


def gone_before_forget(ix):
    """{id: forget record}: the first forget of an acknowledged id that was not refused found
    the id already gone (404), though no forget that may have happened had named it before
    (a refused one did not happen, and the workload asks again after it)."""
    acked = {r["id"] for r in ix.acked}
    first = {}
    for r in sorted(ix.forgets, key=lambda r: r["inv"]):
        if not refused(r):
            first.setdefault(r["id"], r)
    return {mid: r for mid, r in first.items()
            if mid in acked and r["outcome"] == "fail" and r.get("code") in GONE_CODES}


def lost_writes(ix):
    """Acknowledged remembers that no forget (acknowledged or unknown) named and that a holder
    lacks after the heal, and those whose first forget found them gone already; and, apart,
    the `one` writes whose first forget found them gone that every holder lists at the end:
    late, not lost (a cut-off primary's `one` writes are re-applied through the new primary
    once it returns, invisible until then: docs/replication.md). Returns (lost, late)."""
    lost, late = [], []
    gone = gone_before_forget(ix)
    by_id = {r["id"]: r for r in ix.acked}
    for mid, f in sorted(gone.items()):
        level = by_id[mid].get("consistency")
        rec = {"id": mid, "space": f["space"], "node": f["node"], "consistency": level,
               "why": "first forget at %.3fs answered %s" % (f["inv"], f["code"])}
        listed = all(mid in (ix.final_lists.get((f["space"], node)) or ())
                     for node in holders(ix.meta, f["space"]))
        (late if level == "one" and listed else lost).append(rec)
    for r in ix.acked:
        if r["id"] in ix.forget_inv or r["id"] in gone:
            continue
        for node in holders(ix.meta, r["space"]):
            ids = ix.final_lists.get((r["space"], node))
            if ids is None or r["id"] not in ids:
                lost.append({"id": r["id"], "space": r["space"], "node": node, "key": r["key"],
                             "acked_at_s": r["cmp"], "consistency": r.get("consistency"),
                             "why": "no final list" if ids is None else "absent"})
    return lost, late


def phantoms(ix):
    """Episodic ids in a holder's final list that no remember produced: neither the id a
    remember answered, nor carrying the token of a remember of the space whose answer was
    lost (unknown: it may have been stored, its id never came back). Semantic memories
    (consolidation makes them) are not judged here; an id carrying an acknowledged
    remember's token under another id is a duplicate (duplicates())."""
    by_id = {r["id"]: r for r in ix.remembers if r.get("id")}
    by_token = {r["token"]: r for r in ix.remembers if r.get("token")}
    out = []
    for (space, node), eps in sorted(ix.final_episodes.items()):
        for mid, token in sorted(eps.items()):
            why = phantom_why(space, by_id.get(mid), by_token.get(token))
            if why:
                out.append({"id": mid, "space": space, "node": node, "token": token,
                            "why": why})
    return out


def phantom_why(space, by_id, by_token):
    """Why a listed episode is a phantom (its remember by id, by token), or None."""
    if by_id is not None:
        return None if by_id["space"] == space else "remembered in space %s" % by_id["space"]
    if by_token is None:
        return "no remember has this id or token"
    if by_token["space"] != space:
        return "its token is a remember's of space %s" % by_token["space"]
    if by_token["outcome"] == "fail":
        return "its remember (key %s) was refused" % by_token["key"]
    return None


def duplicates(ix):
    """Tokens (one remember each: one idempotency key) that stand for more than one id in a
    space: the id an acknowledged remember answered and the episodic ids of the holders' final
    lists that carry the token. One key stored twice under two ids."""
    ids_of = {}  # (space, token) -> ids
    for r in ix.acked:
        if r.get("token"):
            ids_of.setdefault((r["space"], r["token"]), set()).add(r["id"])
    for (space, _), eps in ix.final_episodes.items():
        for mid, token in eps.items():
            if token:
                ids_of.setdefault((space, token), set()).add(mid)
    keys = {r["token"]: r.get("key") for r in ix.remembers if r.get("token")}
    return [{"space": space, "token": token, "key": keys.get(token), "ids": sorted(ids)}
            for (space, token), ids in sorted(ids_of.items()) if len(ids) > 1]


def holders_differ(ix):
    """Spaces with more than one holder whose final lists of episodic ids differ, beyond the
    ids a forget may have removed (acknowledged or unknown: in flight when a copy was read)."""
    out = []
    maybe_gone = set(ix.forget_inv)
    for space in sorted(ix.meta["placement"]):
        lists = {node: set(ix.final_episodes[(space, node)]) for node in holders(ix.meta, space)
                 if (space, node) in ix.final_episodes}
        if len(lists) < 2:
            continue
        every = set.union(*lists.values()) - maybe_gone
        missing = {node: sorted(every - ids) for node, ids in lists.items()}
        if any(missing.values()):
            out.append({"space": space, "count": len(set().union(*missing.values())),
                        "missing": {str(node): ids[:10] for node, ids in missing.items() if ids}})
    return out


def roots_expected(ix):
    """Whether the convergence compared gossip roots: said by the converge record, else by
    the run's consolidation (semantic memories made, so gossiped)."""
    conv = ix.converge or {}
    if "roots_expected" in conv:
        return bool(conv["roots_expected"])
    m = ix.meta
    every = m.get("consolidate_every_s",
                  (m.get("env") or {}).get("MNEMO_ENGINE_CONSOLIDATE_INTERVAL_S", 0))
    return float(every or 0) > 0


def convergence(ix):
    """(converged, why not): the converge record's word, unless its gossip roots differ, or
    were expected and not seen equal (a node answering no gossip is not equal)."""
    conv = ix.converge
    if not conv:
        return False, "no convergence record"
    if not conv.get("converged"):
        return False, conv.get("why", "no reason recorded")
    differ = sorted(space for space, by in (conv.get("roots") or {}).items()
                    if len(set(by.values())) > 1)
    if differ:
        return False, "gossip roots differ in %s" % differ
    if roots_expected(ix) and conv.get("roots_equal") is not True:
        return False, "gossip roots not seen equal (roots_equal %s)" % conv.get("roots_equal")
    return True, None


def read_shows(r, mid):
    if r["op"] == "get":
        return r["found"] and r["id"] == mid
    return mid in r.get("ids", ())


def resurrections(ix):
    """Ids whose forget was acknowledged but that were seen afterwards."""
    out = []
    for (space, node), ids in sorted(ix.final_lists.items()):
        for mid in sorted(ids & set(ix.forget_ack)):
            out.append({"id": mid, "space": space, "node": node, "seen": "final list"})
    for g in ix.final_gets:
        if g["id"] in ix.forget_ack and g.get("status") != 404:
            out.append({"id": g["id"], "space": g["space"], "node": g["node"],
                        "seen": "final get answered %s" % g.get("status")})
    for r in ix.ops:
        # a partition answer comes from this node's gossiped semantic memories, which may
        # lag a forget made elsewhere (the tombstone is on its way): stale, not resurrected.
        # That gossip never brings one back is judged at the end: equal roots on every node
        # (the tombstones are in them) and the holders' final lists and gets.
        if r["op"] not in READS or r["outcome"] != "ok" or r.get("path") == "partition":
            continue
        for mid in ([r["id"]] if r["op"] == "get" else r.get("ids", ())):
            t = ix.forget_ack.get(mid)
            if t is not None and r["inv"] > t and read_shows(r, mid):
                out.append({"id": mid, "space": r["space"], "node": r["node"],
                            "seen": "%s at %.3fs, forget acknowledged at %.3fs"
                                    % (r["op"], r["inv"], t)})
    return out


def expected_by_read(ix, r, by_id):
    """The acknowledged writes read r must show: [(id, write completion)]."""
    if r["op"] == "get":
        cand = [by_id.get(r["id"])]
    elif r["op"] == "recall":
        cand = [by_id.get(r["target"])]
    else:
        cand = [w for w in ix.acked
                if w["space"] == r["space"] and w["when_ms"] >= r["when_from_ms"]]
    out = []
    for w in cand:
        if w is None or w["space"] != r["space"] or w["cmp"] >= r["inv"]:
            continue
        if w.get("hinted"):  # a partition write: readable once merged, at a time not known
            continue
        if ix.forget_inv.get(w["id"], math.inf) <= r["cmp"]:
            continue
        out.append((w["id"], w["cmp"]))
    return out


def staleness(ix):
    """[staleness_s of each successful read], [the stale ones, described]."""
    by_id = {w["id"]: w for w in ix.acked}
    values, stale = [], []
    for r in ix.ops:
        if r["op"] not in READS or r["outcome"] != "ok" or r.get("path") == "partition":
            continue
        missed = [(mid, t) for (mid, t) in expected_by_read(ix, r, by_id)
                  if not read_shows(r, mid)]
        s = max((r["inv"] - t for (_, t) in missed), default=0.0)
        values.append(s)
        if missed:
            stale.append({"op": r["op"], "space": r["space"], "node": r["node"],
                          "inv": r["inv"], "staleness_s": round(s, 3),
                          "missed": [m for (m, _) in missed[:5]]})
    return values, stale


def fault_summary(ix):
    out = []
    for f in ix.faults:
        d = {"kind": f["kind"], "at_s": round(f["at_s"], 3), "targets": f["targets"]}
        for k in ("mode", "until_s", "skipped", "why", "flips", "error", "left_for_heal", "final"):
            if f.get(k) is not None:
                d[k] = round(f[k], 3) if isinstance(f[k], float) else f[k]
        out.append(d)
    return out


def by_level(recs):
    """How many records per write level ("default": the node's cluster.write_consistency)."""
    out = {}
    for r in recs:
        k = r.get("consistency") or "default"
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def check(recs, stale_bound_s=5.0):
    """The report of a history (a list of records); report["violations"] lists what failed."""
    ix = Index(recs)
    lost, late = lost_writes(ix)
    res = resurrections(ix)
    phantom = phantoms(ix)
    dups = duplicates(ix)
    differ = holders_differ(ix)
    converged, why_not = convergence(ix)
    values, stale = staleness(ix)
    p999 = percentile(values, 0.999)
    conv = ix.converge or {}
    counts = {}
    for r in ix.ops:
        key = "%s_%s" % (r["op"], r["outcome"])
        counts[key] = counts.get(key, 0) + 1
    report = {
        "seed": ix.meta["seed"],
        "nodes": ix.meta["nodes"],
        "faults": fault_summary(ix),
        "ops": len(ix.ops),
        "acked_writes": len(ix.acked),
        "lost_acked_writes": len(lost),
        "acked_by_consistency": by_level(ix.acked),
        "lost_by_consistency": by_level(lost),
        "late_one_writes": len(late),
        "late_examples": late[:20],
        "resurrected": len(res),
        "converged": converged,
        "convergence_s": conv.get("convergence_s"),
        "heal_s": (round(ix.heal["done_s"] - ix.heal["at_s"], 3)
                   if "done_s" in ix.heal else None),
        "stale_read_p999_s": round(p999, 3),
        "stale_read_bound_s": stale_bound_s,
        "reads": len(values),
        "partition_reads": sum(1 for r in ix.ops if r["op"] in READS and r["outcome"] == "ok"
                               and r.get("path") == "partition"),
        "stale_reads": len(stale),
        "stale_read_max_s": round(max(values, default=0.0), 3),
        "ops_by_outcome": dict(sorted(counts.items())),
        "acked_forgets": len(ix.forget_ack),
        "acked_semantic_forgets": len({r["id"] for r in ix.ops if r["op"] == "forget"
                                       and r.get("kind") == "semantic"
                                       and r["outcome"] == "ok"}),
        "unavailable": {u["kind"]: u["why"] for u in ix.unavailable},
        "placement": ix.meta["placement"],
        "convergence": conv,
        "lost": lost[:50],
        "resurrections": res[:50],
        "phantoms": len(phantom),
        "phantom_examples": phantom[:50],
        "duplicates": len(dups),
        "duplicate_examples": dups[:50],
        "holders_differ": differ[:50],
        "stale_examples": sorted(stale, key=lambda s: -s["staleness_s"])[:20],
        "harness_errors": [r.get("error") for r in ix.harness_errors][:20],
        "node_deaths": [{k: r.get(k) for k in ("node", "code", "at_s", "log_tail")}
                        for r in ix.deaths][:20],
        "fd_misuse": [{"node": r["node"], "report": r["report"]} for r in ix.fd_misuse][:20],
    }
    v = []
    if lost:
        v.append("%d acknowledged writes lost" % len(lost))
    if res:
        v.append("%d forgotten ids visible again" % len(res))
    if phantom:
        v.append("%d episodic ids no remember produced" % len(phantom))
    if dups:
        v.append("%d remembers stored under more than one id" % len(dups))
    if differ:
        v.append("holders differ: %s" % ", ".join("%s (%d ids)" % (d["space"], d["count"])
                                                   for d in differ))
    if not converged:
        v.append("not converged after the heal: %s" % why_not)
    if p999 >= stale_bound_s:
        v.append("stale reads: p99.9 %.3fs >= %.1fs" % (p999, stale_bound_s))
    if ix.harness_errors:
        v.append("%d harness errors" % len(ix.harness_errors))
    if ix.bad_exits:
        v.append("nodes exited badly on SIGTERM: %s"
                 % ", ".join("%s: %s" % (r["node"], r["code"]) for r in ix.bad_exits))
    if ix.deaths:
        v.append("nodes stopped on their own: %s"
                 % ", ".join("%s at %.1fs (exit %s)" % (r["node"], r["at_s"], r["code"])
                             for r in ix.deaths))
    if ix.fd_misuse:
        v.append("descriptors used after a close (fdtrace): %d reports, on nodes %s"
                 % (len(ix.fd_misuse), sorted({r["node"] for r in ix.fd_misuse})))
    if not ix.final_lists:
        v.append("no final reads: the run did not finish")
    report["violations"] = v
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("history")
    ap.add_argument("--stale-bound-s", type=float, default=5.0)
    a = ap.parse_args(argv)
    report = check(load(a.history), a.stale_bound_s)
    print(json.dumps(report, indent=1))
    if report["violations"]:
        print("VIOLATIONS (seed %s): %s" % (report["seed"], "; ".join(report["violations"])),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
