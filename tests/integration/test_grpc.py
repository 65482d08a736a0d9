"""The gRPC API (mnemo.v1.Mnemo) against a real server, called from Python with Debian's
python3-grpcio (messages generated from api/proto/mnemo/v1/mnemo.proto by protoc): every
method, the same data and answers as the HTTP API, errors as gRPC statuses carrying the HTTP
error codes, client-streaming RememberBatch (all or nothing), the Watch stream, malformed and
oversized messages, API keys, TLS, metrics, and acknowledged writes surviving kill -9."""

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time

import grpc
import pytest

from conftest import MnemoServer, node_client, wait_until
from grpc_util import Grpc, error_code, error_details, g, gserver, pb  # noqa: F401 (g, gserver: fixtures)


@pytest.fixture
def http(gserver):
    c = gserver.client()
    yield c
    c.close()


_n = [0]


@pytest.fixture
def space(g):
    _n[0] += 1
    name = "g%d" % _n[0]
    g.CreateSpace(pb().CreateSpaceRequest(name=name, dim=3, metric=pb().METRIC_COSINE))
    return name


def mem(content, emb, **kw):
    return pb().Memory(content=content, embedding=emb, **kw)


def expect(code, mnemo_code, fn, *args, **kw):
    with pytest.raises(grpc.RpcError) as ei:
        fn(*args, **kw)
    e = ei.value
    assert e.code() == code, (e.code(), e.details())
    if mnemo_code:
        assert error_code(e) == mnemo_code, e.trailing_metadata()
    return e


# ---- every method ----

def test_health_and_spaces(g, http):
    h = g.Health(pb().HealthRequest())
    assert h.status == "ok" and h.version == http.health()["version"]
    s = g.CreateSpace(pb().CreateSpaceRequest(name="gspaces", dim=4, metric=pb().METRIC_L2,
                                              default_lifecycle=pb().LIFECYCLE_SESSION))
    assert (s.name, s.dim, s.metric, s.default_lifecycle) == (
        "gspaces", 4, pb().METRIC_L2, pb().LIFECYCLE_SESSION)
    assert s.created_at_ms > 0
    names = [x.name for x in g.ListSpaces(pb().ListSpacesRequest()).spaces]
    assert "gspaces" in names and names == sorted(names)
    assert [x["name"] for x in http.list_spaces()] == names
    st = g.GetSpace(pb().SpaceRequest(space="gspaces"))
    assert st.space.name == "gspaces" and st.memories == 0 and st.index_state == "none"
    d = g.DropSpace(pb().SpaceRequest(space="gspaces"))
    assert d.name == "gspaces" and d.deleted
    expect(grpc.StatusCode.NOT_FOUND, "space_not_found", g.Stats, pb().SpaceRequest(space="gspaces"))


def test_space_index_parameters(g, http):
    ix = pb().IndexParams(m=24, ef_construction=120, ef_search=30, quantize=True)
    s = g.CreateSpace(pb().CreateSpaceRequest(name="gindex", dim=4, index=ix))
    assert (s.index.m, s.index.ef_construction, s.index.ef_search, s.index.quantize) == (
        24, 120, 30, True)
    # absent fields take the server defaults; the HTTP space object says the same
    s = g.CreateSpace(pb().CreateSpaceRequest(name="gindex2", dim=4,
                                              index=pb().IndexParams(ef_search=10)))
    assert (s.index.m, s.index.ef_construction, s.index.ef_search, s.index.quantize) == (
        16, 200, 10, False)
    assert http.get_space("gindex")["index"] == {"m": 24, "ef_construction": 120,
                                                  "ef_search": 30, "quantize": True}
    listed = {x.name: x for x in g.ListSpaces(pb().ListSpacesRequest()).spaces}
    assert listed["gindex"].index.m == 24 and listed["gindex2"].index.ef_search == 10
    for bad in (pb().IndexParams(m=65), pb().IndexParams(m=0), pb().IndexParams(ef_search=5000)):
        e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.CreateSpace,
                   pb().CreateSpaceRequest(name="gbad", dim=4, index=bad))
        assert e.details().startswith("index"), e.details()
    for name in ("gindex", "gindex2"):
        g.DropSpace(pb().SpaceRequest(space=name))


