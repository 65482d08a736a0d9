"""Partition writes with real processes (docs/gossip.md, "Partition mode"; issue 18, evidence 3).

Three `mnemo serve` with cluster.partition_writes = "accept" and a space at replication
factor 1 whose holder has consolidated (so the space has a gossip root). With the holder
paused (SIGSTOP, always SIGCONT after), remembers through the two other nodes (REST, MCP, gRPC) are
acknowledged as partition writes (202, "accepted": "partition", an id each; an idempotent
retry answers the same id; the MCP tool says so in its text); one accepting node is killed
(-9) and restarted while it holds hints. After SIGCONT every acknowledged episode is in the
space, read through the holder with the id it was acknowledged with, the hints drain to zero,
and the space's gossip root is the same on every node. With the default ("reject") the same
write gets 503. Hints of a space dropped while they wait go (counted as dropped); gRPC
ClusterHints and MCP cluster_hints show what REST shows. Every wait polls with a deadline."""

import os
import signal
import time

import pytest

from conftest import wait_until
from grpc_util import Grpc, pb
from test_mcp import Session
from test_cluster_swim import cluster_env, swim_endpoint, view_is

DEADLINE_S = 30.0
SPACE = "hinted"
BASE = [0.9, 0.1, 0.05, 0.02]


def start_node(server_factory, seeds, mode):
    env = cluster_env(seeds)
    env["MNEMO_CLUSTER_REPLICATION_FACTOR"] = "1"
    env["MNEMO_CLUSTER_FORWARD_TIMEOUT_MS"] = "800"
    env["MNEMO_GOSSIP_INTERVAL_MS"] = "300"
    # a paused holder stays suspect (still the holder, not replaced by an empty copy)
    env["MNEMO_CLUSTER_SWIM_SUSPICION_MULT"] = "100"
    if mode:
        env["MNEMO_CLUSTER_PARTITION_WRITES"] = mode
    return server_factory(env=env)


def call(server, method, path, body=None, query=None, timeout=10.0):
    with server.client(timeout=timeout) as c:
        return c.raw(method, path, body=body, query=query)


def primary_of(nodes):
    for s in nodes:
        r = call(s, "GET", "/v1/cluster/spaces")
        rows = [x for x in r.json.get("spaces", []) if x["name"] == SPACE] if r.status == 200 else []
        if not rows or not rows[0].get("primary"):
            return None
    return rows[0]["primary"]


def start_cluster(server_factory, n, mode):
    first = start_node(server_factory, [], mode)
    seeds = ["127.0.0.1:%d" % swim_endpoint(first)[1]]
    nodes = [first] + [start_node(server_factory, seeds, mode) for _ in range(n - 1)]
    ids = [swim_endpoint(s)[0] for s in nodes]
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="every member alive in every view")
    r = call(nodes[0], "POST", "/v1/spaces", {"name": SPACE, "dim": 4})
    assert r.status == 201, r.body
    holder = ids.index(wait_until(lambda: primary_of(nodes), DEADLINE_S,
                                  what="the space placed on one primary"))
    return nodes, ids, holder


def root_of(server):
    r = call(server, "GET", "/v1/cluster/gossip")
    assert r.status == 200, r.body
    rows = [s for s in r.json["spaces"] if s["name"] == SPACE]
    return rows[0]["root"] if rows else None


def roots_equal(nodes):
    roots = [root_of(s) for s in nodes]
    return roots[0] if roots[0] and len(set(roots)) == 1 else None


def hints_doc(server):
    r = call(server, "GET", "/v1/cluster/hints")
    assert r.status == 200, r.body
    return r.json


def remember(server, i, key=None):
    body = {"content": "partition note %d about the canary rollout" % i,
            "embedding": [BASE[0], BASE[1], BASE[2] + 0.01 * i, BASE[3]]}
    if key:
        body["idempotency_key"] = key
    return call(server, "POST", "/v1/spaces/%s/memories" % SPACE, body)


@pytest.fixture
def paused():
    procs = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)


def consolidate(holder):
    for i in range(5):
        r = call(holder, "POST", "/v1/spaces/%s/memories" % SPACE,
                 {"content": "the deploy pipeline runs canary checks step %d" % i,
                  "embedding": [BASE[0], BASE[1] + 0.01 * i, BASE[2], BASE[3]]})
        assert r.status == 201, r.body
    r = call(holder, "POST", "/v1/spaces/%s/consolidate" % SPACE, {"min_support": 3})
    assert r.status == 200 and r.json["created"] >= 1, r.body


