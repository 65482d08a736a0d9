"""Routing with real processes (docs/api.md, "Cluster mode"): three `mnemo serve` with
[cluster] enabled hold the same space (created through one node: the creation is
forwarded to the space's desired primary, and the replicas get their copies by WAL
shipping). Writes and reads sent to any node reach the primary's copy;
MCP tools are routed the same way; read=nearest is served by the node asked when it holds
a copy; forged, unsigned, stale, replayed or tampered hops are refused; a write forwarded to a
paused (SIGSTOP) primary is answered 503 within the forward timeout, the primary's
circuit breaker opens, reads fall back to a replica, and once the primary resumes the
breaker closes again. Single-node: the options are validated (422 naming the field) and
change nothing. Every wait polls with a deadline."""

import hashlib
import json
import os
import signal
import time
import urllib.parse

import grpc
import pytest

from cluster_hop import sign
from conftest import MnemoServer, wait_until
from grpc_util import Grpc, error_code, pb
from mnemo_client import MnemoClient
from test_cluster_spaces import agreed
from test_cluster_swim import cluster_env, swim_endpoint, view_is
from test_mcp import Session

DEADLINE_S = 30.0
SPACE = "routed"
EMB = [0.1, 0.2, 0.3, 0.4]
FORWARD_TIMEOUT_MS = 1000
ADMIN, WRITER, READER = "admin-key", "writer-key", "reader-key"


def sha(k):
    return hashlib.sha256(k.encode()).hexdigest()


KEYS = ('[{name = "ops", sha256 = "%s", role = "admin", spaces = ["*"]}, '
        '{name = "writer", sha256 = "%s", role = "write", spaces = ["%s"]}, '
        '{name = "reader", sha256 = "%s", role = "read", spaces = ["%s"]}]'
        % (sha(ADMIN), sha(WRITER), SPACE, sha(READER), SPACE))


class KeyedServer(MnemoServer):
    """A node with API keys on: its client (the helpers of other suites use it) is admin."""

    def client(self, timeout=30.0, key=ADMIN):
        return MnemoClient(self.url, timeout=timeout, api_key=key)


class KeyedSession(Session):
    """An MCP session that sends the writer's key."""

    def post_raw(self, body, headers=None):
        return super().post_raw(body, dict(headers or {}, Authorization="Bearer " + WRITER))

    def post(self, body, headers=None):
        return super().post(body, dict(headers or {}, Authorization="Bearer " + WRITER))


def start_node(server_factory, seeds, zone):
    env = cluster_env(seeds)
    env["MNEMO_CLUSTER_ZONE"] = zone
    env["MNEMO_CLUSTER_REPLICATION_FACTOR"] = "3"
    env["MNEMO_CLUSTER_FORWARD_TIMEOUT_MS"] = str(FORWARD_TIMEOUT_MS)
    # a paused node stays suspect (still a holder) for the length of the test: the
    # placement does not move while the breaker is tested
    env["MNEMO_CLUSTER_SWIM_SUSPICION_MULT"] = "100"
    env["MNEMO_AUTH_ENABLED"] = "true"
    env["MNEMO_AUTH_KEYS"] = KEYS
    return server_factory(env=env)


