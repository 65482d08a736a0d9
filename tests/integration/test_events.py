"""GET /v1/spaces/{space}/events (Server-Sent Events) against a real server: the
space's changes and recall summaries arrive in order with gap-free ids; other
spaces' do not; an unknown space is 404; dropping the space and shutting the
server down end the stream with a final event; a consumer that stops reading is
dropped with a final event instead of being buffered without bound."""
import http.client
import json
import signal
import socket
import threading

from conftest import expect_error

FINAL = ("dropped", "space_dropped", "closed")


class Stream:
    """A raw SSE connection: open() returns once the headers arrived (subscribed)."""

    def __init__(self, port, space, rcvbuf=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        if rcvbuf:  # set before connect, so the window is small from the start
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(30)
            sock.connect(("127.0.0.1", port))
            self.conn.sock = sock
        self.conn.request("GET", "/v1/spaces/%s/events" % space,
                          headers={"Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()

    def next(self):
        """The next event as a dict, or None at the end of the stream."""
        ev = {}
        while True:
            line = self.resp.fp.readline()
            if not line:
                return None
            line = line.decode("utf-8").rstrip("\n")
            if not line:
                if "data" in ev:
                    ev["data"] = json.loads(ev["data"])
                    return ev
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(": ")
            ev[k] = v

    def close(self):
        self.conn.close()


def test_events_in_order(server, client, space_name):
    client.create_space(space_name, dim=3)
    client.create_space(space_name + "-other", dim=3)
    st = Stream(server.port, space_name)
    assert st.resp.status == 200
    assert st.resp.getheader("content-type") == "text/event-stream"
    assert st.resp.getheader("cache-control") == "no-cache"
    a = client.remember(space_name, "alpha", [1, 0, 0], context={"session": "s"})
    client.remember(space_name + "-other", "elsewhere", [1, 0, 0])
    b = client.remember(space_name, "beta", [0.9, 0.1, 0], context={"session": "s"})
    client.forget(space_name, a, mode="suppress")
    client.recall(space_name, embedding=[1, 0, 0], k=3)
    client.forget(space_name, b)
    evs, ids = [], []
    while len(evs) < 5:
        e = st.next()
        ids.append(int(e["id"]))
        if e["event"] != "associate":  # semantic links come from the background linker
            evs.append(e)
    st.close()
    assert [e["event"] for e in evs] == ["remember", "remember", "forget", "recall", "forget"]
    assert ids == list(range(1, len(ids) + 1))
    assert all(e["data"]["space"] == space_name for e in evs)
    assert evs[0]["data"]["id"] == a and evs[1]["data"]["id"] == b
    assert evs[0]["data"]["memory_kind"] == "episodic"
    assert evs[1]["data"]["lsn"] > evs[0]["data"]["lsn"]
    assert evs[2]["data"] == {**evs[2]["data"], "id": a, "mode": "suppress", "expired": False}
    assert evs[3]["data"]["results"] == 1 and evs[3]["data"]["path"] == "exact"
    assert 0 <= evs[3]["data"]["recall_confidence"] <= 1
    assert evs[4]["data"]["mode"] == "delete"


def test_unknown_space_is_404(server, client):
    expect_error(lambda: next(client.events("no-such-space", timeout=10)), 404,
                 "space_not_found")


def test_dropping_the_space_ends_the_stream(server, client, space_name):
    client.create_space(space_name, dim=3)
    got = []
    opened = threading.Event()

    def consume():
        st = Stream(server.port, space_name)
        opened.set()
        while True:
            ev = st.next()
            if ev is None:
                break
            got.append(ev)
        st.close()

    t = threading.Thread(target=consume)
    t.start()
    assert opened.wait(30)
    client.remember(space_name, "x", [1, 0, 0])
    client.delete_space(space_name)
    t.join(30)
    assert not t.is_alive()
    assert [e["event"] for e in got] == ["remember", "space_dropped"]
    assert "dropped" in got[-1]["data"]["reason"]


def test_client_iterator(server, client, space_name):
    client.create_space(space_name, dim=3)
    it = client.events(space_name, timeout=30, max_events=2)
    out = []
    t = threading.Thread(target=lambda: out.extend(it))
    t.start()
    # the iterator's connection is subscribed once events flow; keep writing until two came
    for i in range(200):
        if len(out) >= 2 or not t.is_alive():
            break
        client.remember(space_name, "m%d" % i, [1, 0, 0])
        t.join(0.05)
    t.join(30)
    assert len(out) == 2 and out[0]["event"] == "remember"
    assert all(e["event"] in ("remember", "associate") for e in out)


def test_slow_consumer_is_dropped(server, client, space_name):
    client.create_space(space_name, dim=3)
    st = Stream(server.port, space_name, rcvbuf=65536)  # and then it reads nothing
    n = 0
    for b in range(80):  # bounded: up to 80,000 events (~14 MB of SSE text)
        client.remember_batch(space_name, [{"content": "slow %d %d" % (b, i)}
                                           for i in range(1000)])
        n += 1000
    seen, last = 0, None
    while True:
        ev = st.next()
        if ev is None:
            break
        seen += 1
        assert int(ev["id"]) == seen  # gap-free up to the end
        last = ev
    st.close()
    assert last is not None and last["event"] == "dropped"
    assert seen < n + 1
    assert client.stats(space_name)["memories"] == n  # the writes were never held back
    assert server.alive()


def test_shutdown_ends_streams_with_closed(server_factory):
    s = server_factory()
    c = s.client()
    c.create_space("ev", dim=3)
    st = Stream(s.port, "ev")
    c.remember("ev", "before shutdown", [1, 0, 0])
    c.close()
    first = st.next()
    assert first["event"] == "remember"
    result = {}
    t = threading.Thread(target=lambda: result.update(rc=s.stop(signal.SIGTERM)))
    t.start()
    last = st.next()
    assert last["event"] == "closed"
    assert st.next() is None
    st.close()
    t.join(60)
    assert result.get("rc") == 0
