"""Cognitive operations over HTTP (docs/api.md, "Cognitive operations"): associations,
spreading activation with a trace, consolidation, recognition, reminiscing, pattern
completion, and as-of reads on recall and list."""

import datetime

import numpy as np

from conftest import expect_error

DIM = 8
UNKNOWN_ID = "0190a5b2-7c1e-7d3a-9f00-1234567890ab"
T0 = 1_700_000_000_000  # a fixed event time (ms); tests use "when" relative to it


def axis(i, dim=DIM):
    """A unit vector along axis i: orthogonal cues never auto-link semantically."""
    v = np.zeros(dim, dtype=np.float32)
    v[i] = 1.0
    return v.tolist()


def ms_of(rfc3339):
    dt = datetime.datetime.strptime(rfc3339.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(dt.timestamp() * 1000)


def assoc_map(assocs):
    return {(a["id"], a["kind"], a["direction"]): a["weight"] for a in assocs}


def test_associate_explicit_and_causal(client, space_name):
    client.create_space(space_name, dim=DIM)
    a = client.remember(space_name, "rain started", axis(0))
    b = client.remember(space_name, "streets got wet", axis(1))
    c = client.remember(space_name, "umbrella sales", axis(2))
    n = client.associate(space_name, [
        {"from": a, "to": b, "kind": "causal", "weight": 0.9},
        {"from": a, "to": c, "kind": "explicit"},
    ])
    assert n == 2
    got_a = assoc_map(client.associations(space_name, a))
    assert abs(got_a[(b, "causal", "out")] - 0.9) < 1e-6
    assert got_a[(c, "explicit", "out")] == 1.0
    got_b = assoc_map(client.associations(space_name, b))
    assert (a, "causal", "in") in got_b


def test_associate_unknown_memory_is_404(client, space_name):
    client.create_space(space_name, dim=DIM)
    a = client.remember(space_name, "alone", axis(0))
    expect_error(lambda: client.associate(space_name, [{"from": a, "to": UNKNOWN_ID,
                                                        "kind": "explicit"}]), 404)
    expect_error(lambda: client.associations(space_name, UNKNOWN_ID), 404)
    expect_error(lambda: client.associate("no-such-space-cog", [
        {"from": a, "to": UNKNOWN_ID, "kind": "explicit"}]), 404, "space_not_found")


def test_associate_bad_kind_or_weight_is_422(client, space_name):
    client.create_space(space_name, dim=DIM)
    a = client.remember(space_name, "one", axis(0))
    b = client.remember(space_name, "two", axis(1))
    for edge, part in [
        ({"from": a, "to": b, "kind": "bogus"}, "kind"),
        ({"from": a, "to": b, "kind": "temporal"}, "kind"),
        ({"from": a, "to": b, "kind": "explicit", "weight": 1.5}, "weight"),
        ({"from": a, "to": b, "kind": "explicit", "weight": 0}, "weight"),
        ({"from": a, "to": "not-an-id", "kind": "explicit"}, "to"),
        ({"from": a, "to": b, "kind": "explicit", "extra": 1}, "extra"),
    ]:
        expect_error(lambda e=edge: client.associate(space_name, [e]), 422, "invalid_argument",
                     part)
    expect_error(lambda: client.associate(space_name, []), 422, "invalid_argument", "edges")
    # nothing was written by the refused requests
    assert client.associations(space_name, a) == []


def test_temporal_link_and_spreading_activation_trace(client, space_name):
    client.create_space(space_name, dim=DIM)
    first = client.remember(space_name, "we ordered coffee", axis(0), when=T0,
                            context={"session": "s1"})
    second = client.remember(space_name, "the bill arrived", axis(1), when=T0 + 60_000,
                             context={"session": "s1"})
    got = assoc_map(client.associations(space_name, second))
    assert (first, "temporal", "in") in got or (first, "temporal", "out") in got, got
    got1 = assoc_map(client.associations(space_name, first))
    assert any(k[0] == second and k[1] == "temporal" for k in got1), got1

    # only `second` matches the cue; `first` is reached through the temporal link
    res = client.recall(space_name, axis(1), k=5, threshold=0.99, spread=True, trace=True)
    by_id = {r["id"]: r for r in res["results"]}
    assert by_id[second]["seed"] is True
    assert first in by_id, res
    hit = by_id[first]
    assert hit["seed"] is False
    assert 0 < hit["activation"] <= 1
    assert hit["via"] and hit["via"][-1]["from"] == second
    assert hit["via"][-1]["kind"] == "temporal"
    assert "associative" in hit["confidence"]["reasons"]
    # spread is on by default: the same answer without asking for it
    dflt = client.recall(space_name, axis(1), k=5, threshold=0.99, trace=True)
    assert [(r["id"], r["activation"]) for r in dflt["results"]] == \
        [(r["id"], r["activation"]) for r in res["results"]]
    # spread off: no activation member, only the cue's match
    plain = client.recall(space_name, axis(1), k=5, threshold=0.99, spread=False)
    assert [r["id"] for r in plain["results"]] == [second]
    assert "activation" not in plain["results"][0]


def test_consolidate_three_clusters_then_nothing_new(client, space_name):
    client.create_space(space_name, dim=DIM)
    rng = np.random.default_rng(4)
    mems = []
    for c in range(3):
        center = np.array(axis(c), dtype=np.float32)
        for j in range(4):
            v = center + rng.normal(scale=0.02, size=DIM).astype(np.float32)
            mems.append({"content": "topic%d fact %d" % (c, j), "embedding": v.tolist(),
                         "when": T0 + (c * 4 + j) * 1000})
    ids = client.remember_batch(space_name, mems)
    res = client.consolidate(space_name)
    assert res["created"] == 3, res
    assert res["episodes"] == 12
    assert res["candidates"] >= 12
    assert len(res["ids"]) == 3
    for sid in res["ids"]:
        m = client.get(space_name, sid)
        assert m["kind"] == "semantic"
        assert len(m["support"]) == 4
        assert set(m["support"]) <= set(ids)
    ep = client.get(space_name, ids[0])
    assert ep["consolidated"] is True
    assert "stability_days" in ep and "access_count" in ep and "last_access" in ep
    again = client.consolidate(space_name)
    assert again["created"] == 0 and again["ids"] == []
    semantic = client.list_memories(space_name, kind="semantic")["memories"]
    assert len(semantic) == 3


def semantic_state(client, space):
    """{id: (content, support)} of the space's semantic memories."""
    mems = client.list_memories(space, kind="semantic")["memories"]
    return {m["id"]: (m["content"], tuple(m["support"])) for m in mems}


def test_consolidate_filter_applies_only_matching_clusters(client, space_name):
    client.create_space(space_name, dim=DIM)
    rng = np.random.default_rng(9)
    mems = []
    for c in range(3):
        for j in range(4):
            v = np.array(axis(c), dtype=np.float32) + rng.normal(scale=0.02, size=DIM)
            mems.append({"content": "topic%d fact %d" % (c, j), "embedding": v.tolist(),
                         "tags": ["t%d" % c], "when": T0 + (c * 4 + j) * 1000})
    ids = client.remember_batch(space_name, mems)
    full = client.consolidate(space_name)
    assert full["created"] == 3 and full["skipped"] == 0, full
    alone = semantic_state(client, space_name)
    # retire them all (no cluster reaches 5), then bring them back in two runs
    assert client.consolidate(space_name, min_support=5)["retired"] == 3
    assert semantic_state(client, space_name) == {}
    only1 = {"tags": {"contains": "t1"}}
    res = client.consolidate(space_name, filter=only1)
    assert (res["created"], res["updated"], res["retired"], res["skipped"]) == (1, 0, 0, 2), res
    assert res["candidates"] == 12 and res["episodes"] == 4
    got = semantic_state(client, space_name)
    assert list(got) == res["ids"]
    assert set(got[res["ids"][0]][1]) == set(ids[4:8])
    assert got[res["ids"][0]] == alone[res["ids"][0]]  # what the unfiltered run wrote
    # a filter matching nothing applies nothing; then the unfiltered run completes the state
    none = client.consolidate(space_name, filter={"tags": {"contains": "nope"}})
    assert (none["created"], none["skipped"]) == (0, 2), none
    rest = client.consolidate(space_name)
    assert (rest["created"], rest["updated"], rest["skipped"]) == (2, 0, 0), rest
    assert semantic_state(client, space_name) == alone
    # a filtered retirement is judged by the stored support
    res = client.consolidate(space_name, min_support=5, filter={"tags": {"contains": "t2"}})
    assert (res["retired"], res["skipped"]) == (1, 2), res
    assert set(semantic_state(client, space_name)) == set(alone) - {
        sid for sid, (_, sup) in alone.items() if set(sup) == set(ids[8:12])}
    # a bad filter: 422 naming its path, nothing written
    expect_error(lambda: client.consolidate(space_name, filter={"tags": {"like": "t%"}}), 422,
                 "invalid_argument", "filter.tags.like: unknown operator")
    assert len(semantic_state(client, space_name)) == 2


def test_consolidate_bad_options_are_422(client, space_name):
    client.create_space(space_name, dim=DIM)
    for bad in (2, -0.5):
        expect_error(lambda: client.consolidate(space_name, threshold=bad), 422,
                     "invalid_argument", "threshold: must be in 0..1 (0 = default)")
    for bad in (100001, -1, 2 ** 40):
        expect_error(lambda: client.consolidate(space_name, min_support=bad), 422,
                     "invalid_argument", "min_support: must be in 0..100000 (0 = default)")
    # 0 means the server's default, on every door
    assert client.consolidate(space_name, threshold=0, min_support=0)["created"] == 0
    expect_error(lambda: client.request("POST", "/v1/spaces/%s/consolidate" % space_name,
                                        {"nope": 1}), 422, "invalid_argument", "nope")


def test_recognize_seen_and_unseen(client, space_name):
    client.create_space(space_name, dim=DIM)
    seen = client.remember(space_name, "the blue door on elm street", axis(0))
    client.remember(space_name, "a red car", axis(1))
    r = client.recognize(space_name, axis(0))
    assert r["recognized"] is True and r["best"] == seen
    assert r["familiarity"] >= 0.85
    u = client.recognize(space_name, axis(5))
    assert u["recognized"] is False
    assert u["familiarity"] < 0.85
    # a stricter threshold than the match refuses it
    near = (np.array(axis(0)) + 0.6 * np.array(axis(5))).tolist()
    assert client.recognize(space_name, near, threshold=0.99)["recognized"] is False
    expect_error(lambda: client.recognize(space_name), 422, "invalid_argument")
    for bad in (3, -0.1):
        expect_error(lambda: client.recognize(space_name, axis(0), threshold=bad), 422,
                     "invalid_argument", "threshold: must be in 0..1 (0 = default)")
    assert client.recognize(space_name, axis(0), threshold=0)["recognized"] is True  # default


def test_reminisce_by_who_and_topic(client, space_name):
    client.create_space(space_name, dim=DIM)
    rows = [
        ("alice talked about paris", ["alice"], 3),
        ("bob fixed the bike", ["bob"], 1),
        ("alice planned a trip to rome", ["alice"], 2),
        ("bob visited paris too", ["bob"], 4),
    ]
    ids = {}
    for i, (content, who, t) in enumerate(rows):
        ids[content] = client.remember(space_name, content, axis(i), when=T0 + t * 60_000,
                                       context={"who": who})
    alice = client.reminisce(space_name, who="alice")
    assert [m["content"] for m in alice] == ["alice planned a trip to rome",
                                             "alice talked about paris"]  # time order
    paris = client.reminisce(space_name, topic="paris")
    assert [m["content"] for m in paris] == ["alice talked about paris", "bob visited paris too"]
    window = client.reminisce(space_name, **{"from": T0 + 2 * 60_000, "to": T0 + 4 * 60_000})
    assert [m["content"] for m in window] == ["alice planned a trip to rome",
                                              "alice talked about paris"]
    assert len(client.reminisce(space_name, limit=1)) == 1
    expect_error(lambda: client.reminisce(space_name, limit=0), 422, "invalid_argument")


def test_complete_guesses_where(client, space_name):
    client.create_space(space_name, dim=DIM)
    for i in range(4):
        client.remember(space_name, "drank an espresso with oat milk %d" % i, axis(i % 2),
                        context={"where": "corner cafe", "who": ["sam"]})
    client.remember(space_name, "ran ten kilometres in the park", axis(3),
                    context={"where": "riverside park"})
    res = client.complete(space_name, content="espresso", k=3)
    assert res["candidates"], res
    assert len(res["candidates"]) <= 3
    assert "memory" in res["candidates"][0] and "confidence" in res["candidates"][0]
    where = res["fields"]["where"]
    assert where["value"] == "corner cafe"
    assert 0 < where["confidence"] <= 1
    assert "content" not in res["fields"]
    expect_error(lambda: client.complete(space_name), 422, "invalid_argument")
    expect_error(lambda: client.complete(space_name, content="x", k=0), 422, "invalid_argument")


def test_as_of_limits_and_hides_newer_memories(client, space_name):
    client.create_space(space_name, dim=DIM)
    mid = client.remember(space_name, "a remembered thing", axis(0))
    m = client.get(space_name, mid)
    created = ms_of(m["created_at"])
    before = created - 1
    path = "/v1/spaces/%s/memories" % space_name

    # at its creation time it is there; a millisecond before it is not
    rec = client.recall(space_name, axis(0), k=5, as_of=m["created_at"])
    assert [r["id"] for r in rec["results"]] == [mid]
    assert client.recall(space_name, axis(0), k=5, as_of=before)["results"] == []
    assert client.request("GET", path, query={"as_of": str(before)})["memories"] == []
    listed = client.request("GET", path, query={"as_of": m["created_at"]})["memories"]
    assert [x["id"] for x in listed] == [mid]

    old = created - 40 * 86400 * 1000
    expect_error(lambda: client.recall(space_name, axis(0), as_of=old), 422, "invalid_argument",
                 "as_of")
    expect_error(lambda: client.request("GET", path, query={"as_of": str(old)}), 422,
                 "invalid_argument", "as_of")
    expect_error(lambda: client.recall(space_name, axis(0), as_of="yesterday"), 422,
                 "invalid_argument", "as_of")
