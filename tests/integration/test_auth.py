"""API keys against a real server: 401 without or with a bad key (same headers either way),
403 outside the key's role or spaces, open probes, configuration errors, the MNEMO_AUTH_KEYS
override, and the refusal to serve a non-loopback address without auth unless --insecure."""

import hashlib
import http.client
import os
import socket
import subprocess
import time

import pytest

from conftest import MnemoError, expect_error, mnemo_bin, wait_until

KEYS = {
    # name: (key, role, spaces)
    "root": ("k-root-0123456789", "admin", ["*"]),
    "ops": ("k-ops-0123456789", "admin", ["alpha"]),
    "writer": ("k-writer-0123456789", "write", ["alpha"]),
    "writer-all": ("k-writer-all-0123456789", "write", ["*"]),
    "reader": ("k-reader-0123456789", "read", ["alpha", "beta"]),
}


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def keys_toml(keys=KEYS):
    out = ["[auth]", "enabled = true", ""]
    for name, (key, role, spaces) in keys.items():
        out += ["[[auth.keys]]", 'name = "%s"' % name, 'sha256 = "%s"' % sha(key),
                'role = "%s"' % role, "spaces = [%s]" % ", ".join('"%s"' % s for s in spaces), ""]
    return "\n".join(out)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    from conftest import MnemoServer
    d = tmp_path_factory.mktemp("auth")
    cfg = d / "mnemo.toml"
    cfg.write_text(keys_toml())
    s = MnemoServer(d / "data", args=["--config", str(cfg)]).start()
    # spaces made by the admin key
    with s.client() as c:
        c.api_key = KEYS["root"][0]
        for name in ("alpha", "beta", "gamma"):
            c.create_space(name, dim=2)
    yield s
    if s.alive():
        assert s.stop() == 0, s.log()


def client(server, who):
    c = server.client()
    c.api_key = KEYS[who][0] if who in KEYS else who
    return c


def raw(server, method, path, key=None, body=None, scheme="Bearer"):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    hdrs = {}
    if key is not None:
        hdrs["Authorization"] = "%s %s" % (scheme, key)
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=hdrs)
    r = conn.getresponse()
    data = r.read()
    headers = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, headers, data


def test_probes_and_api_description_need_no_key(auth_server):
    for path in ("/health", "/ready"):
        st, _, _ = raw(auth_server, "GET", path)
        assert st == 200, path


def test_missing_and_bad_keys_get_the_same_401(auth_server):
    seen = []
    for key, scheme in ((None, "Bearer"), ("not-a-key", "Bearer"), ("", "Bearer"),
                        (KEYS["root"][0], "Basic"), (KEYS["root"][0] + "x", "Bearer")):
        st, h, body = raw(auth_server, "GET", "/v1/spaces", key=key, scheme=scheme)
        assert st == 401, (key, scheme, body)
        import json
        err = json.loads(body)["error"]
        assert err["code"] == "unauthenticated" and err["hint"]
        assert h["www-authenticate"] == 'Bearer realm="mnemo"'
        seen.append(sorted(k for k in h if k != "x-request-id"))
    # the header set does not depend on what was wrong with the key
    assert all(s == seen[0] for s in seen)


def test_bearer_scheme_is_case_insensitive(auth_server):
    st, _, _ = raw(auth_server, "GET", "/v1/spaces", key=KEYS["reader"][0], scheme="bearer")
    assert st == 200


def test_role_matrix(auth_server):
    """Each route class against each role, on a space every key may use."""
    with client(auth_server, "root") as root:
        mid = root.remember("alpha", "seed", [1.0, 0.0])
    cases = [
        # (what, call, needs)
        ("list", lambda c: c.list_spaces(), "read"),
        ("get space", lambda c: c.get_space("alpha"), "read"),
        ("stats", lambda c: c.stats("alpha"), "read"),
        ("recall", lambda c: c.recall("alpha", [1.0, 0.0]), "read"),
        ("recognize", lambda c: c.recognize("alpha", [1.0, 0.0]), "read"),
        ("reminisce", lambda c: c.reminisce("alpha"), "read"),
        ("get memory", lambda c: c.get("alpha", mid), "read"),
        ("list memories", lambda c: c.list_memories("alpha"), "read"),
        ("remember", lambda c: c.remember("alpha", "x", [0.0, 1.0]), "write"),
        ("associate", lambda c: c.associate("alpha", [{"from": mid, "to": mid,
                                                       "kind": "explicit"}]), "write"),
        ("consolidate", lambda c: c.consolidate("alpha"), "write"),
        ("forget", lambda c: c.forget("alpha", "00000000000000000000000000"), "write"),
        ("create space", lambda c: c.create_space("made-by-%d" % time.monotonic_ns(), 2),
         "admin"),
        ("checkpoint", lambda c: c.request("POST", "/v1/admin/checkpoint", {"path": ""},
                                           expect=(200,)), "admin"),
    ]
    rank = {"read": 1, "write": 2, "admin": 3}
    for who in ("reader", "writer", "root"):
        role = KEYS[who][1]
        with client(auth_server, who) as c:
            for what, call, needs in cases:
                allowed = rank[role] >= rank[needs]
                try:
                    call(c)
                    got = "ok"
                except MnemoError as e:
                    got = e.code
                    if allowed:
                        # the call passed the gate: any answer but 401/403 is the handler's
                        assert e.status not in (401, 403), (who, what, e.status, e.message)
                        continue
                    assert e.status == 403 and e.code == "permission_denied", (who, what, e)
                    assert needs in e.message, (who, what, e.message)
                    continue
                assert allowed, "%s could %s (needs %s): %s" % (who, what, needs, got)


