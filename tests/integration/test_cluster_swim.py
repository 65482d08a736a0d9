"""Cluster membership with real processes: five `mnemo serve` on 127.0.0.1 with
[cluster] enabled form a SWIM cluster (every node sees five alive); a node
killed with SIGKILL is marked dead by every other node; a gracefully stopped
node shows `left`; a restarted node (same data dir, so the same node id)
rejoins with a higher incarnation. Datagrams that fail authentication or
verification are dropped and counted, in the route's "stats" and in
/metrics. Every wait polls GET /v1/cluster/members (or /metrics) with a
deadline.
"""

import re
import signal
import socket

import pytest

from conftest import wait_until

SWIM_RE = re.compile(r"swim: node (\S+) listening on (\S+):(\d+)")
DEADLINE_S = 30.0
KEY = "integration-test-cluster-key"


def swim_endpoint(server):
    """(node id, port) from the server's "swim: node ID listening on ADDR" line."""
    def find():
        for line in server.log().splitlines():
            m = SWIM_RE.search(line)
            if m:
                return m.group(1), int(m.group(3))
        return None
    return wait_until(find, DEADLINE_S, what="the swim listening line")


def cluster_env(seeds):
    return {
        "MNEMO_CLUSTER_ENABLED": "true",
        "MNEMO_CLUSTER_BIND": "127.0.0.1",
        "MNEMO_CLUSTER_SWIM_PORT": "0",
        "MNEMO_CLUSTER_PEER_PORT": "0",
        "MNEMO_CLUSTER_PROFILE": "fast",
        "MNEMO_CLUSTER_KEY": KEY,
        "MNEMO_CLUSTER_SEEDS": ",".join(seeds),
    }


def start_cluster_node(server_factory, seeds):
    """A started server with [cluster] enabled. A build that cannot start the
    cluster fails the test: a missing feature is a failure, not a skip."""
    server = server_factory(env=cluster_env(seeds), start=False)
    try:
        server.start()
    except AssertionError:
        if "cluster mode is not available" in server.log():
            pytest.fail("cluster mode is not available in this build: the server does not start "
                        "SWIM (api/api_server.c does not hook up [cluster]); log:\n" + server.log())
        raise
    return server


def members_doc(server):
    with server.client(timeout=5.0) as c:
        return c.request("GET", "/v1/cluster/members")


def members(server):
    return {m["id"]: m for m in members_doc(server)["members"]}


def view_is(server, expect):
    """True if server's view has every id of expect in the expected state."""
    try:
        view = members(server)
    except Exception:  # noqa: BLE001 - a busy or restarting server: poll again
        return False
    return all(i in view and view[i]["state"] == st for i, st in expect.items())


def test_five_processes_form_detect_crash_leave_and_rejoin(server_factory):
    first = start_cluster_node(server_factory, [])
    seed_id, seed_port = swim_endpoint(first)
    seeds = ["127.0.0.1:%d" % seed_port]
    nodes = [first] + [start_cluster_node(server_factory, seeds) for _ in range(4)]
    ids = [seed_id] + [swim_endpoint(s)[0] for s in nodes[1:]]
    assert len(set(ids)) == 5

    # formation: every node sees all five alive
    everyone_alive = {i: "alive" for i in ids}
    for s in nodes:
        wait_until(lambda s=s: view_is(s, everyone_alive), DEADLINE_S,
                   what="five alive members in every view")
    view = members(nodes[0])
    assert view[ids[0]]["self"] is True
    # the cluster's own traffic (one key) is never dropped
    for s in nodes:
        st = members_doc(s)["stats"]
        assert st["packets_received"] > 0 and st["packets_sent"] > 0
        assert st["dropped_auth"] == 0 and st["dropped_verify"] == 0, st
    for m in view.values():
        assert re.match(r"^127\.0\.0\.1:\d+$", m["address"])
        assert m["incarnation"] >= 0
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", m["last_change"])

    # SIGKILL: every other node marks it dead
    crashed = 3
    nodes[crashed].kill()
    for i, s in enumerate(nodes):
        if i != crashed:
            wait_until(lambda s=s: view_is(s, {ids[crashed]: "dead"}), DEADLINE_S,
                       what="node %d dead in every view" % crashed)

    # graceful stop: the others show it as left
    leaver = 4
    assert nodes[leaver].stop(signal.SIGTERM) == 0, nodes[leaver].log()
    for i, s in enumerate(nodes):
        if i not in (crashed, leaver):
            wait_until(lambda s=s: view_is(s, {ids[leaver]: "left"}), DEADLINE_S,
                       what="node %d left in every view" % leaver)

    # restart of the crashed node: same id, higher incarnation, alive everywhere
    before = members(nodes[0])[ids[crashed]]["incarnation"]
    nodes[crashed].start()
    assert swim_endpoint(nodes[crashed])[0] == ids[crashed]
    for i, s in enumerate(nodes):
        if i != leaver:
            wait_until(lambda s=s: view_is(s, {ids[j]: "alive" for j in range(5) if j != leaver}),
                       DEADLINE_S, what="the restarted node alive in every view")
    assert members(nodes[0])[ids[crashed]]["incarnation"] > before