def call(server, method, path, body=None, query=None, timeout=10.0, key=WRITER):
    with server.client(timeout=timeout, key=key) as c:
        return c.raw(method, path, body=body, query=query)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three nodes holding SPACE, agreed on its placement: (nodes, ids, primary index)."""
    made = []

    def factory(env=None):
        s = KeyedServer(tmp_path_factory.mktemp("node"), env=env)
        made.append(s)
        return s.start()

    first = start_node(factory, [], "z1")
    seed_id, seed_port = swim_endpoint(first)
    seeds = ["127.0.0.1:%d" % seed_port]
    nodes = [first] + [start_node(factory, seeds, "z%d" % (i + 2)) for i in range(2)]
    ids = [seed_id] + [swim_endpoint(s)[0] for s in nodes[1:]]
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="three alive members in every view")
    r = call(nodes[0], "POST", "/v1/spaces", {"name": SPACE, "dim": 4}, key=ADMIN)
    assert r.status == 201, r.body
    docs = wait_until(lambda: agreed(nodes, [SPACE], ids), DEADLINE_S,
                      what="the same placement on every node")
    for s in nodes:  # every copy exists (shipped from the primary) before the tests read it
        wait_until(lambda s=s: call(s, "GET", "/v1/spaces/%s/memories" % SPACE,
                                    query={"read": "nearest"}).status == 200, DEADLINE_S,
                   what="the space's copy on every node")
    primary = ids.index(docs[0]["spaces"][0]["primary"])
    yield nodes, ids, primary
    for s in made:
        if s.proc and s.proc.poll() is None:
            os.kill(s.proc.pid, signal.SIGCONT)
            rc = s.stop()
            assert rc == 0, "mnemo exited with %s:\n%s" % (rc, s.log()[-3000:])


def remember(server, content, **extra):
    body = {"content": content, "embedding": EMB}
    body.update(extra)
    return call(server, "POST", "/v1/spaces/%s/memories" % SPACE, body)


def test_writes_and_reads_through_every_node_reach_the_primary(cluster):
    nodes, ids, p = cluster
    made = []
    for k, s in enumerate(nodes):
        r = remember(s, "written through node %d" % k, consistency="one")
        assert r.status == 201, (r.status, r.body)
        assert r.headers["x-mnemo-served-by"] == ids[p]
        if k != p:
            assert r.headers["x-mnemo-via"] == ids[k]
        made.append(r.json["id"])
    # read=primary (the default) from every node: the primary's copy has all three
    for s in nodes:
        for mid in made:
            r = call(s, "GET", "/v1/spaces/%s/memories/%s" % (SPACE, mid))
            assert r.status == 200 and r.headers["x-mnemo-served-by"] == ids[p], r.body
        r = call(s, "GET", "/v1/spaces/%s/memories" % SPACE, query={"read": "primary"})
        assert r.status == 200
        assert sorted(m["id"] for m in r.json["memories"]) == sorted(made)
        r = call(s, "POST", "/v1/spaces/%s/recall" % SPACE, {"embedding": EMB, "k": 10})
        assert r.status == 200 and len(r.json["results"]) == 3
    # a forget sent to a replica is forwarded too, with its query
    other = nodes[(p + 1) % 3]
    r = call(other, "DELETE", "/v1/spaces/%s/memories/%s" % (SPACE, made[0]),
             query={"mode": "suppress", "consistency": "quorum"})
    assert r.status == 200 and r.headers["x-mnemo-served-by"] == ids[p], r.body
    # a correction through a replica names the writer's key, which the hop vouched for
    r = call(other, "PATCH", "/v1/spaces/%s/memories/%s" % (SPACE, made[2]),
             {"content": "corrected through a replica"})
    assert r.status == 200 and r.json["changed_by"] == "writer", r.body
    # a key refused where it arrives is never forwarded
    r = call(other, "POST", "/v1/spaces/%s/memories" % SPACE, {"content": "x"}, key=READER)
    assert r.status == 403 and "x-mnemo-via" not in r.headers
    # a bad option is refused by the node that serves it, naming the field
    r = call(other, "DELETE", "/v1/spaces/%s/memories/%s" % (SPACE, made[1]),
             query={"consistency": "most"})
    assert r.status == 422 and r.json["error"]["message"].startswith("consistency:")
    # a creation is forwarded to the new space's desired primary (the preview's)
    name = "born-on-primary"
    with nodes[0].client(timeout=5.0) as c:
        want = c.request("GET", "/v1/cluster/spaces", query={"names": name})
    born = want["spaces"][0]["primary"]
    r = call(nodes[(ids.index(born) + 1) % 3], "POST", "/v1/spaces", {"name": name, "dim": 4},
             key=ADMIN)
    assert r.status == 201 and r.headers["x-mnemo-served-by"] == born, r.body
    assert call(nodes[ids.index(born)], "GET", "/v1/spaces/" + name, key=ADMIN).status == 200


def test_read_nearest_is_served_by_the_node_asked(cluster):
    nodes, ids, p = cluster
    assert remember(nodes[p], "written on the primary").status == 201
    for k, s in enumerate(nodes):
        # a replica serves its own copy once it knows its lag (it has applied what its
        # primary's appends said the primary had); until then the primary serves
        if k != p:
            wait_until(lambda s=s, k=k: own_holder(s, ids[k])["lag_ms"] is not None,
                       DEADLINE_S, what="node %d knowing its own copy's lag" % k)
        r = call(s, "GET", "/v1/spaces/%s/memories" % SPACE, query={"read": "nearest"})
        assert r.status == 200 and r.headers["x-mnemo-served-by"] == ids[k]

        def nearest_has_it(s=s, k=k):
            r = call(s, "POST", "/v1/spaces/%s/recall" % SPACE,
                     {"embedding": EMB, "read": "nearest"})
            assert r.status == 200 and r.headers["x-mnemo-served-by"] == ids[k]
            return "written on the primary" in [h["memory"]["content"] for h in r.json["results"]]
        # each copy answers itself, and the write reaches every copy (WAL shipping)
        wait_until(nearest_has_it, DEADLINE_S, what="the write in node %d's own copy" % k)
    r = call(nodes[(p + 1) % 3], "POST", "/v1/spaces/%s/recall" % SPACE,
             {"embedding": EMB, "read": "closest"})
    assert r.status == 422 and r.json["error"]["message"].startswith("read:")


def test_mcp_tools_are_routed(cluster):
    nodes, ids, p = cluster
    other = nodes[(p + 2) % 3]
    s = KeyedSession(other)
    r = s.ok("remember", space=SPACE, content="remembered through MCP on a replica",
             embedding=EMB, consistency="one")
    mid = r["id"]
    # on the primary's copy, read there with read=nearest (served by the primary itself)
    got = call(nodes[p], "GET", "/v1/spaces/%s/memories/%s" % (SPACE, mid),
               query={"read": "nearest"})
    assert got.status == 200 and got.json["content"] == "remembered through MCP on a replica"
    # read=nearest on the replica is its own copy's answer
    r = call(other, "GET", "/v1/spaces/%s/memories/%s" % (SPACE, mid), query={"read": "nearest"})
    assert r.headers["x-mnemo-served-by"] == ids[(p + 2) % 3]
    hits = s.ok("recall", space=SPACE, text="remembered through MCP", embedding=EMB)
    assert any(h["id"] == mid for h in hits["results"])


class AdminSession(Session):
    """An MCP session that sends the admin's key."""

    def post_raw(self, body, headers=None):
        return super().post_raw(body, dict(headers or {}, Authorization="Bearer " + ADMIN))

    def post(self, body, headers=None):
        return super().post(body, dict(headers or {}, Authorization="Bearer " + ADMIN))