def test_partition_writes_are_kept_and_merged_with_their_ids(server_factory, paused):
    nodes, ids, h = start_cluster(server_factory, 3, "accept")
    holder = nodes[h]
    consolidate(holder)
    root0 = wait_until(lambda: roots_equal(nodes), DEADLINE_S, what="one gossip root on every node")
    others = [nodes[k] for k in range(3) if k != h]
    doc = hints_doc(others[0])
    assert doc["mode"] == "accept" and doc["pending"] == 0, doc

    os.kill(holder.proc.pid, signal.SIGSTOP)
    paused.append(holder.proc)
    acked = {}  # id -> content
    for i in range(6):
        via = others[i % 2]
        r = remember(via, i, key="k%d" % i)
        assert r.status == 202, r.body
        assert r.json["accepted"] == "partition" and r.json["merged"] is False, r.body
        assert SPACE in r.json["reason"]
        acked[r.json["id"]] = "partition note %d about the canary rollout" % i
    # an idempotent retry through the same node answers the same id, keeps nothing twice
    again = remember(others[0], 0, key="k0")
    assert again.status == 202 and again.json["id"] in acked, again.body
    assert hints_doc(others[0])["pending"] == 3
    # a batch is kept whole
    r = call(others[1], "POST", "/v1/spaces/%s/memories" % SPACE,
             {"memories": [{"content": "batch one", "embedding": BASE},
                           {"content": "batch two", "embedding": BASE}]})
    assert r.status == 202 and len(r.json["ids"]) == 2, r.body
    acked.update(zip(r.json["ids"], ["batch one", "batch two"]))
    # an agent with only text learns that its memory waits for the heal
    sc = Session(others[0]).call("remember", space=SPACE, content="mcp partition note",
                                 embedding=BASE)
    text = sc["content"][0]["text"]
    assert "partition" in text and "merged" in text, text
    acked[sc["structuredContent"]["id"]] = "mcp partition note"
    # the gRPC door takes the same way
    with Grpc("127.0.0.1:%d" % others[1].grpc_port) as g:
        gr = g.Remember(pb().RememberRequest(
            space=SPACE, memory=pb().Memory(content="grpc partition note", embedding=BASE)))
    assert gr.accepted == "partition" and gr.HasField("merged") and not gr.merged, gr
    acked[gr.id] = "grpc partition note"
    # bad input is still refused with its field named, and keeps nothing
    r = call(others[0], "POST", "/v1/spaces/%s/memories" % SPACE, {"content": 5})
    assert r.status == 422 and "content" in r.json["error"]["message"], r.body
    # other writes are not accepted under partition
    r = call(others[0], "DELETE", "/v1/spaces/%s/memories/%s" % (SPACE, next(iter(acked))))
    assert r.status == 503, r.body
    pend = {s.port: hints_doc(s) for s in others}
    assert sum(d["pending"] for d in pend.values()) == len(acked)
    assert all(d["spaces"][0]["name"] == SPACE for d in pend.values()), pend

    # kill -9 an accepting node while it holds hints, and start it again
    victim = others[1]
    held = hints_doc(victim)["pending"]
    assert held > 0
    victim.kill()
    victim.start()
    assert hints_doc(victim)["pending"] == held

    os.kill(holder.proc.pid, signal.SIGCONT)
    for s in others:
        wait_until(lambda s=s: hints_doc(s)["pending"] == 0, DEADLINE_S,
                   what="every hint merged through the primary")
    for mid, content in acked.items():
        r = call(holder, "GET", "/v1/spaces/%s/memories/%s" % (SPACE, mid))
        assert r.status == 200, (mid, r.body)
        assert r.json["id"] == mid and r.json["content"] == content
    r = call(holder, "GET", "/v1/spaces/%s/memories" % SPACE, query={"limit": "100"})
    assert r.status == 200
    got = [m["id"] for m in r.json["memories"] if m["content"] in acked.values()]
    assert sorted(got) == sorted(acked), "each acknowledged episode once"
    wait_until(lambda: roots_equal(nodes), DEADLINE_S, what="one gossip root after the heal")
    # the merged episodes are the space's like any other: a consolidation on the holder
    # derives from them, and every node converges on the new root
    r = call(holder, "POST", "/v1/spaces/%s/consolidate" % SPACE, {"min_support": 3})
    assert r.status == 200, r.body
    r = call(holder, "GET", "/v1/spaces/%s/memories" % SPACE,
             query={"kind": "semantic", "limit": "100"})
    assert any(set(m.get("support", [])) & set(acked) for m in r.json["memories"]), r.json
    wait_until(lambda: (lambda r: r if r and r != root0 else None)(roots_equal(nodes)),
               DEADLINE_S, what="one new gossip root on every node after the merge's consolidation")
    merged = sum(hints_doc(s)["stats"]["merged"] for s in others)
    assert merged >= len(acked) - held  # the restarted node's counters began again
    with others[0].client() as c:
        text = c.raw("GET", "/metrics").body
    text = text.decode() if isinstance(text, bytes) else text
    assert 'mnemo_partition_writes_total{outcome="accepted"}' in text
    assert "mnemo_partition_writes_pending 0" in text


