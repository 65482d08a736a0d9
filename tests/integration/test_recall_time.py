"""A time named in a recall's text (docs/recall.md §9) over HTTP, gRPC and MCP: a dated
cue lifts the memory told then, the response says which window it understood, and
"time": "off" leaves the words' ranking as it was."""

import json

import pytest

from conftest import expect_error

# Five short memories about pasta on other days outrank, by words alone, the long one
# told on 7 Jan 2024: BM25 favours short documents.
OTHER_DAYS = ["2023-12-%02dT10:00:00Z" % d for d in (1, 5, 10, 15, 20)]
IN_WINDOW = "2024-01-07T19:30:00Z"
LONG = "dinner with friends: salad, bread, wine and the pasta she made"
CUE = "What pasta did Kate make on 7 Jan 2024?"


def fill(client, space):
    client.create_space(space, dim=3)
    ids = client.remember_batch(space, [{"content": "pasta again", "when": w}
                                        for w in OTHER_DAYS])
    target = client.remember_batch(space, [{"content": LONG, "when": IN_WINDOW}])[0]
    return ids, target


def top(res):
    return [r["id"] for r in res["results"]]


def test_a_dated_cue_lifts_the_memory_of_that_day(client, space_name):
    others, target = fill(client, space_name)
    off = client.recall(space_name, text=CUE, k=3, spread=False, time="off")
    assert target not in top(off)  # words alone: the short memories win
    assert off["time_window"] is None
    on = client.recall(space_name, text=CUE, k=3, spread=False)  # boost is the default
    assert top(on)[0] == target
    assert on["time_window"] == {"text": "7 Jan 2024", "from": "2024-01-07T00:00:00.000Z",
                                 "to": "2024-01-08T00:00:00.000Z", "unit": "day",
                                 "applied": "boost"}
    # the boost multiplies the words' score by 3 (the default), nothing else
    kw_off = {r["id"]: r["keyword"] for r in client.recall(
        space_name, text=CUE, k=10, spread=False, time="off")["results"]}
    hit = on["results"][0]
    assert hit["keyword"] == pytest.approx(3 * kw_off[target], rel=1e-5)
    assert hit["coverage"] is not None
    # with spreading on, as the doors default it, the boosted ranking seeds it: the memory
    # is among the results, and is not with time off
    assert target in top(client.recall(space_name, text=CUE, k=3))
    assert target not in top(client.recall(space_name, text=CUE, k=3, time="off"))
    # a boost of 1 changes nothing
    same = client.recall(space_name, text=CUE, k=3, spread=False, time_boost=1)
    assert top(same) == top(off)
    # filter: only the memories within a day of it
    f = client.recall(space_name, text=CUE, k=3, spread=False, time="filter")
    assert top(f) == [target] and f["time_window"]["applied"] == "filter"


def test_relative_dates_use_time_ref(client, space_name):
    others, target = fill(client, space_name)
    cue = "what pasta did Kate make yesterday"
    r = client.recall(space_name, text=cue, k=3, spread=False, time_ref="2024-01-08T09:00:00Z")
    assert top(r)[0] == target
    assert r["time_window"]["text"] == "yesterday"
    assert r["time_window"]["from"] == "2024-01-07T00:00:00.000Z"
    # a year-less date is the most recent one not after the reference
    r = client.recall(space_name, text="pasta on Dec 10", k=1, spread=False,
                      time_ref="2024-02-01T00:00:00Z")
    assert r["time_window"]["from"] == "2023-12-10T00:00:00.000Z"
    # without time_ref the server clock is the reference: "yesterday" is not 7 Jan 2024
    r = client.recall(space_name, text=cue, k=3, spread=False)
    assert r["time_window"]["from"] != "2024-01-07T00:00:00.000Z"


def test_years_and_open_ranges_are_reported_not_used(client, space_name):
    others, target = fill(client, space_name)
    off = top(client.recall(space_name, text="pasta Kate made", k=3, spread=False, time="off"))
    for cue, unit in (("pasta Kate made in 2024", "year"),
                      ("pasta Kate made before 10 Jan 2024", "range")):
        r = client.recall(space_name, text=cue, k=3, spread=False)
        assert r["time_window"]["unit"] == unit and r["time_window"]["applied"] == "none", r
        assert top(r) == off


def test_explicit_when_filter_still_filters(client, space_name):
    others, target = fill(client, space_name)
    r = client.recall(space_name, text=CUE, k=10, spread=False,
                      when={"from": "2023-12-01T00:00:00Z", "to": "2023-12-11T00:00:00Z"})
    assert set(top(r)) == set(others[:3])  # the window in the text boosts nothing there


def test_a_text_without_time_is_unchanged(client, space_name):
    fill(client, space_name)
    for cue in ("May I ask what pasta Kate made?", "pasta for 3 people"):
        a = client.recall(space_name, text=cue, k=5, spread=False)
        b = client.recall(space_name, text=cue, k=5, spread=False, time="off")
        assert a["time_window"] is None and top(a) == top(b)