def test_space_matrix(auth_server):
    # reader: alpha and beta, not gamma
    with client(auth_server, "reader") as c:
        c.recall("alpha", [1.0, 0.0])
        c.recall("beta", [1.0, 0.0])
        e = expect_error(lambda: c.recall("gamma", [1.0, 0.0]), 403, "permission_denied")
        assert "gamma" in e.message
        expect_error(lambda: c.get_space("gamma"), 403, "permission_denied")
        # a space that does not exist and is not the key's: 403, not 404 (no probing)
        expect_error(lambda: c.get_space("nosuch"), 403, "permission_denied")
    # writer: alpha only
    with client(auth_server, "writer") as c:
        c.remember("alpha", "w", [1.0, 1.0])
        expect_error(lambda: c.remember("beta", "w", [1.0, 1.0]), 403, "permission_denied")
    # an admin key limited to alpha may not use node-wide admin routes
    with client(auth_server, "ops") as c:
        c.remember("alpha", "o", [1.0, 1.0])
        expect_error(lambda: c.create_space("ops-space", 2), 403, "permission_denied")
        expect_error(lambda: c.delete_space("beta"), 403, "permission_denied")
    with client(auth_server, "writer-all") as c:
        c.remember("gamma", "wa", [1.0, 1.0])
        expect_error(lambda: c.delete_space("gamma"), 403, "permission_denied")


def test_drop_space_needs_admin(auth_server):
    with client(auth_server, "root") as c:
        c.create_space("to-drop", dim=2)
    with client(auth_server, "writer-all") as c:
        expect_error(lambda: c.delete_space("to-drop"), 403, "permission_denied")
    with client(auth_server, "root") as c:
        c.delete_space("to-drop")


def test_unknown_route_is_404_and_cluster_routes_need_admin(auth_server):
    st, _, _ = raw(auth_server, "GET", "/v1/nothing-here")
    assert st == 404
    st, _, _ = raw(auth_server, "GET", "/v1/spaces/alpha/nothing")
    assert st == 404


def test_refused_body_is_not_read(auth_server):
    """A refused request with a (big) body is answered at once and the connection closed."""
    s = socket.create_connection(("127.0.0.1", auth_server.port), timeout=30)
    try:
        s.sendall(b"POST /v1/spaces/alpha/memories HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 401 "), data[:200]
        assert b"connection: close" in data.lower()
    finally:
        s.close()


def test_keep_alive_connection_survives_a_refusal(auth_server):
    conn = http.client.HTTPConnection("127.0.0.1", auth_server.port, timeout=30)
    conn.request("GET", "/v1/spaces")
    r = conn.getresponse()
    r.read()
    assert r.status == 401 and not r.will_close
    conn.request("GET", "/v1/spaces", headers={"Authorization": "Bearer " + KEYS["reader"][0]})
    r = conn.getresponse()
    r.read()
    assert r.status == 200
    conn.close()


def test_keys_from_the_environment(server_factory):
    key = "env-key-42"
    s = server_factory(env={
        "MNEMO_AUTH_ENABLED": "true",
        "MNEMO_AUTH_KEYS": '[{name = "env", sha256 = "%s", role = "admin", spaces = ["*"]}]'
                           % sha(key),
    })
    st, _, _ = raw(s, "GET", "/v1/spaces")
    assert st == 401
    st, _, _ = raw(s, "GET", "/v1/spaces", key=key)
    assert st == 200


def run(args, env=None, timeout=60):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([mnemo_bin()] + args, env=e, capture_output=True, text=True,
                          timeout=timeout)


