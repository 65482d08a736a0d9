"""Memory endpoints: remember (single and batch), get, list with filters and
pagination, forget (delete and suppress), unsuppress, idempotency, and every 422."""

import json
import math

import numpy as np
import pytest

from conftest import expect_error


@pytest.fixture
def space(client, space_name):
    client.create_space(space_name, dim=4)
    return space_name


def vec(i, dim=4):
    rng = np.random.default_rng(i)
    return [float(x) for x in rng.normal(size=dim)]


def test_remember_then_get_returns_every_field(client, space):
    mid = client.remember(space, "met Ada at the station", vec(1), kind="episodic",
                          when="2026-01-31T09:30:00.250Z", confidence=0.75, importance=0.9,
                          emotional_valence=-0.5,
                          context={"who": ["ada", "bob"], "where": "station", "session": "s1"},
                          tags=["travel", "ada"], metadata={"source": "chat", "lang": "en"},
                          lifecycle="persistent")
    assert len(mid) == 36 and mid[14] == "7"  # UUIDv7 text
    m = client.get(space, mid)
    assert m["id"] == mid
    assert m["kind"] == "episodic"
    assert m["content"] == "met Ada at the station"
    assert m["when"] == "2026-01-31T09:30:00.250Z"
    assert m["created_at"].endswith("Z")
    assert m["confidence"] == 0.75 and m["importance"] == 0.9
    assert m["emotional_valence"] == -0.5
    assert m["context"] == {"who": ["ada", "bob"], "where": "station", "session": "s1"}
    assert m["tags"] == ["travel", "ada"]
    assert m["metadata"] == {"source": "chat", "lang": "en"}
    assert m["lifecycle"] == "persistent"
    assert m["expires_at"] is None
    assert m["suppressed"] is False
    assert "embedding" not in m


def test_defaults_of_a_minimal_memory(client, space):
    mid = client.remember(space, "minimal", vec(2))
    m = client.get(space, mid)
    assert m["kind"] == "episodic"
    assert m["confidence"] == 1 and m["importance"] == 0.5 and m["emotional_valence"] == 0
    assert m["context"] == {"who": [], "where": None, "session": None}
    assert m["tags"] == [] and m["metadata"] == {}
    assert m["when"] == m["created_at"]
    assert m["lifecycle"] == "persistent" and m["expires_at"] is None


def test_get_with_embedding_returns_the_float32_values(client, space):
    v = [0.1, -2.5, 3.0e-8, 1234.5678]
    mid = client.remember(space, "x", v)
    m = client.get(space, mid, include_embedding=True)
    # the shortest text of each float32 reads back as exactly that float32
    assert np.array_equal(np.array(m["embedding"], dtype=np.float32),
                          np.array(v, dtype=np.float32))


def test_when_accepts_integer_milliseconds_and_offsets(client, space):
    a = client.remember(space, "a", vec(3), when=1767225600123)
    assert client.get(space, a)["when"] == "2026-01-01T00:00:00.123Z"
    b = client.remember(space, "b", vec(4), when="2026-01-01T02:00:00+02:00")
    assert client.get(space, b)["when"] == "2026-01-01T00:00:00.000Z"


def test_who_accepts_a_single_string(client, space):
    mid = client.remember(space, "x", vec(5), context={"who": "ada"})
    assert client.get(space, mid)["context"]["who"] == ["ada"]


def test_unicode_content_round_trips(client, space):
    text = "Grüße 🌍 \"quoted\" back\\slash\nnew line \t tab \u2028 日本語"
    mid = client.remember(space, text, vec(6), tags=["ünï"], metadata={"ключ": "значение"})
    m = client.get(space, mid)
    assert m["content"] == text
    assert m["tags"] == ["ünï"] and m["metadata"] == {"ключ": "значение"}


def test_text_only_memory_needs_no_embedding(client, space):
    mid = client.remember(space, "only words here")
    assert client.get(space, mid)["content"] == "only words here"
    e = expect_error(lambda: client.remember(space, ""), 422, "invalid_argument")
    assert "embedding" in e.message


