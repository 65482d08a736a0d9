"""The filter language (docs/api.md, "Filters") against a brute-force evaluator written
here from the documentation alone: random memories through the API, random filters of every
operator, field and nesting, and the ids list and recall return compared with the Python
answer. Then the 422 paths, the shorthands (alone and ANDed with a filter), and the as-of
view of forgotten memories."""

import http.client
import json
import math
import random
import re
import threading
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from conftest import expect_error, wait_until

TAGS = ["red", "green", "blue", "x y"]
WHO = ["ann", "bob", "cy"]
WHERES = ["home", "work"]
SESSIONS = ["s1", "s2"]
META_KEYS = ["n", "s", "d"]
META_VALUES = ["5", "-3.5", "abc", "1e3", "007", "10", "", "5.", ".5", "Abc", "2024-05-01",
               "+2", "0x10", "inf"]
IMPORTANCES = [0.1, 0.25, 0.5, 0.7, 0.9]
KINDS = ["episodic", "semantic"]
LIFECYCLES = ["session", "persistent"]
BASE_MS = 1_700_000_000_000
DAY_MS = 86_400_000

NUM_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def ms_of(t):
    return int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000 + 0.5)


def rfc3339(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        "%03dZ" % (ms % 1000)


def num(s):
    if not NUM_RE.match(s):
        return None
    v = float(s)
    return v if math.isfinite(v) else None


def f32(x):
    return float(np.float32(x))


def cmp(a, b):
    return (a > b) - (a < b)


ORDER = {"gt": lambda c: c > 0, "gte": lambda c: c >= 0, "lt": lambda c: c < 0,
         "lte": lambda c: c <= 0}


# ---- the brute-force evaluator: docs/api.md "Filters", written independently ----

def field_value(m, field):
    """(present, value) of a memory (as the API returns it) for a filter field."""
    if field == "tags":
        return True, set(m["tags"])
    if field == "context.who":
        return True, set(m["context"]["who"])
    if field in ("context.where", "context.session"):
        v = m["context"][field.split(".")[1]]
        return v is not None, v
    if field.startswith("metadata."):
        v = m["metadata"].get(field[len("metadata."):])
        return v is not None, v
    if field == "importance":
        return True, f32(m["importance"])
    if field in ("when", "created_at"):
        return True, ms_of(m[field])
    return True, m[field]  # kind, lifecycle


def operand(field, x):
    if field == "importance":
        return f32(x)
    if field in ("when", "created_at"):
        return x if isinstance(x, int) else ms_of(x)
    return x


def meta_equal(v, x):
    if isinstance(x, str):
        return v == x
    n = num(v)
    return n is not None and n == x


def meta_order(v, x, op):
    nv = num(v)
    nx = num(x) if isinstance(x, str) else x
    if nv is not None and nx is not None:
        return ORDER[op](cmp(nv, nx))
    if isinstance(x, str):
        return ORDER[op](cmp(v.encode(), x.encode()))
    return False


def leaf(m, field, op, x):
    present, v = field_value(m, field)
    if op == "exists":
        return (len(v) > 0 if isinstance(v, set) else present) == x
    if isinstance(v, set):
        xs = x if isinstance(x, list) else [x]
        has = [e in v for e in xs]
        return {"eq": all, "contains": all, "in": any}.get(op, lambda h: False)(has) \
            if op not in ("ne", "nin") else not (all(has) if op == "ne" else any(has))
    if op in ("ne", "nin"):
        return not leaf(m, field, {"ne": "eq", "nin": "in"}[op], x)
    if not present:
        return False
    meta = field.startswith("metadata.")
    if op in ("eq", "in"):
        xs = x if op == "in" else [x]
        if meta:
            return any(meta_equal(v, e) for e in xs)
        return any(v == operand(field, e) for e in xs)
    if meta:
        return meta_order(v, x, op)
    return ORDER[op](cmp(v, operand(field, x)))


def evaluate(m, f):
    out = True
    for key, val in f.items():
        if key == "and":
            r = all(evaluate(m, g) for g in val)
        elif key == "or":
            r = any(evaluate(m, g) for g in val)
        elif key == "not":
            r = not evaluate(m, val)
        else:
            r = all(leaf(m, key, op, x) for op, x in val.items())
        out = out and r
    return out


# ---- random memories and filters ----

def random_memory(rng, i, dim):
    m = {"content": "memory %d" % i,
         "embedding": [rng.uniform(-1, 1) for _ in range(dim)],
         "tags": rng.sample(TAGS, rng.randint(0, 3)),
         "metadata": {k: rng.choice(META_VALUES) for k in META_KEYS if rng.random() < 0.6},
         "kind": rng.choice(KINDS),
         "lifecycle": rng.choice(LIFECYCLES),
         "importance": rng.choice(IMPORTANCES),
         "when": rfc3339(BASE_MS + rng.randint(0, 30) * DAY_MS)}
    ctx = {"who": rng.sample(WHO, rng.randint(0, 2))}
    if rng.random() < 0.6:
        ctx["where"] = rng.choice(WHERES)
    if rng.random() < 0.6:
        ctx["session"] = rng.choice(SESSIONS)
    m["context"] = ctx
    return m


def random_operand(rng, field, created):
    if field in ("tags", "context.who"):
        return rng.choice(TAGS + WHO + ["nobody"])
    if field == "context.where":
        return rng.choice(WHERES + ["moon"])
    if field == "context.session":
        return rng.choice(SESSIONS + ["s9"])
    if field.startswith("metadata."):
        return rng.choice(META_VALUES + [5, -3.5, 1000, 7, 0.5, 2])
    if field == "kind":
        return rng.choice(KINDS)
    if field == "lifecycle":
        return rng.choice(LIFECYCLES + ["ephemeral"])
    if field == "importance":
        return rng.choice(IMPORTANCES + [0.3, 0])
    if field == "when":
        ms = BASE_MS + rng.randint(-1, 31) * DAY_MS
        return ms if rng.random() < 0.5 else rfc3339(ms)
    ms = rng.choice(created)
    return ms if rng.random() < 0.5 else rfc3339(ms)


FIELDS = ["tags", "context.who", "context.where", "context.session", "metadata.n",
          "metadata.s", "metadata.d", "metadata.none", "kind", "lifecycle", "importance",
          "when", "created_at"]


def ops_for(field):
    ops = ["eq", "ne", "in", "nin", "exists"]
    if field in ("tags", "context.who"):
        ops.append("contains")
    if field.startswith("metadata.") or field in ("importance", "when", "created_at"):
        ops += ["gt", "gte", "lt", "lte"]
    return ops


def random_leaf(rng, created, field=None, op=None):
    field = field or rng.choice(FIELDS)
    op = op or rng.choice(ops_for(field))
    if op == "exists":
        x = rng.random() < 0.5
    elif op in ("in", "nin"):
        x = [random_operand(rng, field, created) for _ in range(rng.randint(0, 3))]
    elif op == "contains" and rng.random() < 0.4:
        x = [random_operand(rng, field, created) for _ in range(rng.randint(1, 2))]
    else:
        x = random_operand(rng, field, created)
    return {field: {op: x}}


def random_filter(rng, created, depth=0):
    r = rng.random()
    if depth >= 3 or r < 0.4:
        return random_leaf(rng, created)
    if r < 0.6:
        return {"not": random_filter(rng, created, depth + 1)}
    kids = [random_filter(rng, created, depth + 1) for _ in range(rng.randint(1, 3))]
    return {"and" if r < 0.8 else "or": kids}


@pytest.fixture(scope="module")
def population(server):
    """A space of random memories, and each as list returns it."""
    client = server.client()
    rng = random.Random(2026)
    dim = 4
    client.create_space("filters", dim=dim)
    mems = [random_memory(rng, i, dim) for i in range(160)]
    client.remember_batch("filters", mems)
    stored = client.list_memories("filters", limit=1000)["memories"]
    assert len(stored) == len(mems)
    return client, stored


def ids_matching(stored, f):
    return sorted(m["id"] for m in stored if evaluate(m, f))


def test_every_operator_on_every_field_equals_brute_force(population):
    client, stored = population
    created = [ms_of(m["created_at"]) for m in stored]
    rng = random.Random(7)
    checked = 0
    for field in FIELDS:
        for op in ops_for(field):
            for _ in range(4):
                f = random_leaf(rng, created, field, op)
                got = sorted(m["id"] for m in
                             client.list_memories("filters", limit=1000, filter=f)["memories"])
                assert got == ids_matching(stored, f), f
                checked += 1
    assert checked > 200


def test_random_nested_filters_list_and_recall_equal_brute_force(population):
    client, stored = population
    created = [ms_of(m["created_at"]) for m in stored]
    rng = random.Random(11)
    nonempty = 0
    for trial in range(150):
        f = random_filter(rng, created)
        want = ids_matching(stored, f)
        nonempty += bool(want) and len(want) < len(stored)
        got = sorted(m["id"] for m in
                     client.list_memories("filters", limit=1000, filter=f)["memories"])
        assert got == want, json.dumps(f)
        if trial % 3 == 0:
            res = client.recall("filters", [0.5, -0.5, 0.25, 1], k=1000, exact=True,
                                spread=False, filter=f)
            assert sorted(h["memory"]["id"] for h in res["results"]) == want, json.dumps(f)
    assert nonempty > 50  # the filters really select


def test_filter_and_shorthands_combine_by_and(population):
    client, stored = population
    f = {"or": [{"metadata.n": {"gte": 5}}, {"importance": {"lt": 0.3}}]}
    want = [m["id"] for m in stored if evaluate(m, f) and "red" in m["tags"]]
    assert want
    got = client.list_memories("filters", limit=1000, filter=f, tags_any=["red"])["memories"]
    assert sorted(m["id"] for m in got) == sorted(want)
    res = client.recall("filters", [1, 0, 0, 0], k=1000, exact=True, spread=False, filter=f,
                        tags_any=["red"], kind="episodic")
    want_ep = sorted(m["id"] for m in stored if m["id"] in want and m["kind"] == "episodic")
    assert sorted(h["memory"]["id"] for h in res["results"]) == want_ep
    # the shorthands alone still select as before
    only = client.list_memories("filters", limit=1000, who="ann")["memories"]
    assert sorted(m["id"] for m in only) == \
        sorted(m["id"] for m in stored if "ann" in m["context"]["who"])


@pytest.mark.parametrize("f,path", [
    ({"or": [{"and": [{"tags": {"contains": "red"}}, {"metadata.n": {"gte": True}}]}]},
     'filter.or[0].and[1]["metadata.n"].gte: expects a string or a number'),
    ({"colour": {"eq": "red"}}, "filter.colour: unknown field"),
    ({"tags": {"gt": "a"}}, "filter.tags.gt: applies to metadata.<key>"),
    ({"kind": {"contains": "episodic"}}, "filter.kind.contains: applies to tags"),
    ({"importance": {"eq": "high"}}, "filter.importance.eq: expects a number"),
    ({"when": {"gte": "yesterday"}}, "filter.when.gte: expects a time"),
    ({"kind": {"in": ["episodic", "dream"]}}, "filter.kind.in[1]: expects"),
    ({"tags": {"in": "red"}}, "filter.tags.in: expects an array"),
    ({"tags": {"contains": []}}, "filter.tags.contains: expects a non-empty array"),
    ({"tags": {"exists": 1}}, "filter.tags.exists: expects true or false"),
    ({"tags": {"like": "r%"}}, "filter.tags.like: unknown operator"),
    ({"tags": {}}, "filter.tags: expects an object of operators"),
    ({"not": [{"tags": {"eq": "x"}}]}, "filter.not: expects an object"),
    ({"and": {"tags": {"eq": "x"}}}, "filter.and: expects an array of filters"),
    ({"metadata.": {"eq": "x"}}, 'filter["metadata."]: names no metadata key'),
    ([1], "filter: expects an object"),
])
def test_bad_filter_is_422_naming_its_path(population, f, path):
    client, _ = population
    expect_error(lambda: client.recall("filters", [1, 0, 0, 0], filter=f), 422,
                 message_part=path)
    expect_error(lambda: client.list_memories("filters", filter=f), 422, message_part=path)
    expect_error(lambda: client.consolidate("filters", filter=f), 422, message_part=path)


def test_filter_limits_are_422(population):
    client, _ = population
    deep = {"tags": {"eq": "red"}}
    for _ in range(11):
        deep = {"not": deep}
    expect_error(lambda: client.recall("filters", [1, 0, 0, 0], filter=deep), 422,
                 message_part="nested deeper than 10")
    wide = {"or": [{"tags": {"eq": "t%d" % i}} for i in range(300)]}
    expect_error(lambda: client.recall("filters", [1, 0, 0, 0], filter=wide), 422,
                 message_part="more than 256 conditions")
    many = {"or": [{"tags": {"in": ["t%d" % i for i in range(600)]}},
                   {"context.who": {"nin": ["w%d" % i for i in range(600)]}}]}
    expect_error(lambda: client.recall("filters", [1, 0, 0, 0], filter=many), 422,
                 message_part="more than 1024 values")
    r = client.raw("GET", "/v1/spaces/filters/memories", query={"filter": "{\"tags\":"})
    assert r.status == 422 and b"filter: not a JSON filter" in r.body


def test_empty_and_null_filters_select_everything(population):
    client, stored = population
    for f in ({}, {"and": []}, None):
        body = client.request("POST", "/v1/spaces/filters/recall",
                              {"embedding": [1, 0, 0, 0], "k": 1000, "exact": True,
                               "spread": False, "filter": f})
        assert len(body["results"]) == len(stored)
    assert client.list_memories("filters", limit=1000, filter={"or": []})["memories"] == []


# ---- the other doors: SSE, gRPC (Filter.expr, Watch), MCP ----

def test_sse_stream_keeps_the_remember_events_of_matching_memories(server, client):
    client.create_space("sse-filter", dim=2)
    events = client.events("sse-filter", timeout=30,
                           filter={"or": [{"tags": {"contains": "red"}},
                                          {"metadata.n": {"gt": 5}}]})
    got = []
    reader = threading.Thread(target=lambda: got.extend(
        e for e in events if e["event"] in ("remember", "forget", "space_dropped")))
    reader.start()
    # the stream is subscribed once its headers arrived; the first event proves it
    wait_until(lambda: _probe(client, got), 30, what="the stream to be live")
    red = client.remember("sse-filter", "red", [1, 0], tags=["red"])
    client.remember("sse-filter", "blue", [0, 1], tags=["blue"], metadata={"n": "2"})
    big = client.remember("sse-filter", "big", [1, 1], metadata={"n": "12"})
    client.forget("sse-filter", red)
    client.delete_space("sse-filter")
    reader.join(30)
    kinds = [(e["event"], e["data"].get("id")) for e in got]
    rem = [i for k, i in kinds if k == "remember"]
    assert rem[-2:] == [red, big]  # after the red probes: blue never came
    assert ("forget", red) in kinds  # forget events all pass
    assert kinds[-1][0] == "space_dropped"


def _probe(client, got, sent=[0]):
    """One poll: has a probe's event come? If not, writes another red probe memory (each
    with its own text: an exact duplicate of an earlier probe would write nothing, and
    publish no event)."""
    if any(e["event"] == "remember" for e in got):
        return True
    sent[0] += 1
    client.remember("sse-filter", "probe %d" % sent[0], [1, 0], tags=["red"])
    return False


def test_sse_bad_filter_is_422(server, client):
    client.create_space("sse-bad", dim=2)
    r = client.raw("GET", "/v1/spaces/sse-bad/events",
                   query={"filter": json.dumps({"tags": {"gte": 1}})})
    assert r.status == 422 and b"filter.tags.gte" in r.body


def test_grpc_filter_expr_and_watch(server):
    import grpc
    from grpc_util import Grpc, pb
    g = Grpc("127.0.0.1:%d" % server.grpc_port)
    try:
        g.CreateSpace(pb().CreateSpaceRequest(name="gfilter", dim=2, metric=pb().METRIC_COSINE))
        w = g.Watch(pb().WatchRequest(space="gfilter",
                                      filter=json.dumps({"tags": {"contains": "red"}})),
                    timeout=30)
        w.initial_metadata()
        ids = {}
        for name, tags in (("a", ["red"]), ("b", ["blue"]), ("c", ["red", "x"])):
            ids[name] = g.Remember(pb().RememberRequest(space="gfilter", memory=pb().Memory(
                content=name, embedding=[1, 0.5], tags=tags))).id
        seen = []
        for ev in w:
            if ev.kind == pb().EVENT_KIND_REMEMBER:
                seen.append(ev.id)
            if len(seen) == 2:
                break
        assert seen == [ids["a"], ids["c"]]
        w.cancel()
        f = pb().Filter(expr=json.dumps({"not": {"tags": {"in": ["blue"]}}}), tags_any=["x"])
        lst = g.ListMemories(pb().ListMemoriesRequest(space="gfilter", filter=f)).memories
        assert [m.id for m in lst] == [ids["c"]]
        hits = g.Recall(pb().RecallRequest(space="gfilter", embedding=[1, 0], filter=pb().Filter(
            expr=json.dumps({"tags": {"eq": "blue"}})))).results
        assert [h.id for h in hits] == [ids["b"]]
        with pytest.raises(grpc.RpcError) as ei:
            g.ListMemories(pb().ListMemoriesRequest(space="gfilter", filter=pb().Filter(
                expr=json.dumps({"or": [{"kind": {"gt": 1}}]}))))
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "filter.or[0].kind.gt" in ei.value.details()
        with pytest.raises(grpc.RpcError) as ei:
            next(g.Watch(pb().WatchRequest(space="gfilter", filter="{")))
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        g.close()


def mcp(server, method, params, sid=None):
    """One JSON-RPC call to POST /mcp: (answer, session id)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if sid:
        h.update({"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"})
    conn.request("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                             "params": params}), h)
    r = conn.getresponse()
    body = json.loads(r.read())
    sid = sid or r.getheader("mcp-session-id")
    conn.close()
    return body, sid


def test_mcp_tools_take_a_filter(server, client):
    client.create_space("mcpfilter", dim=2)
    a = client.remember("mcpfilter", "lunch with ann", [1, 0], tags=["food"],
                        context={"who": ["ann"]}, when="2026-01-05T12:00:00Z")
    client.remember("mcpfilter", "lunch with bob", [1, 0.1], tags=["food"],
                    context={"who": ["bob"]}, when="2026-01-06T12:00:00Z")
    _, sid = mcp(server, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                        "clientInfo": {"name": "t", "version": "1"}})
    tools, _ = mcp(server, "tools/list", {}, sid)
    for t in tools["result"]["tools"]:
        if t["name"] in ("recall", "recognize", "reminisce"):
            assert t["inputSchema"]["properties"]["filter"]["type"] == "object", t["name"]
    f = {"and": [{"context.who": {"contains": "ann"}}, {"when": {"lt": "2026-01-06T00:00:00Z"}}]}
    r, _ = mcp(server, "tools/call", {"name": "recall", "arguments": {
        "space": "mcpfilter", "embedding": [1, 0], "filter": f}}, sid)
    assert [h["memory"]["id"] for h in r["result"]["structuredContent"]["results"]] == [a]
    r, _ = mcp(server, "tools/call", {"name": "reminisce", "arguments": {
        "space": "mcpfilter", "filter": {"context.who": {"nin": ["ann"]}}}}, sid)
    assert [m["content"] for m in r["result"]["structuredContent"]["memories"]] == \
        ["lunch with bob"]
    r, _ = mcp(server, "tools/call", {"name": "recall", "arguments": {
        "space": "mcpfilter", "embedding": [1, 0], "filter": {"when": {"in": [1, "x"]}}}}, sid)
    assert r["result"]["isError"] is True
    assert "filter.when.in[1]: expects a time" in r["result"]["content"][0]["text"]


def test_as_of_view_judges_forgotten_memories_on_what_is_left(client):
    client.create_space("asof-filter", dim=2)
    a = client.remember("asof-filter", "red one", [1, 0], tags=["red"])
    b = client.remember("asof-filter", "blue one", [0, 1], tags=["blue"])
    created = max(ms_of(m["created_at"])
                  for m in client.list_memories("asof-filter")["memories"])
    then = created + 1
    wait_until(lambda: time.time() * 1000 > then + 1, 10, what="the clock to pass as_of")
    client.forget("asof-filter", a)

    def view(f):
        q = {"as_of": str(then), "filter": json.dumps(f)}
        page = client.request("GET", "/v1/spaces/asof-filter/memories", query=q)
        return sorted((m["id"], bool(m.get("forgotten"))) for m in page["memories"])

    # tags are erased: a filter that reads them leaves the forgotten memory out, either way
    assert view({"tags": {"contains": "red"}}) == []
    assert view({"not": {"tags": {"contains": "red"}}}) == [(b, False)]
    # kind, when and created_at are kept: judged on them, it is there, redacted
    assert view({"kind": {"eq": "episodic"}}) == sorted([(a, True), (b, False)])
    assert view({"created_at": {"lte": then}}) == sorted([(a, True), (b, False)])
    # now (no as_of) it is simply gone
    assert [m["id"] for m in client.list_memories(
        "asof-filter", filter={"kind": {"eq": "episodic"}})["memories"]] == [b]


def test_recognize_and_reminisce_take_the_filter(population):
    client, stored = population
    tagged = next(m for m in stored if m["tags"])
    cue = client.get("filters", tagged["id"], include_embedding=True)["embedding"]
    hit = client.recognize("filters", embedding=cue, filter={"tags": {"exists": True}})
    assert hit["best"] == tagged["id"] and hit["recognized"] is True
    none = client.recognize("filters", embedding=cue, filter={"or": []})
    assert none["best"] is None and none["recognized"] is False
    f = {"and": [{"lifecycle": {"eq": "session"}}, {"importance": {"gt": 0.3}}]}
    got = client.reminisce("filters", limit=1000, filter=f)
    want = [m["id"] for m in stored if evaluate(m, f) and m["kind"] == "episodic"]
    assert sorted(m["id"] for m in got) == sorted(want) and want


def test_filter_inside_the_hnsw_search(server_factory):
    """Above engine.hnsw_threshold the filter runs inside the graph search: every hit
    matches, and a filter half the memories pass still fills k."""
    s = server_factory(env={"MNEMO_ENGINE_HNSW_THRESHOLD": "100"})
    client = s.client()
    rng = random.Random(5)
    client.create_space("graph", dim=8)
    # the planner scans when selectivity² x memories < 4 x ef (space_index.c): 3,000
    # memories and filters that about half of them pass keep it on the graph
    mems = [random_memory(rng, i, 8) for i in range(3000)]
    for start in range(0, len(mems), 500):
        client.remember_batch("graph", mems[start:start + 500])
    wait_until(lambda: client.stats("graph")["index"]["state"] == "ready", 60,
               what="the index to catch up")
    stored = list(client.iter_memories("graph", limit=1000))
    assert len(stored) == len(mems)
    paths = set()
    for f in ({"kind": {"eq": "episodic"}}, {"not": {"tags": {"contains": "red"}}},
              {"metadata.n": {"exists": True}}):
        want = set(ids_matching(stored, f))
        assert 0.4 < len(want) / len(stored) < 0.8, f
        for _ in range(5):
            res = client.recall("graph", [rng.uniform(-1, 1) for _ in range(8)], k=20,
                                spread=False, filter=f)
            paths.add(res["path"])
            got = [h["memory"]["id"] for h in res["results"]]
            assert len(got) == 20 and set(got) <= want, f
    assert paths == {"hnsw"}
