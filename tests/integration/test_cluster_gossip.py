"""Gossip of semantic memories with real processes (docs/gossip.md, "In the server"): three
`mnemo serve` at replication factor 1, so one node (the holder) has the space's episodes.
It consolidates them; every node's GET /v1/cluster/gossip converges on the holder's root for
the space; forgetting the semantic memory on the holder converges everywhere as a
tombstone; dropping the space takes its memories off every node, for good. With the holder paused (SIGSTOP, always SIGCONT after), a recall through another
node still answers within its timeout_ms from the gossiped semantic memories: path and reason
"partition", a lower recall_confidence than the holder's own answer, and the episodes said
unreachable; the request's filter applies to that answer, as_of gets none (503 saying why),
and a suppressed semantic memory leaves it until unsuppressed. The view is the same over
gRPC (ClusterGossip) and MCP (cluster_gossip). A
non-holder killed and started again while the holder is paused answers from its saved store
(<data_dir>/gossip.store); a damaged file is set aside and counted. The steady-state gossip
traffic per node is printed (not asserted). A single node has no gossip (404) and checks
timeout_ms (422 naming it). Every wait polls with a deadline."""

import os
import re
import signal
import struct
import time

import pytest

from conftest import wait_until
from grpc_util import Grpc, pb
from test_mcp import Session
from test_cluster_swim import cluster_env, swim_endpoint, view_is

DEADLINE_S = 30.0
SPACE = "gossiped"
BASE = [0.9, 0.1, 0.05, 0.02]


def start_node(server_factory, seeds, scope="cluster", rf=1):
    env = cluster_env(seeds)
    env["MNEMO_GOSSIP_SCOPE"] = scope
    env["MNEMO_CLUSTER_REPLICATION_FACTOR"] = str(rf)
    env["MNEMO_CLUSTER_FORWARD_TIMEOUT_MS"] = "3000"
    env["MNEMO_GOSSIP_INTERVAL_MS"] = "300"
    # a paused holder stays suspect (still the holder) while the partition answer is checked
    env["MNEMO_CLUSTER_SWIM_SUSPICION_MULT"] = "100"
    return server_factory(env=env)


def call(server, method, path, body=None, query=None, timeout=10.0):
    with server.client(timeout=timeout) as c:
        return c.raw(method, path, body=body, query=query)


def gossip_doc(server):
    r = call(server, "GET", "/v1/cluster/gossip")
    assert r.status == 200, r.body
    return r.json


def space_row(doc):
    rows = [s for s in doc["spaces"] if s["name"] == SPACE]
    return rows[0] if rows else None


def roots_agree(nodes, want_live):
    """Every node's row of SPACE, once all show one root and want_live semantic memories."""
    rows = [space_row(gossip_doc(s)) for s in nodes]
    if any(r is None for r in rows) or len({r["root"] for r in rows}) != 1:
        return None
    return rows if all(r["semantic_memories"] == want_live for r in rows) else None


def primary_of(nodes):
    for s in nodes:
        r = call(s, "GET", "/v1/cluster/spaces")
        rows = [x for x in r.json.get("spaces", []) if x["name"] == SPACE] if r.status == 200 else []
        if not rows or not rows[0].get("primary"):
            return None
    return rows[0]["primary"]


def start_nodes(server_factory, scope="cluster", rf=1):
    first = start_node(server_factory, [], scope, rf)
    seeds = ["127.0.0.1:%d" % swim_endpoint(first)[1]]
    nodes = [first] + [start_node(server_factory, seeds, scope, rf) for _ in range(2)]
    ids = [swim_endpoint(s)[0] for s in nodes]
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="three alive members in every view")
    return nodes, ids


def start_cluster(server_factory, scope="cluster"):
    nodes, ids = start_nodes(server_factory, scope)
    r = call(nodes[0], "POST", "/v1/spaces", {"name": SPACE, "dim": 4})
    assert r.status == 201, r.body
    holder = ids.index(wait_until(lambda: primary_of(nodes), DEADLINE_S,
                                  what="the space placed on one primary"))
    return nodes, ids, holder


