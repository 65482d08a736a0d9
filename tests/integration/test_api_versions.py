"""Corrections over HTTP (docs/api.md, "Corrections"): PATCH writes a new version under the
same id, GET shows the current one, /history every version oldest first with who changed
what, as_of sees the version current then, a version precondition (expected_version or
If-Match) answers 409 to a stale correction, idempotent retries write once, DELETE erases
every version, invalidation flags a memory without deleting it; all of it across a
restart and a kill -9."""

import hashlib
import subprocess

from conftest import MnemoServer, expect_error, mnemo_bin
from test_embedding import standin  # noqa: F401 (the stand-in embedding provider)


def patch(c, space, mid, body, headers=None):
    return c.raw("PATCH", "/v1/spaces/%s/memories/%s" % (space, mid), body=body,
                 headers=headers)


def test_patch_writes_a_new_version_under_the_same_id(client, space_name):
    client.create_space(space_name, dim=2)
    mid = client.remember(space_name, "the meeting is on monday", [1.0, 0.0],
                          tags=["work"], metadata={"room": "a"}, context={"who": ["ann"]})
    before = client.get(space_name, mid)
    assert before["version"] == 1 and before["supersedes"] is None
    assert before["valid_to"] is None and before["version_id"] == mid
    new = client.update(space_name, mid, content="the meeting is on tuesday",
                        embedding=[0.0, 1.0], context={"where": "room b"})
    assert new["id"] == mid and new["version"] == 2
    assert new["version_id"] != mid and new["supersedes"] == mid
    assert new["content"] == "the meeting is on tuesday"
    assert new["tags"] == ["work"] and new["metadata"] == {"room": "a"}  # carried over
    assert new["context"] == {"who": ["ann"], "where": "room b", "session": None}
    assert new["created_at"] == before["created_at"]
    assert sorted(new["changed"]) == ["content", "context", "embedding"]
    got = client.get(space_name, mid, include_embedding=True)
    assert got["version"] == 2 and got["embedding"] == [0.0, 1.0]

    hist = client.history(space_name, mid)
    assert [v["version"] for v in hist] == [1, 2]
    assert [v["id"] for v in hist] == [mid, mid]
    assert hist[0]["content"] == "the meeting is on monday" and hist[0]["superseded"]
    assert hist[0]["valid_to"] == hist[1]["valid_from"]
    assert hist[1]["valid_to"] is None and hist[1]["changed_by"] is None  # auth is off

    # default reads see the current version only
    assert [h["memory"]["id"] for h in client.recall(space_name, text="monday")["results"]] == []
    hits = client.recall(space_name, [1.0, 0.0])["results"]
    assert [(h["memory"]["id"], h["memory"]["version"]) for h in hits] == [(mid, 2)]
    listed = client.list_memories(space_name)["memories"]
    assert [(m["id"], m["version"]) for m in listed] == [(mid, 2)]
    assert client.stats(space_name)["memories"] == 1

    # as of a time before the correction: version 1
    asof = client.recall(space_name, text="monday", as_of=before["created_at"])["results"]
    assert [(h["memory"]["id"], h["memory"]["version"]) for h in asof] == [(mid, 1)]
    old = client.request("GET", "/v1/spaces/%s/memories" % space_name,
                         query={"as_of": before["created_at"]})["memories"]
    assert [m["content"] for m in old] == ["the meeting is on monday"]

    got = client.request("GET", "/v1/spaces/%s/memories/%s" % (space_name, mid),
                         query={"as_of": before["created_at"]})
    assert got["content"] == "the meeting is on monday" and got["version"] == 1

    # a version's own id reads that version
    assert client.get(space_name, new["version_id"])["version"] == 2


def test_version_precondition_and_bad_input(client, space_name):
    client.create_space(space_name, dim=2)
    mid = client.remember(space_name, "one", [1.0, 0.0])
    assert patch(client, space_name, mid, {"content": "two"}, {"If-Match": '"1"'}).status == 200
    r = patch(client, space_name, mid, {"content": "three"}, {"If-Match": "1"})
    assert r.status == 409 and r.json["error"]["code"] == "conflict"
    r = patch(client, space_name, mid, {"content": "three", "expected_version": 1})
    assert r.status == 409 and "current version is 2" in r.json["error"]["message"]
    for body, headers, field in [({}, None, "nothing to change"),
                                 ({"content": "x", "kind": "semantic"}, None, "kind"),
                                 ({"embedding": [1, 2, 3]}, None, "embedding"),
                                 ({"importance": 3}, None, "importance"),
                                 ({"tags": "x"}, None, "tags"),
                                 ({"expected_version": 0}, None, "expected_version"),
                                 ({"content": "x"}, {"If-Match": "W/x"}, "If-Match")]:
        r = patch(client, space_name, mid, body, headers)
        assert r.status == 422, (body, r.status, r.json)
        assert field in r.json["error"]["message"], (field, r.json)
    assert patch(client, space_name, "0190a0a0-0000-7000-8000-000000000000",
                 {"content": "x"}).status == 404
    assert client.get(space_name, mid)["content"] == "two"
    assert client.get(space_name, mid)["version"] == 2


def test_idempotent_retry_writes_once(client, space_name):
    client.create_space(space_name, dim=2)
    mid = client.remember(space_name, "first", [1.0, 0.0])
    a = client.update(space_name, mid, content="second", idempotency_key="fix-7")
    b = client.update(space_name, mid, content="second", idempotency_key="fix-7")
    assert a["version_id"] == b["version_id"] and b["version"] == 2
    assert len(client.history(space_name, mid)) == 2


