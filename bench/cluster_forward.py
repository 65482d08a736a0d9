#!/usr/bin/python3
"""What a forwarded request costs (docs/replication.md, "Routing"): three `mnemo serve` on
127.0.0.1 at replication factor 1, a space on one of them (its primary), and remembers at
consistency `one` sent in turns to the primary itself (local) and to another node, which
forwards each as a signed hop over its kept connection to the primary (forwarded). Once
with plain HTTP between all, once with every node serving its API over TLS (one
self-signed certificate, made with the openssl CLI, that every node trusts), so that a
forwarded request without connection reuse would pay a TLS handshake per hop.

Each client keeps one connection to its node. Rounds alternate local and forwarded
(--rounds of --n writes each) so that other load on the machine falls on both. Prints
p50/p99 per write for each path and the ratio forwarded/local; asserts nothing. --bin-base
runs the same cells with a second binary (an older build, say) for a side-by-side table.

  PYTHONPATH=clients/python /usr/bin/python3 bench/cluster_forward.py --bin build/mnemo
"""
import argparse
import os
import ssl
import sys
import tempfile
import pathlib
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
from conftest import MnemoServer, wait_until  # noqa: E402
from mnemo_client import MnemoClient  # noqa: E402
from test_tls import make_cert  # noqa: E402
from cluster_repl import node_env, swim_of, doc, pct  # noqa: E402


class Node(MnemoServer):
    def __init__(self, data_dir, env, cert=None):
        super().__init__(data_dir, env=env)
        self.cert = cert

    @property
    def url(self):
        return ("https://127.0.0.1:%d" if self.cert else "http://127.0.0.1:%d") % self.port

    def client(self, timeout=30.0):
        ctx = ssl.create_default_context(cafile=str(self.cert)) if self.cert else None
        return MnemoClient(self.url, timeout=timeout, ssl_context=ctx)


def start_cluster(base, cert_key):
    extra = {}
    if cert_key:
        extra = {"MNEMO_HTTP_TLS_CERT": str(cert_key[0]), "MNEMO_HTTP_TLS_KEY": str(cert_key[1])}
    cert = cert_key[0] if cert_key else None

    def one(i, seeds):
        env = node_env(seeds, 1, None)
        env.update(extra)
        return Node(base / ("n%d" % i), env, cert).start()
    first = one(0, [])
    seeds = ["127.0.0.1:%d" % swim_of(first)[1]]
    nodes = [first] + [one(i, seeds) for i in (1, 2)]
    ids = [swim_of(s)[0] for s in nodes]
    wait_until(lambda: all(len(doc(s)["members"]) == 3 for s in nodes), 60, what="3 members")
    e = doc(nodes[0], "fwd")["spaces"][0]
    primary = nodes[ids.index(e["primary"])]
    other = next(s for s in nodes if s is not primary)
    with primary.client() as c:
        c.create_space("fwd", dim=4)
    return nodes, primary, other


def cell(node, n, lat):
    with node.client() as c:
        for i in range(n):
            t0 = time.perf_counter()
            c.raw("POST", "/v1/spaces/fwd/memories",
                  body={"content": "note %d" % i, "embedding": [1, 0, 0, 0],
                        "consistency": "one"})
            lat.append(time.perf_counter() - t0)


def measure(binary, base, cert_key, rounds, n):
    os.environ["MNEMO_BIN"] = binary
    nodes, primary, other = start_cluster(base, cert_key)
    try:
        wait_until(lambda: other.client().raw(
            "POST", "/v1/spaces/fwd/memories",
            body={"content": "warm", "embedding": [1, 0, 0, 0], "consistency": "one"}).status
            == 201, 60, what="a forwarded write")
        local, fwd = [], []
        for _ in range(rounds):
            cell(primary, n, local)
            cell(other, n, fwd)
        return local, fwd
    finally:
        for s in nodes:
            s.stop()


def row(label, local, fwd):
    ms = lambda xs, p: pct(xs, p) * 1000.0  # noqa: E731
    print("%-28s %8.2f %8.2f %8.2f %8.2f %7.2fx %7.2fx" % (
        label, ms(local, 50), ms(local, 99), ms(fwd, 50), ms(fwd, 99),
        pct(fwd, 50) / pct(local, 50), pct(fwd, 99) / pct(local, 99)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--bin-base", help="a second binary measured the same way")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=200, help="writes per round and path")
    a = ap.parse_args()
    bins = [("this build", os.path.abspath(a.bin))]
    if a.bin_base:
        bins.append(("base", os.path.abspath(a.bin_base)))
    with tempfile.TemporaryDirectory(prefix="mnemo-fwd-") as d:
        d = pathlib.Path(d)
        cert_key = make_cert(d)
        print("%-28s %8s %8s %8s %8s %8s %8s" % ("cell (ms per write)", "loc p50", "loc p99",
                                                 "fwd p50", "fwd p99", "p50 x", "p99 x"))
        for label, b in bins:
            for mode, ck in (("http", None), ("https", cert_key)):
                local, fwd = measure(b, d / ("%s-%s" % (label.replace(" ", "_"), mode)), ck,
                                     a.rounds, a.n)
                row("%s, %s" % (label, mode), local, fwd)


if __name__ == "__main__":
    main()
