"""Replication with real processes (docs/replication.md, "Replication in the server").

Three `mnemo serve` on 127.0.0.1 with [cluster] enabled, factor 3, each with its peer bus
on a port the kernel picks (announced in the log and in SWIM metadata). A space is created
on the node placement names its primary; the other nodes learn its name from the space
catalog and their copies come by WAL shipping (the primary's lsn 1 creates the space
there). Then:

- the primary takes writes and the replicas' WAL positions catch up (their own
  GET /v1/spaces/{s} last_lsn, and the primary's GET /v1/cluster/spaces holders);
- kill -9 of the primary under writes: a new primary is elected at a higher epoch, writes
  succeed again there, and every write acknowledged before the kill is on it;
- the old primary restarts and becomes a replica of the new epoch.

A server with [cluster] enabled = false binds no peer port. Every wait polls with a
deadline; nothing here asserts on time.
"""

import os
import re
import signal
import threading

from mnemo_client import MnemoError
from cluster_hop import create_here
from grpc_util import Grpc, pb
from conftest import wait_until
from test_cluster_swim import cluster_env, swim_endpoint, view_is

DEADLINE_S = 45.0
SPACE = "repl-a"
PEER_RE = re.compile(r"peer: node (\S+) listening on (\S+):(\d+)")


def start_node(server_factory, seeds, extra=None):
    env = cluster_env(seeds)
    env["MNEMO_CLUSTER_PEER_PORT"] = "0"
    env["MNEMO_CLUSTER_REPLICATION_FACTOR"] = "3"
    env["MNEMO_CLUSTER_WRITE_CONSISTENCY"] = "quorum"
    env.update(extra or {})
    return server_factory(env=env)


def start_three(server_factory, extra=None):
    """Three nodes, each seeing all three alive: (servers, their node ids, id -> server)."""
    first = start_node(server_factory, [], extra)
    seeds = ["127.0.0.1:%d" % swim_endpoint(first)[1]]
    nodes = [first] + [start_node(server_factory, seeds, extra) for _ in range(2)]
    ids = [swim_endpoint(s)[0] for s in nodes]
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="three alive members in every view")
    return nodes, ids, dict(zip(ids, nodes))


def peer_endpoint(server):
    """(node id, port) from the server's "peer: node ID listening on ADDR" line."""
    def find():
        m = PEER_RE.search(server.log())
        return (m.group(1), int(m.group(3))) if m else None
    return wait_until(find, DEADLINE_S, what="the peer listening line")


def spaces_doc(server, names=None):
    with server.client(timeout=5.0) as c:
        return c.request("GET", "/v1/cluster/spaces", query={"names": names} if names else None)


def entry(server, name=SPACE):
    """The space's entry in server's placement table, or None."""
    try:
        doc = spaces_doc(server)
    except (MnemoError, OSError):
        return None
    return next((s for s in doc["spaces"] if s["name"] == name), None)


def last_lsn(server, name=SPACE):
    """The server's own copy's last WAL position, as its own placement table reports it
    from its engine (a local answer, never forwarded); None: no copy, or not answering."""
    try:
        doc = spaces_doc(server)
    except (MnemoError, OSError):
        return None
    e = next((s for s in doc["spaces"] if s["name"] == name), None)
    h = e and next((h for h in e["holders"] if h["node"] == doc["self"]), None)
    return h and h["applied_lsn"]


def remember(server, i):
    with server.client(timeout=10.0) as c:
        return c.remember(SPACE, "fact %d" % i, embedding=[1.0, float(i % 7), 0.5, 0.25],
                          tags=["n%d" % i])


def has_memory(server, mid):
    """Whether the space's primary, reached through server, holds memory mid. A 503 while
    the role moves (a handover between survivors, or a lease not yet won) is asked again
    until the deadline, as a client would; any other error is raised."""
    def ask():
        try:
            with server.client(timeout=5.0) as c:
                c.get(SPACE, mid)
            return "yes"
        except MnemoError as e:
            if e.status == 404:
                return "no"
            if e.status == 503:
                return None
            raise
    return wait_until(ask, DEADLINE_S, what="an answer for memory %s" % mid) == "yes"