@pytest.fixture
def cluster(server_factory):
    nodes, ids, holder = start_cluster(server_factory)
    yield nodes, ids, holder
    for s in nodes:
        if s.proc and s.proc.poll() is None:
            os.kill(s.proc.pid, signal.SIGCONT)


def consolidate(holder_node):
    """Six close episodes about one topic on the holder, then one consolidation run."""
    for i in range(6):
        emb = [BASE[0], BASE[1] + 0.01 * i, BASE[2], BASE[3]]
        r = call(holder_node, "POST", "/v1/spaces/%s/memories" % SPACE,
                 {"content": "the deploy pipeline runs canary checks step %d" % i,
                  "embedding": emb})
        assert r.status == 201, r.body
    r = call(holder_node, "POST", "/v1/spaces/%s/consolidate" % SPACE, {"min_support": 3})
    assert r.status == 200, r.body
    assert r.json["created"] >= 1, r.body


def gossip_over_every_door(server):
    """GET /v1/cluster/gossip, gRPC ClusterGossip and the MCP tool cluster_gossip on one
    node: the same spaces and roots; counters only grow between the reads."""
    rest = gossip_doc(server)
    with Grpc("127.0.0.1:%d" % server.grpc_port) as g:
        got = g.ClusterGossip(pb().ClusterGossipRequest())
    assert got.scope == rest["scope"]
    rows = {r["name"]: r for r in rest["spaces"]}
    assert {x.name for x in got.spaces} == set(rows)
    for x in got.spaces:
        want = rows[x.name]
        assert (x.root, x.records, x.semantic_memories) == \
            (want["root"], want["records"], want["semantic_memories"])
        assert x.HasField("last_sync_ms") == (want["last_sync_ms"] is not None)
    assert got.stats.rounds >= rest["stats"]["rounds"] > 0
    assert got.stats.peers == rest["stats"]["peers"] == 2
    # every figure of the REST document has its field in the message
    assert set(rest["stats"]) <= {f.name for f in got.stats.DESCRIPTOR.fields}, rest["stats"]
    assert got.stats.store_bytes >= rest["stats"]["store_bytes"]
    # the always-on tree check runs (a space a tick) and finds nothing to repair
    assert rest["stats"]["trees_checked"] > 0 and rest["stats"]["trees_repaired"] == 0, rest
    r = Session(server).call("cluster_gossip")
    assert r["isError"] is False, r
    sc = r["structuredContent"]
    assert {(x["name"], x["root"]) for x in sc["spaces"]} == \
        {(x["name"], x["root"]) for x in rest["spaces"]}
    assert sc["stats"]["rounds"] >= got.stats.rounds
    text = r["content"][0]["text"]
    assert SPACE in text and rows[SPACE]["root"] in text and "in sync" in text, text
    hints = call(server, "GET", "/v1/cluster/hints").json
    with Grpc("127.0.0.1:%d" % server.grpc_port) as g:
        gh = g.ClusterHints(pb().ClusterHintsRequest())
    assert (gh.mode, gh.pending, gh.max) == (hints["mode"], hints["pending"], hints["max"])
    assert gh.HasField("stats") and gh.stats.dropped == hints["stats"]["dropped"] == 0
    r = Session(server).call("cluster_hints")
    assert r["isError"] is False and r["structuredContent"]["pending"] == 0, r
    assert "0 memories held as hints" in r["content"][0]["text"], r["content"]


def steady_bytes_per_s(nodes, seconds=5.0):
    """Bytes sent per second by each node while the roots agree (a figure, not asserted)."""
    before = [gossip_doc(s)["stats"]["bytes_sent"] for s in nodes]
    t0 = time.monotonic()
    time.sleep(seconds)  # a measurement window, not a wait for a condition
    after = [gossip_doc(s)["stats"]["bytes_sent"] for s in nodes]
    dt = time.monotonic() - t0
    return [(a - b) / dt for a, b in zip(after, before)]


