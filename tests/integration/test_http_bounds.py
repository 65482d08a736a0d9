"""Bounds on what HTTP clients make the server hold (issue 14, sections 1 and 5), against a
real server:

- a body is never read where no handler would take it: GET/HEAD (400), a path that answers
  404 or 405; the answer comes at once, before the body, and the connection closes;
- one connection holds at most http.max_pipelined_bytes of unanswered requests: past it the
  server stops reading (back-pressure), however many requests are pipelined behind a
  response the client does not read;
- the server holds at most http.max_inflight_bytes of bodies: a new body past it is
  answered 503 with Retry-After at once;
- event streams: at most http.max_streams (503) and http.max_streams_per_key per API key
  (429); streams do not count against http.max_connections, so /health and /ready answer
  when streams fill it; a stream ends after http.stream_max_lifetime_s with `closed`.
"""

import hashlib
import http.client
import json
import select
import socket
import time

import pytest

from test_limits import read_until_closed

DEADLINE_S = 20  # generous bounds on waits; the server should act at once
MIB = 1 << 20


def connect(server, rcvbuf=None, sndbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    s.settimeout(DEADLINE_S)
    s.connect(("127.0.0.1", server.port))
    return s


def head_of(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.lower(), v.strip()) for k, _, v in (x.partition(":") for x in lines[1:]))
    return int(lines[0].split()[1]), headers, body


def key_entry(key, role, spaces):
    digest = hashlib.sha256(key.encode()).hexdigest()
    return '{sha256 = "%s", role = "%s", spaces = [%s]}' % (
        digest, role, ", ".join('"%s"' % s for s in spaces))


AUTH = {
    "MNEMO_AUTH_ENABLED": "true",
    "MNEMO_AUTH_KEYS": "[%s]" % ", ".join([
        key_entry("admin-key", "admin", ["*"]),
        key_entry("reader-one", "read", ["ev"]),
        key_entry("reader-two", "read", ["ev"]),
    ]),
}


# ---- bodies nobody reads ----

@pytest.fixture(scope="module")
def authed(tmp_path_factory):
    from conftest import MnemoServer
    s = MnemoServer(tmp_path_factory.mktemp("bounds"), env=AUTH).start()
    yield s
    if s.alive():
        assert s.stop() == 0, s.log()


@pytest.mark.parametrize("request_line,status", [
    (b"GET /health", 400),              # open route: no key needed, no body taken
    (b"GET /openapi.json", 400),
    (b"HEAD /ready", 400),
    (b"POST /no/such/path", 404),       # no route
    (b"PUT /health", 405),              # the path exists, not with this method
])
def test_body_nobody_reads_is_refused_before_it_arrives(authed, request_line, status):
    # Only the headers are sent: the answer must come without waiting for the 1 MiB.
    with connect(authed) as s:
        s.sendall(request_line + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % MIB)
        data = read_until_closed(s)
    assert data is not None, "the server waited for a body it will never use"
    got, headers, body = head_of(data)
    assert got == status, data[:300]
    assert headers.get("connection") == "close"
    if status == 405:
        assert "GET" in headers.get("allow", "")
    assert authed.alive()


def test_chunked_body_on_get_is_refused(authed):
    with connect(authed) as s:
        s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        data = read_until_closed(s)
    assert data is not None and head_of(data)[0] == 400, data


def test_get_without_body_still_works(authed):
    c = http.client.HTTPConnection("127.0.0.1", authed.port, timeout=DEADLINE_S)
    for path in ("/health", "/ready"):
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        assert r.status == 200
    c.close()


# ---- one connection: bytes pipelined behind a response the client does not read ----

def stall_pipeline(server, gets, posts, body_bytes, limit_bytes):
    """Pipelines `gets` GET /openapi.json (their answers fill the socket, which the client
    never reads), then `posts` POSTs of body_bytes each, sending until the server stops
    taking bytes (1 s without progress) or limit_bytes are sent. Returns the bytes sent."""
    s = connect(server, rcvbuf=4096, sndbuf=65536)
    s.setblocking(False)
    get = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
    post_head = (b"POST /v1/spaces/nosuch/recall HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % body_bytes)
    body = b" " * body_bytes
    chunks = [get] * gets + [post_head + body] * posts
    sent = 0
    end = time.monotonic() + 60
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                if sent >= limit_bytes or time.monotonic() > end:
                    return sent
                _, w, _ = select.select([], [s], [], 1.0)
                if not w:
                    return sent  # the server stopped reading
                try:
                    n = s.send(view)
                except BlockingIOError:
                    continue
                sent += n
                view = view[n:]
        return sent
    finally:
        s.close()


def test_a_stalled_pipeline_holds_at_most_max_pipelined_bytes(server_factory):
    srv = server_factory(env={
        "MNEMO_HTTP_MAX_PIPELINED": "4096",         # the count would allow all of them
        "MNEMO_HTTP_MAX_PIPELINED_BYTES": str(MIB),
        "MNEMO_HTTP_MAX_BODY_BYTES": str(MIB),
    })
    sent = stall_pipeline(srv, gets=200, posts=96, body_bytes=MIB, limit_bytes=96 * MIB)
    # What was taken: the cap (1 MiB), one more body at most, one read chunk, and what the
    # kernel buffers hold on both ends (a few MiB on loopback); never the 96 MiB sent at it.
    assert sent < 40 * MIB, "the server read %d MiB behind an unread response" % (sent // MIB)
    assert srv.alive()
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=DEADLINE_S)
    c.request("GET", "/health")
    assert c.getresponse().status == 200


# ---- the whole server: bodies in flight ----

def send_head(server, length, path=b"/v1/spaces/nosuch/recall"):
    s = connect(server)
    s.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % length)
    return s


