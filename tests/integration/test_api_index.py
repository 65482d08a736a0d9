"""The HNSW index over HTTP: a space past engine.hnsw_threshold answers through
the index (path "hnsw"), every memory is found right after its remember returned
(the index thread catches up in the background), stats show the index catching
up then ready, and after a restart the saved graph is used. Index parameters
are per space. After kill -9 an older graph (saved in the background) is caught
up by difference, a corrupt one is logged and rebuilt, and SIGTERM with a big
backlog of inserts saves the graph without applying the backlog first."""
import os

import numpy as np

from conftest import wait_until

DIM = 32
ENV = {"MNEMO_ENGINE_HNSW_THRESHOLD": "200"}


def index_of(c, space):
    return c.stats(space)["index"]


def test_index_follows_writes_and_restart(server_factory):
    s = server_factory(env=ENV)
    c = s.client()
    c.create_space("ix", dim=DIM)
    assert index_of(c, "ix") == {"state": "none", "nodes": 0, "pending": 0}
    rng = np.random.default_rng(5)
    data = rng.standard_normal((600, DIM)).astype(np.float32)
    ids = []
    for b in range(0, 600, 100):
        ids += c.remember_batch("ix", [{"content": "m%d" % i, "embedding": data[i].tolist()}
                                       for i in range(b, b + 100)])
    # each memory is found by its own vector at once, whatever the index thread did yet
    for i in range(0, 600, 37):
        r = c.recall("ix", embedding=data[i].tolist(), k=1, spread=False)
        assert r["results"][0]["id"] == ids[i]
        assert r["path"] in ("hnsw", "exact")
    st = wait_until(lambda: (lambda x: x if x["state"] == "ready" else None)(index_of(c, "ix")),
                    60, what="index ready")
    assert st["nodes"] == 600 and st["pending"] == 0
    r = c.recall("ix", embedding=data[3].tolist(), k=5, spread=False)
    assert r["path"] == "hnsw" and r["results"][0]["id"] == ids[3]
    # a forgotten memory leaves the graph
    c.forget("ix", ids[3])
    wait_until(lambda: index_of(c, "ix")["pending"] == 0, 60, what="forget indexed")
    assert index_of(c, "ix")["nodes"] == 599
    r = c.recall("ix", embedding=data[3].tolist(), k=5, spread=False)
    assert ids[3] not in [h["id"] for h in r["results"]]
    c.close()
    # a clean restart loads the saved graph: ready at once
    assert s.stop() == 0
    s.start()
    c = s.client()
    assert index_of(c, "ix") == {"state": "ready", "nodes": 599, "pending": 0}
    assert "vector index loaded" in s.log() and "599 vectors from the saved graph" in s.log()
    r = c.recall("ix", embedding=data[4].tolist(), k=1, spread=False)
    assert r["path"] == "hnsw" and r["results"][0]["id"] == ids[4]
    c.close()


def create_space(c, name, dim, index=None):
    body = {"name": name, "dim": dim}
    if index is not None:
        body["index"] = index
    r = c.raw("POST", "/v1/spaces", body)
    assert r.status == 201, r.body
    return r.json


def remember_vectors(c, space, data, start=0, batch=200):
    ids = []
    for b in range(0, len(data), batch):
        ids += c.remember_batch(space, [{"content": "m%d" % (start + i),
                                         "embedding": data[i].tolist()}
                                        for i in range(b, min(b + batch, len(data)))])
    return ids


def ready(c, space, nodes=None):
    st = index_of(c, space)
    if st["state"] == "ready" and (nodes is None or st["nodes"] == nodes):
        return st
    return None


def graph_file(s, space):
    """The saved graph of the space: <data_dir>/hnsw/<sid>.hnsw (sids count from 1)."""
    d = os.path.join(s.data_dir, "hnsw")
    files = sorted(os.listdir(d)) if os.path.isdir(d) else []
    files = [f for f in files if f.endswith(".hnsw")]
    assert len(files) == 1, files
    return os.path.join(d, files[0])


def test_index_parameters_per_space(server_factory):
    s = server_factory(env=ENV)
    c = s.client()
    sp = create_space(c, "tuned", DIM, {"m": 32, "ef_construction": 100, "ef_search": 40,
                                        "quantize": True})
    assert sp["index"] == {"m": 32, "ef_construction": 100, "ef_search": 40, "quantize": True}
    # what is not given comes from the server's engine.hnsw_* defaults
    assert create_space(c, "plain", DIM)["index"] == {"m": 16, "ef_construction": 200,
                                                       "ef_search": 64, "quantize": False}
    assert create_space(c, "half", DIM, {"ef_search": 10})["index"]["ef_search"] == 10
    for index, field in [({"m": 3}, "index.m"), ({"m": 65}, "index.m"), ({"m": 0}, "index.m"),
                         ({"ef_construction": 7}, "index.ef_construction"),
                         ({"ef_search": 4097}, "index.ef_search"),
                         ({"quantize": "int8"}, "index.quantize"), ({"M": 16}, "index.M"),
                         ({"m": 2.5}, "index.m")]:
        r = c.raw("POST", "/v1/spaces", {"name": "bad", "dim": DIM, "index": index})
        assert r.status == 422, (index, r.body)
        assert r.json["error"]["message"].startswith(field), r.json["error"]["message"]
    r = c.raw("POST", "/v1/spaces", {"name": "bad", "dim": DIM, "index": 16})
    assert r.status == 422 and r.json["error"]["message"].startswith("index")
    # the quantized space answers through its index
    rng = np.random.default_rng(8)
    data = rng.standard_normal((300, DIM)).astype(np.float32)
    ids = remember_vectors(c, "tuned", data)
    wait_until(lambda: ready(c, "tuned", 300), 60, what="index ready")
    r = c.recall("tuned", embedding=data[7].tolist(), k=3, spread=False)
    assert r["path"] == "hnsw" and r["results"][0]["id"] == ids[7]
    c.close()
    # the parameters are the space's: kept across a restart with other server defaults
    s.stop()
    s.extra_env.update({"MNEMO_ENGINE_HNSW_M": "8", "MNEMO_ENGINE_HNSW_EF_SEARCH": "16"})
    s.start()
    c = s.client()
    spaces = {x["name"]: x for x in c.list_spaces()}
    assert spaces["tuned"]["index"] == {"m": 32, "ef_construction": 100, "ef_search": 40,
                                        "quantize": True}
    assert spaces["plain"]["index"]["m"] == 16
    assert c.get_space("tuned")["index"]["m"] == 32
    assert create_space(c, "later", DIM)["index"]["m"] == 8
    assert index_of(c, "tuned") == {"state": "ready", "nodes": 300, "pending": 0}
    c.close()


