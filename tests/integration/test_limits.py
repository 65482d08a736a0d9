"""Transport limits against a real server: the request budget (slow loris: 408 then close,
not extended by trickled bytes), idle keep-alive close, max connections (503 then close),
and the header size limit (431)."""

import http.client
import socket
import time

import pytest

LIMITS = {
    "MNEMO_HTTP_REQUEST_TIMEOUT_MS": "500",
    "MNEMO_HTTP_IDLE_TIMEOUT_MS": "3000",
    "MNEMO_HTTP_MAX_CONNECTIONS": "4",
    "MNEMO_HTTP_MAX_HEADER_BYTES": "2048",
}
DEADLINE_S = 20  # generous: the server should act within about a second


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    from conftest import MnemoServer
    s = MnemoServer(tmp_path_factory.mktemp("limits"), env=LIMITS).start()
    yield s
    if s.alive():
        assert s.stop() == 0, s.log()


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)


def read_until_closed(s, deadline_s=DEADLINE_S):
    """Everything the server sends until it closes; None if it is still open at the deadline."""
    data = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def get_ok(server, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE_S)
    c.request("GET", "/health")
    r = c.getresponse()
    r.read()
    assert r.status == 200
    return c


def test_half_a_header_gets_408_and_close(limited):
    with connect(limited) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        data = read_until_closed(s)
    assert data is not None, "the server kept a slow-loris connection open"
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert b'"code":"request_timeout"' in data
    assert b"connection: close" in data


def test_trickled_bytes_do_not_extend_the_budget(limited):
    with connect(limited) as s:
        s.sendall(b"GET /health HTTP/1.1\r\n")
        closed = None
        # one header byte every 50 ms for up to 10 s: an idle timer would never fire
        for _ in range(200):
            try:
                s.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = b""
                break
            s.settimeout(0.05)
            try:
                chunk = s.recv(65536)
                closed = chunk
                break
            except socket.timeout:
                continue
            except ConnectionResetError:
                closed = b""
                break
        assert closed is not None, "trickling kept the request alive past its budget"
        assert closed == b"" or closed.startswith(b"HTTP/1.1 408 ")


def test_incomplete_body_gets_408(limited):
    with connect(limited) as s:
        s.sendall(b"POST /v1/spaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"name\":")
        data = read_until_closed(s)
    assert data is not None and data.startswith(b"HTTP/1.1 408 "), data


def test_idle_keep_alive_connection_is_closed(limited):
    with connect(limited) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_closed(s)
    assert data is not None, "idle keep-alive connection was never closed"
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.count(b"HTTP/1.1 ") == 1  # an idle connection just closes, no 408


def test_headers_over_the_limit_get_431(limited):
    with connect(limited) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n")
        data = read_until_closed(s)
    assert data is not None and data.startswith(b"HTTP/1.1 431 "), data[:200]
    assert b'"code":"headers_too_large"' in data


def test_connections_beyond_the_limit_get_503(limited):
    # the earlier tests' connections are closed; wait until the server has let them go
    conns = []
    try:
        end = time.monotonic() + DEADLINE_S
        while len(conns) < 4 and time.monotonic() < end:
            c = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=DEADLINE_S)
            try:
                get_ok(limited, c)
                conns.append(c)
            except (AssertionError, ConnectionError, http.client.HTTPException):
                c.close()
                time.sleep(0.05)
        assert len(conns) == 4
        with connect(limited) as s:
            data = read_until_closed(s)
        assert data is not None and data.startswith(b"HTTP/1.1 503 "), data
        assert b"too many connections" in data
        # the admitted ones still work
        for c in conns:
            get_ok(limited, c)
        # one leaves: a new connection is admitted (once the server has seen the close)
        conns.pop().close()
        end = time.monotonic() + DEADLINE_S
        while True:
            c = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=DEADLINE_S)
            try:
                get_ok(limited, c)
                conns.append(c)
                break
            except (AssertionError, ConnectionError, http.client.HTTPException):
                c.close()
                assert time.monotonic() < end, "a freed connection slot was never reused"
                time.sleep(0.05)
    finally:
        for c in conns:
            c.close()
    assert limited.alive()
