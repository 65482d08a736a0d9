"""Snapshot catch-up with real processes (docs/replication.md, "Snapshots in the server").

Three `mnemo serve` with [cluster] enabled, factor 3, `storage.wal_retain_entries` = 20 and
a sweeper that trims every 100 ms. A replica is stopped; the primary takes far more writes
than the WAL keeps, so when the replica returns the entries it lacks are gone there: its
core says "snapshot needed", it fetches the primary's space over the peer bus in chunks,
installs it and goes on by WAL shipping. Then the cluster stops and both data dirs are
opened alone: the replica's copy has the primary's memories, vectors and recall answers.
Every wait polls with a deadline; nothing here asserts on time.
"""

import os
import re
from concurrent.futures import ThreadPoolExecutor

import cluster_fork
from conftest import wait_until
from mnemo_client import MnemoError
from test_cluster_repl import DEADLINE_S, last_lsn
from test_cluster_swim import cluster_env, swim_endpoint, view_is

SPACE = "snap-a"
RETAIN = 20
# the primary's replication thread keeps its last 512 entries in memory (CREP_CACHE) and
# ships from there past the WAL's trim: a snapshot is needed only beyond that
WRITES = 600


def node(server_factory, seeds, retain=RETAIN):
    env = cluster_env(seeds)
    env["MNEMO_CLUSTER_REPLICATION_FACTOR"] = "3"
    env["MNEMO_CLUSTER_WRITE_CONSISTENCY"] = "quorum"
    env["MNEMO_STORAGE_WAL_RETAIN_ENTRIES"] = str(retain)
    # exact recall on every copy (an HNSW graph is approximate, and each copy builds its own)
    env["MNEMO_ENGINE_HNSW_THRESHOLD"] = "1000000"
    env["MNEMO_ENGINE_EXPIRY_INTERVAL_MS"] = "100"
    return server_factory(env=env)


def write(server, i):
    with server.client(timeout=10.0) as c:
        return c.remember(SPACE, "fact number %d about coffee" % i,
                          embedding=[1.0, float(i % 7), 0.5, float(i % 3)], tags=["n%d" % i])


def wal_first(server):
    with server.client(timeout=5.0) as c:
        return c.stats(SPACE)["wal_first_lsn"]


def metric(server, name, label):
    with server.client(timeout=5.0) as c:
        text = c.raw("GET", "/metrics").body.decode()
    m = re.search(r'^%s\{[^}]*"%s"\} (\d+)' % (name, label), text, re.M)
    return int(m.group(1)) if m else 0


def content(server):
    """Every memory (id -> content, tags, embedding) and a few recall answers, read alone.
    The vector answers are compared by their length only: the embeddings repeat (i % 7 ...),
    so thousands of memories share ~20 vectors, and with that many exact duplicates which
    neighbours an approximate search reaches depends on the shape of the vector graph
    (rebuilt after a snapshot, grown one insert at a time on the primary), not on the data;
    the memories themselves, and a keyword answer, are compared exactly."""
    with server.client(timeout=10.0) as c:
        mems = {m["id"]: (m["content"], tuple(m.get("tags") or ()), tuple(m.get("embedding") or ()))
                for m in c.iter_memories(SPACE, include_embedding=True)}
        answers = []
        for q in ([1.0, 2.0, 0.5, 1.0], [1.0, 5.0, 0.5, 0.0]):
            r = c.recall(SPACE, embedding=q, k=5)
            answers.append(len(r["results"]))
        r = c.recall(SPACE, text="fact number 77", k=5)
        answers.append([h["id"] for h in r["results"]])
    return mems, answers


