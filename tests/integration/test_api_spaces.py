"""Service and space endpoints: health, ready, spaces CRUD, stats, backups, and the
generic HTTP errors (400, 404, 405, 409, 413, 415, 422) with their error bodies."""

import json
import os

import pytest

from conftest import expect_error


def test_health_reports_status_and_version(client):
    r = client.raw("GET", "/health")
    assert r.status == 200
    assert r.json["status"] == "ok"
    assert r.json["version"]
    assert r.headers["content-type"].startswith("application/json")
    assert r.request_id


def test_ready_is_true_while_serving(client):
    r = client.raw("GET", "/ready")
    assert r.status == 200 and r.json == {"ready": True}


def test_every_response_has_a_distinct_request_id(client):
    ids = set()
    for path in ("/health", "/v1/spaces", "/v1/spaces/nope", "/nowhere"):
        r = client.raw("GET", path)
        assert r.request_id, path
        ids.add(r.request_id)
    assert len(ids) == 4


def test_create_space_returns_the_space(client, space_name):
    s = client.create_space(space_name, dim=8, metric="l2", default_lifecycle="session")
    assert s["name"] == space_name
    assert s["dim"] == 8
    assert s["metric"] == "l2"
    assert s["default_lifecycle"] == "session"
    assert s["created_at"].endswith("Z")


def test_create_space_defaults_to_cosine_and_persistent(client, space_name):
    r = client.raw("POST", "/v1/spaces", {"name": space_name, "dim": 3})
    assert r.status == 201
    assert r.json["metric"] == "cosine"
    assert r.json["default_lifecycle"] == "persistent"


def test_list_spaces_is_sorted_by_name(client, space_name):
    for suffix in ("b", "a", "c"):
        client.create_space(space_name + suffix, dim=2)
    names = [s["name"] for s in client.list_spaces()]
    mine = [n for n in names if n.startswith(space_name)]
    assert mine == sorted(mine) and len(mine) == 3
    assert names == sorted(names)


def test_get_space_includes_stats(client, space_name):
    client.create_space(space_name, dim=2)
    client.remember(space_name, "one", [1, 0])
    s = client.get_space(space_name)
    assert s["name"] == space_name and s["dim"] == 2
    st = s["stats"]
    for key in ("memories", "episodic", "semantic", "suppressed", "tombstones", "epoch",
                "last_lsn", "wal_first_lsn", "vector_bytes"):
        assert isinstance(st[key], int), key
    assert st["memories"] == 1 and st["episodic"] == 1


def test_stats_counts_memories_suppressed_and_tombstones(client, space_name):
    client.create_space(space_name, dim=2, metric="dot")
    ids = client.remember_batch(space_name, [{"content": "m%d" % i, "embedding": [i, 1]}
                                             for i in range(5)])
    client.forget(space_name, ids[0], mode="suppress")
    client.forget(space_name, ids[1])
    st = client.stats(space_name)
    assert st["name"] == space_name and st["dim"] == 2 and st["metric"] == "dot"
    assert st["memories"] == 4
    assert st["suppressed"] == 1
    assert st["tombstones"] == 1
    assert st["last_lsn"] >= 3


def test_delete_space_removes_it_and_its_memories(client, space_name):
    client.create_space(space_name, dim=2)
    mid = client.remember(space_name, "x", [1, 1])
    assert client.delete_space(space_name) == {"name": space_name, "deleted": True}
    expect_error(lambda: client.get_space(space_name), 404, "space_not_found")
    expect_error(lambda: client.get(space_name, mid), 404, "space_not_found")
    # the name can be used again, empty
    client.create_space(space_name, dim=4)
    assert client.stats(space_name)["memories"] == 0


def test_duplicate_space_is_409(client, space_name):
    client.create_space(space_name, dim=2)
    e = expect_error(lambda: client.create_space(space_name, dim=2), 409, "space_exists")
    assert space_name in e.message


