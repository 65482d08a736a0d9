"""A space's text_language (docs/api.md, docs/recall.md §1): chosen at creation over HTTP,
gRPC and MCP, shown by get and list, kept across a restart, checked (an unknown name is
refused with the accepted ones listed), and used: an english space matches word forms by
their stem and drops question words from a query; a "none" space matches words as they are."""

import grpc
import pytest

from grpc_util import pb
from test_grpc import expect, g, gserver, http  # noqa: F401 (fixtures)
from test_mcp import Session, tool_error


def words(client, space, text, k=10):
    res = client.recall(space, text=text, k=k, spread=False)
    return [h["memory"]["content"] for h in res["results"]]


def test_http_default_english_stems_and_drops_question_words(client, space_name):
    s = client.raw("POST", "/v1/spaces", {"name": space_name, "dim": 2}).json
    assert s["text_language"] == "english"
    client.remember(space_name, "Caroline went to the LGBTQ support group yesterday",
                    context={"who": ["Caroline"]})
    client.remember(space_name, "when did you do that to the car and what was it for")
    client.remember(space_name, "Melanie is painting a sunrise over the lake")
    assert words(client, space_name, "paints") == ["Melanie is painting a sunrise over the lake"]
    # the question's function words find nothing on their own
    assert words(client, space_name, "When did Caroline go to the support groups?") == [
        "Caroline went to the LGBTQ support group yesterday"]
    got = client.get_space(space_name)
    assert got["text_language"] == "english"
    listed = {x["name"]: x for x in client.list_spaces()}
    assert listed[space_name]["text_language"] == "english"


def test_http_none_keeps_word_forms(client, space_name):
    s = client.create_space(space_name, dim=2, text_language="none")
    assert s["text_language"] == "none"
    client.remember(space_name, "Melanie is painting a sunrise")
    assert words(client, space_name, "paints") == []
    assert words(client, space_name, "painting") == ["Melanie is painting a sunrise"]


@pytest.mark.parametrize("lang", ["klingon", "English", "", "x" * 100, 5, None])
def test_http_unknown_language_is_refused_listing_the_accepted(client, space_name, lang):
    r = client.raw("POST", "/v1/spaces", {"name": space_name, "dim": 2, "text_language": lang})
    if lang is None:  # null is absent: the default
        assert r.status == 201 and r.json["text_language"] == "english"
        return
    assert r.status == 422, r.body
    err = r.json["error"]
    assert err["code"] == "invalid_argument"
    assert err["message"].startswith("text_language"), err["message"]
    if isinstance(lang, str):
        assert "none,arabic," in err["message"] and "english" in err["message"]
        assert "yiddish" in err["message"]
    assert client.raw("GET", "/v1/spaces/" + space_name).status == 404


def test_language_survives_a_restart(server_factory):
    srv = server_factory()
    c = srv.client()
    c.raw("POST", "/v1/spaces", {"name": "fr", "dim": 2, "text_language": "french"})
    c.remember("fr", "Les enfants continuaient à jouer")
    srv.restart()
    c = srv.client()
    assert c.get_space("fr")["text_language"] == "french"
    assert words(c, "fr", "continuer") == ["Les enfants continuaient à jouer"]


def test_grpc_create_get_and_list_carry_the_language(g, http):
    s = g.CreateSpace(pb().CreateSpaceRequest(name="glang", dim=2, text_language="german"))
    assert s.text_language == "german"
    s = g.CreateSpace(pb().CreateSpaceRequest(name="glang2", dim=2))
    assert s.text_language == "english"
    listed = {x.name: x for x in g.ListSpaces(pb().ListSpacesRequest()).spaces}
    assert listed["glang"].text_language == "german"
    assert http.get_space("glang")["text_language"] == "german"
    e = expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.CreateSpace,
               pb().CreateSpaceRequest(name="gbad", dim=2, text_language="klingon"))
    assert e.details().startswith("text_language") and "english" in e.details(), e.details()
    for name in ("glang", "glang2"):
        g.DropSpace(pb().SpaceRequest(space=name))


def test_mcp_create_space_takes_the_language(server, space_name):
    s = Session(server)
    tools = {t["name"]: t for t in s.request("tools/list").result["tools"]}
    assert "text_language" in tools["create_space"]["inputSchema"]["properties"]
    r = s.ok("create_space", space=space_name, dim=4, text_language="spanish")
    assert r["text_language"] == "spanish"
    spaces = {x["name"]: x for x in s.ok("list_spaces")["spaces"]}
    assert spaces[space_name]["text_language"] == "spanish"
    e = tool_error(s.call("create_space", space=space_name + "-bad", dim=4,
                          text_language="klingon"))
    assert e["code"] == "invalid_argument" and "english" in e["message"]
