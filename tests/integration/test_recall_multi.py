"""A recall over many spaces against a real server (docs/api.md, "Recall over many spaces"):
the merged top k equals the spaces' own answers merged by score (ties by id), a prefix
expands to the spaces a key may read, a list naming another space is refused (403), a space
stalled by the test hook MNEMO_TEST_RECALL_STALL is listed as missing ("timeout") with the
confidence lowered by 0.5 + 0.5 r, bad input is 422 / 400 / 404 naming the field, and the
same over gRPC (RecallMany) and MCP (the recall tool with spaces / space_prefix)."""

import http.client
import random

import grpc
import pytest

from conftest import MnemoServer, expect_error
from grpc_util import Grpc, error_code, pb
from test_auth import KEYS, keys_toml
from test_mcp import KeyedSession, Session, tool_error

DIM = 4
SPACES = ["mt-a", "mt-b", "mt-c"]
PER_SPACE = {"mt-a": 12, "mt-b": 20, "mt-c": 8}
STALLED = "mt-stalled"


def vec(rng):
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def fill(c, rng):
    for name in SPACES + [STALLED, "other-x"]:
        c.create_space(name, dim=DIM)
        n = PER_SPACE.get(name, 10)
        c.remember_batch(name, [{"content": "note %d of %s about apples" % (i, name),
                                 "embedding": vec(rng)} for i in range(n)])


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = MnemoServer(tmp_path_factory.mktemp("multi"),
                    env={"MNEMO_TEST_RECALL_STALL": STALLED}).start()
    with s.client() as c:
        fill(c, random.Random(19))
    yield s
    if s.alive():
        assert s.stop() == 0, s.log()


@pytest.fixture
def c(srv):
    cl = srv.client()
    yield cl
    cl.close()
    assert srv.alive(), srv.log()


def many(c, **body):
    return c.request("POST", "/v1/recall", body)


def by_hand(c, spaces, k, **cue):
    """The spaces' own answers, merged by score (ties by id), top k."""
    hits = []
    for s in spaces:
        for h in c.recall(s, k=k, **cue)["results"]:
            hits.append((-h["score"], h["id"], s, h))
    hits.sort(key=lambda x: (x[0], x[1]))
    return hits[:k]


CUES = [
    {"embedding": [0.3, -0.2, 0.5, 0.1], "spread": False},
    {"embedding": [0.3, -0.2, 0.5, 0.1]},               # spread: activations, ties
    {"text": "apples"},                                 # words
    {"text": "apples", "embedding": [0.1, 0.9, -0.4, 0.2]},  # both, fused
]


@pytest.mark.parametrize("cue", CUES)
def test_merged_top_k_equals_the_spaces_answers_merged(c, cue):
    got = many(c, spaces=SPACES, k=15, **cue)
    want = by_hand(c, SPACES, 15, **cue)
    assert [(h["id"], h["space"], h["score"]) for h in got["results"]] == \
        [(w[1], w[2], -w[0]) for w in want]
    assert got["missing"] == [] and got["reachable"] == 1
    assert got["spaces"] == SPACES
    for h in got["results"]:
        assert "missing_partition" not in h["confidence"]["reasons"]
        assert (" of %s about" % h["space"]) in h["memory"]["content"]
    assert got["recall_confidence"] == max(h["confidence"]["value"] for h in got["results"])


def test_results_name_their_space_and_keep_their_single_space_confidence(c):
    got = many(c, spaces=["mt-b", "mt-a"], k=5, embedding=[1, 0, 0, 0], spread=False)
    for h in got["results"]:
        one = {x["id"]: x for x in c.recall(h["space"], k=5, embedding=[1, 0, 0, 0],
                                             spread=False)["results"]}
        assert h["id"] in one
        assert h["confidence"] == one[h["id"]]["confidence"]


def test_prefix_expands_to_the_matching_spaces(c):
    got = many(c, space_prefix="mt-", k=50, text="apples")
    assert got["spaces"] == ["mt-a", "mt-b", "mt-c", STALLED]
    assert "other-x" not in {h["space"] for h in got["results"]}
    none = many(c, space_prefix="nothing-", text="apples")
    assert none["spaces"] == [] and none["results"] == [] and none["recall_confidence"] == 0


def test_a_stalled_space_is_missing_and_lowers_the_confidence(c):
    cue = {"embedding": [0.3, -0.2, 0.5, 0.1], "spread": False}
    got = many(c, spaces=SPACES + [STALLED], k=10, timeout_ms=1500, **cue)
    assert got["missing"] == [{"space": STALLED, "reason": "timeout"}]
    total = sum(PER_SPACE.values()) + 10
    r = sum(PER_SPACE.values()) / total  # weighted by live memories
    assert got["reachable"] == pytest.approx(r, rel=1e-6)
    factor = 0.5 + 0.5 * r
    want = by_hand(c, SPACES, 10, **cue)
    assert [h["id"] for h in got["results"]] == [w[1] for w in want]
    for h, w in zip(got["results"], want):
        assert "missing_partition" in h["confidence"]["reasons"]
        assert h["confidence"]["value"] == pytest.approx(
            w[3]["confidence"]["value"] * factor, rel=1e-5)
    full = many(c, spaces=SPACES, k=10, **cue)
    assert got["recall_confidence"] < full["recall_confidence"]
    # the stalled space alone: nothing comes back, everything is missing
    alone = many(c, spaces=[STALLED], text="apples", timeout_ms=200)
    assert alone["results"] == [] and alone["reachable"] == 0
    assert alone["missing"] == [{"space": STALLED, "reason": "timeout"}]