def test_remember_get_list_forget_unsuppress(g, http, space):
    r = g.Remember(pb().RememberRequest(space=space, memory=mem(
        "met Ada at the station", [0.1, 0.7, 0.2], confidence=0.75, importance=0.9,
        emotional_valence=-0.5, context=pb().Context(who=["ada"], where="station", session="s1"),
        tags=["travel"], metadata=[pb().MetadataEntry(key="source", value="chat")],
        when_ms=1767000000000)))
    m = g.GetMemory(pb().GetMemoryRequest(space=space, id=r.id, include_embedding=True))
    assert m.content == "met Ada at the station" and m.kind == pb().KIND_EPISODIC
    assert list(m.context.who) == ["ada"] and m.context.where == "station"
    assert list(m.tags) == ["travel"] and [(e.key, e.value) for e in m.metadata] == [("source", "chat")]
    assert m.when_ms == 1767000000000 and abs(m.confidence - 0.75) < 1e-6
    assert [round(x, 5) for x in m.embedding] == [0.1, 0.7, 0.2]
    # the HTTP API sees the same memory
    h = http.get(space, r.id)
    assert h["content"] == m.content and h["context"]["who"] == ["ada"]
    assert not g.GetMemory(pb().GetMemoryRequest(space=space, id=r.id)).embedding

    ids = [r.id] + [g.Remember(pb().RememberRequest(space=space, memory=mem(
        "m%d" % i, [0, 1, i], when_ms=1767000000000 + i + 1))).id for i in range(4)]
    page = g.ListMemories(pb().ListMemoriesRequest(space=space, limit=2))
    seen = [x.id for x in page.memories]
    while page.next:
        page = g.ListMemories(pb().ListMemoriesRequest(space=space, limit=2, cursor=page.next))
        seen += [x.id for x in page.memories]
    assert seen == ids
    f = pb().Filter(tags_any=["travel"])
    assert [x.id for x in g.ListMemories(pb().ListMemoriesRequest(space=space, filter=f)).memories] == [r.id]

    fr = g.Forget(pb().ForgetRequest(space=space, id=ids[1], mode=pb().FORGET_MODE_SUPPRESS))
    assert fr.forgotten and fr.mode == pb().FORGET_MODE_SUPPRESS
    assert g.GetMemory(pb().GetMemoryRequest(space=space, id=ids[1])).suppressed
    assert ids[1] not in [x.id for x in g.ListMemories(pb().ListMemoriesRequest(space=space)).memories]
    u = g.Unsuppress(pb().MemoryRequest(space=space, id=ids[1]))
    assert u.id == ids[1] and not u.suppressed
    g.Forget(pb().ForgetRequest(space=space, id=ids[2]))
    expect(grpc.StatusCode.NOT_FOUND, "memory_forgotten", g.GetMemory,
           pb().GetMemoryRequest(space=space, id=ids[2]))
    expect(grpc.StatusCode.NOT_FOUND, "memory_forgotten", g.Forget,
           pb().ForgetRequest(space=space, id=ids[2]))
    st = g.Stats(pb().SpaceRequest(space=space))
    assert (st.memories, st.tombstones) == (4, 1)
    assert http.stats(space)["memories"] == 4


def test_recall_matches_the_http_api(g, http, space):
    import random
    rnd = random.Random(5)
    vecs = [[rnd.uniform(-1, 1) for _ in range(3)] for _ in range(40)]
    for i, v in enumerate(vecs):
        g.Remember(pb().RememberRequest(space=space, memory=mem(
            "note %d about %s" % (i, "apples" if i % 3 else "pears"), v, tags=["t%d" % (i % 2)])))
    q = [0.3, -0.2, 0.9]

    def settled(grpc_call, http_call):
        """Both answers on one state: spreading (on by default) follows the semantic
        links the background linker is still adding, so retry until two HTTP answers
        around the gRPC one agree."""
        for _ in range(100):
            before = http_call()
            got = grpc_call()
            after = http_call()
            key = [(x["id"], x["score"]) for x in after["results"]]
            if [(x["id"], x["score"]) for x in before["results"]] == key:
                return got, after
        raise AssertionError("recall kept changing")

    gr, hr = settled(
        lambda: g.Recall(pb().RecallRequest(space=space, embedding=q, k=7,
                                            filter=pb().Filter(tags_any=["t1"]))),
        lambda: http.recall(space, embedding=q, k=7, tags_any=["t1"]))
    assert gr.path == hr["path"] == "exact"
    assert all(x.HasField("activation") for x in gr.results)  # on by default, as over HTTP
    assert [x.id for x in gr.results] == [x["id"] for x in hr["results"]]
    for a, b in zip(gr.results, hr["results"]):
        assert abs(a.score - b["score"]) < 1e-6 and a.confidence.category == b["confidence"]["category"]
        assert a.HasField("distance") and not a.HasField("keyword")
    assert abs(gr.recall_confidence - hr["recall_confidence"]) < 1e-6
    # text only and hybrid, as the HTTP API
    gt, ht = settled(lambda: g.Recall(pb().RecallRequest(space=space, text="pears", k=5)),
                     lambda: http.recall(space, text="pears", k=5))
    assert [x.id for x in gt.results] == [x["id"] for x in ht["results"]] and gt.path == "keyword"
    # a text cue ranks by words; what spreading adds has no keyword score
    assert all(not x.HasField("distance") and x.HasField("keyword") == x.seed for x in gt.results)
    gh, hh = settled(
        lambda: g.Recall(pb().RecallRequest(space=space, text="pears", embedding=q, k=5,
                                            text_weight=2)),
        lambda: http.recall(space, text="pears", embedding=q, k=5, weights={"text": 2}))
    assert [x.id for x in gh.results] == [x["id"] for x in hh["results"]]
    # spreading with a trace
    gs = g.Recall(pb().RecallRequest(space=space, embedding=q, k=5, spread=True, trace=True))
    assert all(x.HasField("activation") and x.HasField("seed") for x in gs.results)