@pytest.mark.parametrize("body, part", [
    ({"time": "sometimes"}, "time"),
    ({"time": 1}, "time"),
    ({"time_boost": 0}, "time_boost"),
    ({"time_boost": 0.5}, "time_boost"),
    ({"time_boost": 5000}, "time_boost"),
    ({"time_ref": "last tuesday"}, "time_ref"),
])
def test_bad_time_fields_are_422(client, space_name, body, part):
    client.create_space(space_name, dim=3)
    e = expect_error(lambda: client.recall(space_name, text=CUE, **body), 422)
    assert part in e.message


def test_grpc_and_mcp_understand_the_same_window(server, client, space_name):
    from grpc_util import Grpc, pb
    from test_mcp import Session

    others, target = fill(client, space_name)
    g = Grpc("127.0.0.1:%d" % server.grpc_port)
    try:
        r = g.Recall(pb().RecallRequest(space=space_name, text=CUE, k=3, spread=False))
        assert r.results[0].id == target
        w = r.time_window
        assert (w.text, w.unit, w.applied) == ("7 Jan 2024", "day", "boost")
        assert w.from_ms == 1704585600000 and w.to_ms == 1704672000000
        r = g.Recall(pb().RecallRequest(space=space_name, text=CUE, k=3, spread=False,
                                        time="off"))
        assert not r.HasField("time_window") and target not in [x.id for x in r.results]
        r = g.Recall(pb().RecallRequest(space=space_name, text="pasta Kate made yesterday",
                                        k=3, spread=False, time_ref_ms=1704704400000))
        assert r.results[0].id == target and r.time_window.text == "yesterday"
    finally:
        g.close()
    # MCP: a text-only agent gets the boost without asking, and reads the window
    s = Session(server)
    res = s.call("recall", space=space_name, text=CUE, k=3)
    assert res["isError"] is False
    sc = res["structuredContent"]
    assert target in [h["memory"]["id"] for h in sc["results"]]
    assert sc["time_window"]["text"] == "7 Jan 2024"
    assert 'Time named: "7 Jan 2024"' in res["content"][0]["text"]
    assert json.loads(res["content"][1]["text"]) == sc
    res = s.call("recall", space=space_name, text=CUE, k=3, time="off")
    assert res["structuredContent"]["time_window"] is None
    assert target not in [h["memory"]["id"] for h in res["structuredContent"]["results"]]


def test_the_boosted_ranking_is_exact(client, space_name):
    """Against a brute force: every memory's BM25 (time off, k = all), times the boost when
    its `when` lies within a day of the named day; the boosted top k must be that order
    (ties: smaller id first), for several k, boosts and days."""
    import random
    from datetime import datetime, timedelta, timezone
    rnd = random.Random(11)
    words = ["pasta", "ragu", "wine", "bread", "salad", "friends", "dinner", "cake", "tea"]
    client.create_space(space_name, dim=3)
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    mems = []
    for i in range(300):
        when = base + timedelta(minutes=rnd.randrange(0, 40 * 24 * 60))
        text = " ".join(rnd.choice(words) for _ in range(rnd.randint(1, 12)))
        mems.append({"content": text, "when": when.strftime("%Y-%m-%dT%H:%M:%SZ")})
    ids = client.remember_batch(space_name, mems)
    when_of = dict(zip(ids, [datetime.strptime(m["when"], "%Y-%m-%dT%H:%M:%SZ")
                             .replace(tzinfo=timezone.utc) for m in mems]))
    for day, boost, k in ((5, 3, 10), (17, 1.5, 25), (30, 10, 7), (2, 3, 1)):
        cue = "pasta and wine on %d Jan 2024" % day
        everything = client.recall(space_name, text=cue, k=1000, spread=False, time="off")
        lo = base + timedelta(days=day - 2)  # [day - 1 day, day + 1 + 1 day)
        hi = base + timedelta(days=day + 1)
        scored = [(r["keyword"] * (boost if lo <= when_of[r["id"]] < hi else 1), r["id"])
                  for r in everything["results"]]
        scored.sort(key=lambda x: (-x[0], x[1]))
        got = client.recall(space_name, text=cue, k=k, spread=False, time_boost=boost)
        assert got["time_window"]["from"].startswith("2024-01-%02d" % day)
        want = scored[:k]
        assert len(got["results"]) == len(want)
        # position by position the same boosted score (memories of equal score may swap)
        for r, (s, i) in zip(got["results"], want):
            assert r["keyword"] == pytest.approx(s, rel=1e-5), (r["id"], i)
            boosted = lo <= when_of[r["id"]] < hi
            assert r["keyword"] == pytest.approx(
                [x["keyword"] for x in everything["results"] if x["id"] == r["id"]][0]
                * (boost if boosted else 1), rel=1e-5)
