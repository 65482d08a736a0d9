"""Internal hops from the tests (api/cluster_client.h): requests signed with the cluster key
as a node would sign them, served where they land (a hop is never forwarded again)."""

import hashlib
import hmac
import json
import os
import time

from mnemo_client import MnemoClient
from test_cluster_swim import KEY


def sign(method, path, query, body, node="test-node", role="admin", key_name="-",
         spaces="*", key=KEY, now_ms=None):
    """The x-mnemo-hop-* headers of an internal hop (a fresh nonce each time)."""
    t = str(now_ms if now_ms is not None else int(time.time() * 1000))
    nonce = os.urandom(8).hex()
    digest = hashlib.sha256(body).hexdigest()
    text = "mnemo-hop-v1\n%s\n%s%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s" % (
        method, path, "?" + query if query else "", t, nonce, node, role, key_name, spaces,
        digest)
    sig = hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()
    return {"x-mnemo-hop-node": node, "x-mnemo-hop-time": t, "x-mnemo-hop-nonce": nonce,
            "x-mnemo-hop-role": role, "x-mnemo-hop-key": key_name,
            "x-mnemo-hop-spaces": spaces, "x-mnemo-hop-body": digest, "x-mnemo-hop-sig": sig}


def hop(server, method, path, body=None, query="", **kw):
    """Sends a signed hop (body: a JSON value or None) to server; returns the raw response."""
    data = json.dumps(body).encode() if body is not None else b""
    h = sign(method, path, query, data, **kw)
    if body is not None:
        h["Content-Type"] = "application/json"
    with MnemoClient(server.url, timeout=10.0) as c:
        return c.raw(method, path + ("?" + query if query else ""),
                     body=data if body is not None else None, headers=h)


def create_here(server, name, dim=4):
    """Creates space name on server itself (a creation through the API goes to the space's
    desired primary; with no replication yet, tests that want a copy on every node make
    one on each)."""
    r = hop(server, "POST", "/v1/spaces", {"name": name, "dim": dim})
    assert r.status == 201, (r.status, r.body)
