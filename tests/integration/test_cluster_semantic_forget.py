"""A semantic memory a client forgot stays forgotten across the cluster's moves (docs/gossip.md,
"The merge rule": a forgotten memory never comes back): after its primary fails over and the
new primary consolidates again, and on a copy made after the forget (a drain moves the replica's
copy to the third node). Real `mnemo serve` processes on 127.0.0.1; every wait polls with a
deadline. (The chaos harness's `--forget-semantic` found such memories back after faults:
tests/cluster/README.md, "Open"; these are the moves it covers so far.)"""

from conftest import wait_until
from test_cluster_gossip import BASE, DEADLINE_S, call, start_nodes

SPACE = "semforget"


def placement(node, rf):
    """(primary, sorted holders) once the space is placed on rf full copies, else None."""
    r = call(node, "GET", "/v1/cluster/spaces")
    rows = [x for x in r.json.get("spaces", []) if x["name"] == SPACE] if r.status == 200 else []
    if not rows or not rows[0].get("primary") or len(rows[0]["holders"]) != rf:
        return None
    if any(h["role"] == "catching_up" for h in rows[0]["holders"]):
        return None
    return rows[0]["primary"], sorted(h["node"] for h in rows[0]["holders"])


def until(status, node, method, path, body=None, query=None):
    """The answer once it has status (a primary may not lead yet: 503 until it does)."""
    return wait_until(lambda: (lambda x: x if x.status == status else None)(
        call(node, method, path, body, query)), DEADLINE_S, what="%s %s" % (method, path))


def made_and_forgotten(p, rounds):
    """Episodes on one topic, consolidated `rounds` times (the memory updated each time),
    then its forget; the memory's id."""
    sid = None
    for k in range(rounds):
        for i in range(6):
            emb = [BASE[0], BASE[1] + 0.01 * i + 0.001 * k, BASE[2], BASE[3]]
            until(201, p, "POST", "/v1/spaces/%s/memories" % SPACE,
                  {"content": "deploy pipeline canary step %d round %d" % (i, k),
                   "embedding": emb})
        r = until(200, p, "POST", "/v1/spaces/%s/consolidate" % SPACE, {"min_support": 3})
        assert len(r.json["ids"]) == 1 and sid in (None, r.json["ids"][0]), r.body
        sid = r.json["ids"][0]
    r = until(200, p, "DELETE", "/v1/spaces/%s/memories/%s" % (SPACE, sid),
              query={"mode": "delete"})
    assert r.json["forgotten"] is True, r.body
    return sid


def semantic_ids(node):
    r = call(node, "GET", "/v1/spaces/%s/memories" % SPACE,
             query={"kind": "semantic", "read": "nearest", "include_suppressed": "true"})
    assert r.status == 200, r.body
    return {m["id"] for m in r.json["memories"] if m["kind"] == "semantic"}


def assert_forgotten_on(node, sid):
    r = call(node, "GET", "/v1/spaces/%s/memories/%s" % (SPACE, sid), query={"read": "nearest"})
    assert r.status == 404, r.body
    assert sid not in semantic_ids(node)


def test_a_forgotten_semantic_memory_stays_forgotten_after_failover(server_factory):
    nodes, ids = start_nodes(server_factory, "cluster", rf=3)
    assert call(nodes[0], "POST", "/v1/spaces", {"name": SPACE, "dim": 4}).status == 201
    prim, _ = wait_until(lambda: placement(nodes[0], 3), DEADLINE_S, what="three copies")
    p = ids.index(prim)
    sid = made_and_forgotten(nodes[p], 2)
    for n in nodes:  # the forget is on every copy (quorum, then the third catches up)
        wait_until(lambda n=n: call(n, "GET", "/v1/spaces/%s/memories/%s" % (SPACE, sid),
                                    query={"read": "nearest"}).status == 404,
                   DEADLINE_S, what="the forget on every copy")
    nodes[p].kill()
    rest = [n for k, n in enumerate(nodes) if k != p]
    newp = wait_until(lambda: (lambda x: x if x and x[0] != prim else None)(
        placement(rest[0], 2) or placement(rest[0], 3)), 2 * DEADLINE_S,
        what="a new primary")[0]
    q = nodes[ids.index(newp)]
    r = until(200, q, "POST", "/v1/spaces/%s/consolidate" % SPACE, {"min_support": 3})
    assert sid not in r.json["ids"], r.body  # its episodes make no memory under its key
    for n in rest:
        assert_forgotten_on(n, sid)


def test_a_copy_made_after_the_forget_holds_it_forgotten(server_factory):
    nodes, ids = start_nodes(server_factory, "cluster", rf=2)
    assert call(nodes[0], "POST", "/v1/spaces", {"name": SPACE, "dim": 4}).status == 201
    prim, holders = wait_until(lambda: placement(nodes[0], 2), DEADLINE_S, what="two copies")
    replica = [i for i in holders if i != prim][0]
    third = [i for i in ids if i not in holders][0]
    sid = made_and_forgotten(nodes[ids.index(prim)], 3)
    r = call(nodes[ids.index(prim)], "POST", "/v1/cluster/drain", {"node": replica})
    assert r.status == 200, r.body
    wait_until(lambda: (lambda x: x if x and third in x[1] and replica not in x[1] else None)(
        placement(nodes[0], 2)), 2 * DEADLINE_S, what="the replica's copy moved to the third")
    t = nodes[ids.index(third)]
    assert_forgotten_on(t, sid)
    r = until(200, nodes[ids.index(prim)], "POST", "/v1/spaces/%s/consolidate" % SPACE,
              {"min_support": 3})
    assert sid not in r.json["ids"], r.body
    assert_forgotten_on(t, sid)