def test_by_default_a_write_to_an_unreachable_primary_gets_503(server_factory, paused):
    nodes, ids, h = start_cluster(server_factory, 2, None)
    other = nodes[1 - h]
    assert hints_doc(other)["mode"] == "reject"
    os.kill(nodes[h].proc.pid, signal.SIGSTOP)
    paused.append(nodes[h].proc)
    r = remember(other, 0, key="d0")
    assert r.status == 503 and r.json["error"]["code"] == "unavailable", r.body
    assert hints_doc(other)["pending"] == 0


def catalog_entry(server):
    r = call(server, "GET", "/v1/cluster/catalog")
    assert r.status == 200, r.body
    return next(e for e in r.json["spaces"] if e["name"] == SPACE)


def push_entry(server, entry):
    r = call(server, "POST", "/v1/cluster/catalog", {"spaces": [entry]})
    assert r.status == 200, r.body


def hint_files(server):
    d = os.path.join(server.data_dir, "hints")
    return sorted(f for f in os.listdir(d) if f.endswith(".hint"))


def test_hints_of_a_dropped_space_go(server_factory, paused):
    """Hints wait on a node while the space's primary is paused; the space is dropped (its
    catalog tombstone reaches the node): the hints and their files go, counted as dropped,
    never retried, and the heal brings nothing back (docs/gossip.md, "Partition mode"; a
    later incarnation's hints are kept: the store's sweep in tests/unit/test_cluster_hints.c).
    The gRPC ClusterHints and the MCP cluster_hints views show what REST shows."""
    nodes, ids, h = start_cluster(server_factory, 3, "accept")
    holder, via = nodes[h], nodes[(h + 1) % 3]
    os.kill(holder.proc.pid, signal.SIGSTOP)
    paused.append(holder.proc)
    for i in range(2):
        r = remember(via, i, key="old%d" % i)
        assert r.status == 202, r.body
    rest = hints_doc(via)
    assert rest["pending"] == 2 and len(hint_files(via)) == 2, rest
    with Grpc("127.0.0.1:%d" % via.grpc_port) as g:
        got = g.ClusterHints(pb().ClusterHintsRequest())
    assert (got.mode, got.pending, got.max) == ("accept", 2, rest["max"])
    assert [(x.name, x.pending) for x in got.spaces] == [(SPACE, 2)]
    assert got.stats.accepted == rest["stats"]["accepted"] == 2 and got.stats.dropped == 0
    r = Session(via).call("cluster_hints")
    assert r["isError"] is False and r["structuredContent"]["spaces"] == rest["spaces"], r
    text = r["content"][0]["text"]
    assert "2 memories held as hints" in text and SPACE + ": 2 pending" in text, text

    # the drop reaches the node as a catalog tombstone (its primary is paused)
    old = catalog_entry(via)
    push_entry(via, dict(old, dropped_at_ms=int(time.time() * 1000)))
    doc = wait_until(lambda: (lambda d: d if d["pending"] == 0 else None)(hints_doc(via)),
                     DEADLINE_S, what="the dropped space's hints gone")
    assert doc["stats"]["dropped"] == 2 and doc["stats"]["merged"] == 0, doc
    assert doc["spaces"] == [] and hint_files(via) == []

    # the heal: the holder learns the drop too, and nothing of the dropped hints comes back
    os.kill(holder.proc.pid, signal.SIGCONT)
    wait_until(lambda: call(holder, "GET", "/v1/spaces/%s" % SPACE).status == 404, DEADLINE_S,
               what="the drop applied on the old holder")
    doc = hints_doc(via)
    assert doc["pending"] == 0 and doc["stats"]["merged"] == 0 and doc["stats"]["dropped"] == 2
