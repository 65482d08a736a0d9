"""Robustness: mutated and wrongly typed requests to every endpoint get a 4xx with
an error body (never a 5xx, a hang or a crash), and the server keeps serving.
Seeded, so a failure replays; most useful against the ASan+UBSan build."""

import json
import random

import pytest

ALLOWED = {200, 201, 400, 404, 405, 409, 413, 415, 422}

VALID = {
    "space": {"name": "fz", "dim": 3, "metric": "l2", "default_lifecycle": "session"},
    "memory": {"content": "fuzz me", "embedding": [0.1, 0.2, 0.3], "kind": "episodic",
               "when": "2026-01-01T00:00:00Z", "confidence": 0.5, "importance": 0.5,
               "emotional_valence": 0.1, "context": {"who": ["a"], "where": "b", "session": "c"},
               "tags": ["t"], "metadata": {"k": "v"}, "lifecycle": "persistent",
               "ttl_seconds": 100, "idempotency_key": "ik"},
    "recall": {"embedding": [0.1, 0.2, 0.3], "text": "fuzz", "k": 5, "threshold": 0.1,
               "tags_any": ["t"], "tags_all": ["t"], "metadata": {"k": "v"}, "kind": "episodic",
               "when": {"from": "2026-01-01T00:00:00Z", "to": 1900000000000},
               "min_confidence": 0.1, "include_embedding": True, "weights": {"vector": 1},
               "spread": True, "trace": True, "max_hops": 2},
}

WEIRD = [None, True, False, 0, -1, 1e308, -1e308, 1e-320, 2 ** 63, -(2 ** 63) - 1, 1.5, "",
         "x" * 300, "\u00e9\U0001F600", [], [1, "a", None], {}, {"a": {"b": [1]}},
         [[[[[]]]]], "2026-13-45T99:99:99Z", "NaN"]


JUNK = list("abc%=&,.+-_0123456789:TZ") + ["%C3%A9", "%FF", "%00", "metadata.k=", "limit=",
                                           "cursor=", "tags_any=", "when_from=", "kind="]


def mutate_value(rng, v):
    return rng.choice(WEIRD) if rng.random() < 0.7 else v


def mutate_obj(rng, obj):
    o = json.loads(json.dumps(obj))
    for _ in range(rng.randint(1, 3)):
        keys = list(o.keys())
        op = rng.random()
        if op < 0.5 and keys:
            k = rng.choice(keys)
            o[k] = mutate_value(rng, o[k])
        elif op < 0.7 and keys:
            del o[rng.choice(keys)]
        elif op < 0.85:
            o[rng.choice(["", "x", "tags ", "Content", "\u00e9"])] = rng.choice(WEIRD)
        elif keys:
            k = rng.choice(keys)
            if isinstance(o[k], dict) and o[k]:
                kk = rng.choice(list(o[k].keys()))
                o[k][kk] = rng.choice(WEIRD)
            elif isinstance(o[k], list) and o[k]:
                o[k][rng.randrange(len(o[k]))] = rng.choice(WEIRD)
    return o


def mutate_bytes(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randrange(len(b) + 1)
        if op < 0.4 and b:
            del b[min(pos, len(b) - 1)]
        elif op < 0.8:
            b[pos:pos] = bytes([rng.randrange(256)])
        else:
            b[pos:pos] = rng.choice([b"{", b"}", b"[", b"]", b"\"", b"\\u", b"\\ud800", b",",
                                     b":", b"1e999", b"\x00", b"\xff", b"\\u0000"])
    return bytes(b)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mutated_requests_get_4xx_and_the_server_survives(server, seed):
    rng = random.Random(seed)
    c = server.client()
    space = "fz%d" % seed
    c.create_space(space, dim=3, metric="l2")
    mid = c.remember(space, "seed memory", [1, 2, 3])
    targets = [
        ("POST", "/v1/spaces", "space"),
        ("POST", "/v1/spaces/%s/memories" % space, "memory"),
        ("POST", "/v1/spaces/%s/recall" % space, "recall"),
    ]
    seen = set()
    for i in range(400):
        method, path, kind = rng.choice(targets)
        valid = dict(VALID[kind])
        if kind == "space":
            valid["name"] = "fz%d-%d" % (seed, i)
        r = rng.random()
        if r < 0.45:
            body = json.dumps(mutate_obj(rng, valid)).encode()
        elif r < 0.55 and kind == "memory":
            body = json.dumps({"memories": [mutate_obj(rng, valid) for _ in range(3)]}).encode()
        else:
            body = mutate_bytes(rng, json.dumps(valid).encode())
        resp = c.raw(method, path, body, headers={"Content-Type": "application/json"})
        assert resp.status in ALLOWED, (seed, i, body, resp.status, resp.body)
        if resp.status >= 400:
            assert resp.json is not None, (seed, i, body, resp.status, resp.body)
            assert resp.json["error"]["code"] and resp.json["error"]["message"], resp.body
        seen.add(resp.status)
    # random query strings and ids on the GET routes
    for i in range(200):
        junk = "".join(rng.choice(JUNK) for _ in range(rng.randint(0, 30)))
        path = rng.choice(["/v1/spaces/%s/memories?" % space, "/v1/spaces/%s/memories/%s?" % (
            space, mid), "/v1/spaces/%s/memories/%s" % (space, junk.replace("?", "")),
            "/v1/spaces/%s?" % space, "/v1/spaces/%s/stats?" % space])
        resp = c.raw(rng.choice(["GET", "DELETE", "GET"]) if "memories/" in path else "GET",
                     path + junk if path.endswith("?") else path)
        assert resp.status in ALLOWED, (path, junk, resp.status, resp.body)
    assert {201, 400, 422} <= seen
    assert c.stats(space)["name"] == space
    assert c.health()["status"] == "ok"
    c.close()


def test_deeply_nested_json_is_refused_not_crashing(client):
    for depth in (100, 2000, 100000):
        body = b"[" * depth + b"]" * depth
        r = client.raw("POST", "/v1/spaces", body, headers={"Content-Type": "application/json"})
        assert r.status in (400, 422), (depth, r.status)
        body = b'{"name": ' + b"[" * depth + b"]" * depth + b"}"
        r = client.raw("POST", "/v1/spaces", body, headers={"Content-Type": "application/json"})
        assert r.status in (400, 422), (depth, r.status)
    assert client.health()["status"] == "ok"


def test_many_connections_in_parallel(server):
    import threading
    errors = []
    c0 = server.client()
    c0.create_space("par", dim=2)
    c0.close()

    def work(n):
        try:
            cl = server.client()
            for i in range(50):
                cl.remember("par", "p%d-%d" % (n, i), [n + 1, i])
                cl.recall("par", [1, 1], k=3)
            cl.close()
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:3]
    c = server.client()
    assert c.stats("par")["memories"] == 16 * 50
    c.close()
