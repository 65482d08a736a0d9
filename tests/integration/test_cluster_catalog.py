"""The space catalog with real processes: three `mnemo serve` with [cluster]
enabled (replication factor 2, so every space has a node that does not hold
it). A space created on one node appears in every node's catalog
(GET /v1/cluster/catalog), in every node's GET /v1/spaces with its whole
definition, and in every node's placement (GET /v1/cluster/spaces) with the
same holders; a node that does not hold it never creates it in its engine
(held_here false). A drop leaves a tombstone everywhere and the space leaves
every list and every placement. A node that was down during a create and a
drop learns both after its restart (anti-entropy), and a node restarted alone
still knows every space (the catalog is kept in its data dir). Bad pushes to
POST /v1/cluster/catalog are refused naming the field and change nothing.
Every wait polls with a deadline.
"""

from mnemo_client import MnemoError
from conftest import wait_until
from test_cluster_swim import cluster_env, swim_endpoint, view_is

DEADLINE_S = 30.0


def node_env(seeds, rf=2):
    env = cluster_env(seeds)
    env["MNEMO_CLUSTER_REPLICATION_FACTOR"] = str(rf)
    env["MNEMO_CLUSTER_CATALOG_SYNC_INTERVAL_MS"] = "300"
    return env


def get(server, path, query=None):
    with server.client(timeout=5.0) as c:
        return c.request("GET", path, query=query)


def quiet(fn):
    """fn() or None while the server is busy or restarting."""
    try:
        return fn()
    except (MnemoError, OSError):
        return None


def catalog(server):
    return {e["name"]: e for e in get(server, "/v1/cluster/catalog")["spaces"]}


def placement(server):
    doc = get(server, "/v1/cluster/spaces")
    return {s["name"]: (s["primary"], tuple(sorted(h["node"] for h in s["holders"])))
            for s in doc["spaces"]}


def listed(server):
    return {s["name"]: s for s in get(server, "/v1/spaces")["spaces"]}


def apis_known(server, n):
    """True once the placement view lists n members, each with its API address."""
    doc = quiet(lambda: get(server, "/v1/cluster/spaces"))
    return bool(doc) and len(doc["members"]) == n and all(m["api"] for m in doc["members"])


def primary_of(server, name):
    """The node a preview on server places name's primary on."""
    doc = get(server, "/v1/cluster/spaces", query={"names": name})
    return doc["spaces"][0]["primary"]


def same_everywhere(nodes, name, live, same_holders=True):
    """Each node's catalog entry of name once they agree on it (live or a tombstone) and
    every placement lists it (with the same holders, when same_holders) when live, and lacks
    it when not."""
    entries = [quiet(lambda s=s: catalog(s).get(name)) for s in nodes]
    if any(e is None for e in entries) or any(e != entries[0] for e in entries[1:]):
        return None
    if (entries[0]["dropped_at_ms"] is None) != live:
        return None
    places = [quiet(lambda s=s: placement(s)) for s in nodes]
    if any(p is None for p in places):
        return None
    if not live:
        return entries if all(name not in p for p in places) else None
    if any(name not in p or not p[name][0] for p in places):
        return None
    if not same_holders:
        return entries
    return entries if all(p[name] == places[0][name] for p in places[1:]) else None


def start_three(server_factory, rf=2):
    first = server_factory(env=node_env([], rf))
    seed_id, seed_port = swim_endpoint(first)
    seeds = ["127.0.0.1:%d" % seed_port]
    nodes = [first] + [server_factory(env=node_env(seeds, rf)) for _ in range(2)]
    ids = [seed_id] + [swim_endpoint(s)[0] for s in nodes[1:]]
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="three alive members in every view")
        wait_until(lambda s=s: apis_known(s, 3), DEADLINE_S, what="every member's API address")
    return nodes, ids, seeds


def create_on_primary(nodes, ids, name, **opts):
    """Creates name on the node placement makes its primary (the forwarding of branch
    `route` will do this by itself); returns that node's index."""
    k = ids.index(primary_of(nodes[0], name))
    with nodes[k].client(timeout=5.0) as c:
        c.request("POST", "/v1/spaces", body=dict({"name": name, "dim": 4}, **opts))
    return k


def drop(s, name):
    """Drops name through s (forwarded to its primary). A balance move may be handing the
    primary over just then: the node that was primary answers 503 until the tables agree,
    and the client retries, as a client should."""
    def once():
        with s.client(timeout=5.0) as c:
            r = c.raw("DELETE", "/v1/spaces/%s" % name)
        assert r.status in (200, 503), (r.status, r.body)
        return r.status == 200
    wait_until(once, DEADLINE_S, what="the drop of %s" % name)


