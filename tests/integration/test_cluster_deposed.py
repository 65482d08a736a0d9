"""A deposed primary dropped from the holders before it reconciled (docs/replication.md,
"Replication in the server", closing a copy; found by simnet's membership-random scenario).

Four `mnemo serve`, factor 3. The space's primary is cut off (its two replicas paused) and
takes `one` writes nobody else gets until its lease ends; it and the replicas die. The
replicas come back and elect; the spare node, alive all along, takes the old primary's place:
its holder record no longer lists it. When the old primary starts again (drained: retired by
its operator, so placement gives it no copy) its copy is dropped, but first the entries of
the epoch it led that no majority had are handed back and re-applied through the new
primary, with their ids. No acknowledged write is lost, not even a `one` write past the
fork. Every wait polls with a deadline."""
import os

import cluster_fork
from conftest import wait_until
from test_cluster_repl import DEADLINE_S, entry
from test_cluster_snapshot import node, write
from test_cluster_swim import swim_endpoint

SPACE = "snap-a"  # the name test_cluster_snapshot's helpers write to


def holders(server):
    e = entry(server, SPACE)
    return [h["node"] for h in e["holders"]] if e else None


def test_a_deposed_primary_dropped_from_the_holders_hands_back_its_one_writes(server_factory):
    nodes, by_id, primary_id = cluster_fork.cluster_with_space(
        lambda seeds: node(server_factory, seeds, retain=0), 4, SPACE)
    primary = by_id[primary_id]
    held = holders(primary)
    replicas = [by_id[i] for i in held if i != primary_id]
    spare = next(s for i, s in by_id.items() if i not in held)
    before = [write(primary, i) for i in range(10)]
    cluster_fork.replicas_ready(primary, replicas, SPACE)

    cluster_fork.pause(replicas)
    try:
        with primary.client(timeout=3.0) as c:
            forked, _ = cluster_fork.one_writes_until_refused(c, SPACE)
    finally:
        cluster_fork.kill_all(primary, replicas)
    assert forked, "no write acknowledged by the cut-off primary"
    for s in replicas:
        s.extra_env["MNEMO_CLUSTER_SEEDS"] = "127.0.0.1:%d" % swim_endpoint(spare)[1]
        s.start()
    leader = cluster_fork.elected(replicas, primary_id, by_id, SPACE)
    cluster_fork.writes_resume(leader, write, 300, 1)
    # the old primary is dead to SWIM: the new primary's records replace it by the spare
    wait_until(lambda: (h := holders(leader)) and primary_id not in h and len(h) == 3,
               2 * DEADLINE_S, what="the old primary out of the holder record")

    # it comes back drained (the operator retires it: the flag is a file, kept over a restart),
    # so placement gives it no copy again: its copy is dropped before it ever reconciled
    with open(os.path.join(primary.data_dir, "cluster_drain"), "w") as f:
        f.write("1")
    primary.extra_env["MNEMO_CLUSTER_SEEDS"] = ",".join(
        "127.0.0.1:%d" % swim_endpoint(s)[1] for s in replicas + [spare])
    primary.start()
    try:
        wait_until(lambda: not cluster_fork.missing_at(leader, SPACE, forked + before),
                   DEADLINE_S, what="every forked `one` write re-applied at the new primary")
        log = wait_until(lambda: (lambda lg: lg if "copy dropped" in lg else None)(
            primary.log()), DEADLINE_S, what="the old primary's copy dropped")
    except AssertionError as ex:
        raise AssertionError("%s: %d of %d missing; holders at the new primary %s\n"
                             "old primary's log:\n%s" % (
                                 ex, len(cluster_fork.missing_at(leader, SPACE, forked)),
                                 len(forked), holders(leader), primary.log()[-8000:])) from None
    assert "handed back to the primary before its copy is dropped" in log, log[-6000:]