def test_cognitive_operations(g, http, space):
    a = g.Remember(pb().RememberRequest(space=space, memory=mem(
        "coffee with sam at the corner cafe", [1, 0, 0], context=pb().Context(who=["sam"], where="corner cafe", session="day1"),
        when_ms=1767000000000)))
    b = g.Remember(pb().RememberRequest(space=space, memory=mem(
        "sam ordered a flat white", [0.99, 0.05, 0], context=pb().Context(who=["sam"], where="corner cafe", session="day1"),
        when_ms=1767000060000)))
    c = g.Remember(pb().RememberRequest(space=space, memory=mem(
        "sam paid for both coffees", [0.98, 0.1, 0], context=pb().Context(who=["sam"], where="corner cafe", session="day1"),
        when_ms=1767000120000)))
    r = g.Associate(pb().AssociateRequest(space=space, edges=[
        pb().Edge(**{"from": a.id, "to": c.id, "kind": pb().EDGE_KIND_CAUSAL, "weight": 0.9})]))
    assert r.created == 1
    assoc = g.ListAssociations(pb().MemoryRequest(space=space, id=a.id)).associations
    causal = [x for x in assoc if x.kind == pb().EDGE_KIND_CAUSAL]
    assert len(causal) == 1 and causal[0].id == c.id and causal[0].outgoing
    assert any(x.kind == pb().EDGE_KIND_TEMPORAL and x.id == b.id for x in assoc)
    assert len(assoc) == len(http.associations(space, a.id))

    rec = g.Recognize(pb().RecognizeRequest(space=space, embedding=[1, 0.01, 0]))
    assert rec.recognized and rec.best == a.id and rec.familiarity > 0.99
    assert not g.Recognize(pb().RecognizeRequest(space=space, embedding=[0, 0, 1])).recognized

    rem = g.Reminisce(pb().ReminisceRequest(space=space, filter=pb().Filter(
        who="sam", when_from_ms=1767000030000)))
    assert [x.id for x in rem.memories] == [b.id, c.id]

    comp = g.Complete(pb().CompleteRequest(space=space, partial=mem("", [1, 0.02, 0]), k=3))
    assert comp.candidates and comp.candidates[0].id == a.id
    fields = {f.field: f for f in comp.fields}
    assert fields["where"].value == "corner cafe" and 0 < fields["where"].confidence <= 1

    # a filter scopes which changes of the full run are applied (api.md, consolidate)
    none = g.Consolidate(pb().ConsolidateRequest(space=space, min_support=3, filter=pb().Filter(
        expr='{"tags": {"contains": "nope"}}')))
    assert (none.created, none.skipped, len(none.ids)) == (0, 1, 0) and none.candidates == 3
    for f, msg in ((pb().Filter(as_of_ms=1), "filter.as_of: consolidation works on the space"),
                   (pb().Filter(expr='{"tags": {"like": "x"}}'),
                    "filter.tags.like: unknown operator")):
        e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Consolidate,
                   pb().ConsolidateRequest(space=space, filter=f))
        assert msg in e.details()
    con = g.Consolidate(pb().ConsolidateRequest(space=space, min_support=3,
                                                filter=pb().Filter(who="sam")))
    assert con.created == 1 and con.episodes == 3 and len(con.ids) == 1 and con.skipped == 0
    sem = g.GetMemory(pb().GetMemoryRequest(space=space, id=con.ids[0]))
    assert sem.kind == pb().KIND_SEMANTIC and sorted(sem.support) == sorted([a.id, b.id, c.id])
    again = g.Consolidate(pb().ConsolidateRequest(space=space))
    assert (again.created, again.retired) == (0, 0) and again.HasField("retired")

    # the ranges are the engine's, so gRPC answers as HTTP does (test_api_cognitive)
    for req, msg in ((pb().ConsolidateRequest(space=space, threshold=1.5),
                      "threshold: must be in 0..1 (0 = default)"),
                     (pb().ConsolidateRequest(space=space, min_support=100001),
                      "min_support: must be in 0..100000 (0 = default)")):
        e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Consolidate, req)
        assert e.details() == msg
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Recognize,
               pb().RecognizeRequest(space=space, embedding=[1, 0, 0], threshold=1.5))
    assert e.details() == "threshold: must be in 0..1 (0 = default)"


