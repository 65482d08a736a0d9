"""Cognitive recall over a real server (docs/recall.md): spreading on by default over
HTTP and MCP, Unicode folding of keyword search, temporal links in time order whatever
the arrival order, consolidation retiring a cluster that fell apart, and the low_support
reason of a semantic memory's confidence."""

import math

from test_mcp import Session

DIM = 4
T0 = 1_700_000_000_000


def axis(i):
    v = [0.0] * DIM
    v[i] = 1.0
    return v


def test_spread_is_on_by_default_over_http_and_mcp(server, client, space_name):
    client.create_space(space_name, dim=DIM)
    a = client.remember(space_name, "we boarded the ferry", axis(0), when=T0,
                        context={"session": "trip"})
    b = client.remember(space_name, "the island was windy", axis(1), when=T0 + 60_000,
                        context={"session": "trip"})
    res = client.recall(space_name, axis(0), k=5, threshold=0.99)
    by_id = {r["id"]: r for r in res["results"]}
    assert by_id[a]["seed"] is True and by_id[b]["seed"] is False
    assert 0 < by_id[b]["activation"] < 1
    assert "associative" in by_id[b]["confidence"]["reasons"]
    off = client.recall(space_name, axis(0), k=5, threshold=0.99, spread=False)
    assert [r["id"] for r in off["results"]] == [a] and "activation" not in off["results"][0]
    # MCP's recall is the HTTP handler: the same default
    s = Session(server)
    hits = s.ok("recall", space=space_name, embedding=axis(0), threshold=0.99)["results"]
    assert {h["id"] for h in hits} == {a, b}
    tools = {t["name"]: t for t in s.request("tools/list").result["tools"]}
    assert "default true" in tools["recall"]["inputSchema"]["properties"]["spread"]["description"]


def test_keyword_search_folds_latin_scripts(client, space_name):
    client.create_space(space_name, dim=DIM)
    ro = client.remember(space_name, "ȘCOALĂ de vară", axis(0))
    vi = client.remember(space_name, "phở ở VIỆT Nam", axis(1))
    de = client.remember(space_name, "die Straße am Fluss", axis(2))
    fr = client.remember(space_name, "un cafe\u0301 noir", axis(3))
    for words, want in [("scoala", ro), ("Școală", ro), ("viet", vi), ("STRASSE", de),
                        ("strasse", de), ("café", fr), ("CAFE", fr)]:
        res = client.recall(space_name, text=words, k=1, spread=False)
        assert [r["id"] for r in res["results"]] == [want], (words, res)


def test_a_late_turn_is_linked_in_time_order(client, space_name):
    client.create_space(space_name, dim=DIM)
    ctx = {"session": "standup"}
    first = client.remember(space_name, "yesterday I fixed the build", axis(0), when=T0,
                            context=ctx)
    third = client.remember(space_name, "blocked on review", axis(1), when=T0 + 20 * 60_000,
                            context=ctx)
    # arrives last, happened in between
    second = client.remember(space_name, "today the release notes", axis(2),
                             when=T0 + 10 * 60_000, context=ctx)

    def temporal_out(mid):
        return {a["id"]: a["weight"] for a in client.associations(space_name, mid)
                if a["kind"] == "temporal" and a["direction"] == "out"}

    assert set(temporal_out(first)) == {second}
    assert set(temporal_out(second)) == {third}
    assert abs(temporal_out(first)[second] - (1 - 0.9 * 10 / 60)) < 1e-6
    assert temporal_out(third) == {}


def test_consolidation_retires_and_semantic_confidence_names_low_support(client, space_name):
    client.create_space(space_name, dim=DIM)
    ids = [client.remember(space_name, "notes on the garden %d" % i,
                           [1.0, 0.01 * (i - 1), 0.0, 0.0]) for i in range(3)]
    res = client.consolidate(space_name, threshold=0.9, min_support=3)
    assert res["created"] == 1 and res["retired"] == 0 and res["candidates"] == 3
    sem = res["ids"][0]
    m = client.get(space_name, sem)
    assert m["kind"] == "semantic" and m["support"] == sorted(ids)
    assert m["confidence"] > 0.99  # cohesion of a tight cluster
    hit = [r for r in client.recall(space_name, [1, 0, 0, 0], k=5, spread=False)["results"]
           if r["id"] == sem][0]
    support = 1 - math.exp(-3 / 3)
    assert "low_support" in hit["confidence"]["reasons"]
    want = hit["similarity"] * m["confidence"] * support
    assert abs(hit["confidence"]["value"] - want) < 1e-4, (hit, want)
    # nothing changed: nothing rewritten
    again = client.consolidate(space_name, threshold=0.9, min_support=3)
    assert (again["created"], again["updated"], again["retired"], again["ids"]) == (0, 0, 0, [])
    # one episode forgotten: under min_support, the semantic memory is retired in
    # the same write (it would hold the episode's words); its episodes lose the mark
    client.forget(space_name, ids[1])
    assert client.raw("GET", "/v1/spaces/%s/memories/%s" % (space_name, sem)).status == 404
    assert client.get(space_name, ids[0])["consolidated"] is False
    gone = client.consolidate(space_name, threshold=0.9, min_support=3)
    assert (gone["retired"], gone["created"]) == (0, 0)


def test_forgetting_an_episode_rederives_and_a_deleted_semantic_memory_stays_deleted(
        client, space_name):
    client.create_space(space_name, dim=DIM)
    texts = ["garden roses", "roses garden", "zanzibar garden roses", "garden roses"]
    vecs = [[1.0, 0.08, 0.0, 0.0], [1.0, 0.14, 0.0, 0.0], [1.0, 0.11, 0.01, 0.0],
            [1.0, 0.11, 0.03, 0.0]]
    ids = [client.remember(space_name, t, v) for t, v in zip(texts, vecs)]
    sem = client.consolidate(space_name, threshold=0.9, min_support=3)["ids"][0]
    assert "zanzibar" in client.get(space_name, sem)["content"]
    # the episode's words leave the semantic memory in the forget's own write
    client.forget(space_name, ids[2])
    m = client.get(space_name, sem)
    assert "zanzibar" not in m["content"] and m["support"] == sorted(ids[:2] + ids[3:])
    assert client.recall(space_name, text="zanzibar", spread=False)["results"] == []
    assert client.get(space_name, ids[0])["consolidated"] is True
    # a client's delete of a semantic memory is final: no run makes it again
    client.forget(space_name, sem)
    again = client.consolidate(space_name, threshold=0.9, min_support=3)
    assert (again["created"], again["updated"]) == (0, 0)
    assert client.list_memories(space_name, kind="semantic")["memories"] == []
    assert client.get(space_name, ids[0])["consolidated"] is False