def test_restart_after_kill_9_catches_up_from_an_older_graph(server_factory):
    """A graph saved in the background, then more writes, then kill -9: the next start
    loads the older graph, drops what was forgotten, adds what is new and never rebuilds."""
    env = dict(ENV, MNEMO_ENGINE_HNSW_SAVE_INTERVAL_S="3")
    s = server_factory(env=env)
    c = s.client()
    create_space(c, "crash", DIM)
    rng = np.random.default_rng(11)
    data = rng.standard_normal((700, DIM)).astype(np.float32)
    ids = remember_vectors(c, "crash", data[:600])
    wait_until(lambda: ready(c, "crash", 600), 60, what="index ready")
    # the periodic save (no shutdown yet): the file appears
    d = os.path.join(s.data_dir, "hnsw")
    wait_until(lambda: os.path.isdir(d) and any(f.endswith(".hnsw") for f in os.listdir(d)),
               60, what="the background save")
    # changes the saved graph does not have: 50 forgotten, 100 new; then the crash
    for i in range(0, 100, 2):
        c.forget("crash", ids[i])
    new_ids = remember_vectors(c, "crash", data[600:], start=600)
    c.close()
    s.kill()
    s.start()
    c = s.client()
    log = s.log()
    assert "space crash: vector index loaded" in log, log
    assert "550 vectors from the saved graph" in log, log
    assert "50 dropped" in log and "100 to add in the background" in log, log
    assert "building the vector index" not in log
    # right at once (the tail is ranked exactly), through the index path
    for i in range(600, 700, 11):
        r = c.recall("crash", embedding=data[i].tolist(), k=1, spread=False)
        assert r["path"] == "hnsw" and r["results"][0]["id"] == new_ids[i - 600]
    wait_until(lambda: ready(c, "crash", 650), 60, what="caught up")
    wait_until(lambda: "vector index caught up: 100 changes" in s.log(), 30, what="log line")
    for i in list(range(0, 100, 2))[:10]:
        r = c.recall("crash", embedding=data[i].tolist(), k=3, spread=False)
        assert ids[i] not in [h["id"] for h in r["results"]]
    for i in range(101, 600, 37):
        r = c.recall("crash", embedding=data[i].tolist(), k=1, spread=False)
        assert r["path"] == "hnsw" and r["results"][0]["id"] == ids[i]
    c.close()


def test_corrupt_graph_file_is_logged_and_rebuilt(server_factory):
    s = server_factory(env=ENV)
    c = s.client()
    create_space(c, "rot", DIM)
    rng = np.random.default_rng(12)
    data = rng.standard_normal((400, DIM)).astype(np.float32)
    ids = remember_vectors(c, "rot", data)
    wait_until(lambda: ready(c, "rot", 400), 60, what="index ready")
    c.close()
    assert s.stop() == 0
    path = graph_file(s, "rot")
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x5a]))
    s.start()
    c = s.client()
    wait_until(lambda: ready(c, "rot", 400), 60, what="index rebuilt")
    log = s.log()
    assert "space rot: vector index to rebuild in the background (saved graph unusable" in log
    assert "checksum mismatch" in log
    assert "space rot: building the vector index over 400 memories" in log
    r = c.recall("rot", embedding=data[9].tolist(), k=1, spread=False)
    assert r["path"] == "hnsw" and r["results"][0]["id"] == ids[9]
    c.close()


def test_sigterm_with_a_big_backlog_exits_promptly_and_the_next_start_catches_up(
        server_factory):
    """Inserts made slow on purpose (ef_construction 4096, M 64) leave a backlog of graph
    inserts; SIGTERM saves the graph as it is instead of applying the backlog first."""
    s = server_factory(env=ENV)
    c = s.client()
    dim, N = 128, 6000
    create_space(c, "busy", dim, {"m": 64, "ef_construction": 4096})
    rng = np.random.default_rng(13)
    data = rng.standard_normal((N, dim)).astype(np.float32)
    ids = remember_vectors(c, "busy", data, batch=500)
    c.close()
    assert s.stop() == 0  # within the stop deadline (conftest), exit code 0
    log = s.log()
    assert "space busy: index thread stopped with" in log, log
    assert "space busy: vector index saved" in log
    s.start()
    c = s.client()
    log = s.log()
    assert "space busy: vector index loaded" in log, log
    assert "to add in the background" in log
    assert "building the vector index" not in log
    r = c.recall("busy", embedding=data[N - 1].tolist(), k=1, spread=False)
    assert r["results"][0]["id"] == ids[N - 1]
    wait_until(lambda: ready(c, "busy", N), 600, interval_s=0.5, what="caught up")
    c.close()