def test_as_of_view_over_grpc(g, space):
    keep = g.Remember(pb().RememberRequest(space=space, memory=mem("kept", [1, 0, 0]))).id
    gone = g.Remember(pb().RememberRequest(space=space, memory=mem("deleted later", [0, 1, 0]))).id
    wait_until(lambda: int(time.time() * 1000) > g.GetMemory(
        pb().GetMemoryRequest(space=space, id=gone)).created_at_ms, 5, what="the clock to move on")
    then = int(time.time() * 1000)
    wait_until(lambda: int(time.time() * 1000) > then + 1, 5, what="the clock to move on")
    g.Forget(pb().ForgetRequest(space=space, id=gone))
    later = g.Remember(pb().RememberRequest(space=space, memory=mem("later", [0, 0, 1]))).id
    now = [m.id for m in g.ListMemories(pb().ListMemoriesRequest(space=space)).memories]
    assert now == [keep, later]
    view = g.ListMemories(pb().ListMemoriesRequest(space=space, filter=pb().Filter(as_of_ms=then)))
    assert [m.id for m in view.memories] == [keep, gone]
    assert view.memories[0].content == "kept" and not view.memories[0].forgotten
    red = view.memories[1]
    assert red.forgotten and red.forgotten_at_ms >= then and red.when_ms > 0
    assert not red.HasField("content") and not red.embedding
    hits = g.Recall(pb().RecallRequest(space=space, embedding=[0, 1, 0], spread=False,
                                       filter=pb().Filter(as_of_ms=then))).results
    assert [h.id for h in hits] == [keep]  # what has no content or vector is never ranked
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.ListMemories,
               pb().ListMemoriesRequest(space=space, filter=pb().Filter(as_of_ms=then + 3600000)))
    assert e.details().startswith("as_of:")


def test_checkpoint(g, space, tmp_path):
    g.Remember(pb().RememberRequest(space=space, memory=mem("kept", [1, 0, 0])))
    target = str(tmp_path / "cp")
    assert g.Checkpoint(pb().CheckpointRequest(path=target)).path == target
    assert os.path.isdir(target)
    expect(grpc.StatusCode.ALREADY_EXISTS, "already_exists", g.Checkpoint,
           pb().CheckpointRequest(path=target))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Checkpoint,
           pb().CheckpointRequest())


def test_cluster_spaces_on_a_single_node_is_not_found(g):
    e = expect(grpc.StatusCode.NOT_FOUND, None, g.ClusterSpaces, pb().ClusterSpacesRequest())
    assert "runs alone" in e.details()


@pytest.mark.parametrize("method,lacks", [("ClusterGossip", "gossip"), ("ClusterHints", "hints")])
def test_cluster_gossip_and_hints_on_a_single_node_are_not_found(g, method, lacks):
    req = getattr(pb(), method + "Request")()
    e = expect(grpc.StatusCode.NOT_FOUND, None, getattr(g, method), req)
    assert "runs alone" in e.details() and "no " + lacks in e.details()


# ---- RememberBatch ----

def test_remember_batch_is_all_or_nothing(g, http, space):
    reqs = [pb().RememberRequest(space=space, memory=mem("b%d" % i, [1, i, 0])) for i in range(50)]
    ids = g.RememberBatch(iter(reqs)).ids
    assert len(ids) == 50 and len(set(ids)) == 50
    assert [http.get(space, i)["content"] for i in ids[:3]] == ["b0", "b1", "b2"]
    bad = reqs[:10] + [pb().RememberRequest(space=space, memory=mem("bad", [1, 0]))] + reqs[:5]
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.RememberBatch, iter(bad))
    assert "memories[10].embedding: expected 3 values, got 2" in e.details()
    assert g.Stats(pb().SpaceRequest(space=space)).memories == 50
    mixed = [reqs[0], pb().RememberRequest(space="other", memory=mem("x", [1, 0, 0]))]
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.RememberBatch, iter(mixed))
    assert "memories[1].space" in e.details()
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.RememberBatch, iter([]))
    assert "no message" in e.details()
    too_many = (pb().RememberRequest(space=space, memory=mem("x", [1, 0, 0])) for _ in range(1001))
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.RememberBatch, too_many)
    assert "more than 1000" in e.details()
    assert g.Stats(pb().SpaceRequest(space=space)).memories == 50
    # idempotency keys work as over HTTP
    k = [pb().RememberRequest(space=space, memory=mem("i", [0, 1, 0], idempotency_key="k-1"))]
    assert g.RememberBatch(iter(k)).ids == g.RememberBatch(iter(k)).ids


# ---- errors ----

