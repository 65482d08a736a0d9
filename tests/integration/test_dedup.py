"""Duplicates on the way in (docs/api.md, "Duplicates"): exact duplicates answer the
existing id with duplicate_of and store nothing, also under concurrent identical
remembers from many HTTP clients; the space options round-trip and are checked."""
import threading

from conftest import expect_error, wait_until


def test_exact_duplicate_single_and_batch(client, space_name):
    s = client.create_space(space_name, 2)
    assert s["dedup"] == "exact" and s["dedup_threshold"] is None
    first = client.request("POST", "/v1/spaces/%s/memories" % space_name,
                           {"content": "the kettle is broken", "embedding": [1, 0]})
    assert "duplicate_of" not in first
    again = client.request("POST", "/v1/spaces/%s/memories" % space_name,
                           {"content": "  the kettle\n is broken ", "embedding": [1, 0]})
    assert again == {"id": first["id"], "duplicate_of": first["id"]}
    batch = client.request("POST", "/v1/spaces/%s/memories" % space_name, {"memories": [
        {"content": "the kettle is broken", "embedding": [1, 0]},
        {"content": "new", "embedding": [0, 1]},
        {"content": "new", "embedding": [0, 1]},
        {"content": "The kettle is broken", "embedding": [1, 0]}]})
    ids, dup = batch["ids"], batch["duplicate_of"]
    assert dup[0] == ids[0] == first["id"]
    assert dup[1] is None and dup[2] == ids[1] == ids[2]
    assert dup[3] is None and ids[3] not in (ids[0], ids[1])
    assert client.stats(space_name)["memories"] == 3


def test_context_or_embedding_that_differs_is_stored(client, space_name):
    client.create_space(space_name, 2)
    a = client.remember(space_name, "ok", [1, 0], context={"session": "s1", "who": ["ann"]})
    assert client.remember(space_name, "ok", [1, 0], context={"session": "s2", "who": ["ann"]}) != a
    assert client.remember(space_name, "ok", [1, 0.5], context={"session": "s1", "who": ["ann"]}) != a
    assert client.remember(space_name, "ok", [1, 0], context={"session": "s1", "who": ["ann"]}) == a
    assert client.stats(space_name)["memories"] == 3


def test_dedup_off_and_bad_options(client, space_name):
    s = client.create_space(space_name, 2, dedup="off", dedup_threshold=0.97)
    assert s["dedup"] == "off" and abs(s["dedup_threshold"] - 0.97) < 1e-6
    got = client.get_space(space_name)
    assert got["dedup"] == "off" and abs(got["dedup_threshold"] - 0.97) < 1e-6
    a = client.remember(space_name, "twice", [1, 0])
    assert client.remember(space_name, "twice", [1, 0]) != a
    expect_error(lambda: client.create_space(space_name + "-b", 2, dedup="fuzzy"), 422,
                 message_part="dedup")
    expect_error(lambda: client.create_space(space_name + "-c", 2, dedup_threshold=1.5), 422,
                 message_part="dedup_threshold")
    expect_error(lambda: client.create_space(space_name + "-d", 2, dedup_threshold="high"), 422,
                 message_part="dedup_threshold")
    names = [x["name"] for x in client.list_spaces()]
    assert space_name + "-b" not in names and space_name + "-c" not in names


def test_forget_then_remember_again_stores_anew(client, space_name):
    client.create_space(space_name, 2)
    a = client.remember(space_name, "passing thought", [1, 0])
    client.forget(space_name, a)
    b = client.remember(space_name, "passing thought", [1, 0])
    assert b != a
    assert client.remember(space_name, "passing thought", [1, 0]) == b