def test_placement_table_over_grpc_and_mcp_matches_rest(cluster):
    """GET /v1/cluster/spaces, gRPC ClusterSpaces and the MCP tool cluster_spaces give the
    same table (an admin's); other keys are refused."""
    nodes, ids, p = cluster
    other = nodes[(p + 1) % 3]
    rest = call(other, "GET", "/v1/cluster/spaces", key=ADMIN)
    assert rest.status == 200, rest.body
    want = {e["name"]: e for e in rest.json["spaces"]}
    with Grpc("127.0.0.1:%d" % other.grpc_port, api_key=ADMIN) as g:
        got = g.ClusterSpaces(pb().ClusterSpacesRequest())
        assert got.self == rest.json["self"] and got.replication_factor == 3
        assert {m.id for m in got.members} == set(ids)
        row = next(e for e in got.spaces if e.name == SPACE)
        assert row.primary == want[SPACE]["primary"] == ids[p]
        assert row.epoch == want[SPACE]["epoch"]
        # the incarnation: the catalog's created_at_ms of the name
        assert row.incarnation == want[SPACE]["incarnation"] > 0
        assert [h.node for h in row.holders] == [h["node"] for h in want[SPACE]["holders"]]
        assert set(row.replicas) == set(want[SPACE]["replicas"])
        # its own copy's applied lsn is known on every holder's answer
        own = next(h for h in row.holders if h.node == got.self)
        assert own.HasField("applied_lsn")
        preview = g.ClusterSpaces(pb().ClusterSpacesRequest(names=["not-yet-made"]))
        assert preview.preview and [e.name for e in preview.spaces] == ["not-yet-made"]
        assert not preview.spaces[0].HasField("incarnation")  # not created: none yet
        e = grpc_error(g.ClusterSpaces, pb().ClusterSpacesRequest(names=["Bad Name"]))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "names[0]" in e.details()
    with Grpc("127.0.0.1:%d" % other.grpc_port, api_key=WRITER) as g:
        e = grpc_error(g.ClusterSpaces, pb().ClusterSpacesRequest())
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e.details()
    r = AdminSession(other).call("cluster_spaces")
    assert r["isError"] is False, r
    doc = r["structuredContent"]
    # spaces other tests of the module made may reach the table between the two reads
    got_primaries = {e["name"]: e["primary"] for e in doc["spaces"]}
    assert got_primaries[SPACE] == ids[p]
    assert all(got_primaries[n] == e["primary"] for n, e in want.items() if n in got_primaries)
    assert SPACE in r["content"][0]["text"] and "primary " + ids[p] in r["content"][0]["text"]
    assert KeyedSession(other).call("cluster_spaces")["isError"] is True  # the writer's key


