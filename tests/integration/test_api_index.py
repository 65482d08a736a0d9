"""The HNSW index over HTTP: a space past engine.hnsw_threshold answers through
the index (path "hnsw"), every memory is found right after its remember returned
(the index thread catches up in the background), stats show the index catching
up then ready, and after a restart the saved graph is used."""
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
    assert "vector index of 599 vectors loaded" in s.log()
    r = c.recall("ix", embedding=data[4].tolist(), k=1, spread=False)
    assert r["path"] == "hnsw" and r["results"][0]["id"] == ids[4]
    c.close()
