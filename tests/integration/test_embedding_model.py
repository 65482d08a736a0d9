"""A space names the embedding model its vectors come from (embedding_model; docs/config.md
"Embedding provider"): a space made while the provider applies records the provider's model,
so a later embedding.model cannot mix two models in it; "" means the provider never embeds
for the space; a space that recorded no model keeps the dim-and-name rule. Real mnemo
processes and the stand-in provider bench/embed/standin.py (which answers for any model
name), over HTTP, gRPC and MCP."""

import os
import subprocess

import grpc

from conftest import expect_error, mnemo_bin
from grpc_util import Grpc, pb
from test_embedding import (DEADLINE_S, DIM, cosine, expected, provider_env, standin,  # noqa: F401
                            vector_of, wait_vector)
from test_grpc import expect
from test_mcp import Session, tool_error


def words_only(client, space, text):
    """A text recall's answer, checked to be by words without a provider for the space."""
    r = client.recall(space, text=text, k=3, spread=False)
    assert r["path"] == "keyword", r
    assert r["results"], r
    for h in r["results"]:
        assert "embedding_unavailable" not in h["confidence"]["reasons"], h
    return r


def test_the_recorded_model_survives_a_model_change(server_factory, standin, tmp_path):
    env = provider_env(standin, spaces="kept, never, explicit, future")
    srv = server_factory(env=env, data_dir=tmp_path / "d")
    c = srv.client()
    made = c.create_space("kept", DIM)
    assert made["embedding_model"] == "standin"  # recorded from the provider
    assert c.create_space("never", DIM, embedding_model="")["embedding_model"] == ""
    assert c.create_space("explicit", DIM, embedding_model="standin")["embedding_model"] == \
        "standin"
    assert c.create_space("future", DIM, embedding_model="other2")["embedding_model"] == "other2"
    # not in embedding.spaces, or another dim: the provider does not apply, nothing recorded
    assert c.create_space("zlegacy", DIM)["embedding_model"] is None
    assert c.create_space("wide", DIM + 1)["embedding_model"] is None

    got = c.get_space("kept")
    assert got["embedding_model"] == "standin" and got["embedding_provider"] == {"model": "standin"}
    assert c.get_space("explicit")["embedding_provider"] == {"model": "standin"}
    for name in ("never", "future", "zlegacy", "wide"):
        assert c.get_space(name)["embedding_provider"] is None, name
    listed = {s["name"]: s["embedding_model"] for s in c.list_spaces()}
    assert listed == {"kept": "standin", "never": "", "explicit": "standin", "future": "other2",
                      "zlegacy": None, "wide": None}

    k1 = c.remember("kept", "kept apple written under standin")
    n1 = c.remember("never", "never apple brings its own vectors")
    x1 = c.remember("explicit", "explicit apple named standin")
    f1 = c.remember("future", "future apple waits for other2")
    l1 = c.remember("zlegacy", "legacy apple without a recorded model")
    assert cosine(wait_vector(c, "kept", k1), expected("kept apple written under standin")) > 0.999
    wait_vector(c, "explicit", x1)
    # the spaces the provider does not serve: words only, and no embedding_unavailable
    for space in ("never", "future", "zlegacy"):
        words_only(c, space, "apple")
    # a memory of kept written while the provider is down: the next start's scan would
    # find it if kept still used the provider
    standin.stop()
    k2 = c.remember("kept", "kept pear written while the provider was down")
    c.close()
    assert srv.stop() == 0, srv.log()

    # another model (same dim) for every space of that dim
    standin.start()
    srv.extra_env.update({"MNEMO_EMBEDDING_MODEL": "other2", "MNEMO_EMBEDDING_SPACES": "*"})
    srv.start()
    c = srv.client()
    log = srv.log()
    for name, model in (("kept", "standin"), ("explicit", "standin")):
        assert ('space %s names the model "%s", which the provider (model other2) does not '
                'serve' % (name, model)) in log, log
    for name in ("never", "future", "zlegacy", "wide"):
        assert "space %s names the model" % name not in log, log
    got = c.get_space("kept")
    assert got["embedding_model"] == "standin" and got["embedding_provider"] is None
    assert c.get_space("future")["embedding_provider"] == {"model": "other2"}
    # no recorded model: today's rule (dim and embedding.spaces), so it is served now
    assert c.get_space("zlegacy")["embedding_provider"] == {"model": "other2"}
    fresh = c.create_space("fresh", DIM)
    assert fresh["embedding_model"] == "other2"

    # the start's backfill scan embeds the served spaces: future and zlegacy (after kept
    # by name, so kept's k2 would have been sent before them)
    wait_vector(c, "future", f1)
    wait_vector(c, "zlegacy", l1)
    s1 = c.remember("fresh", "fresh apple under other2")
    k3 = c.remember("kept", "kept plum after the change")
    wait_vector(c, "fresh", s1)
    inputs = standin.stats()["inputs"]
    for text in ("kept pear written while the provider was down", "kept plum after the change",
                 "explicit apple named standin", "never apple brings its own vectors"):
        assert text not in inputs, text
    for space, mid in (("kept", k2), ("kept", k3), ("never", n1)):
        assert vector_of(c, space, mid) is None, (space, mid)
    # the vectors of the old model stay, and kept's text recall is words only
    assert vector_of(c, "kept", k1) and vector_of(c, "explicit", x1)
    r = words_only(c, "kept", "plum")
    assert r["results"][0]["memory"]["id"] == k3
    r = c.recall("fresh", text="fresh apple", k=1, spread=False)
    assert r["path"] == "exact+keyword" and r["results"][0]["memory"]["id"] == s1
    c.close()