def test_unknown_space_is_404_on_every_space_route(client):
    routes = [("GET", "/v1/spaces/nope"), ("DELETE", "/v1/spaces/nope"),
              ("GET", "/v1/spaces/nope/stats"), ("GET", "/v1/spaces/nope/memories"),
              ("POST", "/v1/spaces/nope/memories"), ("POST", "/v1/spaces/nope/recall")]
    bodies = {"POST": {"content": "x", "embedding": [1.0]}}
    for method, path in routes:
        body = bodies.get(method)
        if path.endswith("recall"):
            body = {"embedding": [1.0]}
        r = client.raw(method, path, body)
        assert r.status == 404, (method, path, r.body)
        assert r.json["error"]["code"] == "space_not_found", (method, path)
        assert r.json["error"]["message"]
        assert r.json["error"]["hint"]


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "_lead", "has space", "a" * 65,
                                  "dots.no", "ünï"])
def test_bad_space_name_is_422(client, name):
    e = expect_error(lambda: client.create_space(name, dim=2), 422, "invalid_argument")
    assert "name" in e.message


def test_longest_space_name_is_accepted(client):
    name = "z" + "9" * 63
    assert client.create_space(name, dim=1)["name"] == name
    client.delete_space(name)


@pytest.mark.parametrize("body,field", [
    ({"dim": 0}, "dim"), ({"dim": 4097}, "dim"), ({"dim": -1}, "dim"), ({"dim": 2.5}, "dim"),
    ({"dim": "8"}, "dim"), ({"metric": "hamming"}, "metric"), ({"metric": 1}, "metric"),
    ({"default_lifecycle": "forever"}, "default_lifecycle"), ({"colour": "red"}, "colour"),
    ({"dim": None}, "dim"), ({"name": 5}, "name"),
])
def test_bad_space_fields_are_422_naming_the_field(client, space_name, body, field):
    b = {"name": space_name, "dim": 4}
    b.update(body)
    r = client.raw("POST", "/v1/spaces", b)
    assert r.status == 422, r.body
    err = r.json["error"]
    assert err["code"] == "invalid_argument"
    assert err["message"].startswith(field), err["message"]


def test_unknown_route_is_404(client):
    r = client.raw("GET", "/v2/anything")
    assert r.status == 404
    assert r.json["error"]["code"]


def test_wrong_method_is_405_with_allow(client, space_name):
    r = client.raw("PUT", "/v1/spaces", {"name": "x"})
    assert r.status == 405
    assert "POST" in r.headers["allow"] and "GET" in r.headers["allow"]
    r = client.raw("PATCH", "/v1/spaces/%s/memories" % space_name)
    assert r.status == 405
    r = client.raw("DELETE", "/health")
    assert r.status == 405


def test_malformed_json_is_400(client):
    for body in (b"{", b"{\"name\": }", b"not json", b"{\"a\":1} trailing", b"", b"   ",
                 b"{\"a\":\"\xff\\ud800\"}"):
        r = client.raw("POST", "/v1/spaces", body, headers={"Content-Type": "application/json"})
        assert r.status == 400, (body, r.status, r.body)
        assert r.json["error"]["code"] == "invalid_json"


def test_json_that_is_not_an_object_is_422(client):
    for body in (b"[]", b"1", b"\"x\"", b"null"):
        r = client.raw("POST", "/v1/spaces", body, headers={"Content-Type": "application/json"})
        assert r.status == 422, body
        assert r.json["error"]["code"] == "invalid_argument"