def test_a_returning_replica_catches_up_by_snapshot(server_factory):
    nodes, by_id, primary_id = cluster_fork.cluster_with_space(
        lambda seeds: node(server_factory, seeds), 3, SPACE)
    primary = by_id[primary_id]
    for i in range(10):
        write(primary, i)
    replica = next(s for s in nodes if s is not primary)
    want = last_lsn(primary, SPACE)
    wait_until(lambda: (last_lsn(replica, SPACE) or 0) >= want, DEADLINE_S,
               what="the replica at the primary's lsn")
    stopped_at = last_lsn(replica, SPACE)

    # the replica stops; the primary writes far more than its WAL keeps
    assert replica.stop() == 0
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: write(primary, i), range(10, 10 + WRITES)))
    wait_until(lambda: wal_first(primary) > stopped_at + 1, DEADLINE_S,
               what="the primary's WAL trimmed past what the replica has")

    replica.extra_env["MNEMO_CLUSTER_SEEDS"] = ",".join(
        "127.0.0.1:%d" % swim_endpoint(s)[1] for s in nodes if s is not replica)
    replica.start()

    def caught_up():
        now = last_lsn(primary, SPACE)
        return now and last_lsn(replica, SPACE) == now
    try:
        wait_until(caught_up, DEADLINE_S, what="the returning replica at the primary's lsn")
    except AssertionError as ex:
        raise AssertionError("%s\nreplica log:\n%s\nprimary log:\n%s" % (
            ex, replica.log()[-5000:], primary.log()[-3000:])) from None
    assert "snapshot installed" in replica.log()
    # (metrics are exported every 200 ms: the log line may come first)
    wait_until(lambda: metric(replica, "mnemo_repl_snapshots_total", "installed") >= 1,
               DEADLINE_S, what="the install counted")
    assert metric(primary, "mnemo_repl_snapshots_total", "sent") >= 1
    assert metric(replica, "mnemo_repl_snapshot_bytes_total", "received") > 0

    # shipping goes on after the snapshot
    write(primary, 100000)
    wait_until(caught_up, DEADLINE_S, what="a later write shipped to the replica")

    # both copies read alone: the same memories, vectors and answers
    for s in nodes:
        assert s.stop() == 0
    alone = [server_factory(data_dir=s.data_dir) for s in (primary, replica)]
    a, b = content(alone[0]), content(alone[1])
    assert len(a[0]) == 10 + WRITES + 1
    assert a[0] == b[0]
    assert all(a[1]) and a[1] == b[1]