def test_errors_carry_the_http_codes(g, space):
    e = expect(grpc.StatusCode.NOT_FOUND, "space_not_found", g.Recall,
               pb().RecallRequest(space="nope", embedding=[1, 0, 0]))
    assert e.details() == 'space "nope" not found'
    status, infos = error_details(e)
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0] and status.message == e.details()
    assert infos and infos[0].reason == "space_not_found" and infos[0].domain == "mnemo"
    assert "ListSpaces" in infos[0].metadata["hint"]
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Remember,
               pb().RememberRequest(space=space, memory=mem("x", [1, 0])))
    assert e.details() == "embedding: expected 3 values, got 2"
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Remember,
               pb().RememberRequest(space=space, memory=mem("x", [1, float("nan"), 0])))
    assert "embedding[1]: not a finite float32" in e.details()
    expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Remember,
           pb().RememberRequest(space=space))
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Remember,
               pb().RememberRequest(space=space, memory=mem("x", [1, 0, 0], confidence=2)))
    assert e.details() == "confidence: must be in [0, 1]"
    expect(grpc.StatusCode.ALREADY_EXISTS, "space_exists", g.CreateSpace,
           pb().CreateSpaceRequest(name=space, dim=3))
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.CreateSpace,
               pb().CreateSpaceRequest(name="Bad Name", dim=3))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.CreateSpace,
           pb().CreateSpaceRequest(name="nodim"))
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.GetMemory,
               pb().GetMemoryRequest(space=space, id="not-an-id"))
    assert e.details() == "id: not a memory id"
    expect(grpc.StatusCode.NOT_FOUND, "memory_not_found", g.GetMemory,
           pb().GetMemoryRequest(space=space, id="0190a5b2-7c1e-7d3a-9f00-1234567890ab"))
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Recall,
               pb().RecallRequest(space=space))
    assert "embedding, text, or both" in e.details()
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Recall,
               pb().RecallRequest(space=space, embedding=[1, 0, 0], k=5000))
    assert e.details().startswith("k: ")
    # timeout_ms (the cluster's bound on reaching a copy) is checked on a single node too,
    # and a valid one changes nothing there
    for bad in (0, 600001):
        e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.Recall,
                   pb().RecallRequest(space=space, embedding=[1, 0, 0], timeout_ms=bad))
        assert e.details() == "timeout_ms: must be in 1..600000, got %d" % bad, e.details()
    ok = g.Recall(pb().RecallRequest(space=space, embedding=[1, 0, 0], timeout_ms=50))
    assert ok.path != "partition" and not ok.HasField("partition")
    # an enum number the proto does not define is refused, never misread (raw bytes: the
    # Python classes will not encode one): RememberRequest{space, memory{kind = 7, content}}
    sp = space.encode()
    memory = b"\x10\x07" + b"\x1a\x01x" + b"\x22\x0c" + b"\x00\x00\x80\x3f" + b"\x00" * 8
    payload = b"\x0a" + bytes([len(sp)]) + sp + b"\x12" + bytes([len(memory)]) + memory
    with pytest.raises(grpc.RpcError) as ei:
        g.raw_unary("Remember", payload)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ei.value.details() == "kind: unknown Kind 7", ei.value.details()
    assert g.Stats(pb().SpaceRequest(space=space)).memories == 0


