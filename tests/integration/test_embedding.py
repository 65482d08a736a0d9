"""The embedding provider ([embedding], docs/api.md "Embedding provider") end to end: a real
mnemo process and the local stand-in provider bench/embed/standin.py (an OpenAI-compatible
POST /v1/embeddings on 127.0.0.1 with deterministic vectors and switches to fail).

Memories remembered with text only get their vector in the background, through the WAL;
recalls with text only embed their cue; a provider that is down, slow, failing or wrong
never costs an acknowledgement, recalls fall back to words with the reason
embedding_unavailable, and the backfill gives every memory its vector once the provider
answers again, after a restart too. Forgotten memories never get one."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request

import pytest

from conftest import expect_error, mnemo_bin, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "..", "..", "bench", "embed", "standin.py")
sys.path.insert(0, os.path.dirname(STANDIN))
import standin as standin_mod  # noqa: E402  (the same vectors, computed here to compare)

DIM = 32
DEADLINE_S = 30


class Standin:
    """The stand-in provider as a process; stop() makes it down, start() brings it back on
    the same port."""

    def __init__(self, args=None, tls=False):
        self.args = list(args or [])
        self.tls = tls
        self.port = 0
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", STANDIN, "--port", str(self.port), "--dim", str(DIM)]
            + self.args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = []
        t = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(DEADLINE_S)
        m = re.match(r"listening on [\d.]+:(\d+)", line[0] if line else "")
        assert m, "the stand-in did not start: %r" % line
        self.port = int(m.group(1))
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=DEADLINE_S)

    @property
    def url(self):
        return "%s://127.0.0.1:%d/v1/embeddings" % ("https" if self.tls else "http", self.port)

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     method=method)
        with urllib.request.urlopen(req, timeout=DEADLINE_S) as r:
            return json.loads(r.read())

    def mode(self, mode, delay_s=0):
        return self._call("POST", "/control", {"mode": mode, "delay_s": delay_s})

    def stats(self):
        return self._call("GET", "/stats")


@pytest.fixture
def standin():
    s = Standin().start()
    yield s
    s.stop()


def provider_env(standin, **over):
    env = {
        "MNEMO_EMBEDDING_URL": standin.url,
        "MNEMO_EMBEDDING_MODEL": "standin",
        "MNEMO_EMBEDDING_DIM": str(DIM),
        "MNEMO_EMBEDDING_BATCH_SIZE": "4",
        "MNEMO_EMBEDDING_TIMEOUT_MS": "2000",
        "MNEMO_EMBEDDING_RETRY_MAX_MS": "200",
        "MNEMO_EMBEDDING_BACKFILL_INTERVAL_S": "1",
    }
    env.update({("MNEMO_EMBEDDING_" + k.upper()): str(v) for k, v in over.items()})
    return env


def metric(client, name, labels=None):
    """The value of one sample of /metrics (0 when absent)."""
    text = client.metrics()
    want = name + ("{%s}" % ",".join('%s="%s"' % kv for kv in labels.items()) if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


def vector_of(client, space, mid):
    m = client.get(space, mid, include_embedding=True)
    return m.get("embedding")


def wait_vector(client, space, mid, deadline_s=DEADLINE_S):
    return wait_until(lambda: vector_of(client, space, mid), deadline_s,
                      what="the vector of %s" % mid)


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) *
                                                       sum(y * y for y in b))


def expected(text):
    return standin_mod.Model(DIM, 0).embed(text)


# ---- the happy path ----

def test_text_only_memories_get_vectors_and_recall_uses_them(server_factory, standin):
    srv = server_factory(env=provider_env(standin))
    c = srv.client()
    c.create_space("notes", DIM)
    c.create_space("other-dim", DIM + 1)
    assert c.get_space("notes")["embedding_provider"] == {"model": "standin"}
    assert c.get_space("other-dim")["embedding_provider"] is None
    texts = ["the red apple pie recipe", "the red apple pie recipe today",
             "trains leave the station at noon", "quantum chromodynamics lecture notes"]
    ids = [c.remember("notes", t) for t in texts]  # acknowledged without a vector
    for mid, t in zip(ids, texts):
        v = wait_vector(c, "notes", mid)
        assert len(v) == DIM
        assert cosine(v, expected(t)) > 0.999  # the provider's vector for this text
    # ranked by vector and words (the existing hybrid fusion)
    r = c.recall("notes", text="apple pie", k=2, spread=False)
    assert r["path"] in ("exact+keyword", "hnsw+keyword"), r["path"]
    assert {h["memory"]["id"] for h in r["results"]} == set(ids[:2])
    assert all(h["similarity"] is not None for h in r["results"])
    assert all("embedding_unavailable" not in h["confidence"]["reasons"] for h in r["results"])
    # a vector-only cue (the provider's vector of a text) finds by meaning alone
    r = c.recall("notes", embedding=expected("red apple pie recipe"), k=1, spread=False)
    assert r["path"] == "exact" and r["results"][0]["memory"]["id"] in ids[:2]
    # the semantic linker links the similar pair, as if the vectors came with them
    wait_until(lambda: any(a["kind"] == "semantic" and a["id"] == ids[1]
                           for a in c.associations("notes", ids[0])),
               DEADLINE_S, what="the semantic link")
    # a space of another dim never asks the provider
    before = standin.stats()["texts"]
    c.remember("other-dim", "not embedded here")
    c.recall("other-dim", text="not embedded", k=1)
    assert standin.stats()["texts"] == before
    assert metric(c, "mnemo_embedding_embedded_total") == len(texts)
    assert metric(c, "mnemo_embedding_requests_total", {"op": "query", "result": "ok"}) == 1
    # a memory that comes with its vector keeps it
    own = [1.0] + [0.0] * (DIM - 1)
    mid = c.remember("notes", "my own vector", embedding=own)
    r = c.recall("notes", text="own vector", k=1, spread=False)
    assert r["results"][0]["memory"]["id"] == mid
    assert vector_of(c, "notes", mid) == own
    assert "my own vector" not in standin.stats()["inputs"]
    c.close()


def test_texts_go_in_batches(server_factory, standin):
    srv = server_factory(env=provider_env(standin))
    c = srv.client()
    c.create_space("b", DIM)
    standin.stop()  # they all queue while the provider is down
    ids = [c.remember("b", "note number %d" % i) for i in range(10)]
    standin.start()
    for mid in ids:
        wait_vector(c, "b", mid)
    st = standin.stats()
    assert sum(st["batches"]) == 10
    assert max(st["batches"]) > 1 and max(st["batches"]) <= 4  # embedding.batch_size
    c.close()


@pytest.mark.parametrize("mode", ["chunked", "eof"])
def test_answers_chunked_or_ended_by_close(server_factory, standin, mode):
    srv = server_factory(env=provider_env(standin))
    c = srv.client()
    c.create_space("w", DIM)
    standin.mode(mode)
    texts = ["framing test %d with some more words to span chunks" % i for i in range(6)]
    ids = [c.remember("w", t) for t in texts]
    for mid, t in zip(ids, texts):
        assert cosine(wait_vector(c, "w", mid), expected(t)) > 0.999
    r = c.recall("w", text="framing test 3", k=1, spread=False)
    assert r["path"] == "exact+keyword"
    assert metric(c, "mnemo_embedding_requests_total", {"op": "memory", "result": "malformed"}) == 0
    c.close()


def test_only_the_spaces_listed_use_the_provider(server_factory, standin):
    srv = server_factory(env=provider_env(standin, spaces="mine, theirs"))
    c = srv.client()
    for name in ("mine", "other"):
        c.create_space(name, DIM)
    assert c.get_space("mine")["embedding_provider"] == {"model": "standin"}
    assert c.get_space("other")["embedding_provider"] is None
    a = c.remember("mine", "listed space")
    b = c.remember("other", "unlisted space")
    wait_vector(c, "mine", a)
    r = c.recall("other", text="unlisted", k=1, spread=False)
    assert r["path"] == "keyword" and not r["results"][0]["confidence"]["reasons"]
    assert vector_of(c, "other", b) is None
    assert standin.stats()["inputs"] == ["listed space"]
    c.close()


# ---- a provider that is down, slow or wrong ----

def test_provider_down_then_back(server_factory, standin):
    srv = server_factory(env=provider_env(standin))
    c = srv.client()
    c.create_space("d", DIM)
    standin.stop()
    mid = c.remember("d", "written while the provider is down")  # acknowledged
    r = c.recall("d", text="provider down", k=1)
    assert r["path"] == "keyword"
    hit = r["results"][0]
    assert hit["memory"]["id"] == mid
    assert "embedding_unavailable" in hit["confidence"]["reasons"]
    assert metric(c, "mnemo_embedding_recall_fallbacks_total") == 1
    # it asked the provider, or skipped it because a batch had just found it unreachable
    assert metric(c, "mnemo_embedding_requests_total",
                  {"op": "query", "result": "unreachable"}) + \
        metric(c, "mnemo_embedding_recall_skipped_total") == 1
    wait_until(lambda: metric(c, "mnemo_embedding_requests_total",
                              {"op": "memory", "result": "unreachable"}) >= 2,
               DEADLINE_S, what="retries")
    assert metric(c, "mnemo_embedding_up") == 0
    assert vector_of(c, "d", mid) is None
    standin.start()  # back on the same port: the queue or the backfill delivers
    v = wait_vector(c, "d", mid)
    assert cosine(v, expected("written while the provider is down")) > 0.999
    assert metric(c, "mnemo_embedding_up") == 1
    r = c.recall("d", text="provider down", k=1)
    assert r["path"] == "exact+keyword"
    assert "embedding_unavailable" not in r["results"][0]["confidence"]["reasons"]
    c.close()


def test_backlog_full_is_backfilled(server_factory, standin):
    srv = server_factory(env=provider_env(standin, max_backlog=2))
    c = srv.client()
    c.create_space("full", DIM)
    standin.stop()
    ids = [c.remember("full", "overflowing text %d" % i) for i in range(6)]
    wait_until(lambda: metric(c, "mnemo_embedding_backlog_full_total") >= 4, DEADLINE_S,
               what="texts past the backlog")
    assert metric(c, "mnemo_embedding_backlog") <= 2
    standin.start()
    for mid in ids:
        wait_vector(c, "full", mid)
    assert metric(c, "mnemo_embedding_backfilled_total") >= 4
    c.close()


def test_restart_with_a_backlog_backfills(server_factory, standin, tmp_path):
    env = provider_env(standin)
    srv = server_factory(env=env, data_dir=tmp_path / "d")
    c = srv.client()
    c.create_space("r", DIM)
    standin.stop()
    ids = [c.remember("r", "remembered before the restart %d" % i) for i in range(5)]
    c.close()
    assert srv.stop() == 0, srv.log()
    standin.start()
    srv.start()
    c = srv.client()
    for mid in ids:
        wait_vector(c, "r", mid)
    assert metric(c, "mnemo_embedding_backfilled_total") == 5
    c.close()
    # the vectors came through the WAL: a second restart has them without the provider
    standin.stop()
    assert srv.stop() == 0, srv.log()
    srv.start()
    c = srv.client()
    assert all(vector_of(c, "r", mid) for mid in ids)
    r = c.recall("r", text="remembered restart", k=5, exact=True, spread=False)
    assert r["path"] == "keyword"  # the provider is down for the cue
    r = c.recall("r", embedding=expected("remembered before the restart 3"), k=1, spread=False)
    assert r["results"][0]["memory"]["id"] == ids[3]
    c.close()
    # the offline check reads the embed entries like any other
    assert srv.stop() == 0, srv.log()
    p = subprocess.run([mnemo_bin(), "check", str(tmp_path / "d")], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("mode,result", [("fail", "http_error"), ("malformed", "malformed"),
                                         ("wrong_dim", "malformed"), ("close", "unreachable")])
def test_errors_are_retried(server_factory, standin, mode, result):
    srv = server_factory(env=provider_env(standin))
    c = srv.client()
    c.create_space("e", DIM)
    standin.mode(mode)
    mid = c.remember("e", "a text the provider mangles")
    wait_until(lambda: metric(c, "mnemo_embedding_requests_total",
                              {"op": "memory", "result": result}) >= 2,
               DEADLINE_S, what="two failed tries")
    r = c.recall("e", text="mangles", k=1)
    assert r["path"] == "keyword"
    assert "embedding_unavailable" in r["results"][0]["confidence"]["reasons"]
    # it asked (or, the provider not answering at all, skipped it after a failed batch)
    skipped = metric(c, "mnemo_embedding_recall_skipped_total")
    assert skipped == 0 or result == "unreachable"
    assert metric(c, "mnemo_embedding_requests_total",
                  {"op": "query", "result": result}) + skipped == 1
    assert vector_of(c, "e", mid) is None
    assert srv.alive()
    standin.mode("ok")
    wait_vector(c, "e", mid)
    c.close()


def test_timeouts(server_factory, standin):
    # retry_max_ms 60 s: after a timeout, recalls skip the provider for 5 s (the cap)
    srv = server_factory(env=provider_env(standin, timeout_ms=300, retry_max_ms=60000))
    c = srv.client()
    c.create_space("t", DIM)
    standin.mode("slow", 3.0)
    # nothing remembered yet: the only request is the cue's, which times out
    r = c.recall("t", text="slow provider", k=1)
    assert r["path"] == "keyword" and r["results"] == []
    assert metric(c, "mnemo_embedding_requests_total", {"op": "query", "result": "timeout"}) == 1
    # the next recalls do not wait for it again: words at once, no request
    mid = c.remember("t", "slow provider")
    r = c.recall("t", text="slow provider", k=1)
    assert r["path"] == "keyword"
    assert "embedding_unavailable" in r["results"][0]["confidence"]["reasons"]
    assert metric(c, "mnemo_embedding_requests_total", {"op": "query", "result": "timeout"}) == 1
    assert metric(c, "mnemo_embedding_recall_skipped_total") == 1
    assert metric(c, "mnemo_embedding_recall_fallbacks_total") == 2
    wait_until(lambda: metric(c, "mnemo_embedding_requests_total",
                              {"op": "memory", "result": "timeout"}) >= 1,
               DEADLINE_S, what="a timed-out batch")
    standin.mode("ok")
    wait_vector(c, "t", mid)
    c.close()


def test_stop_does_not_wait_for_a_slow_provider(server_factory, standin, tmp_path):
    # a batch waits 300 s for its answer; the stop cancels it (the fixture's stop deadline,
    # 60 s, would fail otherwise) and the next start backfills the memory
    srv = server_factory(env=provider_env(standin, timeout_ms=300000), data_dir=tmp_path / "d")
    c = srv.client()
    c.create_space("s", DIM)
    standin.mode("slow", 300)
    mid = c.remember("s", "in flight at the stop")
    wait_until(lambda: "in flight at the stop" in standin.stats()["inputs"], DEADLINE_S,
               what="the text at the provider")
    c.close()
    assert srv.stop() == 0, srv.log()
    standin.mode("ok")
    srv.start()
    c = srv.client()
    wait_vector(c, "s", mid)
    c.close()


def test_forgotten_memory_never_gets_a_vector(server_factory, standin):
    srv = server_factory(env=provider_env(standin, timeout_ms=60000))
    c = srv.client()
    c.create_space("f", DIM)
    standin.mode("slow", 5.0)  # long enough for the forget to land while it waits
    text = "forgotten while its vector is computed"
    mid = c.remember("f", text)
    wait_until(lambda: text in standin.stats()["inputs"], DEADLINE_S,
               what="the text at the provider")
    c.forget("f", mid)  # between the batch and the write
    wait_until(lambda: metric(c, "mnemo_embedding_skipped_total") >= 1, DEADLINE_S,
               what="the vector skipped")
    assert metric(c, "mnemo_embedding_embedded_total") == 0
    expect_error(lambda: c.get("f", mid, include_embedding=True), 404)
    standin.mode("ok")
    # the backfill never brings it back (it scans live memories only)
    kept = c.remember("f", "kept")
    wait_vector(c, "f", kept)
    assert metric(c, "mnemo_embedding_embedded_total") == 1
    assert c.stats("f")["memories"] == 1
    c.close()


def test_forgotten_while_queued_is_never_sent(server_factory, standin):
    srv = server_factory(env=provider_env(standin))
    c = srv.client()
    c.create_space("q", DIM)
    standin.stop()
    gone = c.remember("q", "forgotten while it waits")
    kept = c.remember("q", "kept while it waits")
    c.forget("q", gone)
    standin.start()
    wait_vector(c, "q", kept)
    wait_until(lambda: metric(c, "mnemo_embedding_backlog") == 0, DEADLINE_S,
               what="the backlog drained")
    assert standin.stats()["inputs"] == ["kept while it waits"]  # the store is read per batch
    expect_error(lambda: c.get("q", gone), 404)
    c.close()


def test_api_key_from_the_environment(server_factory):
    s = Standin(["--api-key", "s3cret-key"]).start()
    try:
        env = provider_env(s, api_key_env="MY_PROVIDER_KEY")
        env["MY_PROVIDER_KEY"] = "s3cret-key"
        srv = server_factory(env=env)
        c = srv.client()
        c.create_space("k", DIM)
        mid = c.remember("k", "behind a key")
        wait_vector(c, "k", mid)
        assert "s3cret-key" not in srv.log()
        c.close()
    finally:
        s.stop()


# ---- HTTPS ----

@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_https_provider_is_verified(server_factory, tmp_path):
    from test_tls import make_cert
    cert, key = make_cert(tmp_path)
    s = Standin(["--tls-cert", str(cert), "--tls-key", str(key)], tls=True).start()
    try:
        # its certificate verifies against ca_file: vectors arrive over TLS
        srv = server_factory(env=provider_env(s, ca_file=str(cert)))
        c = srv.client()
        c.create_space("tls", DIM)
        mid = c.remember("tls", "sent over tls")
        v = wait_vector(c, "tls", mid)
        assert cosine(v, expected("sent over tls")) > 0.999
        r = c.recall("tls", text="over tls", k=1, spread=False)
        assert r["path"] == "exact+keyword"
        c.close()
        # against the system's CAs the self-signed certificate does not verify: no vector,
        # the remember is acknowledged all the same, and the log says why
        srv2 = server_factory(env=provider_env(s))
        c = srv2.client()
        c.create_space("tls", DIM)
        mid = c.remember("tls", "never sent")
        wait_until(lambda: metric(c, "mnemo_embedding_requests_total",
                                  {"op": "memory", "result": "unreachable"}) >= 1,
                   DEADLINE_S, what="a refused handshake")
        assert vector_of(c, "tls", mid) is None
        # the log is read from the server's stderr by a thread: the line may trail the metric
        wait_until(lambda: "does not verify" in srv2.log(), DEADLINE_S,
                   what="the log saying why: " + srv2.log()[-2000:])
        c.close()
    finally:
        s.stop()


# ---- gRPC: the same paths ----

def test_grpc_remember_and_recall_by_text(server_factory, standin):
    from grpc_util import Grpc, pb
    srv = server_factory(env=provider_env(standin))
    g = Grpc("127.0.0.1:%d" % srv.grpc_port)
    c = srv.client()
    try:
        g.CreateSpace(pb().CreateSpaceRequest(name="g", dim=DIM, metric=pb().METRIC_COSINE))
        assert g.GetSpace(pb().SpaceRequest(space="g")).embedding_model == "standin"
        g.CreateSpace(pb().CreateSpaceRequest(name="g2", dim=DIM + 1))
        assert not g.GetSpace(pb().SpaceRequest(space="g2")).HasField("embedding_model")
        one = g.Remember(pb().RememberRequest(space="g", memory=pb().Memory(
            content="the lighthouse keeper lights the lamp"))).id
        ids = g.RememberBatch(iter([pb().RememberRequest(space="g", memory=pb().Memory(
            content=t)) for t in ("ships pass the harbour", "the lamp is bright")])).ids
        for mid in [one] + list(ids):
            wait_vector(c, "g", mid)
        r = g.Recall(pb().RecallRequest(space="g", text="lighthouse lamp", k=1, spread=False))
        assert r.path == "exact+keyword"
        assert r.results[0].memory.id == one
        standin.stop()
        r = g.Recall(pb().RecallRequest(space="g", text="lighthouse lamp", k=1, spread=False))
        assert r.path == "keyword"
        assert "embedding_unavailable" in r.results[0].confidence.reasons
    finally:
        g.close()
        c.close()


# ---- the stand-in's fastText mode (for benchmarks through the real provider path) ----

def test_standin_serves_fasttext_vectors(server_factory, tmp_path):
    vec = tmp_path / "tiny.vec"
    rows = {"cat": [1, 0, 0, 0], "kitten": [0.9, 0.1, 0, 0], "car": [0, 0, 1, 0],
            "truck": [0, 0, 0.9, 0.1]}
    vec.write_text("%d 4\n" % len(rows) + "".join(
        "%s %s\n" % (w, " ".join(str(x) for x in v)) for w, v in rows.items()))
    s = Standin(["--vectors", str(vec)])
    s.start()
    try:
        srv = server_factory(env=provider_env(s, dim=4))
        c = srv.client()
        c.create_space("ft", 4)
        a = c.remember("ft", "a cat")
        b = c.remember("ft", "a truck")
        va = wait_vector(c, "ft", a)
        wait_vector(c, "ft", b)
        assert cosine(va, [1, 0, 0, 0]) > 0.999  # the mean of the known words, normalised
        # no shared word, yet the fastText neighbours meet
        r = c.recall("ft", text="kitten", k=1, spread=False)
        assert r["path"] == "exact+keyword"
        assert r["results"][0]["memory"]["id"] == a
        r = c.recall("ft", text="car", k=1, spread=False)
        assert r["results"][0]["memory"]["id"] == b
        c.close()
    finally:
        s.stop()


# ---- MCP: an agent that only has text ----

def test_mcp_text_only_agent(server_factory, standin):
    from test_mcp import Session  # the raw-HTTP MCP session of test_mcp.py
    srv = server_factory(env=provider_env(standin))
    s = Session(srv)
    a = s.ok("remember", space="agent", content="the user prefers green tea in the morning")
    s.ok("remember", space="agent", content="the build server is called hydra")
    c = srv.client()
    assert c.get_space("agent")["dim"] == DIM  # created at the provider's dim
    wait_vector(c, "agent", a["id"])
    wait_until(lambda: metric(c, "mnemo_embedding_embedded_total") == 2, DEADLINE_S,
               what="both vectors")
    r = s.ok("recall", space="agent", text="green tea")
    assert r["path"] == "exact+keyword"
    assert r["results"][0]["memory"]["id"] == a["id"]
    c.close()


# ---- configuration ----

@pytest.mark.parametrize("env,message", [
    ({"MNEMO_EMBEDDING_URL": "http://127.0.0.1:9/v1/embeddings",
      "MNEMO_EMBEDDING_MODEL": "m"}, "embedding.dim is required"),
    ({"MNEMO_EMBEDDING_URL": "http://127.0.0.1:9/v1/embeddings",
      "MNEMO_EMBEDDING_DIM": "8"}, "embedding.model is required"),
    ({"MNEMO_EMBEDDING_URL": "ftp://127.0.0.1/x", "MNEMO_EMBEDDING_MODEL": "m",
      "MNEMO_EMBEDDING_DIM": "8"}, "must start with http:// or https://"),
    ({"MNEMO_EMBEDDING_URL": "http://127.0.0.1:99999/v1", "MNEMO_EMBEDDING_MODEL": "m",
      "MNEMO_EMBEDDING_DIM": "8"}, "port must be in 1..65535"),
    ({"MNEMO_EMBEDDING_URL": "http://127.0.0.1:9/v1", "MNEMO_EMBEDDING_MODEL": "m",
      "MNEMO_EMBEDDING_DIM": "8", "MNEMO_EMBEDDING_API_KEY_ENV": "MNEMO_TEST_NO_SUCH_KEY"},
     "MNEMO_TEST_NO_SUCH_KEY, which is not set"),
    ({"MNEMO_EMBEDDING_API_KEY_ENV": "not a name"}, "must be the name of an environment"),
    ({"MNEMO_EMBEDDING_DIM": "5000"}, "embedding.dim must be in 0..4096"),
])
def test_bad_config_is_a_clear_startup_error(tmp_path, env, message):
    e = dict(os.environ)
    e.update({"MNEMO_HTTP_PORT": "0", "MNEMO_GRPC_PORT": "0",
              "MNEMO_STORAGE_DATA_DIR": str(tmp_path / "d")})
    e.pop("MNEMO_TEST_NO_SUCH_KEY", None)
    e.update(env)
    p = subprocess.run([mnemo_bin(), "serve"], env=e, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert message in p.stderr, p.stderr
