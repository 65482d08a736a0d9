"""As-of reads over HTTP (docs/api.md, "As-of reads"): a view of the space as it
was, where memories suppressed later are there with their content, and memories
deleted or expired later are redacted entries that recall never ranks; their
times survive the sweeper and a restart."""

import time

from conftest import expect_error, wait_until
from mnemo_client import MnemoError

REDACTED_KEYS = {"id", "kind", "when", "created_at", "forgotten_at", "forgotten"}


def _as_of_view(c, space, as_of):
    page = c.request("GET", "/v1/spaces/%s/memories" % space, query={"as_of": str(as_of)})
    assert page["next"] is None
    return page["memories"]


def _check_view(c, as_of, ids, expires_at):
    a, b, s, e, late = ids
    view = _as_of_view(c, "asof", as_of)
    # time order: a, b, s, e (late was created after as_of)
    assert [m["id"] for m in view] == [a, b, s, e]
    assert view[0]["content"] == "alpha stays"
    # suppressed later: there, with its content, not suppressed as of then
    assert view[2]["content"] == "sigma suppressed later"
    assert view[2]["suppressed"] is False
    # deleted later: what is left of it, nothing else
    assert set(view[1]) == REDACTED_KEYS and view[1]["forgotten"] is True
    assert view[1]["kind"] == "episodic"
    assert "content" not in view[1] and "embedding" not in view[1]
    # expired later: forgotten when its TTL ran out
    assert set(view[3]) == REDACTED_KEYS
    assert view[3]["forgotten_at"] == expires_at
    # recall cannot rank what has no content or vector
    res = c.recall("asof", [1, 0], k=10, as_of=as_of, spread=False)["results"]
    assert sorted(h["id"] for h in res) == sorted([a, s])
    for h in res:
        assert h["memory"]["suppressed"] is False
    # reminisce lists like list does
    rem = c.reminisce("asof", as_of=as_of)
    assert [m["id"] for m in rem] == [a, b, s, e]
    assert rem[1]["forgotten"] is True


def test_as_of_view_over_http(server_factory):
    srv = server_factory()
    c = srv.client()
    c.create_space("asof", dim=2)
    a = c.remember("asof", "alpha stays", [1, 0], when=1700000000000)
    b = c.remember("asof", "beta deleted later", [0.9, 0.1], when=1700000001000)
    s = c.remember("asof", "sigma suppressed later", [0.95, 0.05], when=1700000002000)
    e = c.remember("asof", "eps expires", [0.8, 0.2], when=1700000003000, ttl_seconds=1)
    expires_at = c.get("asof", e)["expires_at"]
    created = max(c.get("asof", x)["created_at"] for x in (a, b, s, e))
    # a moment after those writes, before the rest (the server and we share the clock)
    time.sleep(0.05)
    as_of = int(time.time() * 1000)
    time.sleep(0.05)
    assert c.get("asof", e)["expires_at"] > created
    c.forget("asof", b)
    c.forget("asof", s, mode="suppress")
    late = c.remember("asof", "late", [0.7, 0.3], when=1700000004000)

    def expired():
        try:
            c.get("asof", e)
            return False
        except MnemoError as err:
            return err.status == 404

    wait_until(expired, 30, 0.05, "the TTL to run out")
    ids = (a, b, s, e, late)
    _check_view(c, as_of, ids, expires_at)
    # now: only a and late; s is suppressed
    assert [m["id"] for m in c.iter_memories("asof")] == [a, late]
    # the sweeper deletes e; its time stays when it expired, not when it was swept
    wait_until(lambda: c.stats("asof")["tombstones"] == 2, 30, 0.05, "the sweep")
    _check_view(c, as_of, ids, expires_at)
    # a filter on erased fields leaves the redacted entries out
    page = c.request("GET", "/v1/spaces/asof/memories",
                     query={"as_of": str(as_of), "metadata.k": "v"})
    assert page["memories"] == []
    # an RFC 3339 as_of is the same view
    rfc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(as_of / 1000)) + ".%03dZ" % (as_of % 1000)
    assert [m["id"] for m in c.request("GET", "/v1/spaces/asof/memories",
                                       query={"as_of": rfc})["memories"]] == [a, b, s, e]
    expect_error(lambda: _as_of_view(c, "asof", int(time.time() * 1000) + 60000), 422,
                 "invalid_argument", "as_of")
    c.close()
    srv.restart()
    c = srv.client()
    _check_view(c, as_of, ids, expires_at)
    c.close()