def test_configuration_errors_stop_the_server(tmp_path):
    env = {"MNEMO_STORAGE_DATA_DIR": str(tmp_path / "d"), "MNEMO_HTTP_PORT": "0"}
    f = tmp_path / "m.toml"
    cases = [
        ("[auth]\nenabled = true\n", "no [[auth.keys]]"),
        ('[[auth.keys]]\nsha256 = "abc"\nrole = "read"\nspaces = ["*"]\n',
         "m.toml:2:10: auth.keys.sha256 must be 64 hex digits"),
        ('[[auth.keys]]\nsha256 = "%s"\nrole = "root"\nspaces = ["*"]\n' % sha("x"),
         "auth.keys.role must be one of read|write|admin"),
        ('[[auth.keys]]\nsha256 = "%s"\nrole = "read"\n' % sha("x"),
         'auth.keys[0] lacks "spaces" (required)'),
        ('[[auth.keys]]\nsha256 = "%s"\nrole = "read"\nspaces = ["*"]\nrol = "x"\n' % sha("x"),
         'unknown key "auth.keys.rol"'),
        ('[[auth.keys]]\nsha256 = "%s"\nrole = "read"\nspaces = ["Bad Name"]\n' % sha("x"),
         '"Bad Name" is not a space name'),
        ('[[auth.keys]]\nsha256 = "%s"\nrole = "read"\nspaces = ["*"]\n'
         '[[auth.keys]]\nsha256 = "%s"\nrole = "admin"\nspaces = ["*"]\n' % (sha("x"), sha("x")),
         "auth.keys[1]: same sha256 as auth.keys[0]"),
    ]
    for text, msg in cases:
        f.write_text(text)
        r = run(["serve", "--config", str(f)], env=env)
        assert r.returncode == 2, (text, r.returncode, r.stderr)
        assert msg in r.stderr, (text, r.stderr)


def test_non_loopback_without_auth_is_refused(tmp_path):
    r = run(["serve"], env={"MNEMO_STORAGE_DATA_DIR": str(tmp_path / "d"),
                            "MNEMO_HTTP_PORT": "0", "MNEMO_HTTP_BIND": "0.0.0.0"})
    assert r.returncode == 2, r.stderr
    assert "refusing to serve" in r.stderr and "0.0.0.0" in r.stderr
    for fix in ("auth.enabled = true", "--insecure", "127.0.0.1"):
        assert fix in r.stderr
    # nothing was created: the check runs before the data dir is opened
    assert not (tmp_path / "d").exists()


def test_insecure_flag_allows_it(server_factory):
    s = server_factory(env={"MNEMO_HTTP_BIND": "0.0.0.0"}, args=["--insecure"])
    assert "--insecure" in s.log()
    st, _, _ = raw(s, "GET", "/v1/spaces")
    assert st == 200


def test_non_loopback_with_auth_starts(server_factory):
    s = server_factory(env={
        "MNEMO_HTTP_BIND": "0.0.0.0",
        "MNEMO_AUTH_ENABLED": "true",
        "MNEMO_AUTH_KEYS": '[{sha256 = "%s", role = "read", spaces = ["*"]}]' % sha("k"),
    })
    st, _, _ = raw(s, "GET", "/v1/spaces", key="k")
    assert st == 200


CLUSTER_OUT = {"MNEMO_CLUSTER_ENABLED": "true", "MNEMO_CLUSTER_BIND": "0.0.0.0",
               "MNEMO_CLUSTER_SWIM_PORT": "0", "MNEMO_CLUSTER_PEER_PORT": "0",
               "MNEMO_CLUSTER_PROFILE": "fast"}


def test_cluster_beyond_loopback_without_key_is_refused(tmp_path):
    r = run(["serve"], env=dict(CLUSTER_OUT, MNEMO_STORAGE_DATA_DIR=str(tmp_path / "d"),
                                MNEMO_HTTP_PORT="0"))
    assert r.returncode == 2, r.stderr
    assert "refusing to open the cluster port on 0.0.0.0" in r.stderr
    for fix in ("cluster.key", "--insecure", "127.0.0.1"):
        assert fix in r.stderr
    assert not (tmp_path / "d").exists()


def test_cluster_beyond_loopback_starts_with_a_key_or_insecure(server_factory):
    s = server_factory(env=dict(CLUSTER_OUT, MNEMO_CLUSTER_KEY="a-cluster-secret"))
    assert "cluster port" not in s.log()
    s = server_factory(env=CLUSTER_OUT, args=["--insecure"])
    assert "--insecure: the cluster port on 0.0.0.0 has no cluster.key" in s.log()


def test_path_parameters_cannot_forge_log_lines(server_factory):
    """A decoded %0A in a path parameter is escaped in the text log, not a new line."""
    s = server_factory(env={"MNEMO_LOG_LEVEL": "debug"})
    st, _, _ = raw(s, "GET", "/v1/spaces/x%0Aforged-line%0D%1B/stats")
    assert st == 404
    wait_until(lambda: "forged-line" in s.log(), 30, what="the access log line")
    lines = s.log().split("\n")
    assert not any(line.startswith("forged-line") for line in lines), s.log()
    hit = [line for line in lines if "forged-line" in line]
    assert len(hit) == 1 and 'space="x\\nforged-line\\u000d\\u001b"' in hit[0], hit
    assert "\x1b" not in s.log() and "\r" not in s.log()


def test_insecure_is_only_for_serve(tmp_path):
    r = run(["config", "--insecure"])
    assert r.returncode == 2 and "--insecure" in r.stderr