def test_catalog_spreads_creates_and_drops_to_every_node(server_factory):
    nodes, ids, seeds = start_three(server_factory)
    names = ["cat-%d" % i for i in range(6)]
    creator = {}
    for name in names:
        # one at a time: every node then steps its table through the same sets of names,
        # so the tables agree (docs/replication.md, "The same table history")
        creator[name] = create_on_primary(nodes, ids, name, metric="dot", text_language="french",
                                          dedup="off", index={"m": 8})
        entries = wait_until(lambda n=name: same_everywhere(nodes, n, live=True), DEADLINE_S,
                             what="%s in every catalog and placement" % name)
        e = entries[0]
        assert e["dim"] == 4 and e["metric"] == "dot" and e["text_language"] == "french"
        assert e["dedup"] == "off" and e["index"]["m"] == 8 and e["created_at_ms"] > 0

    non_holders = 0
    for name in names:
        holders = placement(nodes[0])[name][1]  # a balance move may add a catching-up copy
        full = [h["node"] for h in get(nodes[0], "/v1/cluster/spaces", {"names": name})
                ["spaces"][0]["holders"] if h["role"] != "catching_up"]
        assert len(full) == 2 and ids[creator[name]] in full
        non_holders += 3 - len(holders)
        for k, s in enumerate(nodes):
            row = listed(s)[name]
            # every node gives the whole definition, held here or not
            assert row["metric"] == "dot" and row["dim"] == 4 and row["index"]["m"] == 8
            assert row["text_language"] == "french" and row["dedup"] == "off"
            if k == creator[name]:
                assert row["held_here"] is True
            if ids[k] not in holders and row["held_here"]:
                # never created in the engine of a node that never held it; a move that
                # finished (the new copy caught up, the surplus one trimmed) leaves the old
                # holder's copy in place, idle (docs/replication.md, "What is missing")
                assert ("repl: %s open at lsn" % name) in s.log(), (name, k)
    assert non_holders > 0

    # the digests agree once the catalogs do
    digests = {get(s, "/v1/cluster/catalog", {"digest": "1"})["digest"] for s in nodes}
    assert len(digests) == 1
    assert "spaces" not in get(nodes[0], "/v1/cluster/catalog", {"digest": "true"})

    # a drop on the creator leaves a tombstone everywhere, and the space leaves every list
    gone = names[0]
    drop(nodes[creator[gone]], gone)
    wait_until(lambda: same_everywhere(nodes, gone, live=False), DEADLINE_S,
               what="the tombstone of %s everywhere" % gone)
    for s in nodes:
        assert gone not in listed(s)
        assert get(s, "/v1/cluster/catalog", {"digest": "1"})["tombstones"] == 1

    # a node down during a create and a drop learns both after its restart
    # (not the first node: its seeds are empty, it would start a cluster of its own)
    down = next(k for k in (1, 2) if k != creator[names[1]])
    nodes[down].stop()
    up = [s for k, s in enumerate(nodes) if k != down]
    up_ids = [i for k, i in enumerate(ids) if k != down]
    for s in up:
        wait_until(lambda s=s: apis_known(s, 2), DEADLINE_S, what="a view of two")
    late = "cat-late"
    create_on_primary(up, up_ids, late)
    wait_until(lambda: same_everywhere(up, late, live=True), DEADLINE_S, what="late on the two")
    drop(nodes[creator[names[1]]], names[1])
    wait_until(lambda: same_everywhere(up, names[1], live=False), DEADLINE_S,
               what="the drop on the two")
    nodes[down].start()
    for s in nodes:
        wait_until(lambda s=s: apis_known(s, 3), DEADLINE_S, what="three members again")
    # the restarted node's table starts afresh (its history differs): only the catalog and
    # the presence of the space in every placement are compared
    wait_until(lambda: same_everywhere(nodes, late, live=True, same_holders=False), DEADLINE_S,
               what="the restarted node learns the create")
    wait_until(lambda: same_everywhere(nodes, names[1], live=False), DEADLINE_S,
               what="the restarted node learns the drop")

    # a node restarted alone still knows every space (its catalog file)
    alone = nodes[down]
    alone.stop()
    alone.extra_env["MNEMO_CLUSTER_SEEDS"] = ""
    alone.start()
    known = listed(alone)
    assert sorted(known) == sorted(names[2:] + [late])
    assert all(known[n]["metric"] == "dot" for n in names[2:])


def test_catalog_push_refuses_bad_entries(server_factory):
    node = server_factory(env=node_env([]))
    wait_until(lambda: apis_known(node, 1), DEADLINE_S, what="the node's API address")
    with node.client(timeout=5.0) as c:
        c.request("POST", "/v1/spaces", body={"name": "kept", "dim": 4})
        before = c.request("GET", "/v1/cluster/catalog")
        cases = [
            ({"spaces": [{"name": "x"}]}, 422, "spaces[0].dim: required"),
            ({"spaces": [{"name": "Bad Name", "dim": 4}]}, 422, "spaces[0].name: "),
            ({"spaces": "no"}, 422, "spaces: expected an array"),
            ({"other": 1}, 422, "other: unknown field"),
        ]
        for body, status, msg in cases:
            r = c.raw("POST", "/v1/cluster/catalog", body=body)
            assert r.status == status, (body, r.status)
            assert r.json["error"]["message"].startswith(msg), r.json
        r = c.raw("POST", "/v1/cluster/catalog", body=b"{not json",
                  headers={"Content-Type": "application/json"})
        assert r.status == 400
        r = c.raw("GET", "/v1/cluster/catalog", query={"digest": "maybe"})
        assert r.status == 422 and "digest" in r.json["error"]["message"]
        assert c.request("GET", "/v1/cluster/catalog") == before
        # a valid push of a space this node does not hold: listed, not held
        entry = dict(before["spaces"][0], name="pushed", created_at_ms=1700000000000)
        r = c.request("POST", "/v1/cluster/catalog", body={"spaces": [entry]})
        assert r["merged"] == 1
        rows = {s["name"]: s for s in c.request("GET", "/v1/spaces")["spaces"]}
        assert rows["pushed"]["held_here"] is False and rows["kept"]["held_here"] is True
        # pushing it again changes nothing (idempotent)
        assert c.request("POST", "/v1/cluster/catalog", body={"spaces": [entry]})["merged"] == 0