def test_forged_and_tampered_hops_are_refused(cluster):
    nodes, ids, p = cluster
    target = nodes[(p + 1) % 3]
    path = "/v1/spaces/%s/memories" % SPACE
    body = {"content": "smuggled", "embedding": EMB}
    data = json.dumps(body).encode()

    def send(headers, payload=data):
        h = dict(headers)
        h["Content-Type"] = "application/json"
        with target.client(timeout=10.0, key=None) as c:
            return c.raw("POST", path, body=payload, headers=h)

    good = sign("POST", path, "", data)
    cases = {
        "unsigned": {k: v for k, v in good.items() if k != "x-mnemo-hop-sig"},
        "wrong key": sign("POST", path, "", data, key="not-the-cluster-key"),
        "other path": sign("POST", "/v1/spaces/other/memories", "", data),
        "old": sign("POST", path, "", data, now_ms=int(time.time() * 1000) - 120000),
        "role raised": dict(good, **{"x-mnemo-hop-role": "admin", "x-mnemo-hop-spaces": "x"}),
    }
    for what, h in cases.items():
        r = send(h)
        assert r.status == 401, (what, r.status, r.body)
        assert r.json["error"]["code"] == "unauthenticated", what
    # the signed head with another body: refused by the body check before anything runs
    r = send(good, json.dumps({"content": "other", "embedding": EMB}).encode())
    assert r.status == 401 and "body" in r.json["error"]["message"], r.body
    # a valid hop whose grant does not allow the operation
    r = send(sign("POST", path, "", data, role="read"))
    assert r.status == 403 and r.json["error"]["code"] == "permission_denied", r.body
    r = send(sign("POST", path, "", data, role="write", spaces="elsewhere"))
    assert r.status == 403, r.body
    # a node with auth off vouches for nobody where auth is on
    r = send(sign("POST", path, "", data, role="open"))
    assert r.status == 401, r.body
    # nothing of it was stored, on any copy
    for s in nodes:
        r = call(s, "GET", "/v1/spaces/%s/memories" % SPACE, query={"read": "nearest"})
        assert "smuggled" not in [m["content"] for m in r.json["memories"]]
    # a good hop is served where it lands (never forwarded again), whoever is primary
    q = sign("GET", path, "", b"", role="read", spaces=SPACE)
    with target.client(timeout=10.0, key=None) as c:
        r = c.raw("GET", path, headers=q)
    assert r.status == 200 and r.headers["x-mnemo-served-by"] == ids[(p + 1) % 3], r.body
    # the same hop once more is a replay
    with target.client(timeout=10.0, key=None) as c:
        r = c.raw("GET", path, headers=q)
    assert r.status == 401 and "replayed" in r.json["error"]["message"], r.body


