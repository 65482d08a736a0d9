"""HTTPS with a throwaway self-signed certificate made at test time by the openssl command:
a verifying client works (keep-alive, bodies, API keys over TLS), plain HTTP and garbage
handshakes fail cleanly without hurting the server, TLS 1.1 is refused, and bad
certificate/key files stop the server at start with a clear message."""

import os
import shutil
import socket
import ssl
import subprocess
import time
import warnings

import pytest

from conftest import MnemoClient, mnemo_bin, wait_until

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def make_cert(d, name="localhost"):
    cert, key = d / ("%s.crt" % name), d / ("%s.key" % name)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_server(server_factory, certs):
    cert, key = certs
    return server_factory(env={"MNEMO_HTTP_TLS_CERT": str(cert), "MNEMO_HTTP_TLS_KEY": str(key),
                               "MNEMO_HTTP_REQUEST_TIMEOUT_MS": "2000"})


def ctx_for(cert):
    ctx = ssl.create_default_context(cafile=str(cert))
    return ctx


def test_https_with_a_verifying_client(tls_server, certs):
    assert "listening on https://" in tls_server.log()
    url = "https://127.0.0.1:%d" % tls_server.port
    with MnemoClient(url, ssl_context=ctx_for(certs[0])) as c:
        assert c.health()
        c.create_space("tls", dim=3)
        big = "x" * 60000
        # ~600 KB each way: many TLS records in one request and one response
        ids = c.remember_batch("tls", [{"content": big + str(i), "embedding": [1, 0, i]}
                                       for i in range(10)])
        page = c.list_memories("tls", limit=100)
        assert sorted(m["content"] for m in page["memories"]) == sorted(
            big + str(i) for i in range(10))
        r = c.recall("tls", [1, 0, 0], k=1)
        assert r["results"][0]["id"] == ids[0]
        # all of it on one keep-alive connection
        assert c._conn is not None


def test_negotiated_protocol_is_tls12_or_newer(tls_server, certs):
    ctx = ctx_for(certs[0])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() in ("TLSv1.2", "TLSv1.3")
            assert s.selected_alpn_protocol() == "http/1.1"


def test_tls11_is_refused(tls_server, certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(certs[0]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, OSError, ssl.SSLError):
        pytest.skip("this Python/OpenSSL cannot offer TLS 1.1")
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=30) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)) as e:
            ctx.wrap_socket(raw, server_hostname="localhost")
    if "NO_PROTOCOLS_AVAILABLE" in str(e.value).upper():
        pytest.skip("this OpenSSL will not send a TLS 1.1 hello")
    # the server saw the hello and refused it
    wait_until(lambda: "TLS handshake failed" in tls_server.log(), 30, what="the refusal log")
    assert "unsupported protocol" in tls_server.log()
    assert tls_server.alive()


def read_until_closed(s, deadline_s=30):
    data = b""
    end = time.monotonic() + deadline_s
    s.settimeout(deadline_s)
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    return data


def test_plain_http_to_the_tls_port_fails_cleanly(tls_server, certs):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=30) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_closed(s)
        assert not data.startswith(b"HTTP/")  # no plaintext answer; the connection closes
    # and the server still serves TLS
    with MnemoClient("https://127.0.0.1:%d" % tls_server.port,
                     ssl_context=ctx_for(certs[0])) as c:
        assert c.health()


def test_garbage_and_truncated_handshakes_do_not_hurt_the_server(tls_server, certs):
    junk = [os.urandom(512), b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\xff\xff" + b"A" * 300,
            b"\x00" * 64]
    for j in junk:
        with socket.create_connection(("127.0.0.1", tls_server.port), timeout=30) as s:
            s.sendall(j)
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            read_until_closed(s)
    # a client that starts a handshake and stalls is closed by the request budget (2 s)
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=30) as s:
        s.sendall(b"\x16\x03\x01")
        t0 = time.monotonic()
        read_until_closed(s, deadline_s=30)
        assert time.monotonic() - t0 < 30
    assert tls_server.alive()
    with MnemoClient("https://127.0.0.1:%d" % tls_server.port,
                     ssl_context=ctx_for(certs[0])) as c:
        assert c.health()
    assert "TLS handshake failed" in tls_server.log()


def test_untrusted_certificate_is_rejected_by_the_client(tls_server, tmp_path):
    other, _ = make_cert(tmp_path, "other")
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=30) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx_for(other).wrap_socket(raw, server_hostname="localhost")
    assert tls_server.alive()


def test_api_keys_over_tls(server_factory, certs):
    import hashlib
    cert, key = certs
    s = server_factory(env={
        "MNEMO_HTTP_TLS_CERT": str(cert), "MNEMO_HTTP_TLS_KEY": str(key),
        "MNEMO_AUTH_ENABLED": "true",
        "MNEMO_AUTH_KEYS": '[{sha256 = "%s", role = "read", spaces = ["*"]}]'
                           % hashlib.sha256(b"tls-key").hexdigest(),
    })
    url = "https://127.0.0.1:%d" % s.port
    with MnemoClient(url, ssl_context=ctx_for(cert)) as c:
        assert c.raw("GET", "/v1/spaces").status == 401
    with MnemoClient(url, ssl_context=ctx_for(cert), api_key="tls-key") as c:
        assert c.list_spaces() == []


def run(args, env, timeout=60):
    e = dict(os.environ)
    e.update(env)
    return subprocess.run([mnemo_bin()] + args, env=e, capture_output=True, text=True,
                          timeout=timeout)


def test_bad_tls_files_stop_the_server(tmp_path, certs):
    cert, key = certs
    other_cert, other_key = make_cert(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    base = {"MNEMO_STORAGE_DATA_DIR": str(tmp_path / "d"), "MNEMO_HTTP_PORT": "0"}
    cases = [
        ({"MNEMO_HTTP_TLS_CERT": str(cert)}, "http.tls_key"),
        ({"MNEMO_HTTP_TLS_KEY": str(key)}, "http.tls_cert"),
        ({"MNEMO_HTTP_TLS_CERT": str(tmp_path / "none.crt"), "MNEMO_HTTP_TLS_KEY": str(key)},
         "none.crt"),
        ({"MNEMO_HTTP_TLS_CERT": str(garbage), "MNEMO_HTTP_TLS_KEY": str(key)}, "garbage.pem"),
        ({"MNEMO_HTTP_TLS_CERT": str(cert), "MNEMO_HTTP_TLS_KEY": str(other_key)},
         "mismatch"),
        ({"MNEMO_HTTP_TLS_CERT": str(cert), "MNEMO_HTTP_TLS_KEY": str(garbage)}, "garbage.pem"),
    ]
    for extra, msg in cases:
        env = dict(base)
        env.update(extra)
        r = run(["serve"], env)
        assert r.returncode != 0, (extra, r.stderr)
        assert msg in r.stderr, (extra, r.stderr)