def test_non_json_content_type_is_415(client, space_name):
    body = json.dumps({"name": space_name, "dim": 2})
    for ct in ("text/plain", "application/x-www-form-urlencoded", "application/xml",
               "application/jsonx"):
        r = client.raw("POST", "/v1/spaces", body, headers={"Content-Type": ct})
        assert r.status == 415, ct
        assert r.json["error"]["code"] == "unsupported_media_type"
    # json with parameters, +json suffixes and no content type at all are accepted
    for i, ct in enumerate(("application/json; charset=utf-8", "application/vnd.mnemo+json",
                            "Application/JSON", None)):
        hdrs = {"Content-Type": ct} if ct else {}
        b = json.dumps({"name": "%s-%d" % (space_name, i), "dim": 2})
        r = client.raw("POST", "/v1/spaces", b, headers=hdrs)
        assert r.status == 201, (ct, r.body)


def test_unknown_query_parameter_is_422(client, space_name):
    client.create_space(space_name, dim=2)
    r = client.raw("GET", "/v1/spaces/%s?verbose=1" % space_name)
    assert r.status == 422
    assert "verbose" in r.json["error"]["message"]


def test_body_over_the_limit_is_413(server_factory):
    s = server_factory(env={"MNEMO_HTTP_MAX_BODY_BYTES": "2048"})
    c = s.client()
    c.create_space("big", dim=4)
    r = c.raw("POST", "/v1/spaces/big/memories",
              {"content": "x" * 4096, "embedding": [1, 2, 3, 4]})
    assert r.status == 413
    assert r.json["error"]["code"]
    c.close()
    c = s.client()
    # the server still works and nothing was written
    assert c.stats("big")["memories"] == 0
    c.remember("big", "small", [1, 2, 3, 4])
    assert c.stats("big")["memories"] == 1
    c.close()


def test_checkpoint_writes_a_backup_that_opens_as_a_data_dir(server_factory, tmp_path):
    s = server_factory()
    c = s.client()
    c.create_space("kept", dim=2)
    mid = c.remember("kept", "backed up", [0.5, 0.5])
    target = str(tmp_path / "backup1")
    assert c.checkpoint(target) == {"path": target}
    assert os.path.isdir(target)
    e = expect_error(lambda: c.checkpoint(target), 409, "already_exists")
    assert "path" in e.message
    expect_error(lambda: c.request("POST", "/v1/admin/checkpoint", {}), 422, "invalid_argument")
    expect_error(lambda: c.request("POST", "/v1/admin/checkpoint", {"path": 3}), 422,
                 "invalid_argument", "path")
    c.close()
    b = server_factory(data_dir=target)
    bc = b.client()
    assert bc.get("kept", mid)["content"] == "backed up"
    bc.close()


def test_client_request_id_is_echoed(client):
    r = client.raw("GET", "/health", headers={"x-request-id": "agent-7:step-3"})
    assert r.request_id == "agent-7:step-3"


def test_head_and_trailing_slash(client):
    r = client.raw("HEAD", "/health")
    assert r.status == 200 and r.body == b""
    r = client.raw("GET", "/v1/spaces/")
    assert r.status == 200 and "spaces" in r.json


def test_pipelined_requests_are_answered_in_order(server, space_name):
    import socket
    c = server.client()
    c.create_space(space_name, dim=2)
    c.close()
    def post_of(content):  # two different memories (the same one twice is a duplicate)
        body = json.dumps({"content": content, "embedding": [1, 2]}).encode()
        return (b"POST /v1/spaces/%s/memories HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (space_name.encode(), len(body), body))
    get = b"GET /v1/spaces/%s/stats HTTP/1.1\r\nHost: x\r\n\r\n" % space_name.encode()
    last = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(post_of("p") + get + post_of("q") + get + last)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    responses = []
    while data:
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        length = int([v for k, v in (ln.split(b":", 1) for ln in lines[1:])
                      if k.strip().lower() == b"content-length"][0])
        responses.append((int(lines[0].split()[1]), json.loads(rest[:length])))
        data = rest[length:]
    assert [st for st, _ in responses] == [201, 200, 201, 200, 200]
    # each stats response saw the write pipelined before it
    assert responses[1][1]["memories"] == 1 and responses[3][1]["memories"] == 2
    assert responses[0][1]["id"] != responses[2][1]["id"]