@pytest.mark.parametrize("body,status,code,part", [
    ({"text": "x"}, 422, "invalid_argument", "exactly one"),
    ({"spaces": ["mt-a"], "space_prefix": "mt-", "text": "x"}, 422, "invalid_argument",
     "exactly one"),
    ({"spaces": [], "text": "x"}, 422, "invalid_argument", "spaces"),
    ({"spaces": "mt-a", "text": "x"}, 422, "invalid_argument", "spaces"),
    ({"spaces": ["mt-a", 3], "text": "x"}, 422, "invalid_argument", "spaces[1]"),
    ({"spaces": ["Bad Name"], "text": "x"}, 422, "invalid_argument", "spaces[0]"),
    ({"space_prefix": "", "text": "x"}, 422, "invalid_argument", "space_prefix"),
    ({"spaces": ["mt-a"], "text": "x", "timeout_ms": 0}, 422, "invalid_argument", "timeout_ms"),
    ({"spaces": ["mt-a"], "text": "x", "timeout_ms": 60001}, 422, "invalid_argument",
     "timeout_ms"),
    ({"spaces": ["mt-a"], "text": "x", "k": 0}, 422, "invalid_argument", "k"),
    ({"spaces": ["mt-a"], "text": "x", "bogus": 1}, 422, "invalid_argument", "bogus"),
    ({"spaces": ["mt-a"], "embedding": [1, 2]}, 422, "invalid_argument", "space mt-a: embedding"),
    ({"spaces": ["mt-a", "no-such"], "text": "x"}, 404, "space_not_found", "no-such"),
    ({"spaces": ["s-%d" % i for i in range(257)], "text": "x"}, 422, "invalid_argument",
     "at most 256"),
])
def test_bad_input_is_refused_naming_the_field(c, body, status, code, part):
    expect_error(lambda: c.request("POST", "/v1/recall", body), status, code, part)