def test_concurrent_identical_remembers_over_http_store_one(server, space_name):
    c = server.client()
    c.create_space(space_name, 2)
    threads, per = 8, 25
    answers, errors = [], []
    lock = threading.Lock()

    def worker():
        cl = server.client()
        try:
            for _ in range(per):
                r = cl.request("POST", "/v1/spaces/%s/memories" % space_name,
                               {"content": "all at once", "embedding": [0.3, 0.7],
                                "context": {"session": "race"}})
                with lock:
                    answers.append(r)
        except Exception as e:  # reported below, with the others
            with lock:
                errors.append(e)
        finally:
            cl.close()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert len(answers) == threads * per
    ids = {r["id"] for r in answers}
    assert len(ids) == 1
    assert sum(1 for r in answers if "duplicate_of" not in r) == 1
    assert c.stats(space_name)["memories"] == 1
    c.close()


def test_restart_keeps_the_dedup_index(server_factory):
    s = server_factory()
    c = s.client()
    c.create_space("d", 2, dedup_threshold=0.9)
    a = c.remember("d", "kept", [1, 0])
    c.close()
    s.restart()
    c = s.client()
    assert c.request("POST", "/v1/spaces/d/memories",
                     {"content": "kept", "embedding": [1, 0]})["duplicate_of"] == a
    got = c.get_space("d")
    assert got["dedup"] == "exact" and abs(got["dedup_threshold"] - 0.9) < 1e-6
    c.close()


def near_dup_space(client, name):
    """A group of three near-duplicates (a is the oldest) and one other memory, with the
    duplicate links in place (the background linker makes them: polled, 10 s deadline)."""
    client.create_space(name, 2, dedup_threshold=0.99)
    a = client.remember(name, "the meeting moved to 3pm", [1, 0])
    b = client.remember(name, "meeting moved to 3 pm", [1, 0.02])
    c = client.remember(name, "the meeting is now at 3pm", [1, -0.03])
    d = client.remember(name, "lunch with ann", [0.6, 0.8])

    def linked():
        return all(any(x["kind"] == "duplicate" and x["direction"] == "out" and x["id"] == a
                       for x in client.associations(name, m)) for m in (b, c))
    wait_until(linked, 10, what="duplicate links")
    return a, b, c, d


def test_near_duplicates_are_stored_linked_and_folded_by_recall(client, space_name):
    a, b, c, d = near_dup_space(client, space_name)
    assert client.stats(space_name)["memories"] == 4  # every episode is kept
    assert not any(x["kind"] == "duplicate" and x["direction"] == "out"
                   for x in client.associations(space_name, a))
    for spread in (False, True):
        r = client.recall(space_name, [1, 0.001], k=2, spread=spread)["results"]
        assert len(r) == 2
        assert r[0]["id"] in (a, b, c) and r[0]["duplicates"] == 2
        assert sorted(r[0]["duplicate_ids"]) == sorted({a, b, c} - {r[0]["id"]})
        assert r[1]["id"] == d and r[1]["duplicates"] == 0 and "duplicate_ids" not in r[1]
    r = client.recall(space_name, [1, 0.001], k=2, collapse_duplicates=False)["results"]
    assert [x["id"] in (a, b, c) for x in r] == [True, True]
    assert all(x["duplicates"] == 0 for x in r)
    expect_error(lambda: client.recall(space_name, [1, 0], collapse_duplicates="no"), 422,
                 message_part="collapse_duplicates")


# ---- gRPC ----

def test_grpc_duplicates_spaces_and_recall(server, space_name):
    import grpc
    from grpc_util import Grpc, pb
    g = Grpc("127.0.0.1:%d" % server.grpc_port)
    try:
        sp = g.CreateSpace(pb().CreateSpaceRequest(name=space_name, dim=2, dedup_threshold=0.99))
        assert sp.dedup == "exact" and abs(sp.dedup_threshold - 0.99) < 1e-6
        m = pb().Memory(content="grpc twice", embedding=[1, 0])
        a = g.Remember(pb().RememberRequest(space=space_name, memory=m))
        assert a.id and not a.HasField("duplicate_of")
        b = g.Remember(pb().RememberRequest(space=space_name, memory=m))
        assert b.id == a.id and b.duplicate_of == a.id
        reqs = [pb().RememberRequest(space=space_name, memory=x) for x in
                (m, pb().Memory(content="grpc new", embedding=[0.6, 0.8]))]
        r = g.RememberBatch(iter(reqs))
        assert r.ids[0] == a.id and list(r.duplicate_of) == [a.id, ""]
        off = g.CreateSpace(pb().CreateSpaceRequest(name=space_name + "-off", dim=2, dedup="off"))
        assert off.dedup == "off" and not off.HasField("dedup_threshold")
        try:
            g.CreateSpace(pb().CreateSpaceRequest(name=space_name + "-bad", dim=2, dedup="maybe"))
            raise AssertionError("expected INVALID_ARGUMENT")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "dedup" in e.details()
    finally:
        g.close()


