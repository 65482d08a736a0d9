"""A node started under a known id on an empty data dir holds none of the copies it lost
(api/cluster_repl_lost.c; runbooks/cluster.md, "Replace a failed disk").

Three `mnemo serve` with [cluster] enabled, factor 3; the third has `cluster.node_id` set.
Once the space's holder record names it a replica, it stops, its data dir is wiped, and it
starts again under the same id (the test-only MNEMO_TEST_BORN_MARGIN_MS=0: the space was
created before its new replication folder, which otherwise must be by a minute). Its votes and log are gone, so it must not hold the space: it logs why, counts it,
opens no copy, and the two others go on taking quorum writes. A restart refuses it again.
Every wait polls with a deadline."""

import os
import shutil

from conftest import wait_until
from test_cluster_repl import DEADLINE_S, entry, last_lsn, spaces_doc
from test_cluster_snapshot import metric
from test_cluster_swim import cluster_env, swim_endpoint, view_is

SPACE = "lost-a"
LOST_ID = "node-lost-c"
REFUSED = "names this node (%s) a voter, but this node has no replication state" % LOST_ID


def env_of(seeds, **more):
    return dict(cluster_env(seeds), MNEMO_CLUSTER_REPLICATION_FACTOR="3",
                MNEMO_CLUSTER_WRITE_CONSISTENCY="quorum", **more)


def test_a_node_back_on_an_empty_data_dir_under_its_id_holds_no_copy(server_factory):
    first = server_factory(env=env_of([]))
    seeds = ["127.0.0.1:%d" % swim_endpoint(first)[1]]
    nodes = [first, server_factory(env=env_of(seeds)),
             server_factory(env=env_of(seeds, MNEMO_CLUSTER_NODE_ID=LOST_ID))]
    ids = [swim_endpoint(s)[0] for s in nodes]
    assert ids[2] == LOST_ID
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="three alive members in every view")
    with first.client() as c:
        c.create_space(SPACE, dim=4)

    def recorded_voters():
        e = entry(first, SPACE)
        return e and len(e["holders"]) == 3 and all(h["role"] != "catching_up"
                                                   for h in e["holders"])
    wait_until(recorded_voters, DEADLINE_S, what="the record naming three voters")
    wait_until(lambda: (last_lsn(nodes[2], SPACE) or 0) >= 1, DEADLINE_S,
               what="the third node holding the space")
    with first.client() as c:
        for i in range(5):
            c.remember(SPACE, "fact %d" % i, embedding=[1.0, float(i), 0.5, 0.0])

    lost = nodes[2]
    assert lost.stop() == 0
    shutil.rmtree(lost.data_dir)
    os.mkdir(lost.data_dir)
    lost.extra_env["MNEMO_TEST_BORN_MARGIN_MS"] = "0"
    lost.start()
    try:
        wait_until(lambda: REFUSED in lost.log(), DEADLINE_S, what="the refusal logged")
    except AssertionError as ex:
        raise AssertionError("%s\n%s" % (ex, lost.log()[-4000:])) from None
    assert SPACE in lost.log() and "Replace a failed disk" in lost.log()
    wait_until(lambda: metric(lost, "mnemo_repl_events_total", "lost_state_refused") == 1,
               DEADLINE_S, what="the refusal counted")
    # no copy here: no core state, no engine copy; the others take quorum writes
    e = next(s for s in spaces_doc(lost)["spaces"] if s["name"] == SPACE)
    assert "copy" not in e and last_lsn(lost, SPACE) is None, e
    with first.client() as c:
        c.remember(SPACE, "after the refusal", embedding=[1.0, 9.0, 0.5, 0.0],
                   consistency="quorum")
    # restarted under the same id, it is refused again while the record names it a voter;
    # once the primary recorded it catching up (SWIM saw it leave), it catches up from
    # nothing as a copy that votes on nothing until it holds the whole log: either way it
    # never holds the copy as a voter without its state
    assert lost.stop() == 0
    lost.start()

    def refused_or_learned():
        if REFUSED in lost.log():
            return "refused"
        mine = next((h for h in (entry(first, SPACE) or {}).get("holders", [])
                     if h["node"] == LOST_ID), None)
        here = last_lsn(lost, SPACE)
        if here is not None and mine and mine["role"] == "catching_up":
            assert "open at lsn 0 (new" in lost.log()
        return "learned" if here is not None and here == last_lsn(first, SPACE) else None
    how = wait_until(refused_or_learned, DEADLINE_S, what="refused again, or caught up afresh")
    if how == "learned":
        wait_until(lambda: next(h for h in entry(first, SPACE)["holders"]
                                if h["node"] == LOST_ID)["role"] == "replica", DEADLINE_S,
                   what="the copy caught up and recorded a replica")