class Writer(threading.Thread):
    """Writes to one node until stopped; keeps the ids of acknowledged writes."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.acked, self.failed = server, [], 0
        self.halt = threading.Event()

    def run(self):
        i = 100000
        while not self.halt.is_set():
            i += 1
            try:
                self.acked.append(remember(self.server, i))
            except (MnemoError, OSError):
                self.failed += 1
                if not self.server.alive():
                    return


def test_cluster_disabled_binds_no_peer_port(server_factory):
    s = server_factory()
    assert "peer: node" not in s.log()
    assert "repl:" not in s.log()


def test_three_nodes_replicate_fail_over_and_rejoin(server_factory):
    nodes, ids, by_id = start_three(server_factory)

    # every node announces its peer bus in SWIM: each view lists every member's port
    ports = {peer_endpoint(s)[0]: peer_endpoint(s)[1] for s in nodes}
    assert sorted(ports) == sorted(ids)

    def peers_known(s):
        members = {m["id"]: m for m in spaces_doc(s)["members"]}
        return all(members.get(i, {}).get("peer") == "127.0.0.1:%d" % ports[i] for i in ids)
    for s in nodes:
        wait_until(lambda s=s: peers_known(s), DEADLINE_S, what="every peer address announced")

    # the space is created where placement will lead it
    preview = spaces_doc(nodes[0], SPACE)["spaces"][0]
    primary_id = preview["primary"]
    primary = by_id[primary_id]
    with primary.client() as c:
        c.create_space(SPACE, dim=4)
    replicas = [s for s in nodes if s is not primary]

    def everyone_places_it():
        es = [entry(s) for s in nodes]
        return all(e and e["primary"] == primary_id and len(e["holders"]) == 3 for e in es)
    wait_until(everyone_places_it, DEADLINE_S,
               what="every node placing the space on three holders, led by the creator "
                    "(the replicas learn its name from the space catalog)")

    # writes at the primary reach the replicas' WALs
    acked = [remember(primary, i) for i in range(40)]
    want = last_lsn(primary)
    assert want is not None and want >= 41  # the creation and 40 writes (and their links)
    for s in replicas:
        wait_until(lambda s=s: (last_lsn(s) or 0) >= want, DEADLINE_S,
                   what="a replica's copy at the primary's lsn %d" % want)

    def primary_sees_caught_up():
        # background links may still add entries: every copy at the primary's lsn now
        e = entry(primary)
        hs = e and {h["node"]: h for h in e["holders"]}
        now = hs and hs[primary_id]["applied_lsn"]
        return now and all(hs[i]["applied_lsn"] == now and hs[i]["lag_entries"] == 0
                           for i in ids) and all(last_lsn(s) == now for s in replicas)
    wait_until(primary_sees_caught_up, DEADLINE_S,
               what="the primary's table showing every holder at its lsn")
    epoch0 = entry(primary)["epoch"]

    # kill -9 the primary under writes
    w = Writer(primary)
    w.start()
    wait_until(lambda: len(w.acked) >= 20, DEADLINE_S, what="writes under way")
    primary.kill()
    w.join(timeout=DEADLINE_S)
    acked += w.acked

    def new_primary():
        es = [entry(s) for s in replicas]
        if not all(es) or es[0]["primary"] != es[1]["primary"] or es[0]["epoch"] != es[1]["epoch"]:
            return None
        return es[0] if es[0]["primary"] not in (None, primary_id) else None
    e = wait_until(new_primary, DEADLINE_S, what="a new primary agreed by the survivors")
    assert e["epoch"] > epoch0
    leader = by_id[e["primary"]]

    def write_once():
        try:
            return remember(leader, 1)
        except (MnemoError, OSError):
            return None
    wait_until(write_once, DEADLINE_S, what="a write accepted by the new primary")
    # no acknowledged write is missing on the new primary
    missing = [m for m in acked if not has_memory(leader, m)]
    assert missing == [], "%d of %d acknowledged writes missing" % (len(missing), len(acked))

    # the old primary comes back: it learns the new epoch and follows
    primary.extra_env["MNEMO_CLUSTER_SEEDS"] = ",".join(
        "127.0.0.1:%d" % swim_endpoint(s)[1] for s in replicas)
    primary.start()

    def rejoined():
        # the role may move again meanwhile (a handover to the space's desired primary, the
        # old one among them once it caught up, at a later epoch): every node agrees on the
        # primary and epoch, and the returning copy went from catching up to a voting
        # replica on every node (the primary's holder record says so)
        es = [entry(s) for s in nodes]
        if not all(es) or len({(x["primary"], x["epoch"]) for x in es}) != 1:
            return False
        return es[0]["epoch"] >= e["epoch"] and all(
            len(x["holders"]) == 3 and all(h["role"] in ("primary", "replica") and not h["down"]
                                           for h in x["holders"]) for x in es)
    try:
        wait_until(rejoined, DEADLINE_S, what="the old primary back as a voter, agreed by all")
    except AssertionError as ex:
        raise AssertionError("%s\nits entry: %r\nleader's entry: %r\nits log:\n%s" % (
            ex, entry(primary), entry(leader), primary.log()[-6000:])) from None
    # and its engine copy takes no client write of its own any more
    with primary.client(timeout=10.0) as c:
        r = c.raw("POST", "/v1/spaces/%s/memories" % SPACE,
                  body={"content": "late", "embedding": [1.0, 0.0, 0.0, 0.0]})
    assert r.status in (201, 503), r.status
    if r.status == 503:
        assert r.json["error"]["code"] == "unavailable"


def test_spaces_created_at_once_through_every_node_all_become_writable(server_factory):
    """Creations racing through different nodes, some forwarded to the desired primary and
    some made where they land (so the creator is not the node placement would pick): every
    node places every space led by its creator at epoch 1 or by the primary's holder record,
    all three agree on primary and epoch with three voting holders, and every space takes a
    quorum write through any node."""
    nodes, ids, _ = start_three(server_factory)
    for s in nodes:
        wait_until(lambda s=s: spaces_doc(s)["write_consistency_enforced"] and all(
            m["peer"] for m in spaces_doc(s)["members"]) and len(spaces_doc(s)["members"]) == 3,
            DEADLINE_S, what="every peer address announced")
    names = ["burst-%d" % i for i in range(12)]
    errors = []

    def create(k):
        for j, name in enumerate(names[k::3]):
            try:
                if j % 2:  # made where it lands: its creator is this node
                    create_here(nodes[k], name)
                else:      # routed to the desired primary of this node's table
                    with nodes[k].client(timeout=10.0) as c:
                        c.create_space(name, dim=4)
            except Exception as ex:  # noqa: BLE001 (reported below)
                errors.append((name, repr(ex)))
    threads = [threading.Thread(target=create, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DEADLINE_S)
    assert errors == []

    def agreed():
        docs = [spaces_doc(s) for s in nodes]
        for name in names:
            es = [next((x for x in d["spaces"] if x["name"] == name), None) for d in docs]
            if not all(es) or len({(x["primary"], x["epoch"]) for x in es}) != 1:
                return False
            if not all(len(x["holders"]) == 3 and not any(h["role"] == "catching_up"
                                                          for h in x["holders"]) for x in es):
                return False
        return True
    wait_until(agreed, DEADLINE_S, what="every node agreeing on each space's primary and epoch")

    def writable(name, via):
        try:
            with via.client(timeout=10.0) as c:
                return c.remember(name, "first", embedding=[1.0, 0.0, 0.0, 0.0],
                                  consistency="quorum")
        except (MnemoError, OSError):
            return None
    for i, name in enumerate(names):
        wait_until(lambda: writable(name, nodes[i % 3]), DEADLINE_S,
                   what="a quorum write to %s through node %d" % (name, i % 3))


def three_with_the_space(server_factory, extra=None):
    """Three nodes and SPACE created on the node placement leads it from, placed on all
    three by every node: (nodes, their ids, id -> node, the primary, the two others)."""
    nodes, ids, by_id = start_three(server_factory, extra)
    primary = by_id[spaces_doc(nodes[0], SPACE)["spaces"][0]["primary"]]
    with primary.client() as c:
        c.create_space(SPACE, dim=4)
    primary_id = ids[nodes.index(primary)]
    wait_until(lambda: all((e := entry(s)) and e["primary"] == primary_id
                           and len(e["holders"]) == 3 for s in nodes),
               DEADLINE_S, what="every node placing the space, led by its creator")
    return nodes, ids, by_id, primary, [s for s in nodes if s is not primary]


def test_a_paused_primary_resumes_as_a_replica_and_serves_nothing_stale(server_factory):
    """The primary is paused (SIGSTOP), not killed: the others elect a new primary and take
    a `quorum` write. Reads and a write are sent to the old primary while it is still
    paused, so they are the first things it handles when it resumes, before it heard of the
    new epoch: a read answered there is never the old epoch's (the new write is in every
    read that succeeds, else the read fails with a retryable 503), and a write it
    acknowledges is in the space afterwards. It ends a replica of the new epoch, agreed by
    all, without a restart."""
    nodes, ids, by_id, primary, others = three_with_the_space(server_factory)
    primary_id = ids[nodes.index(primary)]
    before = [remember(primary, i) for i in range(5)]
    epoch0 = entry(primary)["epoch"]

    os.kill(primary.proc.pid, signal.SIGSTOP)
    late = []
    try:
        def new_primary():
            es = [entry(s) for s in others]
            if not all(es) or len({(x["primary"], x["epoch"]) for x in es}) != 1:
                return None
            return es[0] if es[0]["primary"] not in (None, primary_id) else None
        e = wait_until(new_primary, DEADLINE_S, what="a new primary agreed by the two others")
        assert e["epoch"] > epoch0
        leader = by_id[e["primary"]]

        def write_there():
            try:
                with leader.client(timeout=10.0) as c:
                    return c.request("POST", "/v1/spaces/%s/memories" % SPACE, body={
                        "content": "after the failover", "consistency": "quorum",
                        "embedding": [0.0, 1.0, 0.0, 0.0], "idempotency_key": "failover-1"})
            except (MnemoError, OSError):
                return None
        fresh = wait_until(write_there, DEADLINE_S, what="a quorum write at the new primary")
        # queued at the paused node: its first work when it resumes
        path = "/v1/spaces/%s/memories" % SPACE
        for k in range(3):
            late.append(_send(primary, "get", "GET", "%s/%s" % (path, fresh["id"]),
                              query={"read": "primary"}))
        late.append(_send(primary, "post", "POST", path,
                          body={"content": "sent to the paused primary", "consistency": "quorum",
                                "embedding": [0.0, 0.0, 1.0, 0.0]}))
        # each request's connection is accepted by the kernel's backlog meanwhile
        wait_until(lambda: _queued_connections(primary) >= 4, DEADLINE_S,
                   what="the requests queued at the paused node")
    finally:
        os.kill(primary.proc.pid, signal.SIGCONT)
    for t in late:
        t.join(timeout=DEADLINE_S)
        assert not t.is_alive(), "a request to the resumed node got no answer"
    answers = [(t.kind, t.answer) for t in late]
    assert all(r is not None for _, r in answers), [t.error for t in late]
    for kind, r in answers:
        if kind == "get":
            # never the old epoch's copy: that one lacks the write
            assert r.status in (200, 503), (r.status, r.body)
            if r.status == 503:
                assert r.json["error"]["code"] == "unavailable", r.body
    posted = [r for kind, r in answers if kind == "post"][0]
    assert posted.status in (201, 503), (posted.status, posted.body)

    def rejoined():
        es = [entry(s) for s in nodes]
        if not all(es) or len({(x["primary"], x["epoch"]) for x in es}) != 1:
            return False
        return es[0]["epoch"] > epoch0 and all(
            len(x["holders"]) == 3 and all(h["role"] in ("primary", "replica") and not h["down"]
                                           for h in x["holders"]) for x in es)
    wait_until(rejoined, DEADLINE_S, what="the resumed node a voter of the new epoch, agreed")
    # nothing acknowledged is missing, wherever it is read
    want = before + [fresh["id"]] + ([posted.json["id"]] if posted.status == 201 else [])
    for s in nodes:
        wait_until(lambda s=s: all(has_memory(s, m) for m in want), DEADLINE_S,
                   what="every acknowledged write read through every node")


def test_nearest_reads_at_a_cut_off_primary_say_stale(server_factory):
    """Both replicas paused: the primary's lease lapses and no one can elect another. A
    `read=primary` read there is refused (503, retryable); a `read=nearest` recall is still
    served from its copy, and once the lease lapsed more than 1 s ago every hit says
    `stale_replica` and the answer its `replica_lag_ms` (a newer primary could have taken
    writes since the lapse, none before). Before the pause, and after the replicas resume,
    the same recall says nothing of the kind."""
    nodes, ids, by_id, primary, others = three_with_the_space(server_factory)
    primary_id = ids[nodes.index(primary)]
    for i in range(3):
        remember(primary, i)

    def nearest():
        with primary.client(timeout=10.0) as c:
            r = c.raw("POST", "/v1/spaces/%s/recall" % SPACE,
                      body={"embedding": [1.0, 0.0, 0.5, 0.25], "k": 3, "read": "nearest"})
        assert r.status == 200, (r.status, r.body)
        assert r.headers.get("x-mnemo-served-by") == primary_id, r.headers
        stale = [("stale_replica" in h["confidence"]["reasons"]) for h in r.json["results"]]
        assert stale and len(set(stale)) == 1, r.json  # every hit, or none
        return stale[0], r.json.get("replica_lag_ms"), r.headers.get("x-mnemo-replica-lag-ms")

    assert nearest() == (False, None, None)
    with Grpc("127.0.0.1:%d" % primary.grpc_port) as g:
        a = g.Recall(pb().RecallRequest(space=SPACE, embedding=[1.0, 0.0, 0.5, 0.25], k=3,
                                        read="nearest"))
    assert not a.HasField("replica_lag_ms") and a.results, a
    assert not any("stale_replica" in h.confidence.reasons for h in a.results), a
    for s in others:
        os.kill(s.proc.pid, signal.SIGSTOP)
    try:
        def said_stale():
            st, lag, header = nearest()
            return st and (lag, header)
        lag, header = wait_until(said_stale, DEADLINE_S,
                                 what="a recall at the cut-off primary saying stale_replica")
        assert lag > 1000 and int(header) == lag, (lag, header)
        # the same over gRPC: the lag in the answer, stale_replica in every hit's reasons
        with Grpc("127.0.0.1:%d" % primary.grpc_port) as g:
            a = g.Recall(pb().RecallRequest(space=SPACE, embedding=[1.0, 0.0, 0.5, 0.25], k=3,
                                            read="nearest"))
        assert a.replica_lag_ms > 1000 and a.results, a
        assert all("stale_replica" in h.confidence.reasons for h in a.results), a
        with primary.client(timeout=10.0) as c:
            r = c.raw("POST", "/v1/spaces/%s/recall" % SPACE,
                      body={"embedding": [1.0, 0.0, 0.5, 0.25], "k": 3, "read": "primary"})
        assert r.status == 503 and r.json["error"]["code"] == "unavailable", (r.status, r.body)
        # a recall over many spaces makes the same checks for the spaces it serves itself:
        # read=primary finds the space unavailable, read=nearest marks every hit stale
        with primary.client(timeout=10.0) as c:
            r = c.raw("POST", "/v1/recall", body={"spaces": [SPACE], "read": "primary",
                                                  "embedding": [1.0, 0.0, 0.5, 0.25], "k": 3})
            assert r.status == 200, r.body
            assert r.json["missing"] == [{"space": SPACE, "reason": "unavailable"}], r.json
            r = c.raw("POST", "/v1/recall", body={"spaces": [SPACE], "read": "nearest",
                                                  "embedding": [1.0, 0.0, 0.5, 0.25], "k": 3})
        assert r.status == 200 and r.json["missing"] == [] and r.json["results"], r.json
        assert all("stale_replica" in h["confidence"]["reasons"] for h in r.json["results"])
    finally:
        for s in others:
            os.kill(s.proc.pid, signal.SIGCONT)
    # the replicas back: the lease (or a new primary's) holds again, nothing said stale
    def fresh_again():
        try:
            return nearest() == (False, None, None) or None
        except AssertionError:  # served elsewhere or refused while roles settle: asked again
            return None
    wait_until(fresh_again, DEADLINE_S, what="the recall no longer saying stale_replica")


def test_a_write_short_of_its_level_says_how_many_copies_it_reached(server_factory):
    """One replica paused: the primary keeps its lease (it and the other replica are a
    majority), so a `quorum` write is acknowledged, and an `all` write waits
    `cluster.write_timeout_ms` and answers 503 saying it reached 2 of the 3 copies. It is
    stored on the primary and the live replica; once the paused one resumes it has it too."""
    nodes, ids, by_id, primary, others = three_with_the_space(
        server_factory, {"MNEMO_CLUSTER_WRITE_TIMEOUT_MS": "500"})
    remember(primary, 0)
    os.kill(others[0].proc.pid, signal.SIGSTOP)
    try:
        with primary.client(timeout=10.0) as c:
            r = c.raw("POST", "/v1/spaces/%s/memories" % SPACE,
                      body={"content": "quorum while one is paused",
                            "embedding": [1.0, 0.0, 0.5, 0.25], "consistency": "quorum"})
            assert r.status == 201, (r.status, r.body)
            r = c.raw("POST", "/v1/spaces/%s/memories" % SPACE,
                      body={"content": "all while one is paused", "idempotency_key": "all-1",
                            "embedding": [1.0, 0.0, 0.5, 0.25], "consistency": "all"})
        assert r.status == 503 and r.json["error"]["code"] == "unavailable", (r.status, r.body)
        msg = r.json["error"]["message"]
        assert "reached 2 of 3 copies within 500 ms (all wanted)" in msg, msg
    finally:
        os.kill(others[0].proc.pid, signal.SIGCONT)

    def stored_everywhere():
        for s in nodes:
            with s.client(timeout=5.0) as c:
                got = c.raw("GET", "/v1/spaces/%s/memories" % SPACE, query={"read": "nearest"})
            if got.status != 200 or "all while one is paused" not in [
                    m["content"] for m in got.json["memories"]]:
                return False
        return True
    # the 503 said "not enough copies yet", not "not written": it reaches every copy
    wait_until(stored_everywhere, DEADLINE_S, what="the write short of its level on every copy")
    # a retry with its idempotency key is the same write, now at its level
    with primary.client(timeout=10.0) as c:
        again = c.raw("POST", "/v1/spaces/%s/memories" % SPACE,
                      body={"content": "all while one is paused", "idempotency_key": "all-1",
                            "embedding": [1.0, 0.0, 0.5, 0.25], "consistency": "all"})
    assert again.status in (200, 201), (again.status, again.body)
    with primary.client(timeout=5.0) as c:
        got = c.raw("GET", "/v1/spaces/%s/memories" % SPACE)
    assert [m["content"] for m in got.json["memories"]].count("all while one is paused") == 1


def test_a_primary_stopped_with_no_leave_handover_leaves_at_once(server_factory):
    """cluster.leave_handover_ms = 0: SIGTERM at the primary hands nothing over; it leaves,
    and the others elect a primary (a failover) that takes a quorum write."""
    nodes, ids, by_id, primary, others = three_with_the_space(
        server_factory, {"MNEMO_CLUSTER_LEAVE_HANDOVER_MS": "0"})
    remember(primary, 1)
    assert primary.stop() == 0
    log = primary.log()
    assert "cluster: leaving" in log and "handing over the" not in log, log[-3000:]

    def write_once():
        try:
            return remember(others[0], 2)
        except (MnemoError, OSError):
            return None
    wait_until(write_once, DEADLINE_S, what="a write after the failover")


class _send(threading.Thread):
    """One request to server on a thread of its own (started at once); its answer (a raw
    response) or its error once joined."""

    def __init__(self, server, kind, method, path, body=None, query=None):
        super().__init__(daemon=True)
        self.server, self.kind, self.args = server, kind, (method, path, body, query)
        self.answer, self.error = None, None
        self.start()

    def run(self):
        method, path, body, query = self.args
        try:
            with self.server.client(timeout=DEADLINE_S) as c:
                self.answer = c.raw(method, path, body=body, query=query)
        except (MnemoError, OSError) as ex:
            self.error = ex


def _queued_connections(server):
    """Established TCP connections to server's HTTP port that the paused process has not
    accepted yet are still counted by the kernel: /proc/net/tcp lists them by local port."""
    port = server.port
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            local, state = cols[1], cols[3]
            if int(local.split(":")[1], 16) == port and state == "01":
                n += 1
    return n
