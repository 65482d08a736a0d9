"""Corrections through MCP, for an agent that has only text: the update, history and
invalidate tools over the HTTP handlers, with readable summaries and the same JSON."""

from test_mcp import Session, tool_error


def test_update_history_invalidate_tools(server, space_name):
    s = Session(server)
    tools = {t["name"]: t for t in s.request("tools/list").result["tools"]}
    assert tools["update"]["inputSchema"]["required"] == ["id"]
    assert tools["history"]["annotations"]["readOnlyHint"] is True
    assert "by" in tools["invalidate"]["inputSchema"]["properties"]

    mid = s.ok("remember", space=space_name, content="Ann lives in Oslo", tags=["ann"])["id"]
    r = s.call("update", space=space_name, id=mid, content="Ann lives in Bergen")
    assert r["isError"] is False, r
    assert "now version 2" in r["content"][0]["text"]
    new = r["structuredContent"]
    assert new["id"] == mid and new["version"] == 2 and new["tags"] == ["ann"]
    assert new["changed"] == ["content"]

    err = tool_error(s.call("update", space=space_name, id=mid, content="x",
                            expected_version=1))
    assert err["code"] == "conflict" and "current version is 2" in err["message"]
    err = tool_error(s.call("update", space=space_name, id=mid))
    assert "nothing to change" in err["message"]

    h = s.call("history", space=space_name, id=mid)
    assert h["isError"] is False, h
    assert [v["content"] for v in h["structuredContent"]["versions"]] == \
        ["Ann lives in Oslo", "Ann lives in Bergen"]
    assert "2 versions" in h["content"][0]["text"] and "Oslo" in h["content"][0]["text"]

    hits = s.ok("recall", space=space_name, text="where does Ann live")["results"]
    assert [(x["memory"]["id"], x["memory"]["content"]) for x in hits] == \
        [(mid, "Ann lives in Bergen")]

    other = s.ok("remember", space=space_name, content="Ann moved to Tromso")["id"]
    inv = s.call("invalidate", space=space_name, id=mid, by=other, reason="moved again")
    assert inv["isError"] is False, inv
    assert inv["structuredContent"]["invalidated_by"] == other
    assert "no longer holds" in inv["content"][0]["text"]
    hit = [x for x in s.ok("recall", space=space_name, text="Ann Bergen")["results"]
           if x["memory"]["id"] == mid][0]
    assert "superseded" in hit["confidence"]["reasons"]
