"""Authorization as a matrix, against a real server with auth on: every kind of key (none,
a bad one, read, write and admin for every space, and an admin key scoped to one space)
x every operation of api/auth.h x every door that offers it (HTTP, SSE, gRPC, MCP tools).

The expected answer comes from one table, OPS (the role each operation needs and whether
it is about one space), which is docs/api.md's "Authentication" written as data; each door
has a table of calls per operation. A call "passes" when the door's answer is anything
but its refusal (the handler may still say 404 or 422: that is past the check).

Also here: the space cap (engine.max_spaces) on every door and under concurrent creates,
and the /events route refusing a space name longer than any space's."""

import hashlib
import http.client
import itertools
import json
import threading

import grpc
import pytest

from conftest import MnemoServer
from grpc_util import Grpc, pb

KEYS = {
    # name: (key, role, spaces)
    "read": ("m-read-0123456789", "read", ["*"]),
    "write": ("m-write-0123456789", "write", ["*"]),
    "admin": ("m-admin-0123456789", "admin", ["*"]),
    "scoped": ("m-scoped-0123456789", "admin", ["alpha"]),
}
WHO = ["none", "bad"] + list(KEYS)
SPACES = ["alpha", "beta"]  # the scoped key may use alpha only
RANK = {"open": 0, "read": 1, "write": 2, "admin": 3}
NO_ID = "00000000000000000000000000"

# operation: (role needed, about one space) -- api/auth.c's OP_RULES
OPS = {
    "probe": ("open", False),
    "metrics": ("read", False),
    "list_spaces": ("read", False),
    "read_space": ("read", True),
    "events": ("read", True),
    "read_memory": ("read", True),
    "recall": ("read", True),
    "mcp": ("read", False),
    "remember": ("write", True),
    "forget": ("write", True),
    "associate": ("write", True),
    "consolidate": ("write", True),
    "create_space": ("admin", False),
    "drop_space": ("admin", True),
    "admin": ("admin", False),
}


def expected(who, op, space):
    """'ok', '401' or '403' for key who running op on space."""
    role, per_space = OPS[op]
    if role == "open":
        return "ok"
    if who in ("none", "bad"):
        return "401"
    _, has, spaces = KEYS[who]
    if RANK[has] < RANK[role]:
        return "403"
    if per_space:
        return "ok" if "*" in spaces or space in spaces else "403"
    return "ok" if role == "read" or "*" in spaces else "403"


def key_of(who):
    return {"none": None, "bad": "not-a-key"}.get(who, KEYS.get(who, (None,))[0])


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def config_text(extra=""):
    out = ["[auth]", "enabled = true", ""]
    for name, (key, role, spaces) in KEYS.items():
        out += ["[[auth.keys]]", 'name = "%s"' % name, 'sha256 = "%s"' % sha(key),
                'role = "%s"' % role, "spaces = [%s]" % ", ".join('"%s"' % s for s in spaces), ""]
    return "\n".join(out) + extra


_names = itertools.count()


def fresh(prefix="made"):
    return "%s-%d" % (prefix, next(_names))


# ---- HTTP (and SSE) ----