def grpc_error(fn, *args):
    with pytest.raises(grpc.RpcError) as ei:
        fn(*args)
    return ei.value


def test_grpc_calls_are_forwarded_to_the_node_that_serves_them(cluster):
    nodes, ids, p = cluster
    replica, other = nodes[(p + 1) % 3], nodes[(p + 2) % 3]
    mem = pb().Memory(content="over grpc through a replica", embedding=EMB)
    with Grpc("127.0.0.1:%d" % replica.grpc_port, api_key=WRITER) as g, \
            Grpc("127.0.0.1:%d" % other.grpc_port, api_key=WRITER) as g2, \
            Grpc("127.0.0.1:%d" % nodes[p].grpc_port, api_key=WRITER) as gp:
        # a write through a replica runs on the primary and waits for its level there
        r = g.Remember(pb().RememberRequest(space=SPACE, memory=mem, consistency="all"))
        assert r.id
        # read=primary (the default) through the other replica: the primary's answer
        got = g2.GetMemory(pb().GetMemoryRequest(space=SPACE, id=r.id))
        assert got.content == "over grpc through a replica"
        listed = g2.ListMemories(pb().ListMemoriesRequest(space=SPACE, limit=1000))
        assert r.id in [m.id for m in listed.memories]
        # read=nearest is served where it arrives (every copy has the write: level all)
        near = g.Recall(pb().RecallRequest(space=SPACE, embedding=EMB, read="nearest", k=50))
        assert r.id in [h.id for h in near.results]
        # an error travels back as the primary itself answers it
        missing = r.id[:-4] + ("0000" if r.id[-4:] != "0000" else "1111")
        e_here = grpc_error(gp.GetMemory, pb().GetMemoryRequest(space=SPACE, id=missing))
        e_fwd = grpc_error(g.GetMemory, pb().GetMemoryRequest(space=SPACE, id=missing))
        assert e_fwd.code() == e_here.code() == grpc.StatusCode.NOT_FOUND, e_fwd.details()
        assert error_code(e_fwd) == error_code(e_here), (error_code(e_fwd), error_code(e_here))
        assert e_fwd.details() == e_here.details()
        # options are still checked where the call arrives
        e = grpc_error(g.Remember, pb().RememberRequest(space=SPACE, memory=mem,
                                                        consistency="most"))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.details().startswith("consistency:"), e.details()
        # a RememberBatch stream is forwarded whole once it ended: all or nothing there too
        batch = [pb().RememberRequest(space=SPACE, consistency="all", memory=pb().Memory(
            content="batched %d" % i, embedding=EMB)) for i in range(3)]
        got = g.RememberBatch(iter(batch)).ids
        assert len(got) == 3 and all(got)
        listed = gp.ListMemories(pb().ListMemoriesRequest(space=SPACE, limit=1000))
        assert set(got) <= {m.id for m in listed.memories}
        bad = [pb().RememberRequest(space=SPACE, memory=pb().Memory(content="ok", embedding=EMB)),
               pb().RememberRequest(space=SPACE, memory=pb().Memory(content="short",
                                                                    embedding=[1.0]))]
        e_here = grpc_error(gp.RememberBatch, iter(bad))
        e_fwd = grpc_error(g.RememberBatch, iter(bad))
        assert e_fwd.code() == e_here.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e_fwd.details() == e_here.details() and "memories[1]" in e_fwd.details()
        listed = gp.ListMemories(pb().ListMemoriesRequest(space=SPACE, limit=1000))
        assert "short" not in [m.content for m in listed.memories]
    # the reader key may not write, through any node
    with Grpc("127.0.0.1:%d" % replica.grpc_port, api_key=READER) as g:
        e = grpc_error(g.Remember, pb().RememberRequest(space=SPACE, memory=mem))
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e.details()
        assert g.ListMemories(pb().ListMemoriesRequest(space=SPACE)).memories is not None
    # the internal route takes signed hops only
    r = call(replica, "POST", "/v1/spaces/%s/grpc/Remember" % SPACE, {"x": 1})
    assert r.status == 401, (r.status, r.body)