def test_semantic_memories_converge_and_answer_a_partition(cluster):
    nodes, ids, h = cluster
    consolidate(nodes[h])
    t0 = time.monotonic()
    rows = wait_until(lambda: roots_agree(nodes, 1), DEADLINE_S,
                      what="every node on the holder's root with one semantic memory")
    print("\ngossip: every node on the holder's root %.2f s after the consolidation answered"
          % (time.monotonic() - t0))
    assert rows[0]["records"] == 1
    # each peer's next round reports the same directory root: no peer differs, all synced
    wait_until(lambda: all(space_row(gossip_doc(s))["peers_differing"] == 0 and
                           space_row(gossip_doc(s))["last_sync_ms"] for s in nodes),
               DEADLINE_S, what="no differing peer and a last sync on every node")
    for s in nodes:
        st = gossip_doc(s)["stats"]
        assert st["rounds"] > 0 and st["bytes_sent"] > 0 and st["bytes_received"] > 0, st
    for s in (nodes[h], nodes[(h + 1) % 3]):
        gossip_over_every_door(s)
    assert sum(gossip_doc(s)["stats"]["entries_pulled"] for s in nodes) >= 2
    with nodes[0].client() as c:
        text = c.raw("GET", "/metrics").body
    text = text.decode() if isinstance(text, bytes) else text
    for fam in ("mnemo_gossip_rounds_total", 'mnemo_gossip_bytes_total{direction="sent"}',
                'mnemo_gossip_entries_total{direction="pulled"}'):
        assert fam in text, fam
    # the document's figures as gauges: converged, so no peer differs, and the memories
    # the space's document counts (exported every tick)
    want = gossip_doc(nodes[0])["spaces"][0]["semantic_memories"]

    def gauges():
        with nodes[0].client() as c:
            t = c.raw("GET", "/metrics").body.decode()
        return ("mnemo_gossip_semantic_memories %d\n" % want in t and
                "mnemo_gossip_peers_differing 0\n" in t and
                "mnemo_gossip_last_sync_age_seconds " in t)
    wait_until(gauges, DEADLINE_S, what="the gossip gauges in /metrics")
    rates = steady_bytes_per_s(nodes)
    print("\ngossip steady state, bytes sent per second per node (interval 300 ms, fanout 3, "
          "3 nodes, 1 space): %s" % ", ".join("%.0f" % r for r in rates))

    other = nodes[(h + 1) % 3]
    cue = {"text": "deploy pipeline canary", "embedding": BASE, "k": 5}
    normal = call(other, "POST", "/v1/spaces/%s/recall" % SPACE, cue)
    assert normal.status == 200, normal.body
    assert normal.json["path"] != "partition" and normal.json["results"]
    os.kill(nodes[h].proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = call(other, "POST", "/v1/spaces/%s/recall" % SPACE, dict(cue, timeout_ms=500))
        took = time.monotonic() - t0
        assert r.status == 200, r.body
        # in time: bounded by its timeout_ms, not by the 3 s forward timeout (a margin for a
        # loaded machine; the bound, not speed, is what is checked)
        assert took < 0.5 + 2.0, took
        doc = r.json
        assert doc["path"] == "partition"
        assert doc["partition"]["episodes"] == "unreachable" and SPACE in doc["partition"]["reason"]
        assert len(doc["results"]) == 1
        hit = doc["results"][0]
        assert hit["memory"]["kind"] == "semantic"
        assert "canary" in hit["memory"]["content"]
        assert "partition" in hit["confidence"]["reasons"]
        assert 0 < doc["recall_confidence"] < normal.json["recall_confidence"]
        # no timeout_ms: the default, 1000 ms, bounds it (not the 3 s forward timeout)
        t0 = time.monotonic()
        r = call(other, "POST", "/v1/spaces/%s/recall" % SPACE, cue)
        took = time.monotonic() - t0
        assert r.status == 200 and r.json["path"] == "partition", r.body
        assert took < 1.0 + 1.8, took
        # a cue the memory does not match: an answer with no hit, still in partition mode
        r = call(other, "POST", "/v1/spaces/%s/recall" % SPACE,
                 {"text": "unrelated gardening words", "timeout_ms": 300})
        assert r.status == 200 and r.json["results"] == [], r.body
        assert r.json["path"] == "partition"
        # an agent with only text: the MCP recall tool takes the same way
        res = Session(other).call("recall", space=SPACE, text="deploy pipeline canary",
                                  timeout_ms=400)
        assert res["isError"] is False, res
        sc = res["structuredContent"]
        assert sc["path"] == "partition", sc
        assert "partition" in sc["results"][0]["confidence"]["reasons"]
        # and its text says so, for an agent that reads only the text
        assert "episodes are unreachable" in res["content"][0]["text"], res["content"]
        with other.client() as c:
            m = c.raw("GET", "/metrics").body.decode()
        n = re.search(r"^mnemo_recall_partition_total (\d+)$", m, re.M)
        assert n and int(n.group(1)) >= 4, m[-1500:]  # the partition answers above
    finally:
        os.kill(nodes[h].proc.pid, signal.SIGCONT)


def store_blocks(path):
    """The record count of each block of a gossip.store (version 2), checked to its end."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"MNGOSSIP" and struct.unpack_from("<I", data, 8)[0] == 2
    at, counts = 16, []
    while at < len(data):
        length, _crc = struct.unpack_from("<II", data, at)
        assert at + 8 + length <= len(data), "a block cut short at byte %d" % at
        counts.append(struct.unpack_from("<I", data, at + 8)[0])
        at += 8 + length
    return counts


def test_a_restarted_node_answers_from_its_saved_store(cluster):
    """The gossip store is written behind to <data_dir>/gossip.store: a non-holder killed
    (-9) and started again while the holder is paused (SIGSTOP) holds the record as soon as
    it answers (loaded from the file, before any round) and answers a partition recall. A
    damaged file is set aside as gossip.store.corrupt and counted; the node starts with an
    empty store, and its peers fill it again. A last block cut short (an append a crash
    interrupted) is left out and counted: the blocks before it are loaded, the file is
    rewritten."""
    nodes, ids, h = cluster
    consolidate(nodes[h])
    wait_until(lambda: roots_agree(nodes, 1), DEADLINE_S, what="one semantic memory everywhere")
    r = nodes[2 if h == 1 else 1]  # a non-holder with a seed (node 0 has none to rejoin by)
    wait_until(lambda: gossip_doc(r)["stats"]["store_saved"] == 1, DEADLINE_S,
               what="the record in the node's saved store")
    path = os.path.join(r.data_dir, "gossip.store")
    assert os.path.getsize(path) > 0
    os.kill(nodes[h].proc.pid, signal.SIGSTOP)
    try:
        r.kill()
        r.start()
        doc = gossip_doc(r)
        assert doc["stats"]["store_loaded"] == 1 and doc["stats"]["store_corrupt"] == 0, doc
        assert space_row(doc)["semantic_memories"] == 1
        res = wait_until(lambda: (lambda x: x if x.status == 200 else None)(call(
            r, "POST", "/v1/spaces/%s/recall" % SPACE,
            {"text": "deploy pipeline canary", "embedding": BASE, "timeout_ms": 500})),
            DEADLINE_S, what="a partition answer once the node's view settled")
        assert res.json["path"] == "partition" and len(res.json["results"]) == 1, res.body
        assert "canary" in res.json["results"][0]["memory"]["content"]
        # the first answer after the start came from the file: no record was pulled yet
        assert doc["stats"]["entries_pulled"] == 0, doc
    finally:
        os.kill(nodes[h].proc.pid, signal.SIGCONT)
    r.kill()
    with open(path, "r+b") as f:  # a whole block damaged: not a crash's cut, corruption
        f.seek(os.path.getsize(path) - 10)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x40]))
    r.start()
    st = gossip_doc(r)["stats"]
    assert st["store_corrupt"] == 1 and st["store_loaded"] == 0, st
    assert os.path.exists(path + ".corrupt")
    assert "cannot be read" in r.log()
    wait_until(lambda: roots_agree(nodes, 1), DEADLINE_S, what="the peers fill the store again")
    st = wait_until(lambda: (lambda x: x if x["store_saved"] == 1 else None)(
        gossip_doc(r)["stats"]), DEADLINE_S, what="a good file written again")
    assert st["store_bytes"] == os.path.getsize(path), st
    good = os.path.getsize(path)
    r.kill()
    with open(path, "ab") as f:  # an append cut short: its length runs past the end
        f.write(struct.pack("<II", 4096, 0) + b"cut")
    r.start()
    st = gossip_doc(r)["stats"]
    assert st["store_torn"] == 1 and st["store_corrupt"] == 0 and st["store_loaded"] == 1, st
    assert "cut short" in r.log()
    st = wait_until(lambda: (lambda x: x if x["store_rewrites"] >= 1 else None)(
        gossip_doc(r)["stats"]), DEADLINE_S, what="the file rewritten without the cut")
    assert store_blocks(path) == [1], st  # one block holding the one record, no cut left
    assert os.path.getsize(path) == st["store_bytes"] <= good, (os.path.getsize(path), good, st)


def test_a_forgotten_semantic_memory_converges_as_a_tombstone(cluster):
    nodes, ids, h = cluster
    consolidate(nodes[h])
    wait_until(lambda: roots_agree(nodes, 1), DEADLINE_S, what="one semantic memory everywhere")
    for n in nodes:  # in each node's file (a rewrite: the first save)
        wait_until(lambda: gossip_doc(n)["stats"]["store_records_written"] >= 1, DEADLINE_S,
                   what="the semantic memory in the file")
    r = call(nodes[h], "GET", "/v1/spaces/%s/memories" % SPACE, query={"kind": "semantic"})
    assert r.status == 200, r.body
    sem = [m for m in r.json["memories"] if m["kind"] == "semantic"]
    assert len(sem) == 1
    r = call(nodes[h], "DELETE", "/v1/spaces/%s/memories/%s" % (SPACE, sem[0]["id"]),
             query={"mode": "delete"})
    assert r.status in (200, 204), r.body
    rows = wait_until(lambda: roots_agree(nodes, 0), DEADLINE_S,
                      what="the tombstone on every node")
    assert all(row["records"] == 1 for row in rows)  # the tombstone itself
    # each node's file took the change as an appended block, not a rewrite
    for n in nodes:
        st = wait_until(lambda: (lambda x: x if x["store_appends"] >= 1 else None)(
            gossip_doc(n)["stats"]), DEADLINE_S, what="the tombstone appended to the file")
        assert st["store_rewrites"] == 1 and st["store_saved"] == 1, st
    other = nodes[(h + 1) % 3]
    os.kill(nodes[h].proc.pid, signal.SIGSTOP)
    try:
        r = call(other, "POST", "/v1/spaces/%s/recall" % SPACE,
                 {"text": "deploy pipeline canary", "timeout_ms": 300})
        assert r.status == 503, r.body  # nothing gossiped is left to answer from
    finally:
        os.kill(nodes[h].proc.pid, signal.SIGCONT)


def test_a_semantic_memory_a_client_remembered_is_gossiped(cluster):
    """A semantic memory a client states (kind semantic, no episodes behind it) is gossiped
    as consolidation's are: every node holds it, a partition recall answers it (its
    confidence the client's, not lowered for want of support); invalidated, it leaves the
    partition answers; forgotten, it is a tombstone everywhere."""
    nodes, ids, h = cluster
    r = call(nodes[h], "POST", "/v1/spaces/%s/memories" % SPACE,
             {"content": "the office wifi password rotates every monday", "kind": "semantic",
              "embedding": BASE})
    assert r.status == 201, r.body
    fact = r.json["id"]
    rows = wait_until(lambda: roots_agree(nodes, 1), DEADLINE_S,
                      what="the client's semantic memory on every node")
    assert rows[0]["records"] == 1
    other = nodes[(h + 1) % 3]
    os.kill(nodes[h].proc.pid, signal.SIGSTOP)
    try:
        r = call(other, "POST", "/v1/spaces/%s/recall" % SPACE,
                 {"text": "office wifi password", "embedding": BASE, "timeout_ms": 400})
        assert r.status == 200, r.body
        assert r.json["path"] == "partition", r.body
        hits = r.json["results"]
        assert len(hits) == 1 and hits[0]["memory"]["id"] == fact, hits
        assert hits[0]["memory"]["kind"] == "semantic" and "wifi" in hits[0]["memory"]["content"]
        assert "partition" in hits[0]["confidence"]["reasons"]
        assert "low_support" not in hits[0]["confidence"]["reasons"]
    finally:
        os.kill(nodes[h].proc.pid, signal.SIGCONT)
    # invalidated: kept by the holder, but no longer a partition answer (retired everywhere)
    r = wait_until(lambda: quiet_call(nodes[h], "POST", "/v1/spaces/%s/memories/%s/invalidate"
                                      % (SPACE, fact), {"reason": "rotation ended"}),
                   DEADLINE_S, what="the invalidation once the holder answers again")
    assert r.status == 200, r.body
    wait_until(lambda: roots_agree(nodes, 0), DEADLINE_S, what="the retired version everywhere")
    # a second one, forgotten: a tombstone on every node
    r = call(nodes[h], "POST", "/v1/spaces/%s/memories" % SPACE,
             {"content": "badges open the north door", "kind": "semantic", "embedding": BASE})
    assert r.status == 201, r.body
    wait_until(lambda: roots_agree(nodes, 1), DEADLINE_S, what="the second one everywhere")
    r = call(nodes[h], "DELETE", "/v1/spaces/%s/memories/%s" % (SPACE, r.json["id"]),
             query={"mode": "delete"})
    assert r.status in (200, 204), r.body
    rows = wait_until(lambda: roots_agree(nodes, 0), DEADLINE_S, what="its tombstone everywhere")
    assert all(row["records"] == 2 for row in rows)  # the retired one and the tombstone


def partition_recall(server, body):
    """A recall through server while the holder is paused: its response (timeout_ms 400)."""
    return call(server, "POST", "/v1/spaces/%s/recall" % SPACE, dict(body, timeout_ms=400))


def partition_ids(server, body):
    """The ids a partition answer returns for body (it must be one: 200, path partition)."""
    r = partition_recall(server, body)
    assert r.status == 200 and r.json["path"] == "partition", r.body
    return {h["memory"]["id"] for h in r.json["results"]}


def test_a_partition_answer_keeps_to_the_filter_and_leaves_suppressed_memories_out(cluster):
    """The request's filter applies to the gossiped memories as to a recall of the space (tags,
    kind, an expression, the when window); as_of gets no stand-in (503 saying why: gossip keeps
    no history). A suppressed semantic memory leaves every node's partition answers (a retired
    version); unsuppressed, it comes back."""
    nodes, ids, h = cluster
    made = {}
    for tag, text in (("ops", "the office wifi password rotates every monday"),
                      ("facilities", "the north door badge reader resets every monday")):
        r = call(nodes[h], "POST", "/v1/spaces/%s/memories" % SPACE,
                 {"content": text, "kind": "semantic", "embedding": BASE, "tags": [tag]})
        assert r.status == 201, r.body
        made[tag] = r.json["id"]
    wait_until(lambda: roots_agree(nodes, 2), DEADLINE_S, what="both on every node")
    other = nodes[(h + 1) % 3]
    cue = {"text": "every monday", "embedding": BASE}
    os.kill(nodes[h].proc.pid, signal.SIGSTOP)
    try:
        assert partition_ids(other, cue) == set(made.values())
        assert partition_ids(other, dict(cue, tags_any=["ops"])) == {made["ops"]}
        assert partition_ids(other, dict(cue, kind="episodic")) == set()
        assert partition_ids(other, dict(cue, filter={"tags": {"contains": "facilities"}})) == \
            {made["facilities"]}
        assert partition_ids(other, dict(cue, when={"to": "2001-01-01T00:00:00Z"})) == set()
        r = partition_recall(other, dict(cue, as_of=int(time.time() * 1000) - 1000))
        assert r.status == 503, r.body
        assert b"as_of" in r.body and b"no history" in r.body, r.body
    finally:
        os.kill(nodes[h].proc.pid, signal.SIGCONT)
    r = wait_until(lambda: quiet_call(nodes[h], "DELETE", "/v1/spaces/%s/memories/%s?mode=suppress"
                                      % (SPACE, made["ops"]), None),
                   DEADLINE_S, what="the suppression once the holder answers again")
    assert r.status in (200, 204), r.body
    wait_until(lambda: roots_agree(nodes, 1), DEADLINE_S, what="the suppression everywhere")
    os.kill(nodes[h].proc.pid, signal.SIGSTOP)
    try:
        assert partition_ids(other, cue) == {made["facilities"]}
    finally:
        os.kill(nodes[h].proc.pid, signal.SIGCONT)
    r = wait_until(lambda: quiet_call(nodes[h], "POST", "/v1/spaces/%s/memories/%s/unsuppress"
                                      % (SPACE, made["ops"]), None),
                   DEADLINE_S, what="the unsuppression once the holder answers again")
    assert r.status in (200, 204), r.body
    wait_until(lambda: roots_agree(nodes, 2), DEADLINE_S, what="live again everywhere")


def quiet_call(server, method, path, body):
    """The response, or None while the server answers 503 (a resumed holder's lease)."""
    r = call(server, method, path, body)
    return None if r.status == 503 else r


def rounds_pass(nodes, n=5):
    """Waits until every node has run n more gossip rounds."""
    before = [gossip_doc(s)["stats"]["rounds"] for s in nodes]
    wait_until(lambda: all(gossip_doc(s)["stats"]["rounds"] >= b + n
                           for s, b in zip(nodes, before)), DEADLINE_S,
               what="%d more gossip rounds on every node" % n)


def test_a_dropped_space_leaves_every_nodes_gossip(cluster):
    """Dropping a space takes its gossiped memories off every node, and creating the name
    again does not bring the old incarnation's memories back (docs/gossip.md, "Dropped
    spaces")."""
    nodes, ids, h = cluster
    consolidate(nodes[h])
    wait_until(lambda: roots_agree(nodes, 1), DEADLINE_S, what="one semantic memory everywhere")
    r = call(nodes[(h + 1) % 3], "DELETE", "/v1/spaces/%s" % SPACE)
    assert r.status in (200, 204), r.body
    wait_until(lambda: all(space_row(gossip_doc(s)) is None for s in nodes), DEADLINE_S,
               what="the dropped space gone from every node's gossip")
    assert sum(gossip_doc(s)["stats"]["entries_dropped"] for s in nodes) >= 3
    r = call(nodes[h], "POST", "/v1/spaces", {"name": SPACE, "dim": 4})
    assert r.status == 201, r.body
    rounds_pass(nodes)
    assert all(space_row(gossip_doc(s)) is None for s in nodes)


def test_holders_scope_keeps_a_space_on_its_holders(server_factory):
    """At replication factor 1 the holder shares its space with nobody: with scope
    "holders" it gossips with no peer, and the other nodes never get the space's memories."""
    nodes, ids, h = start_cluster(server_factory, scope="holders")
    consolidate(nodes[h])
    row = wait_until(lambda: space_row(gossip_doc(nodes[h])), DEADLINE_S,
                     what="the holder's own semantic memory in its gossip")
    assert row["semantic_memories"] == 1
    doc = gossip_doc(nodes[h])
    assert doc["scope"] == "holders" and doc["stats"]["peers"] == 0, doc
    # the others' rounds go on (each still holds nothing in common with the holder)
    for k, s in enumerate(nodes):
        if k != h:
            rounds = gossip_doc(s)["stats"]["rounds"]
            wait_until(lambda s=s, r=rounds: gossip_doc(s)["stats"]["rounds"] > r + 3,
                       DEADLINE_S, what="a few more rounds on a non-holder")
            assert space_row(gossip_doc(s)) is None


def placed_pairs(node, names):
    """{space: (primary, set of both holders)} once every name has a primary and two
    holders in node's placement table."""
    r = call(node, "GET", "/v1/cluster/spaces")
    rows = {x["name"]: x for x in r.json.get("spaces", [])} if r.status == 200 else {}
    out = {}
    for n in names:
        x = rows.get(n)
        if not x or not x.get("primary") or len(x["holders"]) != 2:
            return None
        out[n] = (x["primary"], {h["node"] for h in x["holders"]})
    return out


def test_holders_scope_keeps_each_space_among_its_holders(server_factory):
    """Scope "holders" at replication factor 2 (the per-space peer sets): each space's
    semantic memories reach both its holders, which agree on its root, and never the third
    node, even where that node shares another space with one of the holders (a peer set per
    node, not per space, let those through)."""
    nodes, ids = start_nodes(server_factory, "holders", rf=2)
    names = []
    placed = None
    for i in range(12):  # until a non-holder of one space shares another with its holders
        name = "held%d" % i
        r = call(nodes[0], "POST", "/v1/spaces", {"name": name, "dim": 4})
        assert r.status == 201, r.body
        names.append(name)
        placed = wait_until(lambda: placed_pairs(nodes[0], names), DEADLINE_S,
                            what="every space placed on two holders")
        if len({frozenset(hs) for _, hs in placed.values()}) >= 2:
            break
    assert len({frozenset(hs) for _, hs in placed.values()}) >= 2, placed
    def until(status, method, node, path, body):  # a new primary may not lead yet: 503
        r = wait_until(lambda: (lambda x: x if x.status != 503 else None)(
            call(node, method, path, body)), DEADLINE_S, what="%s %s" % (method, path))
        assert r.status == status, r.body
        return r

    for name, (primary, _) in placed.items():
        p = nodes[ids.index(primary)]
        for k in range(4):
            emb = [BASE[0], BASE[1] + 0.01 * k, BASE[2], BASE[3]]
            until(201, "POST", p, "/v1/spaces/%s/memories" % name,
                  {"content": "%s canary checks step %d" % (name, k), "embedding": emb})
        r = until(200, "POST", p, "/v1/spaces/%s/consolidate" % name, {"min_support": 3})
        assert r.json["created"] >= 1, r.body

    def rows_of(node):
        return {x["name"]: x for x in gossip_doc(node)["spaces"]}

    def settled():
        docs = [rows_of(s) for s in nodes]
        for name, (_, holders) in placed.items():
            held = [docs[ids.index(h)].get(name) for h in holders]
            if any(r is None or r["semantic_memories"] < 1 for r in held):
                return None
            if len({r["root"] for r in held}) != 1:
                return None
        return docs

    docs = wait_until(settled, DEADLINE_S, what="each space's holders agree on its root")
    rounds_pass(nodes)
    docs = [rows_of(s) for s in nodes]
    for name, (_, holders) in placed.items():
        for k, i in enumerate(ids):
            if i not in holders:
                assert name not in docs[k], (name, i, docs[k][name])
    for k, s in enumerate(nodes):  # its peers: the nodes it shares a space with
        mine = [hs for _, hs in placed.values() if ids[k] in hs]
        want = set().union(*mine) - {ids[k]} if mine else set()
        assert gossip_doc(s)["stats"]["peers"] == len(want), (ids[k], want)
    # a node the placement no longer gives a space lets its copy go: drained, node 0 holds
    # nothing (two distinct pairs of three nodes include it), and its gossip keeps nothing
    assert any(ids[0] in hs for _, hs in placed.values())
    r = call(nodes[1], "POST", "/v1/cluster/drain", {"node": ids[0]})
    assert r.status == 200, r.body
    wait_until(lambda: rows_of(nodes[0]) == {}, 2 * DEADLINE_S,
               what="the drained node's gossip without a space")
    assert "this node no longer holds it" in nodes[0].log()
    placed = wait_until(lambda: (lambda p: p if p and all(
        ids[0] not in hs for _, hs in p.values()) else None)(placed_pairs(nodes[1], names)),
        DEADLINE_S, what="every copy off the drained node")
    wait_until(settled, DEADLINE_S, what="each space's new pair of holders agree on its root")


def test_single_node_has_no_gossip_and_checks_timeout_ms(server_factory):
    s = server_factory()
    assert call(s, "GET", "/v1/cluster/gossip").status == 404
    r = call(s, "POST", "/v1/spaces", {"name": "solo", "dim": 4})
    assert r.status == 201, r.body
    for bad in (0, -5, 600001, "soon"):
        r = call(s, "POST", "/v1/spaces/solo/recall", {"embedding": BASE, "timeout_ms": bad})
        assert r.status == 422 and "timeout_ms" in r.json["error"]["message"], r.body
    r = call(s, "POST", "/v1/spaces/solo/recall", {"embedding": BASE, "timeout_ms": 50})
    assert r.status == 200, r.body
