"""The MCP endpoint (docs/api.md, "MCP"): the Streamable HTTP transport on POST /mcp,
JSON-RPC 2.0 edge cases, sessions, protocol versions, the tools end to end (text only),
and the official TypeScript SDK client run by node (tests/integration/mcp_node/)."""

import http.client
import json
import os
import re
import threading
import time

import pytest

from conftest import node_client

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "mcp_node")
VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]
LATEST = VERSIONS[0]
REQUIRED_TOOLS = {"remember", "recall", "forget", "list_spaces", "consolidate", "recognize",
                  "reminisce"}
ACCEPT = "application/json, text/event-stream"


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        self.json = json.loads(body) if body else None

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def result(self):
        assert self.json and "result" in self.json, (self.status, self.raw)
        return self.json["result"]

    @property
    def error(self):
        assert self.json and "error" in self.json, (self.status, self.raw)
        return self.json["error"]


def http_call(server, method, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        h = {"Content-Type": "application/json", "Accept": ACCEPT}
        for k, v in (headers or {}).items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        if isinstance(body, (dict, list, int)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, "/mcp", body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


class Session:
    """One MCP session over raw HTTP: initialize, then requests carrying the session id."""

    def __init__(self, server, version="2025-06-18"):
        self.server = server
        self.next_id = 1
        a = self.post_raw({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                           "params": {"protocolVersion": version, "capabilities": {},
                                      "clientInfo": {"name": "pytest", "version": "1"}}})
        assert a.status == 200, a.raw
        self.init = a
        self.sid = a.header("mcp-session-id")
        assert self.sid and re.fullmatch(r"[0-9a-f]{32}", self.sid), a.headers
        self.version = a.result["protocolVersion"]
        assert self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}).status == 202

    def post_raw(self, body, headers=None):
        return http_call(self.server, "POST", body, headers)

    def post(self, body, headers=None):
        h = {"Mcp-Session-Id": self.sid, "MCP-Protocol-Version": self.version}
        h.update(headers or {})
        return http_call(self.server, "POST", body, h)

    def request(self, method, params=None):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        a = self.post(msg)
        assert a.status == 200, (a.status, a.raw)
        assert a.json["id"] == self.next_id
        assert a.header("content-type").startswith("application/json")
        return a

    def call(self, tool, **args):
        """tools/call; returns the tool result (isError or not)."""
        return self.request("tools/call", {"name": tool, "arguments": args}).result

    def ok(self, tool, **args):
        r = self.call(tool, **args)
        assert r["isError"] is False, r
        assert r["content"][0]["type"] == "text" and r["content"][0]["text"]
        return r["structuredContent"]

    def delete(self):
        return http_call(self.server, "DELETE", None, {"Mcp-Session-Id": self.sid})


def tool_error(result):
    assert result["isError"] is True, result
    assert result["content"][0]["text"].startswith("Error "), result
    return result["structuredContent"]["error"]


# ---- lifecycle and versions ----

@pytest.mark.parametrize("version", VERSIONS)
def test_initialize_answers_a_supported_version(server, version):
    s = Session(server, version)
    assert s.version == version
    r = s.init.result
    assert r["serverInfo"]["name"] == "mnemo"
    c = server.client()
    try:
        assert r["serverInfo"]["version"] == c.health()["version"]
    finally:
        c.close()
    assert "tools" in r["capabilities"]
    assert r["instructions"]


def test_initialize_unknown_version_gets_our_latest(server):
    s = Session(server, "1999-01-01")
    assert s.version == LATEST


def test_initialize_makes_a_new_session_each_time(server):
    a, b = Session(server), Session(server)
    assert a.sid != b.sid


def test_initialize_without_protocol_version_is_invalid_params(server):
    a = http_call(server, "POST", {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                   "params": {"capabilities": {}}})
    assert a.status == 200
    assert a.error["code"] == -32602
    assert a.json["id"] == 1
    assert a.header("mcp-session-id") is None


def test_ping(server):
    assert Session(server).request("ping").result == {}


