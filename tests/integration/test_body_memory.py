"""Request bodies within limits applied while they are parsed (issue 14, section 4): a number
array longer than the space's dim, a batch past 1000, a string past 64 KiB are refused where
they break the limit, before the rest of the body is read (each body here ends in a syntax
error that a parse of the whole body would report instead); embeddings parsed straight into
float32 arrays still reach every handler (remember, batch, recall, recognize, complete) over
REST and MCP; and MCP's own body limit, mcp.max_body_bytes."""

import http.client
import json

import pytest

from test_mcp import Session, http_call, tool_error

DIM = 8
MCP_LIMIT = 65536


def post(server, path, body):
    """POST raw bytes (or a JSON-able value); (status, parsed body)."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None
    finally:
        conn.close()


def numbers(n, value="0.125"):
    return ",".join([value] * n).encode()


def vec(i):
    return [1.0 if j == i % DIM else 0.01 * (j + 1) for j in range(DIM)]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from conftest import MnemoServer
    s = MnemoServer(tmp_path_factory.mktemp("bodies"),
                    env={"MNEMO_MCP_MAX_BODY_BYTES": str(MCP_LIMIT)}).start()
    status, body = post(s, "/v1/spaces", {"name": "b", "dim": DIM})
    assert status == 201, body
    yield s
    if s.alive():
        assert s.stop() == 0, s.log()


def refused(status_body, status, message):
    status_got, body = status_body
    assert status_got == status, body
    assert body["error"]["message"] == message, body


# ---- limits while parsing ----

def test_embedding_longer_than_the_dim_is_refused_at_the_array(srv):
    # 2 million values, then a syntax error: the whole-body parse would answer 400 for it
    body = b'{"embedding":[' + numbers(2_000_000) + b'], "k": }'
    refused(post(srv, "/v1/spaces/b/recall", body), 422,
            "embedding: expected 8 values, got 2000000")
    body = b'{"memories":[{"content":"a"},{"content":"b","embedding":[' + numbers(9) + b']}], }'
    refused(post(srv, "/v1/spaces/b/memories", body), 422,
            "memories[1].embedding: expected 8 values, got 9")
    body = b'{"embedding":[' + numbers(20) + b'],"threshold":}'
    refused(post(srv, "/v1/spaces/b/recognize", body), 422,
            "embedding: expected 8 values, got 20")
    assert srv.alive()


def test_a_space_that_does_not_exist_bounds_arrays_by_the_largest_dim(srv):
    body = b'{"embedding":[' + numbers(5000) + b'] x'
    refused(post(srv, "/v1/spaces/nope/recall", body), 422,
            "embedding: 5000 numbers, the limit is 4096 (the largest dim)")
    status, body = post(srv, "/v1/spaces/nope/recall", {"embedding": vec(0)})
    assert status == 404 and body["error"]["code"] == "space_not_found", body


def test_batch_past_the_limit_is_refused_at_the_array(srv):
    body = b'{"memories":[' + b",".join([b'{"content":"x"}'] * 1001) + b'] broken'
    refused(post(srv, "/v1/spaces/b/memories", body), 422,
            "memories: more than 1000 values in one array or object")


def test_string_past_the_content_limit_is_refused_where_it_is(srv):
    body = b'{"content":"' + b"x" * 70000 + b'", oops'
    refused(post(srv, "/v1/spaces/b/memories", body), 422,
            "content: a string of 70000 bytes, the limit is 65536")


def test_too_many_values_get_413(srv):
    memory = b'{"tags":[' + b",".join([b'"t"'] * 900) + b"]}"
    body = b'{"memories":[' + b",".join([memory] * 300) + b"]}"
    status, answer = post(srv, "/v1/spaces/b/memories", body)
    assert status == 413, answer
    assert answer["error"]["code"] == "payload_too_large"


def test_nesting_past_32_is_refused(srv):
    status, answer = post(srv, "/v1/spaces/b/recall", b'{"a":' + b"[" * 40 + b"]" * 40 + b"}")
    assert status == 400, answer
    assert "32" in answer["error"]["hint"]


# ---- compact embeddings reach every handler ----

def test_embeddings_work_end_to_end_over_rest(srv):
    status, body = post(srv, "/v1/spaces/b/memories",
                        {"memories": [{"content": "memory %d" % i, "embedding": vec(i)}
                                      for i in range(3)]})
    assert status == 201, body
    ids = body["ids"]
    status, body = post(srv, "/v1/spaces/b/recall",
                        {"embedding": vec(1), "k": 1, "spread": False, "include_embedding": True})
    assert status == 200, body
    hit = body["results"][0]
    assert hit["id"] == ids[1]
    assert hit["memory"]["embedding"] == pytest.approx(vec(1), rel=1e-6)
    status, body = post(srv, "/v1/spaces/b/recognize", {"embedding": vec(2)})
    assert status == 200 and body["recognized"] and body["best"] == ids[2], body
    status, body = post(srv, "/v1/spaces/b/complete",
                        {"embedding": vec(0), "content": "", "k": 1})
    assert status == 200, body
    # a wrong length is still the engine's answer when it is shorter
    refused(post(srv, "/v1/spaces/b/recall", {"embedding": [0.5] * 3}), 422,
            "embedding: expected 8 values, got 3")


# ---- MCP ----

def test_mcp_body_over_its_limit_gets_413(srv):
    s = Session(srv)
    big = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": "remember",
                      "arguments": {"space": "m", "content": "x" * (MCP_LIMIT + 10)}}}
    a = s.post(big)
    assert a.status == 413, a.raw
    assert a.json["error"]["data"]["code"] == "payload_too_large"
    assert "mcp.max_body_bytes" in a.json["error"]["data"]["hint"]
    # the HTTP routes keep http.max_body_bytes
    status, body = post(srv, "/v1/spaces/b/memories",
                        {"memories": [{"content": c * 40000} for c in "yz"]})
    assert status == 201, body
    assert s.request("ping").result == {}


def test_mcp_limits_name_the_argument(srv):
    s = Session(srv)
    body = ('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"recall",'
            '"arguments":{"space":"b","embedding":[' + ",".join(["1"] * 5000) + ']}}}')
    a = s.post(body)
    assert a.status == 400, a.raw
    assert a.json["error"]["code"] == -32602
    assert a.json["error"]["message"] == (
        "Invalid params: params.arguments.embedding: 5000 numbers, the limit is 4096 "
        "(the largest dim)")


def test_mcp_embeddings_size_new_spaces_and_are_recalled(srv):
    s = Session(srv)
    v = [0.25, -0.5, 1.0, 0.125, 0.0, 0.75]
    r = s.ok("remember", space="mcp-emb", content="six numbers", embedding=v)
    assert r["space_created"] is True
    assert srv.client().get_space("mcp-emb")["dim"] == 6
    r = s.ok("recall", space="mcp-emb", embedding=v, k=1, spread=False)
    assert r["results"][0]["id"] == r["results"][0]["memory"]["id"]
    assert r["results"][0]["memory"]["content"] == "six numbers"
    e = tool_error(s.call("recall", space="mcp-emb", embedding=v + [1.0]))
    assert e["message"] == "embedding: expected 6 values, got 7"
    r = s.ok("create_space", space="mcp-made", dim=4)
    assert r["dim"] == 4


def test_mcp_nul_in_a_string_is_refused(srv):
    s = Session(srv)
    a = s.post('{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"remember",'
               '"arguments":{"space":"b","content":"a\\u0000b"}}}')
    assert a.status == 400, a.raw
    assert "NUL" in a.json["error"]["message"]
    assert http_call(srv, "GET").status == 405
