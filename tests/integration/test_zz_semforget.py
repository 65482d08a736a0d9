import time
from conftest import wait_until
from test_cluster_gossip import start_nodes, call, BASE, DEADLINE_S
from test_cluster_swim import swim_endpoint

SP = "semf"


def primary(nodes):
    r = call(nodes[0], "GET", "/v1/cluster/spaces")
    rows = [x for x in r.json.get("spaces", []) if x["name"] == SP]
    return rows[0]["primary"] if rows and rows[0].get("primary") else None


def test_forgotten_semantic_stays_forgotten_after_failover(server_factory):
    nodes, ids = start_nodes(server_factory, "cluster", rf=3)
    assert call(nodes[0], "POST", "/v1/spaces", {"name": SP, "dim": 4}).status == 201
    p = ids.index(wait_until(lambda: primary(nodes), DEADLINE_S, what="primary"))
    for i in range(6):
        emb = [BASE[0], BASE[1] + 0.01 * i, BASE[2], BASE[3]]
        r = wait_until(lambda: (lambda x: x if x.status == 201 else None)(call(
            nodes[p], "POST", "/v1/spaces/%s/memories" % SP,
            {"content": "deploy pipeline canary step %d" % i, "embedding": emb})), DEADLINE_S)
    r = call(nodes[p], "POST", "/v1/spaces/%s/consolidate" % SP, {"min_support": 3})
    assert r.status == 200 and r.json["created"] == 1, r.body
    sid = r.json["ids"][0]
    r = call(nodes[p], "DELETE", "/v1/spaces/%s/memories/%s" % (SP, sid), query={"mode": "delete"})
    assert r.status == 200, r.body
    time.sleep(1)
    for k, n in enumerate(nodes):
        r = call(n, "GET", "/v1/spaces/%s/memories/%s" % (SP, sid), query={"read": "nearest"})
        print("node", k, "get", r.status)
    nodes[p].kill()
    rest = [n for k, n in enumerate(nodes) if k != p]
    newp = wait_until(lambda: (lambda x: x if x and x != ids[p] else None)(primary(rest)), 60)
    q = ids.index(newp)
    r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(call(
        nodes[q], "POST", "/v1/spaces/%s/consolidate" % SP, {"min_support": 3})), 60)
    print("consolidate on new primary", r.body)
    r = call(nodes[q], "GET", "/v1/spaces/%s/memories/%s" % (SP, sid))
    print("get on new primary", r.status)
    assert r.status == 404, r.body
