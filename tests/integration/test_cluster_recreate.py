"""A space dropped and created again at once, on another node, with real processes: three
`mnemo serve` at replication factor 1 (each incarnation of the name has one holder, its
creator, until balance moves it) and 2 (the creator may hold a replica of the dropped
space: it answers 409 until the drop reached it). Each round creates the name on the next node (a signed hop, so the creation
lands there and not on the preview's primary), before the other nodes may have heard of
the last drop. The new incarnation must take writes through every node, start empty (no
memory of an older incarnation comes back), and settle with one primary and no copy left
catching up. Before the incarnation was in the replication core's state and frames, an
old holder's core could keep the dropped incarnation's epoch and vote under the name and
stall the new one (docs/replication.md, "A name dropped and created again"). Every wait
polls with a deadline.
"""

import pytest

from cluster_hop import hop
from conftest import wait_until
from test_cluster_catalog import drop, quiet, start_three

DEADLINE_S = 30.0
ROUNDS = 6
NAME = "again"


def created_here(server):
    """True once server itself created the space (a signed hop is served where it lands)."""
    r = hop(server, "POST", "/v1/spaces", {"name": NAME, "dim": 4})
    assert r.status in (201, 409), (r.status, r.body)
    return r.status == 201


def remember_through(server, text):
    """The id once a quorum write of text through server is acknowledged; None meanwhile."""
    with server.client(timeout=5.0) as c:
        r = c.raw("POST", "/v1/spaces/%s/memories" % NAME,
                  body={"content": text, "embedding": [1, 0, 0, 0], "consistency": "quorum"})
    if r.status in (503, 404):  # placement or the new copy not ready yet
        return None
    assert r.status in (200, 201), (r.status, r.body)
    return r.json["id"]


def contents(server):
    with server.client(timeout=5.0) as c:
        r = c.raw("GET", "/v1/spaces/%s/memories" % NAME, query={"limit": "100"})
    if r.status != 200:
        return None
    return sorted(m["content"] for m in r.json["memories"])


def settled(server):
    """The space's entry once it has one live primary, no copy catching up and no flag, of
    the incarnation server's catalog has."""
    with server.client(timeout=5.0) as c:
        doc = c.request("GET", "/v1/cluster/spaces")
    s = next((s for s in doc["spaces"] if s["name"] == NAME), None)
    if not s or not s["primary"] or s["flags"]:
        return None
    if any(h["role"] == "catching_up" or h.get("down") for h in s["holders"]):
        return None
    # the table places the incarnation the catalog has (it follows within a tick)
    return s if s["incarnation"] == created_ms(server) else None


def views(nodes):
    """Every node's entry of the space and the repl lines of its log (printed on a failure)."""
    out = []
    for k, s in enumerate(nodes):
        doc = quiet(lambda s=s: s.client(timeout=5.0).request("GET", "/v1/cluster/spaces"))
        entry = [e for e in (doc or {}).get("spaces", []) if e["name"] == NAME]
        lines = [ln for ln in s.log().splitlines()
                 if NAME in ln and "/memories" not in ln and "was replaced" not in ln][-25:]
        out.append("node %d: %s\n  %s" % (k, entry, "\n  ".join(lines)))
    return "\n".join(out)


@pytest.mark.parametrize("rf", [1, 2])
def test_a_name_dropped_and_created_again_elsewhere_at_once_works_each_time(server_factory, rf):
    nodes, _, _ = start_three(server_factory, rf=rf)
    try:
        rounds(nodes)
    except AssertionError:
        print(views(nodes))
        raise


def created_ms(server):
    with server.client(timeout=5.0) as c:
        doc = c.request("GET", "/v1/cluster/catalog")
    return next(e["created_at_ms"] for e in doc["spaces"] if e["name"] == NAME)


def rounds(nodes):
    seen = set()
    for k in range(ROUNDS):
        creator = nodes[k % 3]
        # a node that held a copy of the dropped space answers 409 until its drop reaches it
        # (the catalog pushes it at once; anti-entropy repairs): retried, as a client would
        wait_until(lambda c=creator: created_here(c), DEADLINE_S,
                   what="round %d: the creation on node %d" % (k, k % 3))
        texts = []
        for j in range(3):  # a write through every node, each forwarded to the creator
            text = "round %d via %d" % (k, j)
            wait_until(lambda s=nodes[j], t=text: quiet(lambda: remember_through(s, t)),
                       DEADLINE_S, what="round %d: a write through node %d" % (k, j))
            texts.append(text)
        # the new incarnation holds this round's memories only
        for s in nodes:
            wait_until(lambda s=s: quiet(lambda: contents(s)) == sorted(texts), DEADLINE_S,
                       what="round %d: the memories of this incarnation alone" % k)
        # (balance may move the copy off its creator: any one primary will do)
        for s in nodes:
            e = wait_until(lambda s=s: quiet(lambda: settled(s)), DEADLINE_S,
                           what="round %d: one primary, nothing catching up" % k)
            assert e["incarnation"] not in seen, (k, e)  # a new one each round
        seen.add(e["incarnation"])
        drop(nodes[(k + 1) % 3], NAME)  # through another node: forwarded to the creator