# ---- JSON-RPC edge cases ----

@pytest.mark.parametrize("body", ["{", "", "   ", '{"jsonrpc":"2.0"} x', b"\xff\xfe{}"])
def test_parse_error(server, body):
    a = http_call(server, "POST", body)
    assert a.status == 400
    assert a.json["jsonrpc"] == "2.0" and a.json["id"] is None
    assert a.error["code"] == -32700
    assert a.error["data"]["code"] == "invalid_json"


def test_parse_error_with_a_session_too(server):
    s = Session(server)
    a = s.post("[1,")
    assert a.status == 400 and a.error["code"] == -32700


@pytest.mark.parametrize("msg", [
    42,
    "null",
    {"jsonrpc": "1.0", "id": 1, "method": "ping"},
    {"id": 1, "method": "ping"},
    {"jsonrpc": "2.0", "id": 1},
    {"jsonrpc": "2.0", "id": 1, "method": 7},
    {"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"},
    {"jsonrpc": "2.0", "id": None, "method": "ping"},
])
def test_invalid_request(server, msg):
    s = Session(server)
    a = s.post(msg)
    assert a.status == 400, a.raw
    assert a.error["code"] == -32600


def test_invalid_request_keeps_a_usable_id(server):
    a = Session(server).post({"jsonrpc": "1.0", "id": "x1", "method": "ping"})
    assert a.error["code"] == -32600 and a.json["id"] == "x1"


def test_unknown_method(server):
    s = Session(server)
    a = s.post({"jsonrpc": "2.0", "id": "abc", "method": "resources/list"})
    assert a.status == 200
    assert a.json["id"] == "abc"
    assert a.error["code"] == -32601
    assert "resources/list" in a.error["message"]


@pytest.mark.parametrize("params", [
    [1, 2],
    {},
    {"name": 5},
    {"name": "no_such_tool", "arguments": {}},
    {"name": "recall", "arguments": [1]},
    {"name": "recall", "arguments": "text"},
])
def test_tools_call_invalid_params(server, params):
    s = Session(server)
    a = s.post({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params})
    assert a.status == 200
    assert a.json["id"] == 9
    assert a.error["code"] == -32602, a.raw


def test_unknown_tool_names_it(server):
    a = Session(server).request("tools/call", {"name": "fly", "arguments": {}})
    assert a.error["code"] == -32602 and "fly" in a.error["message"]


# ---- notifications and responses: 202, no body ----

@pytest.mark.parametrize("msg", [
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}},
    {"jsonrpc": "2.0", "method": "notifications/whatever"},
    {"jsonrpc": "2.0", "id": 5, "result": {}},
    {"jsonrpc": "2.0", "id": 6, "error": {"code": -1, "message": "no"}},
])
def test_notifications_and_responses_are_accepted_without_body(server, msg):
    a = Session(server).post(msg)
    assert a.status == 202
    assert a.raw == b""


# ---- transport: sessions, headers, methods ----