def test_an_old_primary_with_a_forked_log_catches_up_by_snapshot(server_factory):
    """The primary is cut off (its replicas paused), takes `one` writes nobody else gets
    until its lease ends (then refuses them), and dies; a replica is elected and writes on.
    The old primary returns with entries past the fork: its core hands them back, keeps
    them on disk (a kill -9 while they wait loses none), and the new primary stores them
    with their ids; as its WAL cannot be cut in place, its copy is replaced by a snapshot of
    the new primary's, after which it follows by shipping. No acknowledged write is lost,
    not even a `one` write past the fork."""
    # the forked entries are read back from the old primary's own WAL: keep them all
    nodes, by_id, primary_id = cluster_fork.cluster_with_space(
        lambda seeds: node(server_factory, seeds, retain=0), 3, SPACE)
    primary = by_id[primary_id]
    before = [write(primary, i) for i in range(10)]
    replicas = [s for s in nodes if s is not primary]
    cluster_fork.replicas_ready(primary, replicas, SPACE)

    # the replicas pause: the primary ships into their socket buffers until its lease runs
    # out (1 s without a majority's acknowledgement, and 1 s of grace in its engine), taking
    # `one` writes: those are its own, past the fork to come, until it refuses one
    cluster_fork.pause(replicas)
    try:
        with primary.client(timeout=3.0) as c:
            # first a correction, an invalidation and a forget by filter, at `one`: entries of
            # other kinds than remember and forget, past the fork too
            corrected = c.update(SPACE, before[1], content="corrected in the fork",
                                 consistency="one")["id"]
            c.request("POST", "/v1/spaces/%s/memories/%s/invalidate" % (SPACE, before[2]),
                      {"reason": "contradicted in the fork", "consistency": "one"})
            gone = c.forget_where(SPACE, tags_any=["n3"], consistency="one")
            assert gone["forgotten"] == 1, gone
            forked, refused = cluster_fork.one_writes_until_refused(c, SPACE)
    finally:
        cluster_fork.kill_all(primary, replicas)
    assert forked, "no write acknowledged by the cut-off primary"
    # once its lease lapsed it takes no write: its engine holds nothing its core would not
    assert refused is not None and refused.status == 503 and "lease" in refused.message, refused
    replicas[0].extra_env["MNEMO_CLUSTER_SEEDS"] = ""
    replicas[0].start()  # (a new SWIM port on each start: the second seeds from the first)
    replicas[1].extra_env["MNEMO_CLUSTER_SEEDS"] = "127.0.0.1:%d" % swim_endpoint(replicas[0])[1]
    replicas[1].start()
    leader = cluster_fork.elected(replicas, primary_id, by_id, SPACE)
    cluster_fork.writes_resume(leader, write, 300, 20)

    primary.extra_env["MNEMO_CLUSTER_SEEDS"] = ",".join(
        "127.0.0.1:%d" % swim_endpoint(s)[1] for s in replicas)
    # first it sends nothing back (a test knob): its forked entries wait on disk while its
    # copy is replaced by a snapshot; a kill -9 then must not lose them
    primary.extra_env["MNEMO_TEST_REAPPLY_HOLD"] = "1"
    primary.start()

    def caught_up():
        now = last_lsn(leader, SPACE)
        return now and last_lsn(primary, SPACE) == now
    try:
        wait_until(caught_up, DEADLINE_S, what="the old primary at the new primary's lsn")
    except AssertionError as ex:
        raise AssertionError("%s\nold primary's log:\n%s" % (ex, primary.log()[-6000:])) from None
    # the engine's position moves at the swap, its log line just after: read the log (as
    # the test's reader thread captures it) until it has caught up with the swap
    try:
        wait_until(lambda: "forked from its primary" in (log := primary.log())
                   and "snapshot installed" in log, DEADLINE_S,
                   what="the fork and the snapshot's install in the old primary's log")
    except AssertionError as ex:
        raise AssertionError("%s\n%s" % (ex, primary.log()[-6000:])) from None
    log = primary.log()
    kept = os.path.join(primary.data_dir, "repl", "reapply", SPACE + ".log")
    assert os.path.getsize(kept) > 0, log[-6000:]
    primary.kill()
    del primary.extra_env["MNEMO_TEST_REAPPLY_HOLD"]
    primary.start()

    def missing():
        return cluster_fork.missing_at(leader, SPACE, forked)
    try:
        wait_until(lambda: not missing(), DEADLINE_S,
                   what="every forked write re-applied at the new primary")
    except AssertionError as ex:
        raise AssertionError("%s: %d of %d missing\nold primary's log:\n%s" % (
            ex, len(missing()), len(forked), primary.log()[-6000:])) from None
    wait_until(lambda: not os.path.exists(kept), DEADLINE_S,
               what="the kept entries deleted once re-applied")
    # the correction, the invalidation and the forget by filter were re-applied too
    with leader.client(timeout=5.0) as c:
        versions = c.history(SPACE, before[1])
        assert [v["id"] for v in versions][-1] == corrected, versions
        assert versions[-1]["content"] == "corrected in the fork", versions
        assert c.get(SPACE, before[2]).get("valid_to"), c.get(SPACE, before[2])
        try:
            c.get(SPACE, before[3])
            raise AssertionError("the memory forgotten by filter in the fork is back")
        except MnemoError as ex:
            assert ex.status == 404, ex
    cluster_fork.writes_resume(leader, write, 321, 1)
    wait_until(caught_up, DEADLINE_S, what="later writes shipped to the old primary")
    for s in nodes:
        assert s.stop() == 0
    alone = [server_factory(data_dir=s.data_dir) for s in (leader, primary)]
    a, b = content(alone[0]), content(alone[1])
    assert a[0] == b[0] and a[1] == b[1]
    assert set(forked) <= set(b[0])




