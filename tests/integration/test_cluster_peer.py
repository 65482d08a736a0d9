"""The peer bus between real processes (docs/replication.md, "The peer bus").

- TLS: three `mnemo serve` with cluster.tls_cert / tls_key / tls_ca (certificates made
  here with the openssl CLI, the recipe of runbooks/cluster.md) replicate a space and
  acknowledge `quorum` writes; a fourth node without TLS is refused by them and counted
  (mnemo_peer_closed_connections_total{reason="tls"}), and nothing crashes.
- One CA for both ports: three nodes serving their API over HTTPS with their own
  certificates (each file holds only its own), signed by the cluster CA of cluster.tls_ca:
  the hops between nodes trust each other through that CA, so a `quorum` write through
  any node reaches the primary.
- Rolling upgrade: one of three nodes announces the next minor version of the bus
  (the test-only MNEMO_TEST_PEER_MINOR, docs/config.md); the cluster still replicates and
  acknowledges `quorum` writes. (A node of another major is refused: test_peer.)

Every wait polls with a deadline; nothing here asserts on time.
"""

import subprocess
import time

import pytest

from mnemo_client import MnemoError
from conftest import wait_until
from test_cluster_https import TlsServer
from test_cluster_repl import SPACE, DEADLINE_S, entry, last_lsn, peer_endpoint, spaces_doc, start_node
from test_cluster_swim import cluster_env, swim_endpoint, view_is

NODE_EXT = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            "subjectAltName=IP:127.0.0.1\n")  # for the test's HTTPS client; nodes check no name


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_certs(d, names):
    """A CA and one certificate per name, in d (runbooks/cluster.md, "TLS on the peer port")."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "30", "-subj", "/CN=mnemo test CA",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    (d / "node.ext").write_text(NODE_EXT)
    for n in names:
        openssl("req", *ec, "-subj", "/CN=%s" % n, "-keyout", n + ".key", "-out", n + ".csr",
                cwd=d)
        openssl("x509", "-req", "-in", n + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "30", "-extfile", "node.ext", "-out", n + ".crt",
                cwd=d)


def tls_env(d, name):
    return {"MNEMO_CLUSTER_TLS_CERT": str(d / (name + ".crt")),
            "MNEMO_CLUSTER_TLS_KEY": str(d / (name + ".key")),
            "MNEMO_CLUSTER_TLS_CA": str(d / "ca.crt")}


def start_three(server_factory, extra):
    """Three cluster nodes; extra[i] is node i's added environment. Waits for one view."""
    first = _start(server_factory, [], extra[0])
    seeds = ["127.0.0.1:%d" % swim_endpoint(first)[1]]
    nodes = [first] + [_start(server_factory, seeds, extra[i]) for i in (1, 2)]
    ids = [swim_endpoint(s)[0] for s in nodes]
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="three alive members in every view")
    return nodes, ids


def _start(server_factory, seeds, extra):
    return start_node(lambda env: server_factory(env=dict(env, **extra)), seeds)


def quorum_writes_replicate(nodes, ids):
    """Creates SPACE at its primary, writes 20 memories with consistency quorum there
    (each acknowledged only once a replica has it), and waits for every copy to hold them."""
    by_id = dict(zip(ids, nodes))
    primary_id = spaces_doc(nodes[0], SPACE)["spaces"][0]["primary"]
    primary = by_id[primary_id]
    with primary.client() as c:
        c.create_space(SPACE, dim=4)
    def everyone_places_it():
        es = [entry(s) for s in nodes]
        return all(e and e["primary"] == primary_id and len(e["holders"]) == 3 for e in es)
    try:
        wait_until(everyone_places_it, DEADLINE_S,
                   what="every node placing the space on three holders")
    except AssertionError as ex:
        raise AssertionError("%s: %r\n%s" % (ex, [entry(s) for s in nodes],
                                              nodes[0].log()[-5000:])) from None

    def write(i):
        try:
            with primary.client(timeout=10.0) as c:
                return c.remember(SPACE, "fact %d" % i, embedding=[1.0, float(i % 7), 0.5, 0.25],
                                  consistency="quorum")
        except (MnemoError, OSError):
            return None  # the replicas' copies may still be opening: retried
    # the first quorum write waits for a replica's copy to open: poll it through
    wait_until(lambda: write(0), DEADLINE_S, what="a first quorum write acknowledged")
    for i in range(1, 20):
        with primary.client(timeout=10.0) as c:
            c.remember(SPACE, "fact %d" % i, embedding=[1.0, float(i % 7), 0.5, 0.25],
                       consistency="quorum")
    want = last_lsn(primary)
    assert want is not None and want >= 21
    for s in nodes:
        if s is not primary:
            wait_until(lambda s=s: (last_lsn(s) or 0) >= want, DEADLINE_S,
                       what="a replica's copy at the primary's lsn %d" % want)
    return primary