def test_malformed_messages_leave_data_intact(g, space):
    rid = g.Remember(pb().RememberRequest(space=space, memory=mem("precious", [1, 0, 0]))).id
    for payload in (b"\xff\xff\xff\xff", b"\x0a\x80", b"\x12\x05abc", b"\x0a" + b"\xff" * 11,
                    os.urandom(512), b"\x1a\x01"):
        with pytest.raises(grpc.RpcError) as ei:
            g.raw_unary("Remember", payload)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, payload
        assert error_code(ei.value) == "invalid_argument"
    # strings must be NUL-free UTF-8, as in the HTTP API (protobuf-c would cut at the NUL)
    sp = space.encode()

    def remember_raw(content, tags=()):
        mem_bytes = b"\x1a" + bytes([len(content)]) + content + b"\x22\x0c" + \
            b"\x00\x00\x80\x3f" + b"\x00" * 8
        for t in tags:
            mem_bytes += b"\x5a" + bytes([len(t)]) + t
        return b"\x0a" + bytes([len(sp)]) + sp + b"\x12" + bytes([len(mem_bytes)]) + mem_bytes
    for payload, msg in ((remember_raw(b"abc\x00def"), "memory.content: contains a NUL character"),
                         (remember_raw(b"caf\xe9"), "memory.content: not valid UTF-8"),
                         (remember_raw(b"ok", [b"t1", b"t\xff"]), "memory.tags[1]: not valid UTF-8")):
        with pytest.raises(grpc.RpcError) as ei:
            g.raw_unary("Remember", payload)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ei.value.details() == msg, ei.value.details()
    assert g.raw_unary("Remember", remember_raw("café".encode()))  # valid UTF-8 is fine
    # an unknown method
    f = g.channel.unary_unary("/mnemo.v1.Mnemo/Nope", request_serializer=None,
                              response_deserializer=None)
    with pytest.raises(grpc.RpcError) as ei:
        f(b"", timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert g.GetMemory(pb().GetMemoryRequest(space=space, id=rid)).content == "precious"
    assert g.Stats(pb().SpaceRequest(space=space)).memories == 2


def test_oversized_message_is_refused(server_factory):
    s = server_factory(env={"MNEMO_GRPC_MAX_MESSAGE_BYTES": "4096"})
    c = Grpc("127.0.0.1:%d" % s.grpc_port)
    c.CreateSpace(pb().CreateSpaceRequest(name="big", dim=2))
    e = expect(grpc.StatusCode.RESOURCE_EXHAUSTED, None, c.Remember,
               pb().RememberRequest(space="big", memory=mem("x" * 10000, [1, 0])))
    c.Remember(pb().RememberRequest(space="big", memory=mem("small", [1, 0])))
    # a client stream is bounded in all, as an HTTP batch's body is
    many = (pb().RememberRequest(space="big", memory=mem("y" * 1000, [1, 0])) for _ in range(10))
    e2 = expect(grpc.StatusCode.RESOURCE_EXHAUSTED, "payload_too_large", c.RememberBatch, many)
    assert "grpc.max_message_bytes" in e2.details()
    assert c.Stats(pb().SpaceRequest(space="big")).memories == 1
    c.close()
    assert e is not None


# ---- Watch ----

def test_watch_streams_the_space_events(g, space):
    w = g.Watch(pb().WatchRequest(space=space), timeout=30)
    w.initial_metadata()  # the subscription is live once the head arrived
    rid = g.Remember(pb().RememberRequest(space=space, memory=mem("seen", [1, 0, 0]))).id
    g.Forget(pb().ForgetRequest(space=space, id=rid, mode=pb().FORGET_MODE_SUPPRESS))
    g.Recall(pb().RecallRequest(space=space, embedding=[1, 0, 0]))
    evs = [next(w) for _ in range(3)]
    assert [e.seq for e in evs] == [1, 2, 3]
    assert [e.kind for e in evs] == [pb().EVENT_KIND_REMEMBER, pb().EVENT_KIND_FORGET,
                                     pb().EVENT_KIND_RECALL]
    assert evs[0].id == rid and evs[0].memory_kind == pb().KIND_EPISODIC and evs[0].lsn > 0
    assert evs[1].mode == pb().FORGET_MODE_SUPPRESS and not evs[1].expired
    assert evs[2].path == "exact" and evs[2].count == 0  # suppressed: nothing came back
    assert all(e.space == space and e.at_ms > 0 for e in evs)
    g.DropSpace(pb().SpaceRequest(space=space))
    last = next(w)
    assert last.kind == pb().EVENT_KIND_SPACE_DROPPED and last.reason
    with pytest.raises(StopIteration):
        next(w)
    assert w.code() == grpc.StatusCode.OK


def test_watch_errors_and_cancel(g, gserver, space):
    w = g.Watch(pb().WatchRequest(space="nope"))
    with pytest.raises(grpc.RpcError) as ei:
        next(w)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND and error_code(ei.value) == "space_not_found"
    # streams the client cancels are freed: many of them, then the server still serves
    for _ in range(30):
        w = g.Watch(pb().WatchRequest(space=space))
        w.initial_metadata()
        w.cancel()
    g.Remember(pb().RememberRequest(space=space, memory=mem("after", [1, 0, 0])))
    w = g.Watch(pb().WatchRequest(space=space))
    w.initial_metadata()
    g.Remember(pb().RememberRequest(space=space, memory=mem("after2", [1, 0, 0])))
    assert next(w).kind == pb().EVENT_KIND_REMEMBER
    w.cancel()


def test_slow_watch_consumer_is_dropped(server_factory):
    # no background linking or indexing: the writes are cheap and only the stream is tested
    s = server_factory(env={"MNEMO_ENGINE_LINK_MAX": "0", "MNEMO_ENGINE_HNSW_THRESHOLD": "1000000000"})
    # without BDP probing the HTTP/2 window stays at 64 KiB, so a client that does not read
    # holds up the server's sends after a few hundred events
    c = Grpc("127.0.0.1:%d" % s.grpc_port, options=[("grpc.http2.bdp_probe", 0)])
    c.CreateSpace(pb().CreateSpaceRequest(name="slow", dim=2))
    w = c.Watch(pb().WatchRequest(space="slow"), timeout=120)
    w.initial_metadata()
    http = s.client()
    written = 0
    for b in range(20):
        http.remember_batch("slow", [{"content": "m%d-%d" % (b, i), "embedding": [1, i]}
                                    for i in range(1000)])
        written += 1000
    evs = list(w)
    http.close()
    assert evs[-1].kind == pb().EVENT_KIND_DROPPED and evs[-1].reason
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
    assert len(evs) - 1 < written  # the writers never waited for the consumer
    assert all(e.kind == pb().EVENT_KIND_REMEMBER for e in evs[:-1])
    assert w.code() == grpc.StatusCode.OK
    # the server goes on serving, and a new stream works
    w2 = c.Watch(pb().WatchRequest(space="slow"))
    w2.initial_metadata()
    c.Remember(pb().RememberRequest(space="slow", memory=mem("again", [1, 0])))
    assert next(w2).kind == pb().EVENT_KIND_REMEMBER
    w2.cancel()
    c.close()


def test_slow_handshake_is_closed(server_factory):
    import socket
    s = server_factory(env={"MNEMO_GRPC_HANDSHAKE_TIMEOUT_MS": "300"})
    loris = socket.create_connection(("127.0.0.1", s.grpc_port), timeout=30)
    loris.sendall(b"PRI * HTTP/2.0\r\n")  # half a preface, then nothing
    t0 = time.monotonic()
    # the server may send its SETTINGS first; then it closes the connection (the socket
    # timeout bounds the wait)
    while loris.recv(4096):
        assert time.monotonic() - t0 < 25, "the slow connection stayed open"
    loris.close()
    c = Grpc("127.0.0.1:%d" % s.grpc_port)
    assert c.Health(pb().HealthRequest()).status == "ok"
    c.close()


def test_watch_limit(server_factory):
    s = server_factory(env={"MNEMO_GRPC_MAX_WATCHES": "2"})
    c = Grpc("127.0.0.1:%d" % s.grpc_port)
    c.CreateSpace(pb().CreateSpaceRequest(name="w", dim=2))
    a = c.Watch(pb().WatchRequest(space="w"))
    b = c.Watch(pb().WatchRequest(space="w"))
    a.initial_metadata()
    b.initial_metadata()
    third = c.Watch(pb().WatchRequest(space="w"))
    with pytest.raises(grpc.RpcError) as ei:
        next(third)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    a.cancel()
    tries = [0]

    def slot_free():
        w = c.Watch(pb().WatchRequest(space="w"))
        try:
            w.initial_metadata()
            tries[0] += 1  # a new text each try: a duplicate would publish no event
            c.Remember(pb().RememberRequest(space="w", memory=mem("x%d" % tries[0], [1, 0])))
            return next(w).kind == pb().EVENT_KIND_REMEMBER
        except grpc.RpcError:
            return False
        finally:
            w.cancel()
    wait_until(slot_free, 30, what="a freed Watch slot")
    b.cancel()
    c.close()


def test_shutdown_ends_watch_with_closed(server_factory):
    s = server_factory()
    c = Grpc("127.0.0.1:%d" % s.grpc_port)
    c.CreateSpace(pb().CreateSpaceRequest(name="w", dim=2))
    w = c.Watch(pb().WatchRequest(space="w"), timeout=60)
    w.initial_metadata()
    t0 = time.monotonic()
    s.proc.send_signal(15)
    evs = list(w)
    assert [e.kind for e in evs] == [pb().EVENT_KIND_CLOSED], evs
    assert w.code() == grpc.StatusCode.OK
    assert s._wait_exit() == 0, s.log()
    assert time.monotonic() - t0 < 30
    c.close()


# ---- concurrency and durability ----

def test_concurrent_writes_survive_kill_9(server_factory, tmp_path):
    s = server_factory()
    c = Grpc("127.0.0.1:%d" % s.grpc_port)
    c.CreateSpace(pb().CreateSpaceRequest(name="dur", dim=2))
    acked, errors = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(t):
        i = 0
        while not stop.is_set() and i < 2000:
            try:
                r = c.Remember(pb().RememberRequest(space="dur", memory=mem("w%d-%d" % (t, i), [1, i])), timeout=10)
            except grpc.RpcError as e:
                with lock:
                    errors.append(e.code())
                return
            with lock:
                acked.append(r.id)
            i += 1

    ths = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in ths:
        t.start()
    wait_until(lambda: len(acked) >= 200, 60, what="200 acknowledged writes")
    s.kill()
    stop.set()
    for t in ths:
        t.join(timeout=60)
    c.close()
    s.start()
    c = Grpc("127.0.0.1:%d" % s.grpc_port)
    with lock:
        ids = list(acked)
    for rid in ids:
        assert c.GetMemory(pb().GetMemoryRequest(space="dur", id=rid)).id == rid
    c.close()


# ---- metrics, auth, TLS, exposure ----

def test_metrics_count_grpc_calls(g, http, space):
    g.Stats(pb().SpaceRequest(space=space))
    with pytest.raises(grpc.RpcError):
        g.Stats(pb().SpaceRequest(space="missing"))
    text = http.metrics()
    assert 'mnemo_grpc_requests_total{method="Stats",code="OK"}' in text
    assert 'mnemo_grpc_requests_total{method="Stats",code="NOT_FOUND"}' in text
    assert 'mnemo_grpc_request_duration_seconds_bucket{method="Stats",code="OK",le="+Inf"}' in text


KEYS = {"admin": ("g-admin-0123456789", "admin", ["*"]),
        "writer": ("g-writer-0123456789", "write", ["alpha"]),
        "reader": ("g-reader-0123456789", "read", ["alpha"])}


def keys_toml():
    out = ["[auth]", "enabled = true", ""]
    for name, (key, role, spaces) in KEYS.items():
        out += ["[[auth.keys]]", 'name = "%s"' % name,
                'sha256 = "%s"' % hashlib.sha256(key.encode()).hexdigest(),
                'role = "%s"' % role, "spaces = [%s]" % ", ".join('"%s"' % x for x in spaces), ""]
    return "\n".join(out)


def test_api_keys(server_factory, tmp_path):
    cfg = tmp_path / "auth.toml"
    cfg.write_text(keys_toml())
    s = server_factory(args=["--config", str(cfg)])
    target = "127.0.0.1:%d" % s.grpc_port
    anon, admin = Grpc(target), Grpc(target, api_key=KEYS["admin"][0])
    writer, reader = Grpc(target, api_key=KEYS["writer"][0]), Grpc(target, api_key=KEYS["reader"][0])
    bad = Grpc(target, api_key="not-a-key")
    assert anon.Health(pb().HealthRequest()).status == "ok"  # open, as GET /health
    for c in (anon, bad):
        expect(grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", c.ListSpaces,
               pb().ListSpacesRequest())
    expect(grpc.StatusCode.PERMISSION_DENIED, "permission_denied", writer.CreateSpace,
           pb().CreateSpaceRequest(name="alpha", dim=2))
    admin.CreateSpace(pb().CreateSpaceRequest(name="alpha", dim=2))
    admin.CreateSpace(pb().CreateSpaceRequest(name="beta", dim=2))
    rid = writer.Remember(pb().RememberRequest(space="alpha", memory=mem("a", [1, 0]))).id
    e = expect(grpc.StatusCode.PERMISSION_DENIED, "permission_denied", writer.Remember,
               pb().RememberRequest(space="beta", memory=mem("b", [1, 0])))
    assert 'space "beta"' in e.details()
    expect(grpc.StatusCode.PERMISSION_DENIED, "permission_denied", reader.Remember,
           pb().RememberRequest(space="alpha", memory=mem("c", [1, 0])))
    assert reader.GetMemory(pb().GetMemoryRequest(space="alpha", id=rid)).content == "a"
    expect(grpc.StatusCode.PERMISSION_DENIED, "permission_denied", reader.Stats,
           pb().SpaceRequest(space="beta"))
    # streams are checked the same way
    expect(grpc.StatusCode.PERMISSION_DENIED, "permission_denied", reader.RememberBatch,
           iter([pb().RememberRequest(space="alpha", memory=mem("d", [1, 0]))]))
    w = anon.Watch(pb().WatchRequest(space="alpha"))
    with pytest.raises(grpc.RpcError) as ei:
        next(w)
    assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for c in (anon, admin, writer, reader, bad):
        c.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_tls(server_factory, tmp_path):
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    s = server_factory(env={"MNEMO_GRPC_TLS_CERT": str(cert), "MNEMO_GRPC_TLS_KEY": str(key)})
    assert "(tls)" in s.log()
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    c = Grpc("localhost:%d" % s.grpc_port, credentials=creds)
    c.CreateSpace(pb().CreateSpaceRequest(name="tls", dim=2))
    rid = c.Remember(pb().RememberRequest(space="tls", memory=mem("secret", [1, 0]))).id
    assert c.GetMemory(pb().GetMemoryRequest(space="tls", id=rid)).content == "secret"
    c.close()
    plain = Grpc("127.0.0.1:%d" % s.grpc_port, timeout=5)
    with pytest.raises(grpc.RpcError) as ei:
        plain.Health(pb().HealthRequest())
    assert ei.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    plain.close()
    # a half-configured pair stops the server with a clear message
    from test_auth import run
    r = run(["serve"], env={"MNEMO_STORAGE_DATA_DIR": str(tmp_path / "d"), "MNEMO_HTTP_PORT": "0",
                            "MNEMO_GRPC_PORT": "0", "MNEMO_GRPC_TLS_CERT": str(cert)})
    assert r.returncode != 0 and "grpc.tls_key" in r.stderr, r.stderr


def test_grpc_beyond_loopback_needs_auth(tmp_path, server_factory):
    from test_auth import run
    r = run(["serve"], env={"MNEMO_STORAGE_DATA_DIR": str(tmp_path / "d"), "MNEMO_HTTP_PORT": "0",
                            "MNEMO_GRPC_PORT": "0", "MNEMO_GRPC_BIND": "0.0.0.0"})
    assert r.returncode == 2 and "gRPC API on 0.0.0.0" in r.stderr, r.stderr
    assert not (tmp_path / "d").exists()
    s = server_factory(env={"MNEMO_GRPC_ENABLED": "false"})
    assert s.grpc_port is None and "grpc listening" not in s.log()


# ---- a client nobody here wrote: @grpc/grpc-js with @grpc/proto-loader ----

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpc_node")
PROTO_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "api", "proto",
                          "mnemo", "v1", "mnemo.proto")


