"""Forget by filter through MCP, text only (the forget_where and forget_job tools): a dry
run shows the count and a sample in words, a real run says what it did, a job is polled to
its end, and bad arguments come back as isError results that say what to fix."""

from conftest import wait_until
from test_mcp import Session, tool_error


def seed(s, space):
    for i in range(12):
        s.ok("remember", space=space, content="note %d about %s" % (i, "trains" if i % 2 else
                                                                   "peanuts"),
             tags=["food" if i % 2 == 0 else "travel"], context={"who": "ann" if i % 3 == 0
                                                                   else "bob"})


def test_tools_are_listed_with_their_schemas(server):
    tools = {t["name"]: t for t in Session(server).request("tools/list").result["tools"]}
    fw = tools["forget_where"]
    assert fw["annotations"]["destructiveHint"] is True
    props = fw["inputSchema"]["properties"]
    assert {"dry_run", "mode", "tags_any", "metadata", "when", "who", "filter"} <= set(props)
    assert tools["forget_job"]["inputSchema"]["required"] == ["job"]


def test_dry_run_then_delete_then_job(server, space_name):
    s = Session(server)
    seed(s, space_name)
    r = s.call("forget_where", space=space_name, tags_any=["food"], dry_run=True)
    assert r["isError"] is False
    assert r["structuredContent"]["count"] == 6
    text = r["content"][0]["text"]
    assert "Dry run: 6 memories" in text and "nothing changed" in text and "peanuts" in text
    r = s.call("forget_where", space=space_name, tags_any=["food"])
    assert r["structuredContent"]["forgotten"] == 6
    assert r["content"][0]["text"].startswith("Deleted 6 memories")
    r = s.ok("forget_where", space=space_name, who="bob", mode="suppress", **{"async": True})
    job = r["job"]
    final = wait_until(lambda: (lambda j: j if j["state"] != "running" else None)(
        s.ok("forget_job", space=space_name, job=job)), 60, what="the job")
    assert final["state"] == "done" and final["forgotten"] == 4  # odd i, i % 3 != 0
    r = s.call("forget_job", space=space_name, job=job, cancel=True)
    assert "is done" in r["content"][0]["text"]


def test_errors_say_what_to_fix(server, space_name):
    s = Session(server)
    seed(s, space_name)
    e = tool_error(s.call("forget_where", space=space_name))
    assert e["code"] == "invalid_argument" and "condition" in e["message"]
    e = tool_error(s.call("forget_where", space=space_name, tags_any=["food"], mode="shred"))
    assert e["code"] == "invalid_argument" and "mode" in e["message"]
    e = tool_error(s.call("forget_where", space="nope", tags_any=["food"]))
    assert e["code"] == "space_not_found"
    e = tool_error(s.call("forget_job", space=space_name, job="0000"))
    assert e["code"] == "not_found"
    assert s.ok("forget_where", space=space_name, tags_any=["food"], dry_run=True)["count"] == 6