def test_bodies_past_max_inflight_bytes_get_503_with_retry_after(server_factory):
    srv = server_factory(env={
        "MNEMO_HTTP_MAX_BODY_BYTES": str(MIB),
        "MNEMO_HTTP_MAX_INFLIGHT_BYTES": str(2 * MIB),
    })
    # two bodies announced and started, never finished: the budget is spent
    held = [send_head(srv, MIB), send_head(srv, MIB)]
    for s in held:
        s.sendall(b"{" * 1024)
    try:
        def third():
            with send_head(srv, 1000) as s:
                return read_until_closed(s)
        data = third()
        assert data is not None, "a body past the budget was waited for"
        status, headers, body = head_of(data)
        assert status == 503, data[:300]
        assert headers.get("retry-after") == "1"
        assert headers.get("connection") == "close"
        assert json.loads(body)["error"]["code"] == "unavailable"
        assert b"max_inflight_bytes" in body
        # requests without a body still pass
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=DEADLINE_S)
        c.request("GET", "/health")
        assert c.getresponse().status == 200
        c.close()
    finally:
        for s in held:
            s.close()
    # the budget comes back when the held requests go
    end = time.monotonic() + DEADLINE_S
    while True:
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=DEADLINE_S)
        c.request("POST", "/v1/spaces/nosuch/recall", body=b"{}",
                  headers={"Content-Type": "application/json"})
        status = c.getresponse().status
        c.close()
        if status != 503:
            break
        assert time.monotonic() < end, "the budget was never given back"
        time.sleep(0.05)


# ---- event streams ----

def open_stream(server, space, key=None):
    """(200, response, connection) with the stream open: keep the response, the socket is
    its (closing it ends the stream); or (status, response, body)."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE_S)
    h = {"Accept": "text/event-stream"}
    if key:
        h["Authorization"] = "Bearer " + key
    c.request("GET", "/v1/spaces/%s/events" % space, headers=h)
    r = c.getresponse()
    if r.status != 200:
        body = r.read()
        c.close()
        return r.status, r, body
    r.fp.readline()  # ": mnemo events"
    return 200, r, c


def create_space(server, name, key=None):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE_S)
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    c.request("POST", "/v1/spaces", body=json.dumps({"name": name, "dim": 3}), headers=h)
    r = c.getresponse()
    r.read()
    assert r.status == 201, r.status
    c.close()


def get_status(server, path):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE_S)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    except (ConnectionError, http.client.HTTPException):
        return None
    finally:
        c.close()


def close_all(streams):
    for r, c in streams:
        r.close()
        c.close()


def test_streams_beyond_max_streams_get_503(server_factory):
    srv = server_factory(env={"MNEMO_HTTP_MAX_STREAMS": "3"})
    create_space(srv, "ev")
    open_ = []
    try:
        for _ in range(3):
            st, r, c = open_stream(srv, "ev")
            assert st == 200
            open_.append((r, c))
        st, r, body = open_stream(srv, "ev")
        assert st == 503, body
        assert r.getheader("retry-after")
        assert b"max_streams" in body
        # one closes: a slot comes back once the server has seen it go
        for x in open_.pop():
            x.close()
        end = time.monotonic() + DEADLINE_S
        while True:
            st, r, c = open_stream(srv, "ev")
            if st == 200:
                open_.append((r, c))
                break
            assert time.monotonic() < end, "a closed stream's slot never came back"
            time.sleep(0.05)
    finally:
        close_all(open_)


def test_streams_do_not_lock_out_health_and_ready(server_factory):
    srv = server_factory(env={"MNEMO_HTTP_MAX_CONNECTIONS": "2", "MNEMO_HTTP_MAX_STREAMS": "8"})
    create_space(srv, "ev")
    open_ = []
    try:
        for _ in range(6):  # three times the connection budget
            st, r, c = open_stream(srv, "ev")
            assert st == 200
            open_.append((r, c))
        for path in ("/health", "/ready", "/health"):
            assert get_status(srv, path) == 200, path
    finally:
        close_all(open_)


def test_streams_per_key_get_429_and_other_keys_still_stream(server_factory):
    env = dict(AUTH)
    env["MNEMO_HTTP_MAX_STREAMS_PER_KEY"] = "2"
    srv = server_factory(env=env)
    create_space(srv, "ev", key="admin-key")
    open_ = []
    try:
        for _ in range(2):
            st, r, c = open_stream(srv, "ev", key="reader-one")
            assert st == 200
            open_.append((r, c))
        st, r, body = open_stream(srv, "ev", key="reader-one")
        assert st == 429, body
        assert json.loads(body)["error"]["code"] == "too_many_streams"
        assert r.getheader("retry-after")
        for _ in range(2):  # another key has its own share
            st, r, c = open_stream(srv, "ev", key="reader-two")
            assert st == 200
            open_.append((r, c))
        assert get_status(srv, "/health") == 200
    finally:
        close_all(open_)


def test_a_stream_ends_after_its_lifetime(server_factory):
    srv = server_factory(env={"MNEMO_HTTP_STREAM_MAX_LIFETIME_S": "1"})
    create_space(srv, "ev")
    st, r, c = open_stream(srv, "ev")
    assert st == 200
    try:
        rest = r.read()  # returns at the end of the stream (the server closes it)
    finally:
        c.close()
    assert b"event: closed" in rest, rest
    assert b"stream_max_lifetime_s" in rest
    assert srv.alive()