def test_missing_session_is_400(server):
    a = http_call(server, "POST", {"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert a.status == 400
    assert a.error["data"]["code"] == "session_required"


def test_unknown_session_is_404(server):
    a = http_call(server, "POST", {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                  {"Mcp-Session-Id": "0" * 32})
    assert a.status == 404
    assert a.error["data"]["code"] == "session_not_found"
    a = http_call(server, "POST", {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                  {"Mcp-Session-Id": "not-a-session"})
    assert a.status == 404


def test_delete_ends_the_session(server):
    s = Session(server)
    other = Session(server)
    assert s.delete().status == 204
    a = s.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert a.status == 404
    assert s.delete().status == 404
    assert other.request("ping").result == {}


def test_delete_without_session_is_400(server):
    assert http_call(server, "DELETE").status == 400


def test_get_is_405(server):
    s = Session(server)
    a = http_call(server, "GET", None, {"Mcp-Session-Id": s.sid, "Accept": "text/event-stream",
                                        "Content-Type": None})
    assert a.status == 405
    assert "POST" in a.header("allow")


def test_protocol_version_header_must_be_supported(server):
    s = Session(server)
    a = s.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
               {"MCP-Protocol-Version": "2000-01-01"})
    assert a.status == 400
    assert a.error["data"]["code"] == "unsupported_protocol_version"
    for v in VERSIONS:
        assert s.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
                      {"MCP-Protocol-Version": v}).status == 200
    # absent: the version negotiated at initialize
    assert s.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
                  {"MCP-Protocol-Version": None}).status == 200


def test_accept_must_admit_json(server):
    s = Session(server)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert s.post(ping, {"Accept": "text/html"}).status == 406
    assert s.post(ping, {"Accept": "text/event-stream"}).status == 406
    assert s.post(ping, {"Accept": "application/json"}).status == 200
    assert s.post(ping, {"Accept": "*/*"}).status == 200
    assert s.post(ping, {"Accept": None}).status == 200


def test_content_type_must_be_json(server):
    s = Session(server)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert s.post(ping, {"Content-Type": "text/plain"}).status == 415
    assert s.post(ping, {"Content-Type": "application/json; charset=utf-8"}).status == 200


def test_origin_is_checked(server):
    s = Session(server)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for bad in ["http://evil.example", "http://localhost.evil.example", "null",
                "http://127.0.0.1.evil.example:7700"]:
        a = s.post(ping, {"Origin": bad})
        assert a.status == 403, bad
        assert a.error["data"]["code"] == "forbidden"
    for good in ["http://localhost:3000", "http://127.0.0.1", "http://[::1]:8080"]:
        assert s.post(ping, {"Origin": good}).status == 200, good


def test_allowed_origins_config(server_factory):
    srv = server_factory(env={"MNEMO_MCP_ALLOWED_ORIGINS": "https://app.example.com"})
    s = Session(srv)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert s.post(ping, {"Origin": "https://app.example.com"}).status == 200
    assert s.post(ping, {"Origin": "https://other.example.com"}).status == 403


# ---- batches ----

@pytest.mark.parametrize("version", ["2025-03-26", "2024-11-05"])
def test_batch_in_older_versions(server, version):
    s = Session(server, version)
    a = s.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": "two", "method": "tools/list"},
                {"jsonrpc": "2.0", "id": 3, "method": "nope"},
                17])
    assert a.status == 200
    out = a.json
    assert isinstance(out, list) and len(out) == 4
    by_id = {json.dumps(r["id"]): r for r in out}
    assert by_id["1"]["result"] == {}
    assert {t["name"] for t in by_id['"two"']["result"]["tools"]} >= REQUIRED_TOOLS
    assert by_id["3"]["error"]["code"] == -32601
    assert by_id["null"]["error"]["code"] == -32600