def test_node_grpc_js_client(gserver, http):
    p = node_client(NODE_DIR, "@grpc/grpc-js",
                    ["127.0.0.1:%d" % gserver.grpc_port, os.path.abspath(PROTO_FILE), "gnode"])
    assert p.returncode == 0, "node client failed:\n%s\n%s" % (p.stdout, p.stderr)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["space"] == {"name": "gnode", "dim": 3, "metric": "METRIC_COSINE"}
    assert len(out["batch"]) == 2
    assert out["recall"]["path"] == "exact" and out["recall"]["ids"][0] == out["remembered"]
    assert out["recall"]["top"].startswith("the spare key") and out["recall"]["category"] == "high"
    assert out["recall_text"] == {"path": "keyword", "top": "the car is parked on level 3"}
    assert out["error"] == {"code": 5, "details": 'space "no-such-space" not found',
                            "mnemo_code": "space_not_found"}
    ev = out["events"][:3]
    assert [e["seq"] for e in ev] == [1, 2, 3] and {e["kind"] for e in ev} == {"EVENT_KIND_REMEMBER"}
    assert [e["id"] for e in ev] == [out["remembered"]] + out["batch"]
    # what the Node client wrote is there over HTTP too
    assert http.get("gnode", out["remembered"])["tags"] == ["home"]