def test_delete_erases_every_version(client, space_name):
    client.create_space(space_name, dim=2)
    mid = client.remember(space_name, "quokkaold", [1.0, 0.0])
    client.update(space_name, mid, content="quokkanew")
    client.forget(space_name, mid)
    expect_error(lambda: client.get(space_name, mid), 404, "memory_forgotten")
    expect_error(lambda: client.history(space_name, mid), 404, "memory_forgotten")
    for word in ("quokkaold", "quokkanew"):
        assert client.recall(space_name, text=word)["results"] == []
    assert client.stats(space_name)["memories"] == 0


def test_invalidate_flags_without_deleting(client, space_name):
    client.create_space(space_name, dim=2)
    old = client.remember(space_name, "the office is in paris", [1.0, 0.0])
    new = client.remember(space_name, "the office moved to lyon", [0.0, 1.0])
    m = client.invalidate(space_name, old, by=new, reason="moved")
    assert m["valid_to"] is not None and m["invalidated_by"] == new
    assert m["invalid_reason"] == "moved" and not m["superseded"]
    hit = client.recall(space_name, text="paris")["results"][0]
    assert hit["memory"]["id"] == old
    assert "superseded" in hit["confidence"]["reasons"]
    r = client.raw("POST", "/v1/spaces/%s/memories/%s/invalidate" % (space_name, old),
                   body={"by": "nope"})
    assert r.status == 422 and "by" in r.json["error"]["message"]


def test_versions_survive_restart_and_kill(server_factory):
    s = server_factory()
    c = s.client()
    c.create_space("v", dim=2)
    mid = c.remember("v", "draft", [1.0, 0.0])
    c.update("v", mid, content="final", expected_version=1)
    c.close()
    s.kill()  # acknowledged means fsynced
    s.start()
    c = s.client()
    assert c.get("v", mid)["content"] == "final"
    assert [v["content"] for v in c.history("v", mid)] == ["draft", "final"]
    assert c.recall("v", text="draft")["results"] == []
    c.update("v", mid, tags=["done"])
    c.close()
    s.restart()
    c = s.client()
    got = c.get("v", mid)
    assert got["version"] == 3 and got["tags"] == ["done"] and got["content"] == "final"
    c.close()
    assert s.stop() == 0, s.log()
    # the offline check finds a corrected memory's store whole
    p = subprocess.run([mnemo_bin(), "check", s.data_dir], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_changed_by_names_the_key(tmp_path):
    keys = {"root": ("k-versions-root-0123456789", "admin"),
            "editor": ("k-versions-editor-0123456789", "write")}
    cfg = tmp_path / "mnemo.toml"
    cfg.write_text("[auth]\nenabled = true\n\n" + "".join(
        '[[auth.keys]]\nname = "%s"\nsha256 = "%s"\nrole = "%s"\nspaces = ["*"]\n\n'
        % (name, hashlib.sha256(key.encode()).hexdigest(), role)
        for name, (key, role) in keys.items()))
    s = MnemoServer(tmp_path / "data", args=["--config", str(cfg)]).start()
    try:
        c = s.client()
        c.api_key = keys["root"][0]
        c.create_space("w", dim=2)
        mid = c.remember("w", "before", [1.0, 0.0])
        c.api_key = keys["editor"][0]
        assert c.update("w", mid, content="after")["changed_by"] == "editor"
        hist = c.history("w", mid)
        assert [v["changed_by"] for v in hist] == [None, "editor"]
        c.close()
    finally:
        assert s.stop() == 0, s.log()


def test_new_words_get_a_new_vector_from_the_provider(server_factory, standin):
    from test_embedding import DIM, cosine, expected, provider_env, vector_of, wait_vector
    s = server_factory(env=provider_env(standin))
    c = s.client()
    c.create_space("e", DIM)
    mid = c.remember("e", "the cat sleeps on the sofa")
    v1 = wait_vector(c, "e", mid)
    assert cosine(v1, expected("the cat sleeps on the sofa")) > 0.999
    new = c.update("e", mid, content="the dog guards the garden gate")
    assert sorted(new["changed"]) == ["content", "embedding"]
    # the old vector is not carried over: the provider embeds the new words
    v2 = wait_vector(c, "e", mid)
    assert cosine(v2, expected("the dog guards the garden gate")) > 0.999
    # a correction of the tags alone keeps the vector
    c.update("e", mid, tags=["pets"])
    assert vector_of(c, "e", mid) == v2
    c.close()


def test_a_trace_names_a_corrected_memory_by_its_id(client, space_name):
    client.create_space(space_name, dim=2)
    a = client.remember(space_name, "we ordered coffee", [1.0, 0.0])
    b = client.remember(space_name, "the bill arrived", [0.0, 1.0])
    assert client.associate(space_name, [{"from": a, "to": b, "kind": "causal"}]) == 1
    new = client.update(space_name, a, content="we ordered tea")
    assert new["version_id"] != a
    # only a matches the cue; b is reached through the association its new version holds
    res = client.recall(space_name, [1.0, 0.0], k=5, threshold=0.99, spread=True, trace=True)
    by_id = {r["id"]: r for r in res["results"]}
    assert by_id[a]["seed"] is True and by_id[a]["memory"]["version"] == 2
    assert b in by_id and by_id[b]["seed"] is False, res
    assert [step["from"] for step in by_id[b]["via"]] == [a]  # the id, not the version's