def test_a_node_that_left_rejoins_at_once_even_with_its_clock_back(server_factory):
    """A node that left gracefully is `left` in the others' views for swim.dead_reclaim (an
    hour). Started again, it rejoins at once even when its new life's first incarnation
    (wall-clock seconds) is not above the one it left with: started right after its start,
    and started with its clock an hour behind (the TEST ONLY offset). The others' `left`
    entry reaches it when it syncs with its seed, and it refutes it with the incarnation
    above (docs/swim.md), as a rolling restart needs."""
    first = start_cluster_node(server_factory, [])
    seeds = ["127.0.0.1:%d" % swim_endpoint(first)[1]]
    nodes = [first] + [start_cluster_node(server_factory, seeds) for _ in range(2)]
    ids = [swim_endpoint(s)[0] for s in nodes]
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="three alive members in every view")
    for offset in (None, "-3600000"):
        node = nodes[2]
        before = members(nodes[0])[ids[2]]["incarnation"]
        assert node.stop(signal.SIGTERM) == 0, node.log()
        wait_until(lambda: view_is(nodes[0], {ids[2]: "left"}), DEADLINE_S,
                   what="node 2 left in node 0's view")
        left_at = members(nodes[0])[ids[2]]["incarnation"]
        assert left_at >= before
        if offset:
            node.extra_env["MNEMO_TEST_CLOCK_OFFSET_MS"] = offset
        node.start()
        for s in nodes:
            wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                       what="node 2 alive again in every view (clock offset %s)" % offset)
        assert members(nodes[0])[ids[2]]["incarnation"] > left_at


def prom_value(text, name, **labels):
    """The value of one sample line of a Prometheus exposition, or None."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and (m.group(2) or "") == want:
            return float(m.group(3))
    return None


def test_bad_datagrams_are_dropped_and_counted(server_factory):
    node = start_cluster_node(server_factory, [])
    _, port = swim_endpoint(node)
    before = members_doc(node)["stats"]
    assert before["dropped_auth"] == 0 and before["dropped_verify"] == 0
    with node.client(timeout=5.0) as c:
        text = c.metrics()
    assert prom_value(text, "mnemo_swim_dropped_packets_total", reason="auth") == 0
    assert prom_value(text, "mnemo_swim_dropped_packets_total", reason="verify") == 0

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        # not a SWIM datagram at all: fails the framing check
        u.sendto(b"garbage, not a swim datagram", ("127.0.0.1", port))
        # a well-framed header without the HMAC tag this keyed node wants
        u.sendto(b"MS\x01\x00" + b"\x00" * 28, ("127.0.0.1", port))

    def counted():
        st = members_doc(node)["stats"]
        return st if st["dropped_verify"] >= 1 and st["dropped_auth"] >= 1 else None
    st = wait_until(counted, DEADLINE_S, what="both drops counted in the stats")
    assert st["dropped_verify"] == 1 and st["dropped_auth"] == 1, st

    def exported():
        with node.client(timeout=5.0) as c:
            text = c.metrics()
        auth = prom_value(text, "mnemo_swim_dropped_packets_total", reason="auth")
        verify = prom_value(text, "mnemo_swim_dropped_packets_total", reason="verify")
        return text if auth == 1 and verify == 1 else None
    text = wait_until(exported, DEADLINE_S, what="both drops in /metrics")
    assert "# TYPE mnemo_swim_dropped_packets_total counter" in text
    assert prom_value(text, "mnemo_swim_packets_total", direction="received") >= 2
