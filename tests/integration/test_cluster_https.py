"""A cluster whose nodes serve their HTTP API over TLS (http.tls_cert): the hops between nodes
go over HTTPS too, verified against the node's own certificate chain, so writes and creations
through any node reach the primary; a node whose certificate the others do not trust gets a
503 naming the failed handshake, and stores nothing."""

import json
import os
import shutil
import signal
import ssl
import subprocess

import pytest

from conftest import MnemoClient, MnemoServer, mnemo_bin, wait_until
from test_cluster_spaces import agreed
from test_cluster_swim import cluster_env, swim_endpoint, view_is
from test_tls import make_cert

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

DEADLINE_S = 30.0
SPACE = "sealed"


class TlsServer(MnemoServer):
    def __init__(self, data_dir, cert, env=None):
        super().__init__(data_dir, env=env)
        self.cert = str(cert)

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def client(self, timeout=30.0):
        return MnemoClient(self.url, timeout=timeout,
                           ssl_context=ssl.create_default_context(cafile=self.cert))


@pytest.fixture
def tls_nodes(tmp_path_factory):
    made = []

    def start(cert, key, seeds, factor):
        env = cluster_env(seeds)
        env.update({"MNEMO_HTTP_TLS_CERT": str(cert), "MNEMO_HTTP_TLS_KEY": str(key),
                    "MNEMO_CLUSTER_REPLICATION_FACTOR": str(factor)})
        s = TlsServer(tmp_path_factory.mktemp("node"), cert, env=env)
        made.append(s)
        return s.start()
    yield start
    for s in made:
        if s.proc and s.proc.poll() is None:
            os.kill(s.proc.pid, signal.SIGCONT)
            rc = s.stop()
            assert rc == 0, "mnemo exited with %s:\n%s" % (rc, s.log()[-3000:])


def form(start, certs, factor):
    first = start(*certs[0], [], factor)
    seeds = ["127.0.0.1:%d" % swim_endpoint(first)[1]]
    nodes = [first] + [start(*c, seeds, factor) for c in certs[1:]]
    ids = [swim_endpoint(s)[0] for s in nodes]
    for s in nodes:
        wait_until(lambda s=s: view_is(s, {i: "alive" for i in ids}), DEADLINE_S,
                   what="every member alive in every view")
    return nodes, ids


def remember(s, text):
    with s.client(timeout=15) as c:
        return c.raw("POST", "/v1/spaces/%s/memories" % SPACE,
                     body={"content": text, "embedding": [1, 0, 0], "consistency": "one"})


def test_hops_between_nodes_go_over_https(tls_nodes, tmp_path):
    cert = make_cert(tmp_path)  # one certificate for the cluster: each node trusts it
    nodes, ids = form(tls_nodes, [cert] * 3, 3)
    with nodes[1].client() as c:  # forwarded to the space's desired primary
        r = c.raw("POST", "/v1/spaces", body={"name": SPACE, "dim": 3})
    assert r.status == 201, (r.status, r.body)
    docs = wait_until(lambda: agreed(nodes, [SPACE], ids), DEADLINE_S,
                      what="the same placement on every node")
    primary = docs[0]["spaces"][0]["primary"]
    for k, s in enumerate(nodes):
        r = wait_until(lambda s=s, k=k: (lambda r: r if r.status == 201 else None)(
            remember(s, "through node %d" % k)), DEADLINE_S, what="a write through node %d" % k)
        assert r.headers["x-mnemo-served-by"] == primary, r.headers
    with nodes[ids.index(primary)].client() as c:
        got = c.raw("GET", "/v1/spaces/%s/memories" % SPACE).json["memories"]
    assert sorted(m["content"] for m in got) == ["through node %d" % k for k in range(3)]
    # mnemo admin reads the cluster over https, verifying the node against --cacert
    url = "https://127.0.0.1:%d" % nodes[2].port
    out = subprocess.run([mnemo_bin(), "admin", "status", "--url", url, "--cacert", str(cert[0]),
                          "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 3), out.stderr
    assert {m["id"] for m in json.loads(out.stdout)["members"]["members"]} == set(ids), out.stdout
    other = tmp_path / "other"
    other.mkdir()
    out = subprocess.run([mnemo_bin(), "admin", "status", "--url", url, "--cacert",
                          str(make_cert(other)[0])], capture_output=True, text=True, timeout=60)
    assert out.returncode == 4 and "TLS handshake failed" in out.stderr, out.stderr


def test_a_node_whose_certificate_is_not_trusted_cannot_forward(tls_nodes, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    nodes, ids = form(tls_nodes, [make_cert(a), make_cert(b)], 1)
    # each node trusts only its own certificate: a creation sent to the node that does not
    # lead the new space must be forwarded to the other, and cannot be
    with nodes[0].client() as c:
        preview = c.raw("GET", "/v1/cluster/spaces", query={"names": SPACE}).json
    owner = ids.index(next(e for e in preview["spaces"] if e["name"] == SPACE)["primary"])
    with nodes[1 - owner].client() as c:
        r = c.raw("POST", "/v1/spaces", body={"name": SPACE, "dim": 3})
    assert r.status == 503, (r.status, r.body)
    assert "TLS handshake failed" in r.json["error"]["message"], r.body
    for s in nodes:
        with s.client() as c:
            assert c.raw("GET", "/v1/spaces/%s" % SPACE).status == 404