def test_batch_returns_ids_in_input_order(client, space):
    mems = [{"content": "m%d" % i, "embedding": vec(i), "tags": ["t%d" % i]} for i in range(50)]
    ids = client.remember_batch(space, mems)
    assert len(ids) == 50 and len(set(ids)) == 50
    for i in (0, 17, 49):
        m = client.get(space, ids[i])
        assert m["content"] == "m%d" % i and m["tags"] == ["t%d" % i]


def test_batch_is_all_or_nothing(client, space):
    before = client.stats(space)["memories"]
    mems = [{"content": "ok%d" % i, "embedding": vec(i)} for i in range(10)]
    mems[7]["confidence"] = 1.5
    e = expect_error(lambda: client.remember_batch(space, mems), 422, "invalid_argument")
    assert e.message.startswith("memories[7].confidence"), e.message
    mems[7]["confidence"] = "high"
    e = expect_error(lambda: client.remember_batch(space, mems), 422, "invalid_argument")
    assert e.message.startswith("memories[7].confidence: expected a number"), e.message
    mems[7] = {"content": "wrong dim", "embedding": [1.0, 2.0]}
    e = expect_error(lambda: client.remember_batch(space, mems), 422, "invalid_argument")
    assert e.message.startswith("memories[7].embedding"), e.message
    assert client.stats(space)["memories"] == before
    assert [m for m in client.iter_memories(space) if m["content"].startswith("ok")] == []


def test_batch_size_limits(client, space):
    e = expect_error(lambda: client.remember_batch(space, []), 422, "invalid_argument")
    assert "memories" in e.message
    mems = [{"content": "x", "embedding": [1, 0, 0, 0]}] * 1001
    expect_error(lambda: client.remember_batch(space, mems), 422, "invalid_argument",
                 "memories")
    ids = client.remember_batch(space, [{"content": "m%d" % i, "embedding": vec(i)}
                                        for i in range(1000)])
    assert len(set(ids)) == 1000


def test_batch_refuses_other_top_level_fields(client, space):
    r = client.raw("POST", "/v1/spaces/%s/memories" % space,
                   {"memories": [{"content": "x", "embedding": vec(1)}], "content": "y"})
    assert r.status == 422 and "content" in r.json["error"]["message"]
    r = client.raw("POST", "/v1/spaces/%s/memories" % space, {"memories": {"content": "x"}})
    assert r.status == 422 and r.json["error"]["message"].startswith("memories")


def test_idempotency_key_returns_the_same_id(client, space):
    a = client.remember(space, "once", vec(1), idempotency_key="req-42")
    b = client.remember(space, "once", vec(1), idempotency_key="req-42")
    assert a == b
    c = client.remember(space, "once", vec(2), idempotency_key="req-43")  # not a duplicate
    assert c != a
    ids = client.remember_batch(space, [{"content": "once", "embedding": vec(1),
                                         "idempotency_key": "req-42"},
                                        {"content": "new", "embedding": vec(2)}])
    assert ids[0] == a and ids[1] not in (a, c)
    assert client.stats(space)["memories"] == 3