def test_batch_of_notifications_is_202(server):
    s = Session(server, "2025-03-26")
    a = s.post([{"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 4, "result": {}}])
    assert a.status == 202 and a.raw == b""


def test_batch_may_not_initialize(server):
    s = Session(server, "2025-03-26")
    a = s.post([{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2025-03-26"}}])
    assert a.status == 200
    assert a.json[0]["error"]["code"] == -32600


def test_empty_and_oversized_batches(server):
    s = Session(server, "2025-03-26")
    a = s.post([])
    assert a.status == 400 and a.error["code"] == -32600
    a = s.post([{"jsonrpc": "2.0", "method": "notifications/x"}] * 257)
    assert a.status == 400 and a.error["code"] == -32600


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_no_batches_from_2025_06_18(server, version):
    s = Session(server, version)
    a = s.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
    assert a.status == 400
    assert a.error["code"] == -32600
    assert version in a.error["message"]


def test_batch_needs_a_session(server):
    a = http_call(server, "POST", [{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
    assert a.status == 400 and a.error["data"]["code"] == "session_required"


# ---- tools ----

def test_tools_list_has_schemas(server):
    tools = Session(server).request("tools/list").result["tools"]
    names = {t["name"] for t in tools}
    assert names >= REQUIRED_TOOLS
    for t in tools:
        assert t["description"]
        schema = t["inputSchema"]
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert set(schema.get("required", [])) <= set(schema["properties"])
    by = {t["name"]: t for t in tools}
    assert by["remember"]["inputSchema"]["required"] == ["content"]
    assert by["forget"]["inputSchema"]["required"] == ["id"]
    assert "text" in by["recall"]["inputSchema"]["properties"]
    assert by["recall"]["annotations"]["readOnlyHint"] is True
    assert by["forget"]["annotations"]["destructiveHint"] is True


@pytest.mark.parametrize("tool,lacks", [("cluster_spaces", "placement table"),
                                        ("cluster_gossip", "gossip"), ("cluster_hints", "hints")])
def test_cluster_tools_on_a_single_node_say_it_runs_alone(server, tool, lacks):
    r = Session(server).call(tool)
    err = tool_error(r)
    assert err["code"] == "not_found", err
    text = r["content"][0]["text"]
    assert "runs alone" in text and "no " + lacks in text, text


def test_text_only_remember_recall_forget(server, space_name):
    s = Session(server)
    r = s.ok("remember", space=space_name, content="Bob is allergic to peanuts",
             context={"who": "bob"}, tags=["health"])
    mid = r["id"]
    assert r["space"] == space_name and r["space_created"] is True
    r2 = s.ok("remember", space=space_name, content="Ann prefers window seats on trains")
    assert r2["space_created"] is False
    spaces = {x["name"]: x for x in s.ok("list_spaces")["spaces"]}
    assert spaces[space_name]["dim"] == 384

    res = s.call("recall", space=space_name, text="what is Bob allergic to?")
    assert res["isError"] is False
    hits = res["structuredContent"]["results"]
    assert hits[0]["memory"]["id"] == mid
    assert hits[0]["memory"]["content"] == "Bob is allergic to peanuts"
    assert 0 < hits[0]["confidence"]["value"] <= 1
    assert "Bob is allergic to peanuts" in res["content"][0]["text"]
    # the JSON is also there as text, for clients without structuredContent
    assert json.loads(res["content"][1]["text"]) == res["structuredContent"]

    f = s.ok("forget", space=space_name, id=mid)
    assert f["id"] == mid and f["forgotten"] is True
    hits = s.ok("recall", space=space_name, text="Bob allergic peanuts")["results"]
    assert mid not in [h["memory"]["id"] for h in hits]


def test_default_space(server_factory):
    srv = server_factory(env={"MNEMO_MCP_DEFAULT_SPACE": "agent-7", "MNEMO_MCP_DEFAULT_DIM": "16"})
    s = Session(srv)
    r = s.ok("remember", content="the meeting moved to Thursday")
    assert r["space"] == "agent-7"
    hits = s.ok("recall", text="when is the meeting")["results"]
    assert hits[0]["memory"]["id"] == r["id"]
    spaces = s.ok("list_spaces")["spaces"]
    assert [(x["name"], x["dim"]) for x in spaces] == [("agent-7", 16)]


def test_remember_with_embedding_sizes_the_space(server, space_name):
    s = Session(server)
    r = s.ok("remember", space=space_name, content="north", embedding=[1, 0, 0])
    assert r["space_created"] is True
    spaces = {x["name"]: x for x in s.ok("list_spaces")["spaces"]}
    assert spaces[space_name]["dim"] == 3
    hits = s.ok("recall", space=space_name, embedding=[0.9, 0.1, 0])["results"]
    assert hits[0]["memory"]["id"] == r["id"]


def test_create_space_tool(server, space_name):
    s = Session(server)
    r = s.ok("create_space", space=space_name, dim=8, metric="dot")
    assert r["name"] == space_name and r["dim"] == 8 and r["metric"] == "dot"
    e = tool_error(s.call("create_space", space=space_name))
    assert e["code"] == "space_exists"


def test_create_space_tool_takes_index_parameters(server, space_name):
    s = Session(server)
    tools = {t["name"]: t for t in s.request("tools/list").result["tools"]}
    ix = tools["create_space"]["inputSchema"]["properties"]["index"]
    assert set(ix["properties"]) == {"m", "ef_construction", "ef_search", "quantize"}
    r = s.ok("create_space", space=space_name, dim=4,
             index={"m": 8, "ef_construction": 40, "quantize": True})
    assert r["index"]["m"] == 8 and r["index"]["ef_construction"] == 40
    assert r["index"]["quantize"] is True
    spaces = {x["name"]: x for x in s.ok("list_spaces")["spaces"]}
    assert spaces[space_name]["index"]["m"] == 8
    e = tool_error(s.call("create_space", space=space_name + "-bad", dim=4, index={"m": 1}))
    assert e["code"] == "invalid_argument" and "index.m" in e["message"]
    e = tool_error(s.call("create_space", space=space_name + "-bad", dim=4, index={"mm": 8}))
    assert "index.mm" in e["message"]
    assert space_name + "-bad" not in {x["name"] for x in s.ok("list_spaces")["spaces"]}


def test_tool_failures_are_results(server, space_name):
    s = Session(server)
    e = tool_error(s.call("recall", space="no-such-space-here", text="x"))
    assert e["code"] == "space_not_found"
    e = tool_error(s.call("remember", space=space_name))
    assert e["code"] == "invalid_argument" and "content: required" in e["message"]
    e = tool_error(s.call("remember", space=space_name, content="x", tgas=["a"]))
    assert "tgas" in e["message"] and "unknown argument" in e["message"]
    s.ok("remember", space=space_name, content="something")
    e = tool_error(s.call("recall", space=space_name, text="x", k="ten"))
    assert e["code"] == "invalid_argument" and e["message"].startswith("k:")
    e = tool_error(s.call("recall", space=space_name))
    assert e["code"] == "invalid_argument"
    e = tool_error(s.call("forget", space=space_name, id="not-an-id"))
    assert e["code"] == "invalid_argument"
    e = tool_error(s.call("forget", space=space_name, id="0190a5b2-7c1e-7d3a-9f00-1234567890ab"))
    assert e["code"] == "memory_not_found"
    e = tool_error(s.call("forget", space=space_name, id="0190a5b2-7c1e-7d3a-9f00-1234567890ab",
                          mode="a&mode=b"))
    assert e["code"] == "invalid_argument"
    e = tool_error(s.call("remember", space="Bad Name!", content="x"))
    assert e["code"] == "invalid_argument"
    e = tool_error(s.call("remember", space=5, content="x"))
    assert "space" in e["message"]
    e = tool_error(s.call("remember", space=space_name, content="x", embedding=[1, 2]))
    assert e["code"] == "invalid_argument" and "embedding" in e["message"]


def test_forget_suppress(server, space_name):
    s = Session(server)
    mid = s.ok("remember", space=space_name, content="temporary note about the garage")["id"]
    assert s.ok("forget", space=space_name, id=mid, mode="suppress")["mode"] == "suppress"
    assert s.ok("recall", space=space_name, text="garage")["results"] == []
    hits = s.ok("recall", space=space_name, text="garage", include_suppressed=True)["results"]
    assert [h["memory"]["id"] for h in hits] == [mid]


def test_recognize_reminisce_consolidate(server, space_name):
    s = Session(server)
    ids = [s.ok("remember", space=space_name, content=c, when=1_700_000_000_000 + i * 1000,
                context={"who": ["ann"]})["id"]
           for i, c in enumerate(["Ann booked the train to Lyon",
                                  "Ann asked for a window seat",
                                  "Ann paid with the company card"])]
    rec = s.ok("recognize", space=space_name, text="Ann booked the train to Lyon")
    assert rec["recognized"] is True and rec["best"] == ids[0]
    assert s.ok("recognize", space=space_name, text="zebra quantum xylophone")["recognized"] is False
    mem = s.ok("reminisce", space=space_name, who="ann")["memories"]
    assert [m["id"] for m in mem] == ids
    assert s.ok("reminisce", space=space_name, topic="window seat")["memories"][0]["id"] == ids[1]
    c = s.ok("consolidate", space=space_name)
    assert {"candidates", "created", "updated", "episodes", "skipped", "ids"} <= set(c)


def test_consolidate_with_a_filter(server, space_name):
    """The filter scopes which clusters' semantic memories a run writes; the text result
    says what was left; a bad filter is a tool error naming its path."""
    s = Session(server)
    s.ok("create_space", space=space_name, dim=4)
    for c, tag in enumerate(["boats", "bikes"]):
        for j in range(3):
            v = [0.0] * 4
            v[c], v[3] = 1.0, 0.01 * j
            s.ok("remember", space=space_name, content="%s note %d" % (tag, j), embedding=v,
                 tags=[tag], when=1_700_000_000_000 + (c * 3 + j) * 1000)
    r = s.call("consolidate", space=space_name, min_support=3,
               filter={"tags": {"contains": "bikes"}})
    assert r["isError"] is False, r
    c = r["structuredContent"]
    assert (c["created"], c["skipped"], c["episodes"]) == (1, 1, 3), c
    assert "1 changes outside the filter left for a later run" in r["content"][0]["text"]
    c = s.ok("consolidate", space=space_name, min_support=3)
    assert (c["created"], c["updated"], c["skipped"]) == (1, 0, 0), c
    e = tool_error(s.call("consolidate", space=space_name, filter={"tags": {"like": "x"}}))
    assert "filter.tags.like: unknown operator" in json.dumps(e), e


def test_mutated_messages_never_break_the_server(server):
    """Seeded mutations of valid messages: every answer is a well-formed HTTP/JSON-RPC
    answer and the server stays up."""
    import random
    rng = random.Random(5)
    s = Session(server, "2025-03-26")
    seeds = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
         "params": {"name": "remember", "arguments": {"space": "mcp-fuzz", "content": "a b c"}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "recall", "arguments": {"space": "mcp-fuzz", "text": "b"}}},
        [{"jsonrpc": "2.0", "id": 3, "method": "ping"}, {"jsonrpc": "2.0", "method": "x"}],
    ]
    junk = [None, True, -1, 1e308, "", "\u0000", "\ud800", [], {}, "x" * 300, [1, [2]]]
    for i in range(300):
        text = json.dumps(rng.choice(seeds))
        ops = rng.randrange(1, 4)
        for _ in range(ops):
            k = rng.randrange(3)
            pos = rng.randrange(len(text) + 1)
            if k == 0 and text:
                text = text[:pos] + text[pos + 1:]
            elif k == 1:
                text = text[:pos] + rng.choice('{}[]",:0-e\\') + text[pos:]
            else:
                text = text[:pos] + json.dumps(rng.choice(junk)) + text[pos:]
        a = s.post(text.encode("utf-8", "surrogatepass"))
        assert a.status in (200, 202, 400), (a.status, text, a.raw)
        if a.status != 202:
            body = a.json
            assert isinstance(body, (dict, list)), a.raw
    assert s.request("ping").result == {}


# ---- the session table ----

def test_session_table_evicts_least_recently_used(server_factory):
    srv = server_factory(env={"MNEMO_MCP_MAX_SESSIONS": "2"})
    a = Session(srv)
    b = Session(srv)
    a.request("ping")  # b is now the least recently used
    c = Session(srv)
    assert b.post({"jsonrpc": "2.0", "id": 1, "method": "ping"}).status == 404
    assert a.request("ping").result == {}
    assert c.request("ping").result == {}


class KeyedSession(Session):
    """A Session whose every POST carries an API key."""

    def __init__(self, server, key):
        self.key = key
        super().__init__(server)

    def post_raw(self, body, headers=None):
        h = {"Authorization": "Bearer " + self.key}
        h.update(headers or {})
        return http_call(self.server, "POST", body, h)

    def post(self, body, headers=None):
        h = {"Mcp-Session-Id": self.sid, "MCP-Protocol-Version": self.version}
        h.update(headers or {})
        return self.post_raw(body, h)

    def delete(self):
        return http_call(self.server, "DELETE", None,
                         {"Mcp-Session-Id": self.sid, "Authorization": "Bearer " + self.key})


def test_sessions_are_limited_and_evicted_per_key(server_factory, tmp_path):
    """A client can only end its own key's sessions: at mcp.max_sessions_per_key its oldest
    goes; a table full of other keys' live sessions refuses it instead of evicting them."""
    import hashlib
    keys = {n: "mcp-%s-0123456789" % n for n in ("a", "b", "c")}
    cfg = ["[auth]", "enabled = true", "[mcp]", "max_sessions = 4", "max_sessions_per_key = 2"]
    for n, k in keys.items():
        cfg += ["[[auth.keys]]", 'name = "%s"' % n,
                'sha256 = "%s"' % hashlib.sha256(k.encode()).hexdigest(),
                'role = "read"', 'spaces = ["*"]']
    (tmp_path / "mcp.toml").write_text("\n".join(cfg) + "\n")
    srv = server_factory(args=["--config", str(tmp_path / "mcp.toml")])
    a1, a2 = KeyedSession(srv, keys["a"]), KeyedSession(srv, keys["a"])
    b1, b2 = KeyedSession(srv, keys["b"]), KeyedSession(srv, keys["b"])
    a1.request("ping")  # a2 is now a's least recently used, b1 the table's
    a3 = KeyedSession(srv, keys["a"])
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert a2.post(ping).status == 404
    for s in (a1, a3, b1, b2):
        assert s.request("ping").result == {}
    # the table is full of live sessions of a and b: c may not end any of them
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": LATEST, "capabilities": {},
                       "clientInfo": {"name": "c", "version": "1"}}}
    r = http_call(srv, "POST", init, {"Authorization": "Bearer " + keys["c"]})
    assert r.json["error"]["code"] == -32000 and "busy" in r.json["error"]["message"], r.raw
    assert r.header("mcp-session-id") is None
    for s in (a1, a3, b1, b2):
        assert s.request("ping").result == {}
    # once a key lets one go, c gets the slot
    assert b2.delete().status == 204
    assert KeyedSession(srv, keys["c"]).request("ping").result == {}


def test_idle_session_ends(server_factory):
    srv = server_factory(env={"MNEMO_MCP_SESSION_IDLE_S": "1"})
    a = Session(srv)
    t0 = time.monotonic()
    # the idle limit has to pass without touching the session (every request renews it)
    time.sleep(1.3)
    assert time.monotonic() - t0 > 1.0
    assert a.post({"jsonrpc": "2.0", "id": 1, "method": "ping"}).status == 404
    assert Session(srv).request("ping").result == {}


def test_concurrent_sessions(server):
    errors = []

    def agent(i):
        try:
            s = Session(server)
            space = "mcp-conc-%d" % i
            mid = s.ok("remember", space=space, content="agent %d parked on level %d" % (i, i))["id"]
            hits = s.ok("recall", space=space, text="parked level")["results"]
            assert hits[0]["memory"]["id"] == mid
            assert s.delete().status == 204
        except Exception as e:  # reported below
            errors.append("%d: %r" % (i, e))

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


# ---- the official TypeScript SDK client ----

def test_typescript_sdk_client(server):
    p = node_client(NODE_DIR, "@modelcontextprotocol/sdk", [server.url + "/mcp", "mcp-node-sdk"])
    assert p.returncode == 0, "node client failed:\n%s\n%s" % (p.stdout, p.stderr)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["ok"] is True
    assert out["protocolVersion"] in VERSIONS
    assert set(out["tools"]) >= REQUIRED_TOOLS
    # what the SDK client remembered is in the space, seen over plain HTTP too
    c = server.client()
    try:
        assert c.get("mcp-node-sdk", out["id"])["content"].startswith("The spare key")
    finally:
        c.close()