def test_a_replica_owed_more_snapshots_than_export_slots_gets_every_one(server_factory):
    """A primary serves CSNAP_EXPORTS_MAX (4) snapshot exports at once. A replica returns
    owing nine spaces a snapshot each, led by the two other nodes (one of them leads five
    or more): every install tells its primary it is done, whose export slot is then free at
    once, so no primary answers "busy" (an export used to keep its slot a minute after its
    install, and the fifth space waited that long). The primaries restart before the
    replica returns, so no entry it lacks is left in their memory (CREP_CACHE) and every
    space needs its snapshot. Every copy ends at its primary's lsn."""
    first = node(server_factory, [])
    nodes = [first] + [node(server_factory, ["127.0.0.1:%d" % swim_endpoint(first)[1]])
                       for _ in range(2)]
    ids = [swim_endpoint(s)[0] for s in nodes]
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="three alive members in every view")
    names = ["many-%d" % i for i in range(9)]
    with first.client() as c:
        for name in names:
            c.create_space(name, dim=4)
    for name in names:
        wait_until(lambda n=name: all((last_lsn(s, n) or 0) >= 1 for s in nodes), DEADLINE_S,
                   what="every node holding %s" % name)
    replica, others = nodes[2], nodes[:2]
    stopped_at = {n: last_lsn(replica, n) for n in names}
    assert replica.stop() == 0  # (a graceful leave: the spaces it led are handed over)

    def write_to(args):
        name, i = args

        def once():
            try:
                with others[i % 2].client(timeout=10.0) as c:
                    return c.remember(name, "fact %d of %s" % (i, name),
                                      embedding=[1.0, float(i % 7), 0.5, 1.0])
            except (MnemoError, OSError):
                return None
        wait_until(once, DEADLINE_S, what="a write to %s" % name)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write_to, [(n, i) for i in range(2 * RETAIN) for n in names]))

    def trimmed(name):
        with others[0].client(timeout=5.0) as c:  # (the stats of the space's primary)
            return c.stats(name)["wal_first_lsn"] > stopped_at[name] + 1
    for name in names:
        wait_until(lambda n=name: trimmed(n), DEADLINE_S,
                   what="the WAL of %s trimmed past the replica's copy" % name)

    # the two others restart (new SWIM ports: each start seeds from the one up), then the
    # replica returns
    for s in others:
        assert s.stop() == 0
    others[0].extra_env["MNEMO_CLUSTER_SEEDS"] = ""
    others[0].start()
    others[1].extra_env["MNEMO_CLUSTER_SEEDS"] = "127.0.0.1:%d" % swim_endpoint(others[0])[1]
    others[1].start()
    replica.extra_env["MNEMO_CLUSTER_SEEDS"] = "127.0.0.1:%d" % swim_endpoint(others[0])[1]
    replica.start()

    def caught_up():  # (placement may hand the replica its primaries back meanwhile)
        return all(len({last_lsn(s, n) for s in nodes} - {None}) == 1 and
                   (last_lsn(replica, n) or 0) > stopped_at[n] + 2 * RETAIN for n in names)
    try:
        wait_until(caught_up, DEADLINE_S, what="every copy on the replica at its primary's lsn")
    except AssertionError as ex:
        raise AssertionError("%s\nreplica log:\n%s" % (ex, replica.log()[-6000:])) from None
    log = replica.log()
    assert all("snap: %s installed from" % n in log for n in names), log[-6000:]
    assert "answers busy" not in log, log[-6000:]
    # one of the two served five or more
    wait_until(lambda: sum(metric(s, "mnemo_repl_snapshots_total", "sent") for s in others) >= 9,
               DEADLINE_S, what="nine exports counted")
    assert max(metric(s, "mnemo_repl_snapshots_total", "sent") for s in others) >= 5