@pytest.mark.parametrize("fields,prefix", [
    ({"embedding": [1, 2, 3]}, "embedding"),
    ({"embedding": [1, 2, 3, 4, 5]}, "embedding"),
    ({"embedding": [1, 2, "3", 4]}, "embedding[2]"),
    ({"embedding": "1,2,3,4"}, "embedding"),
    ({"embedding": [1e39, 0, 0, 0]}, "embedding[0]"),  # beyond float32: inf
    ({"embedding": [0, 0, 1e400, 0]}, "embedding[2]"),  # beyond double: inf
    ({"embedding": [0, 0, 0, 0]}, "embedding"),  # zero vector in a cosine space
    ({"confidence": 1.01}, "confidence"),
    ({"confidence": -0.1}, "confidence"),
    ({"confidence": 1e400}, "confidence"),
    ({"confidence": "0.5"}, "confidence"),
    ({"importance": 2}, "importance"),
    ({"emotional_valence": -1.5}, "emotional_valence"),
    ({"kind": "procedural"}, "kind"),
    ({"lifecycle": "forever"}, "lifecycle"),
    ({"lifecycle": 3}, "lifecycle"),
    ({"ttl_seconds": -1}, "ttl_seconds"),
    ({"ttl_seconds": 1.5}, "ttl_seconds"),
    ({"when": "yesterday"}, "when"),
    ({"when": 1.5}, "when"),
    ({"when": True}, "when"),
    ({"tags": "a,b"}, "tags"),
    ({"tags": ["a", 1]}, "tags[1]"),
    ({"tags": [""]}, "tags"),
    ({"metadata": {"k": 1}}, "metadata.k"),
    ({"metadata": ["k"]}, "metadata"),
    ({"context": "here"}, "context"),
    ({"context": {"who": 7}}, "context.who"),
    ({"context": {"place": "x"}}, "context.place"),
    ({"context": {"where": ["x"]}}, "context.where"),
    ({"content": 12}, "content"),
    ({"content": "x" * 65537}, "content"),
    ({"idempotency_key": ""}, "idempotency_key"),
    ({"idempotency_key": 5}, "idempotency_key"),
    ({"tgas": ["typo"]}, "tgas"),
    ({"id": "0190a5b2-7c1e-7d3a-9f00-1234567890ab"}, "id"),
])
def test_bad_memory_fields_are_422_naming_the_field(client, space, fields, prefix):
    body = {"content": "x", "embedding": [0.5, 0.5, 0.5, 0.5]}
    body.update(fields)
    data = json.dumps(body).replace("Infinity", "1e400")
    r = client.raw("POST", "/v1/spaces/%s/memories" % space, data.encode(),
                   headers={"Content-Type": "application/json"})
    assert r.status == 422, (fields, r.status, r.body)
    err = r.json["error"]
    assert err["code"] == "invalid_argument"
    assert err["message"].startswith(prefix), (prefix, err["message"])


def test_missing_content_is_422(client, space):
    r = client.raw("POST", "/v1/spaces/%s/memories" % space, {"embedding": vec(1)})
    assert r.status == 422 and r.json["error"]["message"].startswith("content")


def test_invalid_utf8_in_content_is_422(client, space):
    raw = b'{"content": "bad \xc3\x28 byte", "embedding": [1, 2, 3, 4]}'
    r = client.raw("POST", "/v1/spaces/%s/memories" % space, raw,
                   headers={"Content-Type": "application/json"})
    assert r.status == 422
    assert r.json["error"]["message"].startswith("content"), r.json
    raw = b'{"content": "ok", "tags": ["\xed\xa0\x80"], "embedding": [1, 2, 3, 4]}'
    r = client.raw("POST", "/v1/spaces/%s/memories" % space, raw,
                   headers={"Content-Type": "application/json"})
    assert r.status == 422 and "tags" in r.json["error"]["message"]


def test_nul_characters_are_refused(client, space):
    r = client.raw("POST", "/v1/spaces/%s/memories" % space,
                   b'{"content": "a\\u0000b", "embedding": [1, 2, 3, 4]}',
                   headers={"Content-Type": "application/json"})
    assert r.status == 422
    # an escaped backslash followed by u0000 is ordinary text
    mid = json.loads(client.raw("POST", "/v1/spaces/%s/memories" % space,
                                b'{"content": "a\\\\u0000b", "embedding": [1, 2, 3, 4]}',
                                headers={"Content-Type": "application/json"}).body)["id"]
    assert client.get(space, mid)["content"] == "a\\u0000b"


def test_duplicate_json_field_is_422(client, space):
    r = client.raw("POST", "/v1/spaces/%s/memories" % space,
                   b'{"content": "a", "content": "b", "embedding": [1, 2, 3, 4]}',
                   headers={"Content-Type": "application/json"})
    assert r.status == 422 and "duplicate" in r.json["error"]["message"]