def req(server, method, path, who, body=None, stream=False):
    """The status of one request; a stream is closed once its head is in."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        h = {}
        if key_of(who):
            h["Authorization"] = "Bearer " + key_of(who)
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        if not stream:
            r.read()
        return r.status
    finally:
        conn.close()


def http_outcome(status):
    return {401: "401", 403: "403"}.get(status, "ok")


def admin_ensure_spaces(server):
    for s in SPACES:
        st = req(server, "POST", "/v1/spaces", "admin", {"name": s, "dim": 2})
        assert st in (201, 409), st


S = "/v1/spaces/%s"
# operation -> [(method, path with %s for the space, body)]
HTTP_CALLS = {
    "probe": [("GET", "/health", None), ("GET", "/ready", None), ("GET", "/openapi.json", None)],
    "metrics": [("GET", "/metrics", None)],
    "list_spaces": [("GET", "/v1/spaces", None)],
    "read_space": [("GET", S, None), ("GET", S + "/stats", None)],
    "read_memory": [("GET", S + "/memories", None), ("GET", S + "/memories/" + NO_ID, None),
                    ("GET", S + "/memories/" + NO_ID + "/associations", None)],
    "recall": [("POST", S + "/recall", {"embedding": [1.0, 0.0]}),
               ("POST", S + "/recognize", {"embedding": [1.0, 0.0]}),
               ("POST", S + "/reminisce", {}), ("POST", S + "/complete", {})],
    "mcp": [("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"})],
    "remember": [("POST", S + "/memories", {"content": "x", "embedding": [0.0, 1.0]})],
    "forget": [("DELETE", S + "/memories/" + NO_ID, None),
               ("POST", S + "/memories/" + NO_ID + "/unsuppress", None)],
    "associate": [("POST", S + "/associations", {"edges": []})],
    "consolidate": [("POST", S + "/consolidate", {})],
    "create_space": [("POST", "/v1/spaces", "new space")],
    "drop_space": [("DELETE", S, None)],
    "admin": [("POST", "/v1/admin/checkpoint", {"path": ""}), ("GET", "/v1/admin/routes", None)],
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("matrix")
    cfg = d / "mnemo.toml"
    cfg.write_text(config_text())
    s = MnemoServer(d / "data", args=["--config", str(cfg)]).start()
    admin_ensure_spaces(s)
    yield s
    if s.alive():
        assert s.stop() == 0, s.log()


def mismatches(door, results):
    return ["%s: %s %s on %s: got %s, expected %s" % ((door,) + r) for r in results if r[3] != r[4]]


def test_http_matrix(srv):
    bad = []
    for op, calls in HTTP_CALLS.items():
        for (method, path, body), who, space in itertools.product(calls, WHO, SPACES):
            if body == "new space":
                body = {"name": fresh(), "dim": 2}
            st = req(srv, method, path % space if "%s" in path else path, who, body)
            if op == "drop_space" and st < 300:
                admin_ensure_spaces(srv)
            bad += mismatches("HTTP", [(who, op + " " + method + " " + path, space,
                                        http_outcome(st), expected(who, op, space))])
    assert bad == []


def test_sse_matrix(srv):
    bad = []
    for who, space in itertools.product(WHO, SPACES):
        st = req(srv, "GET", S % space + "/events", who, stream=True)
        bad += mismatches("SSE", [(who, "events", space, http_outcome(st),
                                   expected(who, "events", space))])
    assert bad == []


# ---- gRPC ----

def mem(content):
    return pb().Memory(content=content, embedding=[1.0, 0.0])


# operation -> [(method, request maker of the space)]
GRPC_CALLS = {
    "probe": [("Health", lambda s: pb().HealthRequest())],
    "list_spaces": [("ListSpaces", lambda s: pb().ListSpacesRequest())],
    "read_space": [("GetSpace", lambda s: pb().SpaceRequest(space=s)),
                   ("Stats", lambda s: pb().SpaceRequest(space=s))],
    "read_memory": [("GetMemory", lambda s: pb().GetMemoryRequest(space=s, id=NO_ID)),
                    ("ListMemories", lambda s: pb().ListMemoriesRequest(space=s)),
                    ("ListAssociations", lambda s: pb().MemoryRequest(space=s, id=NO_ID))],
    "recall": [("Recall", lambda s: pb().RecallRequest(space=s, embedding=[1.0, 0.0])),
               ("Recognize", lambda s: pb().RecognizeRequest(space=s, embedding=[1.0, 0.0])),
               ("Reminisce", lambda s: pb().ReminisceRequest(space=s)),
               ("Complete", lambda s: pb().CompleteRequest(space=s))],
    "remember": [("Remember", lambda s: pb().RememberRequest(space=s, memory=mem("g"))),
                 ("RememberBatch",
                  lambda s: iter([pb().RememberRequest(space=s, memory=mem("gb"))]))],
    "forget": [("Forget", lambda s: pb().ForgetRequest(space=s, id=NO_ID)),
               ("Unsuppress", lambda s: pb().MemoryRequest(space=s, id=NO_ID))],
    "associate": [("Associate", lambda s: pb().AssociateRequest(space=s))],
    "consolidate": [("Consolidate", lambda s: pb().ConsolidateRequest(space=s))],
    "create_space": [("CreateSpace", lambda s: pb().CreateSpaceRequest(name=fresh("g"), dim=2))],
    "drop_space": [("DropSpace", lambda s: pb().SpaceRequest(space=s))],
    "admin": [("Checkpoint", lambda s: pb().CheckpointRequest(path=""))],
}


def grpc_outcome(fn):
    try:
        fn()
        return "ok"
    except grpc.RpcError as e:
        # a deadline is no answer at all: never counted as the call's success
        return {grpc.StatusCode.UNAUTHENTICATED: "401",
                grpc.StatusCode.PERMISSION_DENIED: "403",
                grpc.StatusCode.DEADLINE_EXCEEDED: "timeout"}.get(e.code(), "ok")


def watch_outcome(srv, client, space):
    """Watch, then an event from the admin key: the stream yields it, or was refused."""
    w = client.Watch(pb().WatchRequest(space=space), timeout=30)
    try:
        w.initial_metadata()  # the subscription is live once the head arrived
        if w.done():
            return grpc_outcome(lambda: next(w))
        # content never stored before: an exact duplicate writes nothing, so no event
        assert req(srv, "POST", S % space + "/memories", "admin",
                    {"content": fresh("event"), "embedding": [1.0, 0.0]}) == 201
        return grpc_outcome(lambda: next(w))
    finally:
        w.cancel()


def test_grpc_matrix(srv):
    target = "127.0.0.1:%d" % srv.grpc_port
    bad = []
    for who in WHO:
        c = Grpc(target, api_key=key_of(who))
        try:
            for op, calls in GRPC_CALLS.items():
                for (method, make), space in itertools.product(calls, SPACES):
                    got = grpc_outcome(lambda: getattr(c, method)(make(space)))
                    if op == "drop_space" and got == "ok":
                        admin_ensure_spaces(srv)
                    bad += mismatches("gRPC", [(who, op + " " + method, space, got,
                                                expected(who, op, space))])
            for space in SPACES:
                bad += mismatches("gRPC", [(who, "events Watch", space,
                                            watch_outcome(srv, c, space),
                                            expected(who, "events", space))])
        finally:
            c.close()
    assert bad == []


# ---- MCP ----

class Mcp:
    """A session on /mcp with one key: initialize, then tools/call."""

    def __init__(self, server, who):
        self.server, self.who, self.sid, self.n = server, who, None, 0
        self.status, body = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                       "params": {"protocolVersion": "2025-06-18",
                                                  "capabilities": {},
                                                  "clientInfo": {"name": "matrix", "version": "1"}}})

    def post(self, msg):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            h = {"Content-Type": "application/json", "Accept": "application/json"}
            if key_of(self.who):
                h["Authorization"] = "Bearer " + key_of(self.who)
            if self.sid:
                h["Mcp-Session-Id"] = self.sid
            conn.request("POST", "/mcp", body=json.dumps(msg), headers=h)
            r = conn.getresponse()
            data = r.read()
            if self.sid is None and r.status == 200:
                self.sid = r.getheader("mcp-session-id")
            return r.status, json.loads(data) if data else None
        finally:
            conn.close()

    def call(self, tool, **args):
        """The outcome of a tool call: ok, 401 or 403 (and the result)."""
        if self.status != 200:
            return http_outcome(self.status), None
        self.n += 1
        st, body = self.post({"jsonrpc": "2.0", "id": self.n, "method": "tools/call",
                              "params": {"name": tool, "arguments": args}})
        if st != 200:
            return http_outcome(st), body
        r = body["result"]
        code = r["structuredContent"]["error"]["code"] if r.get("isError") else None
        return {"unauthenticated": "401", "permission_denied": "403"}.get(code, "ok"), r


# operation -> [(tool, arguments of the space)]
MCP_CALLS = {
    "list_spaces": [("list_spaces", lambda s: {})],
    "recall": [("recall", lambda s: {"space": s, "text": "x"}),
               ("recognize", lambda s: {"space": s, "text": "x"}),
               ("reminisce", lambda s: {"space": s})],
    "remember": [("remember", lambda s: {"space": s, "content": "m", "embedding": [1.0, 0.0]})],
    "forget": [("forget", lambda s: {"space": s, "id": NO_ID})],
    "consolidate": [("consolidate", lambda s: {"space": s})],
    "create_space": [("create_space", lambda s: {"space": fresh(), "dim": 2})],
}


def test_mcp_matrix(srv):
    bad = []
    for who in WHO:
        m = Mcp(srv, who)
        bad += mismatches("MCP", [(who, "mcp initialize", "-", http_outcome(m.status),
                                   expected(who, "mcp", None))])
        for op, calls in MCP_CALLS.items():
            for (tool, args), space in itertools.product(calls, SPACES):
                got, _ = m.call(tool, **args(space))
                bad += mismatches("MCP", [(who, op + " " + tool, space, got,
                                           expected(who, op, space))])
    assert bad == []


def test_mcp_remember_creates_a_space_only_for_keys_that_may_create(srv):
    """The first remember into a new space is a remember and a create: a write key gets the
    refusal of an explicit create_space, and no space appears."""
    for who in WHO:
        space = fresh("auto")
        got, r = Mcp(srv, who).call("remember", space=space, content="first")
        want = expected(who, "remember", space)
        if want == "ok":
            want = expected(who, "create_space", space)
        assert got == want, (who, r)
        st = req(srv, "GET", S % space, "admin")
        assert st == (200 if want == "ok" else 404), (who, st)
    # the write key's refusal is worded as create_space's own
    _, r1 = Mcp(srv, "write").call("remember", space=fresh("auto"), content="x")
    _, r2 = Mcp(srv, "write").call("create_space", space=fresh("auto"))
    assert r1["structuredContent"] == r2["structuredContent"]


# ---- the space cap ----

def test_space_cap_holds_on_every_door_and_under_concurrent_creates(server_factory, tmp_path):
    cfg = tmp_path / "cap.toml"
    cfg.write_text(config_text("\n[engine]\nmax_spaces = 6\n"))
    s = server_factory(args=["--config", str(cfg)])
    results = []

    def create(i):
        results.append((req(s, "POST", "/v1/spaces", "admin", {"name": "c%d" % i, "dim": 2}),
                        "c%d" % i))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert sorted(st for st, _ in results) == [201] * 6 + [409] * 18
    # which six won the race is up to the scheduler
    made = sorted(name for st, name in results if st == 201)
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    conn.request("POST", "/v1/spaces", body=json.dumps({"name": "one-more", "dim": 2}),
                 headers={"Authorization": "Bearer " + KEYS["admin"][0],
                          "Content-Type": "application/json"})
    r = conn.getresponse()
    err = json.loads(r.read())["error"]
    conn.close()
    assert r.status == 409 and err["code"] == "limit_reached", err
    assert "engine.max_spaces" in err["message"] and "max_spaces" in err["hint"]
    # gRPC: RESOURCE_EXHAUSTED
    g = Grpc("127.0.0.1:%d" % s.grpc_port, api_key=KEYS["admin"][0])
    with pytest.raises(grpc.RpcError) as ei:
        g.CreateSpace(pb().CreateSpaceRequest(name="one-more", dim=2))
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    g.close()
    # MCP: create_space and the first remember alike
    m = Mcp(s, "admin")
    for tool, args in (("create_space", {"space": "one-more"}),
                       ("remember", {"space": "one-more", "content": "x"})):
        _, r = m.call(tool, **args)
        assert r["isError"] and r["structuredContent"]["error"]["code"] == "limit_reached", r
    # dropping one makes room again
    assert req(s, "DELETE", S % made[0], "admin") < 300
    assert req(s, "POST", "/v1/spaces", "admin", {"name": "one-more", "dim": 2}) == 201
    assert req(s, "POST", "/v1/spaces", "admin", {"name": "two-more", "dim": 2}) == 409
    # the spaces made survive a restart and the cap still holds
    s.restart()
    assert req(s, "POST", "/v1/spaces", "admin", {"name": "two-more", "dim": 2}) == 409


# ---- no prefix confusion between spaces ----

def test_events_refuse_a_name_longer_than_any_space(srv):
    """A 65-character name is no space's, not the space named by its first 64 characters."""
    name64 = "p" * 64
    assert req(srv, "POST", "/v1/spaces", "admin", {"name": name64, "dim": 2}) in (201, 409)
    assert req(srv, "GET", S % name64 + "/events", "admin", stream=True) == 200
    for path in (S % (name64 + "x") + "/events", S % (name64 + "x") + "/stats"):
        assert req(srv, "GET", path, "admin", stream=True) == 404, path