def test_malformed_json_is_400(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.request("POST", "/v1/recall", body=b'{"spaces": [', headers={
        "Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 400, r.read()
    conn.close()


def test_grpc_recall_many_matches_rest(srv, c):
    p = pb()
    g = Grpc("127.0.0.1:%d" % srv.grpc_port)
    try:
        cue = p.RecallRequest(embedding=[0.3, -0.2, 0.5, 0.1], spread=False, k=10)
        got = g.RecallMany(p.RecallManyRequest(spaces=SPACES + [STALLED], recall=cue,
                                               timeout_ms=1500))
        rest = many(c, spaces=SPACES + [STALLED], k=10, embedding=[0.3, -0.2, 0.5, 0.1],
                    spread=False, timeout_ms=1500)
        assert [(h.id, h.space) for h in got.results] == \
            [(h["id"], h["space"]) for h in rest["results"]]
        assert [(m.space, m.reason) for m in got.missing] == [(STALLED, "timeout")]
        assert list(got.spaces) == SPACES + [STALLED]
        assert got.reachable == pytest.approx(rest["reachable"], rel=1e-6)
        assert all("missing_partition" in h.confidence.reasons for h in got.results)
        pre = g.RecallMany(p.RecallManyRequest(space_prefix="mt-", recall=p.RecallRequest(
            text="apples"), timeout_ms=1500))
        assert list(pre.spaces) == ["mt-a", "mt-b", "mt-c", STALLED]
        for req, status, part in [
                (p.RecallManyRequest(recall=cue), grpc.StatusCode.INVALID_ARGUMENT, "exactly one"),
                (p.RecallManyRequest(spaces=["mt-a"]), grpc.StatusCode.INVALID_ARGUMENT, "recall"),
                (p.RecallManyRequest(spaces=["mt-a"], recall=p.RecallRequest(space="mt-a",
                                                                             text="x")),
                 grpc.StatusCode.INVALID_ARGUMENT, "recall.space"),
                (p.RecallManyRequest(spaces=["nope"], recall=cue), grpc.StatusCode.NOT_FOUND,
                 "nope")]:
            with pytest.raises(grpc.RpcError) as e:
                g.RecallMany(req)
            assert e.value.code() == status, e.value.details()
            assert part in e.value.details()
    finally:
        g.close()


def test_mcp_recall_tool_takes_spaces_and_a_prefix(srv):
    s = Session(srv)
    out = s.ok("recall", spaces=SPACES, text="apples", k=5)
    assert len(out["results"]) == 5 and all(h["space"] in SPACES for h in out["results"])
    r = s.call("recall", space_prefix="mt-", text="apples", k=3, timeout_ms=1500)
    assert r["isError"] is False
    text = r["content"][0]["text"]
    assert "from 4 spaces" in text and STALLED in text and "timeout" in text
    assert r["structuredContent"]["missing"] == [{"space": STALLED, "reason": "timeout"}]
    bad = s.call("recall", space="mt-a", spaces=SPACES, text="apples")
    assert bad["isError"] is True and "not both" in bad["content"][0]["text"]
    tools = {t["name"]: t for t in s.request("tools/list").result["tools"]}
    props = tools["recall"]["inputSchema"]["properties"]
    assert {"spaces", "space_prefix", "timeout_ms"} <= set(props)


# ---- auth: a key reads only its spaces ----

@pytest.fixture(scope="module")
def auth_srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi-auth")
    cfg = d / "mnemo.toml"
    cfg.write_text(keys_toml())
    s = MnemoServer(d / "data", args=["--config", str(cfg)]).start()
    with s.client() as cl:
        cl.api_key = KEYS["root"][0]
        for name in ("alpha", "beta", "gamma"):
            cl.create_space(name, dim=2)
            cl.remember(name, "a memory of %s" % name, embedding=[1, 0])
    yield s
    if s.alive():
        assert s.stop() == 0, s.log()


def test_a_key_reads_only_its_spaces(auth_srv):
    with auth_srv.client() as cl:
        cl.api_key = KEYS["reader"][0]  # alpha, beta
        e = expect_error(lambda: many(cl, spaces=["alpha", "gamma"], text="memory"), 403,
                         "permission_denied", "gamma")
        assert "alpha" not in e.message
        # refused before existence is checked: the key learns nothing of other names
        expect_error(lambda: many(cl, spaces=["alpha", "secret-nope"], text="memory"), 403,
                     "permission_denied", "secret-nope")
        got = many(cl, spaces=["beta", "alpha"], text="memory")
        assert {h["space"] for h in got["results"]} == {"alpha", "beta"}
    # a prefix expands only to the spaces the key may read
    for who, readable in (("reader", {"alpha", "beta"}), ("root", {"alpha", "beta", "gamma"}),
                          ("writer", {"alpha"})):
        with auth_srv.client() as cl:
            cl.api_key = KEYS[who][0]
            for name in ("alpha", "beta", "gamma"):
                got = many(cl, space_prefix=name[:2], text="memory")
                assert got["spaces"] == ([name] if name in readable else []), (who, name)
                assert {h["space"] for h in got["results"]} <= readable
    with auth_srv.client() as cl:
        expect_error(lambda: many(cl, spaces=["alpha"], text="memory"), 401, "unauthenticated")


def test_grpc_recall_many_refuses_an_unreadable_space(auth_srv):
    p = pb()
    g = Grpc("127.0.0.1:%d" % auth_srv.grpc_port, api_key=KEYS["reader"][0])
    try:
        with pytest.raises(grpc.RpcError) as e:
            g.RecallMany(p.RecallManyRequest(spaces=["alpha", "gamma"],
                                             recall=p.RecallRequest(text="memory")))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "gamma" in e.value.details() and error_code(e.value) == "permission_denied"
        ok = g.RecallMany(p.RecallManyRequest(spaces=["alpha", "beta"],
                                              recall=p.RecallRequest(text="memory")))
        assert {h.space for h in ok.results} == {"alpha", "beta"}
    finally:
        g.close()


def test_grpc_and_mcp_expand_a_prefix_only_to_readable_spaces(auth_srv):
    """The same rule at the other doors: a prefix expands only to the spaces the key may
    read (gRPC RecallMany; the MCP recall tool, which goes through the same handler), and
    MCP refuses a listed space the key may not read."""
    p = pb()
    for who, readable in (("reader", {"alpha", "beta"}), ("writer", {"alpha"})):
        g = Grpc("127.0.0.1:%d" % auth_srv.grpc_port, api_key=KEYS[who][0])
        try:
            for name in ("alpha", "beta", "gamma"):
                got = g.RecallMany(p.RecallManyRequest(space_prefix=name[:2],
                                                       recall=p.RecallRequest(text="memory")))
                assert list(got.spaces) == ([name] if name in readable else []), (who, name)
                assert {h.space for h in got.results} <= readable
        finally:
            g.close()
        s = KeyedSession(auth_srv, KEYS[who][0])
        for name in ("alpha", "beta", "gamma"):
            out = s.ok("recall", space_prefix=name[:2], text="memory")
            assert out["spaces"] == ([name] if name in readable else []), (who, name)
            assert {h["space"] for h in out["results"]} <= readable
    s = KeyedSession(auth_srv, KEYS["reader"][0])
    err = tool_error(s.call("recall", spaces=["alpha", "gamma"], text="memory"))
    assert err["code"] == "permission_denied" and "gamma" in err["message"], err
