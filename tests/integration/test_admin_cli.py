"""`mnemo admin` against real processes: three `mnemo serve` with [cluster]
enabled (replication factor 3). status prints every member and space and
exits 0 on a healthy cluster (one JSON document with --json); drain, sent to
one node, reaches the node it names: every node sees it draining, it leads no
space while every space keeps its three copies (no other member can take
them), the flag survives a restart of the drained node, and --undo clears
it. Errors have exit codes: 1 when the node refuses (an unknown node, a node
without [cluster]), 2 for a bad command line, 3 when a drain does not finish
within --wait, 4 when the node cannot be reached. Every wait polls with a
deadline.
"""

import json
import os
import subprocess

from conftest import mnemo_bin, wait_until
from test_cluster_catalog import DEADLINE_S, create_on_primary, get, quiet, start_three


def admin(args, timeout=60):
    e = dict(os.environ)
    e.pop("MNEMO_URL", None)
    e.pop("MNEMO_API_KEY", None)
    return subprocess.run([mnemo_bin(), "admin"] + args, env=e, capture_output=True, text=True,
                          timeout=timeout)


def drain_seen(nodes, node_id, want, led_on=None):
    """True once every node's placement view shows node_id with draining == want and (when
    want) no space led by it in the tables of led_on (default: nodes)."""
    for s in nodes:
        doc = quiet(lambda s=s: get(s, "/v1/cluster/spaces"))
        if not doc:
            return False
        m = [m for m in doc["members"] if m["id"] == node_id]
        if len(m) != 1 or m[0]["draining"] is not want:
            return False
        if want and s in (led_on or nodes) and any(sp["primary"] == node_id
                                                   for sp in doc["spaces"]):
            return False
    return True


def test_admin_status_and_drain(server_factory):
    nodes, ids, _ = start_three(server_factory, rf=3)
    names = ["adm-%d" % i for i in range(6)]
    for name in names:
        create_on_primary(nodes, ids, name)
    wait_until(lambda: all(len(get(s, "/v1/cluster/spaces")["spaces"]) == len(names)
                           for s in nodes), DEADLINE_S, what="every space placed everywhere")

    r = wait_until(lambda: (lambda r: r if r.returncode == 0 else None)(
        admin(["status", "--url", nodes[0].url])), DEADLINE_S, what="a healthy status")
    for i in ids:
        assert i in r.stdout
    for name in names:
        assert name in r.stdout
    assert "status: healthy" in r.stdout and "under-replicated: none" in r.stdout

    r = admin(["status", "--url", nodes[1].url, "--json"])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["healthy"] is True and doc["under_replicated"] == []
    assert sorted(s["name"] for s in doc["placement"]["spaces"]) == names
    assert sorted(m["id"] for m in doc["members"]["members"]) == sorted(ids)

    # drain the third node through the first: the flag reaches it, every node sees it
    target = ids[2]
    r = admin(["drain", target, "--url", nodes[0].url])
    assert r.returncode == 0, r.stderr
    assert "draining" in r.stdout
    wait_until(lambda: drain_seen(nodes, target, True), DEADLINE_S,
               what="every node sees the drain and moves its primaries away")
    for s in nodes:  # nowhere to move the copies to: all three kept, nothing under-replicated
        doc = get(s, "/v1/cluster/spaces")
        assert doc["under_replicated"] == 0
        assert all(len(sp["holders"]) == 3 for sp in doc["spaces"])
    r = admin(["status", "--url", nodes[2].url])
    assert r.returncode == 0, r.stdout + r.stderr
    row = [line for line in r.stdout.splitlines() if line.startswith(target)][0]
    assert " yes " in row
    # the drain cannot finish (factor 3 on three members): --wait says so
    r = admin(["drain", target, "--url", nodes[1].url, "--wait", "1"])
    assert r.returncode == 3 and "still holds" in r.stdout

    # the flag survives a restart of the drained node (whose own table starts afresh, alone:
    # only the others' tables are asked to have no primary on it)
    nodes[2].stop()
    nodes[2].start()
    wait_until(lambda: drain_seen(nodes, target, True, led_on=nodes[:2]), DEADLINE_S,
               what="the restarted node drains still")

    r = admin(["drain", target, "--undo", "--url", nodes[1].url])
    assert r.returncode == 0, r.stderr
    wait_until(lambda: drain_seen(nodes, target, False), DEADLINE_S, what="the drain undone")

    # refusals and unreachable nodes
    r = admin(["drain", "no-such-node", "--url", nodes[0].url])
    assert r.returncode == 1 and "no-such-node" in r.stderr
    r = admin(["drain", "--url", nodes[0].url])
    assert r.returncode == 2 and "name the node" in r.stderr
    r = admin(["status", "--url", "http://127.0.0.1:1"])
    assert r.returncode == 4 and "cannot reach" in r.stderr
    r = admin(["status", "--url", "https://example.invalid"])
    assert r.returncode == 2
    # rebalance reports what the placement says (the node that came back gets its copies
    # again as catching-up ones, which stay so until WAL shipping lands: moves in flight)
    def rebalance_matches():
        r = admin(["rebalance", "--url", nodes[0].url, "--json"])
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        table = get(nodes[0], "/v1/cluster/spaces")
        moving = [sp for sp in table["spaces"]
                  if any(h["role"] == "catching_up" for h in sp["holders"])]
        copies = sum(len(sp["holders"]) for sp in table["spaces"])
        same = (doc["moves_in_flight"] == len(moving)
                and doc["under_replicated"] == table["under_replicated"]
                and abs(doc["copies"]["mean"] - copies / 3.0) < 1e-9)
        return doc if same else None
    doc = wait_until(rebalance_matches, DEADLINE_S, what="rebalance to report the placement")
    assert "nothing to trigger" in doc["note"]
    r = admin(["rebalance", "--url", nodes[0].url])
    assert r.returncode == 0 and "copies per member" in r.stdout


def test_admin_on_a_single_node_says_cluster_is_off(server_factory):
    node = server_factory()
    r = admin(["status", "--url", node.url])
    assert r.returncode == 1
    assert "[cluster] enabled" in r.stderr
    r = admin(["frobnicate"])
    assert r.returncode == 2 and "frobnicate" in r.stderr