def test_get_unknown_and_malformed_ids(client, space):
    e = expect_error(lambda: client.get(space, "0190a5b2-7c1e-7d3a-9f00-1234567890ab"), 404,
                     "memory_not_found")
    assert e.request_id
    expect_error(lambda: client.get(space, "not-an-id"), 422, "invalid_argument", "id")
    expect_error(lambda: client.forget(space, "xyz"), 422, "invalid_argument", "id")
    expect_error(lambda: client.unsuppress(space, "xyz"), 422, "invalid_argument", "id")
    expect_error(lambda: client.forget(space, "0190a5b2-7c1e-7d3a-9f00-1234567890ab"), 404,
                 "memory_not_found")


def test_forget_delete_erases_and_is_final(client, space):
    mid = client.remember(space, "to forget", vec(1))
    assert client.forget(space, mid) == {"id": mid, "mode": "delete", "forgotten": True}
    expect_error(lambda: client.get(space, mid), 404, "memory_forgotten")
    expect_error(lambda: client.forget(space, mid), 404, "memory_forgotten")
    expect_error(lambda: client.unsuppress(space, mid), 404, "memory_forgotten")
    assert mid not in [m["id"] for m in client.iter_memories(space, include_suppressed=True)]


def test_suppress_hides_and_unsuppress_restores(client, space):
    mid = client.remember(space, "hidden", [1, 0, 0, 0])
    other = client.remember(space, "visible", [0, 1, 0, 0])
    r = client.forget(space, mid, mode="suppress")
    assert r == {"id": mid, "mode": "suppress", "forgotten": True}
    assert client.get(space, mid)["suppressed"] is True
    ids = [h["id"] for h in client.recall(space, [1, 0, 0, 0], k=10)["results"]]
    assert mid not in ids and other in ids
    assert mid not in [m["id"] for m in client.iter_memories(space)]
    assert mid in [m["id"] for m in client.iter_memories(space, include_suppressed=True)]
    ids = [h["id"] for h in client.recall(space, [1, 0, 0, 0], include_suppressed=True)["results"]]
    assert ids[0] == mid
    assert client.unsuppress(space, mid) == {"id": mid, "suppressed": False}
    assert client.get(space, mid)["suppressed"] is False
    assert client.recall(space, [1, 0, 0, 0], k=1)["results"][0]["id"] == mid
    assert mid in [m["id"] for m in client.iter_memories(space)]


def test_forget_mode_must_be_delete_or_suppress(client, space):
    mid = client.remember(space, "x", vec(1))
    expect_error(lambda: client.forget(space, mid, mode="shred"), 422, "invalid_argument",
                 "mode")


def test_list_pages_cover_every_memory_once_in_when_id_order(client, space):
    # equal `when` values exercise the id tie-break
    mems = [{"content": "p%d" % i, "embedding": vec(i), "when": 1767225600000 + (i % 7) * 1000}
            for i in range(137)]
    ids = client.remember_batch(space, mems)
    seen, cursor, pages = [], None, 0
    while True:
        page = client.list_memories(space, limit=10, cursor=cursor)
        pages += 1
        assert len(page["memories"]) <= 10
        seen.extend(page["memories"])
        cursor = page["next"]
        if not cursor:
            break
        assert pages < 100
    assert sorted(m["id"] for m in seen) == sorted(ids)
    assert len(seen) == len(ids)
    keys = [(m["when"], m["id"]) for m in seen]
    assert keys == sorted(keys)


def test_list_limit_bounds_and_bad_cursor(client, space):
    client.remember(space, "x", vec(1))
    for bad in ("0", "1001", "ten", "-3"):
        r = client.raw("GET", "/v1/spaces/%s/memories?limit=%s" % (space, bad))
        assert r.status == 422 and r.json["error"]["message"].startswith("limit"), bad
    r = client.raw("GET", "/v1/spaces/%s/memories?cursor=garbage" % space)
    assert r.status == 422 and "cursor" in r.json["error"]["message"]
    r = client.raw("GET", "/v1/spaces/%s/memories?colour=red" % space)
    assert r.status == 422 and "colour" in r.json["error"]["message"]