def grpc_hop(server, method, body, **kw):
    path = "/v1/spaces/%s/grpc/%s" % (SPACE, method)
    with server.client(timeout=10.0, key=None) as c:
        return c.raw("POST", path, body=body, headers=sign("POST", path, "", body, **kw))


def test_hostile_grpc_hops_are_refused_and_store_nothing(cluster):
    nodes, ids, p = cluster
    primary = nodes[p]
    # garbage where a packed request belongs: an envelope carrying the decode error
    r = grpc_hop(primary, "Remember", b"\xff\xfe not protobuf", role="write", spaces=SPACE)
    assert r.status == 200 and r.body[:4] == b"MNGH", (r.status, r.body)
    assert b"malformed request" in r.body, r.body
    # a stream cut short, a server stream, a method that is not there
    r = grpc_hop(primary, "RememberBatch", b"\x00\x00\x00\x09abc", role="write", spaces=SPACE)
    assert r.status == 200 and b"a cut stream frame" in r.body, r.body
    for m in ("Watch", "NoSuchMethod"):
        r = grpc_hop(primary, m, b"", role="write", spaces=SPACE)
        assert r.status == 404, (m, r.status, r.body)
    # a grant that does not allow the method's own operation (the gate admits a read)
    req = pb().RememberRequest(space=SPACE, memory=pb().Memory(content="smuggled by grpc",
                                                               embedding=EMB))
    r = grpc_hop(primary, "Remember", req.SerializeToString(), role="read", spaces=SPACE)
    assert r.status == 403 and r.json["error"]["code"] == "permission_denied", r.body
    # the same body under another signature's digest
    body = req.SerializeToString()
    path = "/v1/spaces/%s/grpc/Remember" % SPACE
    h = sign("POST", path, "", body + b"x", role="write", spaces=SPACE)
    with primary.client(timeout=10.0, key=None) as c:
        r = c.raw("POST", path, body=body, headers=h)
    assert r.status == 401, (r.status, r.body)
    r = call(primary, "GET", "/v1/spaces/%s/memories" % SPACE, query={"limit": "1000"})
    assert "smuggled by grpc" not in [m["content"] for m in r.json["memories"]]


def own_holder(server, node_id):
    """node_id's holder of SPACE in server's GET /v1/cluster/spaces."""
    with server.client(timeout=5.0) as c:
        doc = c.request("GET", "/v1/cluster/spaces")
    sp = next(x for x in doc["spaces"] if x["name"] == SPACE)
    return next(h for h in sp["holders"] if h["node"] == node_id)