def tls_closes(server):
    try:
        with server.client(timeout=5.0) as c:
            text = c.raw("GET", "/metrics", headers={"Accept": "text/plain"}).body.decode()
    except (MnemoError, OSError):
        return 0
    for line in text.splitlines():
        if line.startswith('mnemo_peer_closed_connections_total{reason="tls"} '):
            return float(line.split()[-1])
    return 0


def test_tls_cluster_replicates_and_refuses_a_plaintext_node(server_factory, tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    make_certs(d, ["n0", "n1", "n2"])
    nodes, ids = start_three(server_factory, [tls_env(d, "n%d" % i) for i in range(3)])
    for s in nodes:
        peer_endpoint(s)
        assert "mutual TLS" in s.log()
    quorum_writes_replicate(nodes, ids)

    # a node without TLS joins SWIM (same cluster key) but no TLS node takes its bus
    seeds = ["127.0.0.1:%d" % swim_endpoint(nodes[0])[1]]
    plain = _start(server_factory, seeds, {})
    assert "plain TCP" in plain.log()
    wait_until(lambda: any(tls_closes(s) > 0 for s in nodes), DEADLINE_S,
               what="a TLS node counting the plaintext node's refused handshakes")
    assert "peer: TLS handshake" in "".join(s.log() for s in nodes)
    assert all(s.alive() for s in nodes + [plain])


def test_tls_misconfiguration_stops_the_server(server_factory, tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    make_certs(d, ["n0", "n1"])
    env = tls_env(d, "n0")
    env["MNEMO_CLUSTER_TLS_KEY"] = str(d / "n1.key")  # another certificate's key
    s = server_factory(env=dict(cluster_env([]), **env), start=False)
    try:
        s.start()
        started = True
    except AssertionError:
        started = False
    assert not started, "the server started with a key that does not match its certificate"
    wait_until(lambda: "cluster.tls_key does not match" in s.log(), DEADLINE_S,
               what="the startup error naming cluster.tls_key")


def peer_accepted(server):
    """{"tls": n, "plain": n}: inbound peer connections by how they started (metrics)."""
    with server.client(timeout=5.0) as c:
        text = c.raw("GET", "/metrics", headers={"Accept": "text/plain"}).body.decode()
    out = {"tls": 0.0, "plain": 0.0}
    for t in out:
        key = 'mnemo_peer_accepted_connections_total{transport="%s"} ' % t
        out[t] = next((float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(key)),
                      0.0)
    return out


def test_tls_switched_on_by_rolling_restarts(server_factory, tmp_path):
    """A plaintext cluster goes to TLS one node at a time (cluster.tls_mode accept, then
    prefer, then require: runbooks/cluster.md): after every restart a quorum write through
    another node is acknowledged (the primary reaches a replica), and at the end every node
    requires TLS, takes no more plaintext connections, and every copy has every write."""
    d = tmp_path / "pki"
    d.mkdir()
    make_certs(d, ["n0", "n1", "n2"])
    nodes, ids = start_three(server_factory, [{}, {}, {}])
    quorum_writes_replicate(nodes, ids)
    written = 20

    def write_via(k, text):
        try:
            with nodes[k].client(timeout=10.0) as c:
                r = c.raw("POST", "/v1/spaces/%s/memories" % SPACE,
                          body={"content": text, "embedding": [1, 0, 0, 0],
                                "consistency": "quorum"})
        except (MnemoError, OSError):
            return None
        return r.status == 201 or None

    for mode in ("accept", "prefer", "require"):
        for i, s in enumerate(nodes):
            # it rejoins through the next node, at that node's port now (a restart may
            # bind another one; the first node has no seeds of its own)
            seed = swim_endpoint(nodes[(i + 1) % 3])[1]
            s.stop()
            s.extra_env.update(tls_env(d, "n%d" % i))
            s.extra_env["MNEMO_CLUSTER_TLS_MODE"] = mode
            s.extra_env["MNEMO_CLUSTER_SEEDS"] = "127.0.0.1:%d" % seed
            t0 = time.monotonic()
            s.start()
            for o in nodes:
                wait_until(lambda o=o: view_is(o, {x: "alive" for x in ids}), DEADLINE_S,
                           what="three alive members after node %d went to %s" % (i, mode))
            print("node %d to %s: all alive %.1f s after its start" % (i, mode,
                                                                      time.monotonic() - t0))
            k = (i + 1) % 3
            wait_until(lambda k=k: write_via(k, "%s %d" % (mode, i)), DEADLINE_S,
                       what="a quorum write through node %d after node %d went to %s"
                       % (k, i, mode))
            written += 1
        want = {"accept": "mutual TLS or plain in, plain out",
                "prefer": "mutual TLS or plain in, TLS out", "require": "mutual TLS,"}[mode]
        assert all(want in s.log() for s in nodes), mode
    # every node requires TLS now: plaintext connections stopped, writes still flow. A node
    # restarted last is dialled again when a peer next has a frame for it (a gossip round,
    # an append): wait for every node's first TLS accept (metrics are published each tick)
    wait_until(lambda: all(peer_accepted(s)["tls"] > 0 for s in nodes), DEADLINE_S,
               what="a TLS connection accepted by every node")
    before = [peer_accepted(s) for s in nodes]
    for j in range(3):
        wait_until(lambda j=j: write_via(j, "after %d" % j), DEADLINE_S,
                   what="a quorum write through node %d with TLS required" % j)
        written += 1
    after = [peer_accepted(s) for s in nodes]
    assert [a["plain"] for a in after] == [b["plain"] for b in before], (before, after)
    want = max(last_lsn(s) or 0 for s in nodes)
    assert want >= written + 1  # the creation and every write
    for s in nodes:
        wait_until(lambda s=s: (last_lsn(s) or 0) >= want, DEADLINE_S,
                   what="every copy at lsn %d" % want)


def test_a_node_one_minor_version_ahead_keeps_replicating(server_factory):
    newer = {"MNEMO_TEST_PEER_MINOR": "1"}
    nodes, ids = start_three(server_factory, [{}, newer, {}])
    assert "TEST ONLY: MNEMO_TEST_PEER_MINOR=1" in nodes[1].log()
    assert "version 1.1" in nodes[1].log() and "version 1.0" in nodes[0].log()
    quorum_writes_replicate(nodes, ids)
    assert "refused a hello" not in "".join(s.log() for s in nodes)
    # its catalog entries carry a field the older nodes do not know (as a newer minor's
    # may): a space born on it still reaches their catalogs, and is led from there
    name = next(n for n in ("minor-%d" % i for i in range(200))
                if spaces_doc(nodes[0], n)["spaces"][0]["primary"] == ids[1])
    with nodes[0].client() as c:
        c.create_space(name, dim=4)
    with nodes[1].client() as c:
        mine = c.request("GET", "/v1/cluster/catalog")
    assert all(e.get("test_newer_minor") for e in mine["spaces"]), mine

    def in_catalog(s):
        with s.client() as c:
            doc = c.request("GET", "/v1/cluster/catalog")
        return any(e["name"] == name and "test_newer_minor" not in e for e in doc["spaces"])
    for s in (nodes[0], nodes[2]):
        wait_until(lambda s=s: in_catalog(s), DEADLINE_S,
                   what="the newer node's space in an older node's catalog")
    assert "unknown field" not in "".join(s.log() for s in nodes)


@pytest.fixture
def https_nodes(tmp_path_factory):
    """Starts TlsServer nodes (HTTPS clients trusting cafile); stops them at teardown."""
    made = []

    def start(cafile, env):
        s = TlsServer(tmp_path_factory.mktemp("node"), cafile, env=env)
        made.append(s)
        return s.start()
    yield start
    for s in made:
        if s.alive():
            rc = s.stop()
            assert rc == 0, "mnemo exited with %s:\n%s" % (rc, s.log()[-3000:])


def test_one_ca_for_the_peer_bus_and_the_api_hops(https_nodes, tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    make_certs(d, ["n0", "n1", "n2"])

    def start(i, seeds):
        env = dict(cluster_env(seeds), **tls_env(d, "n%d" % i))
        env.update({"MNEMO_HTTP_TLS_CERT": str(d / ("n%d.crt" % i)),
                    "MNEMO_HTTP_TLS_KEY": str(d / ("n%d.key" % i)),
                    "MNEMO_CLUSTER_REPLICATION_FACTOR": "3",
                    "MNEMO_CLUSTER_WRITE_CONSISTENCY": "quorum"})
        return https_nodes(d / "ca.crt", env)
    first = start(0, [])
    seeds = ["127.0.0.1:%d" % swim_endpoint(first)[1]]
    nodes = [first, start(1, seeds), start(2, seeds)]
    ids = [swim_endpoint(s)[0] for s in nodes]
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="three alive members in every view")
    with nodes[0].client() as c:
        primary = c.request("GET", "/v1/cluster/spaces", query={"names": SPACE})
    primary = primary["spaces"][0]["primary"]
    with nodes[ids.index(primary)].client() as c:
        c.create_space(SPACE, dim=4)

    def write_via(k):
        try:
            with nodes[k].client(timeout=10.0) as c:
                r = c.raw("POST", "/v1/spaces/%s/memories" % SPACE,
                          body={"content": "via %d" % k, "embedding": [1, 0, 0, 0],
                                "consistency": "quorum"})
        except OSError:
            return None
        return r if r.status == 201 else None
    for k in range(3):  # two of them are forwarded to the primary over HTTPS
        r = wait_until(lambda k=k: write_via(k), DEADLINE_S, what="a write through node %d" % k)
        assert r.headers["x-mnemo-served-by"] == primary, r.headers