def test_bad_names_are_refused(server_factory):
    c = server_factory().client()
    expect_error(lambda: c.create_space("long", DIM, embedding_model="m" * 129), 422,
                 "invalid_argument", "embedding_model: at most 128 bytes, got 129")
    expect_error(lambda: c.create_space("ctl", DIM, embedding_model="bge\nm3"), 422,
                 "invalid_argument", "embedding_model: printable ASCII only, byte 3 is 0x0a")
    e = c.raw("POST", "/v1/spaces", {"name": "num", "dim": DIM, "embedding_model": 7})
    assert e.status == 422 and "embedding_model: expected a string" in e.json["error"]["message"]
    assert [s["name"] for s in c.list_spaces()] == []
    # 128 bytes is fine; null is absent; without a provider nothing is recorded
    assert c.create_space("ok", DIM, embedding_model="m" * 128)["embedding_model"] == "m" * 128
    r = c.raw("POST", "/v1/spaces", {"name": "null", "dim": DIM, "embedding_model": None})
    assert r.status == 201 and r.json["embedding_model"] is None
    c.close()


def test_a_model_name_that_cannot_be_recorded_is_a_startup_error(tmp_path, standin):
    e = dict(os.environ)
    e.update({"MNEMO_HTTP_PORT": "0", "MNEMO_GRPC_PORT": "0",
              "MNEMO_STORAGE_DATA_DIR": str(tmp_path / "d")})
    e.update(provider_env(standin, model="m" * 129))
    p = subprocess.run([mnemo_bin(), "serve"], env=e, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "embedding.model: at most 128 bytes, got 129" in p.stderr, p.stderr


def test_grpc_round_trip(server_factory, standin):
    srv = server_factory(env=provider_env(standin))
    g = Grpc("127.0.0.1:%d" % srv.grpc_port)
    c = srv.client()
    try:
        s = g.CreateSpace(pb().CreateSpaceRequest(name="auto", dim=DIM))
        assert s.embedding_model == "standin"
        s = g.CreateSpace(pb().CreateSpaceRequest(name="none", dim=DIM, embedding_model=""))
        assert s.HasField("embedding_model") and s.embedding_model == ""
        s = g.CreateSpace(pb().CreateSpaceRequest(name="mine", dim=DIM, embedding_model="bge-m3"))
        assert s.embedding_model == "bge-m3"
        s = g.CreateSpace(pb().CreateSpaceRequest(name="wide", dim=DIM + 1))
        assert not s.HasField("embedding_model")
        st = g.GetSpace(pb().SpaceRequest(space="mine"))
        assert st.space.embedding_model == "bge-m3" and not st.HasField("embedding_model")
        st = g.GetSpace(pb().SpaceRequest(space="auto"))
        assert st.space.embedding_model == "standin" and st.embedding_model == "standin"
        listed = {x.name: x for x in g.ListSpaces(pb().ListSpacesRequest()).spaces}
        assert listed["none"].HasField("embedding_model") and listed["none"].embedding_model == ""
        assert not listed["wide"].HasField("embedding_model")
        assert c.get_space("mine")["embedding_model"] == "bge-m3"
        e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.CreateSpace,
                   pb().CreateSpaceRequest(name="bad", dim=DIM, embedding_model="a\tb"))
        assert e.details().startswith("embedding_model: printable ASCII only"), e.details()
        # "" is never embedded
        mid = g.Remember(pb().RememberRequest(space="none", memory=pb().Memory(
            content="no vector for me"))).id
        a = g.Remember(pb().RememberRequest(space="auto", memory=pb().Memory(
            content="a vector for me"))).id
        wait_vector(c, "auto", a)
        assert vector_of(c, "none", mid) is None
        assert "no vector for me" not in standin.stats()["inputs"]
    finally:
        g.close()
        c.close()


def test_mcp_round_trip(server_factory, standin):
    srv = server_factory(env=provider_env(standin))
    s = Session(srv)
    tools = {t["name"]: t for t in s.request("tools/list").result["tools"]}
    assert "embedding_model" in tools["create_space"]["inputSchema"]["properties"]
    assert s.ok("create_space", space="m1", dim=DIM, embedding_model="e5")["embedding_model"] == \
        "e5"
    assert s.ok("create_space", space="m2", dim=DIM, embedding_model="")["embedding_model"] == ""
    assert s.ok("create_space", space="m3", dim=DIM)["embedding_model"] == "standin"
    s.ok("remember", space="agent", content="made by a remember")  # created on first use
    spaces = {x["name"]: x for x in s.ok("list_spaces")["spaces"]}
    assert {n: spaces[n]["embedding_model"] for n in ("m1", "m2", "m3", "agent")} == {
        "m1": "e5", "m2": "", "m3": "standin", "agent": "standin"}
    e = tool_error(s.call("create_space", space="m4", dim=DIM, embedding_model="x" * 200))
    assert e["code"] == "invalid_argument" and "embedding_model: at most 128" in e["message"]