def test_list_filters(client, space):
    base = 1767225600000
    mems = [
        {"content": "a", "embedding": vec(1), "tags": ["x", "y"], "when": base,
         "metadata": {"src": "chat"}, "confidence": 0.9, "context": {"who": ["ada"]}},
        {"content": "b", "embedding": vec(2), "tags": ["x"], "when": base + 1000,
         "metadata": {"src": "mail"}, "confidence": 0.4, "kind": "semantic"},
        {"content": "c", "embedding": vec(3), "tags": ["z"], "when": base + 2000,
         "metadata": {"src": "chat", "lang": "de"}, "confidence": 0.6,
         "context": {"where": "home", "session": "s9"}},
    ]
    client.remember_batch(space, mems)

    def contents(**f):
        return [m["content"] for m in client.iter_memories(space, **f)]

    assert contents() == ["a", "b", "c"]
    assert contents(tags_any=["y", "z"]) == ["a", "c"]
    assert contents(tags_all=["x", "y"]) == ["a"]
    assert contents(kind="semantic") == ["b"]
    assert contents(kind="episodic") == ["a", "c"]
    assert contents(when_from="2026-01-01T00:00:01Z") == ["b", "c"]
    assert contents(when_to=base + 2000) == ["a", "b"]
    assert contents(when_from=base + 1000, when_to=base + 1001) == ["b"]
    assert contents(min_confidence=0.5) == ["a", "c"]
    assert contents(metadata={"src": "chat"}) == ["a", "c"]
    assert contents(metadata={"src": "chat", "lang": "de"}) == ["c"]
    assert contents(who="ada") == ["a"]
    assert contents(where="home") == ["c"]
    assert contents(session="s9") == ["c"]
    page = client.list_memories(space, include_embedding=True, limit=1)
    assert len(page["memories"][0]["embedding"]) == 4
    r = client.raw("GET", "/v1/spaces/%s/memories?kind=procedural" % space)
    assert r.status == 422
    r = client.raw("GET", "/v1/spaces/%s/memories?min_confidence=lots" % space)
    assert r.status == 422
    r = client.raw("GET", "/v1/spaces/%s/memories?when_from=soon" % space)
    assert r.status == 422


def test_ephemeral_memory_expires_an_hour_after_creation(client, space):
    mid = client.remember(space, "short lived", vec(1), lifecycle="ephemeral")
    m = client.get(space, mid)
    assert m["lifecycle"] == "ephemeral"
    created = _ms(m["created_at"])
    assert abs(_ms(m["expires_at"]) - created - 3600 * 1000) <= 1
    sid = client.remember(space, "session", vec(2), lifecycle="session")
    m = client.get(space, sid)
    assert abs(_ms(m["expires_at"]) - _ms(m["created_at"]) - 86400 * 1000) <= 1
    tid = client.remember(space, "ttl", vec(3), ttl_seconds=120)
    m = client.get(space, tid)
    assert m["lifecycle"] == "persistent"
    assert abs(_ms(m["expires_at"]) - _ms(m["created_at"]) - 120 * 1000) <= 1
    nid = client.remember(space, "never", vec(4), lifecycle="ephemeral", ttl_seconds=0)
    assert client.get(space, nid)["expires_at"] is None


def test_space_default_lifecycle_applies(client, space_name):
    client.create_space(space_name, dim=2, default_lifecycle="session")
    mid = client.remember(space_name, "x", [1, 2])
    m = client.get(space_name, mid)
    assert m["lifecycle"] == "session" and m["expires_at"] is not None


def _ms(t):
    import datetime
    d = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    return int(round(d.timestamp() * 1000))


def test_floats_survive_as_float32(client, space):
    mid = client.remember(space, "x", vec(1), confidence=0.1, importance=1 / 3)
    m = client.get(space, mid)
    assert m["confidence"] == 0.1
    assert math.isclose(m["importance"], 1 / 3, rel_tol=1e-6)
