"""Steps shared by the tests that fork a primary's log with real processes
(test_cluster_snapshot, test_cluster_deposed): the primary is cut off from its replicas
(paused), takes `one` writes nobody else gets until its lease ends, and everyone dies; the
replicas come back and elect. Every wait polls with a deadline."""
import json
import os
import signal
import time

from conftest import wait_until
from mnemo_client import MnemoError
from test_cluster_repl import DEADLINE_S, entry, last_lsn, spaces_doc
from test_cluster_swim import swim_endpoint, view_is


def cluster_with_space(make_node, n, space):
    """n nodes (make_node(seeds) starts one), all alive in every view, and space created at
    its desired primary on three holders: (nodes, by_id, primary_id)."""
    first = make_node([])
    seeds = ["127.0.0.1:%d" % swim_endpoint(first)[1]]
    nodes = [first] + [make_node(seeds) for _ in range(n - 1)]
    ids = [swim_endpoint(s)[0] for s in nodes]
    by_id = dict(zip(ids, nodes))
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="every member alive in every view")
    primary_id = spaces_doc(nodes[0], space)["spaces"][0]["primary"]
    with by_id[primary_id].client() as c:
        c.create_space(space, dim=4)
    wait_until(lambda: all((e := entry(s, space)) and len(e["holders"]) == 3 for s in nodes),
               DEADLINE_S, what="every node placing the space on three holders")
    return nodes, by_id, primary_id


def record_kept(server, space):
    """Does server's catalog file hold the space's holder record?"""
    with open(os.path.join(server.data_dir, "cluster_catalog.json")) as f:
        return any(e["name"] == space and e.get("record") for e in json.load(f)["spaces"])


def replicas_ready(primary, replicas, space):
    """The replicas at the primary's lsn, and their catalog files holding the record: they
    restart later without the old primary, and would otherwise wait for its creator."""
    want = last_lsn(primary, space)
    for s in replicas:
        wait_until(lambda s=s: (last_lsn(s, space) or 0) >= want, DEADLINE_S,
                   what="the replicas at the primary's lsn")
    for s in replicas:
        wait_until(lambda s=s: record_kept(s, space), DEADLINE_S, what="the holder record kept")


def one_writes_until_refused(c, space, seconds=6.0):
    """`one` remembers through client c for up to `seconds` (a length of workload, not an
    assertion on time), until one is refused: (the acknowledged ids, the refusal or None)."""
    forked, refused = [], None
    until = time.monotonic() + seconds
    for i in range(200, 5000):
        if time.monotonic() > until:
            break
        try:
            forked.append(c.request(
                "POST", "/v1/spaces/%s/memories" % space,
                body={"content": "forked %d" % i, "consistency": "one",
                      "embedding": [0.0, 1.0, float(i % 5), 0.5]})["id"])
        except MnemoError as ex:
            refused = ex
            break
    return forked, refused


def pause(servers):
    for s in servers:
        s.proc.send_signal(signal.SIGSTOP)


def kill_all(primary, replicas):
    """The primary dies, and the replicas too, so that what it shipped into their sockets is
    never read: its writes are its own, past a fork."""
    primary.kill()
    for s in replicas:
        s.kill()


def elected(replicas, old_id, by_id, space):
    """Waits for the restarted replicas to agree on a new primary; returns its server."""
    def new_primary():
        es = [entry(s, space) for s in replicas]
        if not all(es) or es[0]["primary"] != es[1]["primary"]:
            return None
        return es[0] if es[0]["primary"] not in (None, old_id) else None
    return by_id[wait_until(new_primary, DEADLINE_S, what="a new primary")["primary"]]


def writes_resume(leader, write, first, n):
    """Writes first..first+n-1 at the new primary, each retried until taken (a slow build
    may answer 503 while the replicas catch up)."""
    def write_there(i):
        try:
            return write(leader, i)
        except (MnemoError, OSError):
            return None
    for i in range(first, first + n):
        wait_until(lambda i=i: write_there(i), DEADLINE_S, what="writes at the new primary")


def missing_at(leader, space, ids):
    """The ids the leader does not list (a 503 while the role moves: asked again)."""
    try:
        with leader.client(timeout=5.0) as c:
            have = {m["id"] for m in c.iter_memories(space)}
    except MnemoError as ex:
        if ex.status != 503:
            raise
        return ["(not readable now: %s)" % ex]
    return [m for m in ids if m not in have]