def test_grpc_recall_folds_near_duplicates(server, client, space_name):
    from grpc_util import Grpc, pb
    a, b, c, d = near_dup_space(client, space_name)
    g = Grpc("127.0.0.1:%d" % server.grpc_port)
    try:
        res = g.Recall(pb().RecallRequest(space=space_name, embedding=[1, 0.001], k=2)).results
        assert len(res) == 2 and res[0].duplicates == 2
        assert sorted(res[0].duplicate_ids) == sorted({a, b, c} - {res[0].id})
        assert res[1].id == d and res[1].duplicates == 0
        res = g.Recall(pb().RecallRequest(space=space_name, embedding=[1, 0.001], k=2,
                                          collapse_duplicates=False)).results
        assert all(x.id in (a, b, c) and x.duplicates == 0 for x in res)
        links = g.ListAssociations(pb().MemoryRequest(space=space_name, id=b)).associations
        assert [(x.id, x.outgoing) for x in links if x.kind == pb().EDGE_KIND_DUPLICATE] == \
            [(a, True)]
    finally:
        g.close()


# ---- MCP: an agent with only text sees duplicates and folded results ----

def test_mcp_remember_says_duplicate_of_and_recall_folds(server, client, space_name):
    from test_mcp import Session
    s = Session(server)
    made = s.ok("create_space", space=space_name, dim=2, dedup="exact", dedup_threshold=0.99)
    assert made["dedup"] == "exact"
    first = s.call("remember", space=space_name, content="mcp twice", embedding=[1, 0])
    assert "duplicate_of" not in first["structuredContent"]
    again = s.call("remember", space=space_name, content="mcp  twice ", embedding=[1, 0])
    st = again["structuredContent"]
    assert st["duplicate_of"] == st["id"] == first["structuredContent"]["id"]
    assert "duplicate_of" in again["content"][0]["text"]
    # near-duplicates: folded, said in words, and unfolded on request
    b = client.remember(space_name, "mcp twice, said again", [1, 0.02])
    wait_until(lambda: any(x["kind"] == "duplicate" for x in client.associations(space_name, b)),
               10, what="duplicate link")
    r = s.call("recall", space=space_name, embedding=[1, 0], k=1)
    hit = r["structuredContent"]["results"][0]
    assert hit["duplicates"] == 1
    assert "near-duplicate" in r["content"][0]["text"]
    r = s.ok("recall", space=space_name, embedding=[1, 0], k=2, collapse_duplicates=False)
    assert [x["duplicates"] for x in r["results"]] == [0, 0]
    tools = s.request("tools/list").result["tools"]
    schema = {t["name"]: t["inputSchema"]["properties"] for t in tools}
    assert "collapse_duplicates" in schema["recall"] and "dedup" in schema["create_space"]


def test_a_corrected_memory_is_compared_by_its_current_content(client, space_name):
    client.create_space(space_name, 2)
    path = "/v1/spaces/%s/memories" % space_name
    first = client.request("POST", path, {"content": "the meeting is on monday",
                                          "embedding": [1, 0]})["id"]
    client.update(space_name, first, content="the meeting is on tuesday")
    again = client.request("POST", path, {"content": "the meeting is on tuesday",
                                          "embedding": [1, 0]})
    assert again == {"id": first, "duplicate_of": first}  # the memory's id, not the version's
    old = client.request("POST", path, {"content": "the meeting is on monday",
                                        "embedding": [1, 0]})
    assert "duplicate_of" not in old and old["id"] != first
    assert client.stats(space_name)["memories"] == 2