def test_a_replica_knows_its_own_lag_and_says_it(cluster):
    nodes, ids, p = cluster
    k = (p + 1) % 3
    replica = nodes[k]
    assert remember(nodes[p], "lag probe").status == 201
    # following a primary it hears (heartbeats every 100 ms): its own lag is known and small
    wait_until(lambda: (own_holder(replica, ids[k])["lag_ms"] is not None
                        and own_holder(replica, ids[k])["lag_ms"] < 1000), DEADLINE_S,
               what="the replica's own lag known and under 1 s")
    assert "lagging" not in own_holder(replica, ids[k])
    series = 'mnemo_repl_replica_lag_seconds{replica="%s"}' % ids[k]

    def exported():  # metrics are exported every 200 ms
        with replica.client(timeout=5.0) as c:
            return series in c.raw("GET", "/metrics", headers={"Accept": "text/plain"}).body.decode()
    wait_until(exported, DEADLINE_S, what="the replica's own lag series in /metrics")
    r = call(replica, "POST", "/v1/spaces/%s/recall" % SPACE, {"embedding": EMB,
                                                               "read": "nearest"})
    assert r.status == 200 and r.headers["x-mnemo-served-by"] == ids[k], r.body
    assert int(r.headers["x-mnemo-replica-lag-ms"]) < 1000
    assert all("stale_replica" not in h["confidence"]["reasons"] for h in r.json["results"])
    # its primary paused, it hears nothing: its lag grows by its own clock past 1 s
    os.kill(nodes[p].proc.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: own_holder(replica, ids[k]).get("lagging") is True, DEADLINE_S,
                   interval_s=0.1, what="the replica flagging itself lagging")
        wait_until(lambda: "%s's copy is" % ids[k] in replica.log(), DEADLINE_S,
                   interval_s=0.1, what="the lag warning in the replica's log")

        def stale_answer():
            r = call(replica, "POST", "/v1/spaces/%s/recall" % SPACE,
                     {"embedding": EMB, "read": "nearest"})
            assert r.status == 200, r.body
            if r.headers["x-mnemo-served-by"] != ids[k]:
                return None  # past 10 s: out of rotation (a slow machine); judged below
            lag = int(r.headers["x-mnemo-replica-lag-ms"])
            assert lag > 1000 and r.json["replica_lag_ms"] == lag, r.json
            assert r.json["results"]
            assert all("stale_replica" in h["confidence"]["reasons"] for h in r.json["results"])
            return True
        assert stale_answer(), "the replica's copy was out of rotation already"
        # a recall over many spaces served from the same copy says it too
        r = call(replica, "POST", "/v1/recall", {"spaces": [SPACE], "embedding": EMB,
                                                 "read": "nearest"})
        assert r.status == 200 and r.json["results"] and r.json["missing"] == [], r.body
        assert all("stale_replica" in h["confidence"]["reasons"] for h in r.json["results"])
    finally:
        os.kill(nodes[p].proc.pid, signal.SIGCONT)
    wait_until(lambda: "lagging" not in own_holder(replica, ids[k]), DEADLINE_S,
               what="the replica caught up again")
    wait_until(lambda: "within 500 ms of its primary again" in replica.log(), DEADLINE_S,
               what="the replica's log saying it caught up")


def test_paused_primary_gets_503_and_opens_the_breaker(cluster):
    nodes, ids, p = cluster
    via = nodes[(p + 1) % 3]
    os.kill(nodes[p].proc.pid, signal.SIGSTOP)
    try:
        messages = []
        for i in range(4):
            # the client waits longer than the forward timeout: the answer comes first
            r = call(via, "POST", "/v1/spaces/%s/memories" % SPACE,
                     {"content": "while paused %d" % i, "embedding": EMB, "idempotency_key":
                      "paused-%d" % i}, timeout=FORWARD_TIMEOUT_MS / 1000.0 * 6 + 5)
            assert r.status == 503 and r.json["error"]["code"] == "unavailable", r.body
            assert r.headers.get("retry-after") == "1"
            messages.append(r.json["error"]["message"])
        assert "may or may not have been applied" in messages[0], messages[0]
        # three failures in a row opened the breaker: the fourth was not even sent
        assert "circuit breaker open" in messages[3], messages
        with via.client(timeout=5.0) as c:
            m = c.raw("GET", "/metrics", headers={"Accept": "text/plain"}).body.decode()
        assert "mnemo_route_breaker_opens_total 1" in m, m[-2000:]
        assert 'mnemo_route_forwards_total{result="failed"} 4' in m
        # a read=nearest read falls back to a replica in rotation (read=primary takes only a
        # copy whose lag is known, and only the primary knows lags)
        r = call(via, "GET", "/v1/spaces/%s/memories?read=nearest" % SPACE, timeout=30.0)
        assert r.status == 200 and r.headers["x-mnemo-served-by"] != ids[p], r.body
    finally:
        os.kill(nodes[p].proc.pid, signal.SIGCONT)

    def write_goes_through():
        r = call(via, "POST", "/v1/spaces/%s/memories" % SPACE,
                 {"content": "after resume", "embedding": EMB, "idempotency_key": "resumed"})
        return r.status == 201 and r.headers["x-mnemo-served-by"] == ids[p]

    # after breaker_open_ms one probe goes through and closes the breaker
    wait_until(write_goes_through, DEADLINE_S, interval_s=0.25,
               what="writes reaching the primary again")


def test_single_node_validates_the_options(server, client):
    client.create_space("opts", dim=4)
    base = "/v1/spaces/opts"

    def status(method, path, body=None, query=None):
        r = client.raw(method, path, body=body, query=query)
        return r.status, (r.json or {}).get("error", {}).get("message", "")

    for level in ("one", "quorum", "all"):
        st, _ = status("POST", base + "/memories", {"content": level, "embedding": EMB,
                                                    "consistency": level})
        assert st == 201
    st, msg = status("POST", base + "/memories", {"content": "x", "consistency": "most"})
    assert st == 422 and msg.startswith("consistency:"), msg
    st, msg = status("POST", base + "/memories", {"consistency": 3, "content": "x"})
    assert st == 422 and msg.startswith("consistency:"), msg
    st, _ = status("POST", base + "/memories", {"memories": [{"content": "a", "embedding": EMB}],
                                                "consistency": "all"})
    assert st == 201
    st, msg = status("POST", base + "/memories",
                     {"memories": [{"content": "a", "embedding": EMB, "consistency": "all"}]})
    assert st == 422 and msg.startswith("memories[0].consistency:"), msg
    mid = client.raw("POST", base + "/memories", body={"content": "to change",
                                                       "embedding": EMB}).json["id"]
    st, msg = status("PATCH", base + "/memories/" + mid, {"content": "y", "consistency": "x"})
    assert st == 422 and msg.startswith("consistency:"), msg
    st, _ = status("PATCH", base + "/memories/" + mid, {"content": "changed",
                                                       "consistency": "quorum"})
    assert st == 200
    st, msg = status("POST", base + "/memories/%s/invalidate" % mid, {"consistency": "x"})
    assert st == 422 and msg.startswith("consistency:"), msg
    st, msg = status("POST", base + "/forget", {"tags_any": ["t"], "consistency": "x"})
    assert st == 422 and msg.startswith("consistency:"), msg
    st, msg = status("DELETE", base + "/memories/" + mid, query={"consistency": "x"})
    assert st == 422 and msg.startswith("consistency:"), msg
    for pref in ("primary", "nearest"):
        assert status("GET", base + "/memories", query={"read": pref})[0] == 200
        assert status("GET", base + "/memories/" + mid, query={"read": pref})[0] == 200
        assert status("POST", base + "/recall", {"embedding": EMB, "read": pref})[0] == 200
    for path, q in ((base + "/memories", {"read": "far"}),
                    (base + "/memories/" + mid, {"read": "far"})):
        st, msg = status("GET", path, query=q)
        assert st == 422 and msg.startswith("read:"), msg
    st, msg = status("POST", base + "/recall", {"embedding": EMB, "read": 1})
    assert st == 422 and msg.startswith("read:"), msg
    st, _ = status("DELETE", base + "/memories/" + mid, query={"consistency": "all"})
    assert st == 200
    # the same over gRPC
    g = Grpc("127.0.0.1:%d" % server.grpc_port)
    try:
        mem = pb().Memory(content="g", embedding=EMB)
        r = g.Remember(pb().RememberRequest(space="opts", memory=mem, consistency="quorum"))
        for bad in (pb().RememberRequest(space="opts", memory=mem, consistency="x"),):
            e = grpc_error(g.Remember, bad)
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "consistency" in e.details()
        e = grpc_error(g.GetMemory, pb().GetMemoryRequest(space="opts", id=r.id, read="far"))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and e.details().startswith("read:")
        g.GetMemory(pb().GetMemoryRequest(space="opts", id=r.id, read="nearest"))
        g.Forget(pb().ForgetRequest(space="opts", id=r.id, consistency="one"))
    finally:
        g.close()
    # a hop header without cluster mode is no hop: nothing routes, the key rules apply
    r = client.raw("GET", base + "/memories", headers={"x-mnemo-hop-node": "x"})
    assert r.status == 200 and "x-mnemo-served-by" not in r.headers
