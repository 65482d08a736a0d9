"""Recall over HTTP: the exact path equals a numpy brute force for every metric,
filters and threshold select the same memories as numpy, and bad requests are 422."""

import numpy as np
import pytest

from conftest import expect_error

REASONS = {"low_similarity", "low_encoding_confidence", "associative", "decayed", "low_support"}
CATEGORIES = {"high", "medium", "low", "very_low"}


def brute_force(metric, data, q):
    """(similarity, distance) per row, computed in float64 from the float32 values."""
    d = data.astype(np.float64)
    qq = q.astype(np.float64)
    if metric == "cosine":
        sim = (d @ qq) / (np.linalg.norm(d, axis=1) * np.linalg.norm(qq))
        return sim, 1.0 - sim
    if metric == "dot":
        sim = d @ qq
        return sim, -sim
    dist = np.linalg.norm(d - qq, axis=1)
    return 1.0 / (1.0 + dist), dist


def assert_same_ranking(results, ids, sim, dist, k, tol=1e-4):
    order = sorted(range(len(ids)), key=lambda i: (-sim[i], ids[i]))[:k]
    got = [r["id"] for r in results]
    assert len(got) == len(order)
    for pos, (g, i) in enumerate(zip(got, order)):
        if g != ids[i]:
            # only a near tie may swap places
            j = ids.index(g)
            assert abs(sim[i] - sim[j]) < tol, (pos, sim[i], sim[j])
        r = results[pos]
        j = ids.index(g)
        assert abs(r["score"] - sim[j]) < tol * max(1.0, abs(sim[j])), (r["score"], sim[j])
        assert abs(r["similarity"] - sim[j]) < tol * max(1.0, abs(sim[j]))
        assert abs(r["distance"] - dist[j]) < tol * max(1.0, abs(dist[j])), (r["distance"],
                                                                              dist[j])


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_recall_equals_numpy_brute_force(client, space_name, metric):
    rng = np.random.default_rng({"cosine": 1, "l2": 2, "dot": 3}[metric])
    dim, n = 24, 600
    data = rng.normal(size=(n, dim)).astype(np.float32)
    client.create_space(space_name, dim=dim, metric=metric)
    ids = []
    for start in range(0, n, 200):
        ids += client.remember_batch(space_name, [
            {"content": "m%d" % i, "embedding": data[i].tolist()}
            for i in range(start, min(n, start + 200))])
    for trial in range(5):
        q = rng.normal(size=dim).astype(np.float32)
        k = [1, 10, 50, 200, 1000][trial]
        # spread off: ranked by the cue alone, as the brute force is
        res = client.recall(space_name, q.tolist(), k=k, spread=False)
        assert res["path"] == "exact"
        assert res["scanned"] >= min(n, k)
        assert isinstance(res["took_ms"], (int, float))
        best = max((h["confidence"]["value"] for h in res["results"]), default=0)
        assert abs(res["recall_confidence"] - best) < 1e-6
        sim, dist = brute_force(metric, data, q)
        assert_same_ranking(res["results"], ids, sim, dist, min(k, n))
    h = res["results"][0]
    assert 0 <= h["confidence"]["value"] <= 1
    assert h["confidence"]["category"] in CATEGORIES
    assert set(h["confidence"]["reasons"]) <= REASONS
    assert h["memory"]["id"] == h["id"] and h["memory"]["content"].startswith("m")
    assert h["keyword"] is None and h["coverage"] is None
    assert "embedding" not in h["memory"]


def test_recall_include_embedding(client, space_name):
    client.create_space(space_name, dim=3, metric="l2")
    client.remember(space_name, "x", [1, 2, 3])
    h = client.recall(space_name, [1, 2, 3], include_embedding=True, spread=False)["results"][0]
    assert h["memory"]["embedding"] == [1, 2, 3]
    assert h["distance"] == 0 and h["score"] == 1


def test_recall_filters_match_numpy(client, space_name):
    rng = np.random.default_rng(7)
    dim, n = 8, 300
    data = rng.normal(size=(n, dim)).astype(np.float32)
    base = 1767225600000
    tags = [["even" if i % 2 == 0 else "odd"] + (["ten"] if i % 10 == 0 else []) for i in range(n)]
    kinds = ["semantic" if i % 3 == 0 else "episodic" for i in range(n)]
    conf = [round((i % 10) / 10 + 0.05, 2) for i in range(n)]
    meta = [{"bucket": str(i % 4)} for i in range(n)]
    whens = [base + i * 1000 for i in range(n)]
    client.create_space(space_name, dim=dim, metric="cosine")
    ids = client.remember_batch(space_name, [
        {"content": "m%d" % i, "embedding": data[i].tolist(), "tags": tags[i], "kind": kinds[i],
         "confidence": conf[i], "metadata": meta[i], "when": whens[i]} for i in range(n)])
    q = rng.normal(size=dim).astype(np.float32)
    sim, dist = brute_force("cosine", data, q)

    def check(pred, **opts):
        res = client.recall(space_name, q.tolist(), k=1000, spread=False, **opts)["results"]
        keep = [i for i in range(n) if pred(i)]
        sub_ids = [ids[i] for i in keep]
        assert_same_ranking(res, sub_ids, sim[keep], dist[keep], len(keep))

    check(lambda i: "ten" in tags[i] or "odd" in tags[i], tags_any=["ten", "odd"])
    check(lambda i: "ten" in tags[i] and "even" in tags[i], tags_all=["ten", "even"])
    check(lambda i: kinds[i] == "semantic", kind="semantic")
    check(lambda i: meta[i]["bucket"] == "2", metadata={"bucket": "2"})
    check(lambda i: conf[i] >= 0.5, min_confidence=0.5)
    check(lambda i: base + 50000 <= whens[i] < base + 120000,
          when={"from": "2026-01-01T00:00:50Z", "to": base + 120000})
    check(lambda i: sim[i] >= 0.3, threshold=0.3)
    check(lambda i: sim[i] >= 0.1 and kinds[i] == "episodic" and "even" in tags[i],
          threshold=0.1, kind="episodic", tags_any=["even"])


def test_recall_by_text_and_hybrid(client, space_name):
    client.create_space(space_name, dim=2)
    a = client.remember(space_name, "the quick brown fox jumps", [1, 0])
    b = client.remember(space_name, "a lazy dog sleeps all day", [0, 1])
    res = client.recall(space_name, text="sleepy lazy dog")
    assert res["path"] == "keyword"
    assert res["results"][0]["id"] == b
    assert res["results"][0]["distance"] is None
    assert res["results"][0]["keyword"] > 0
    res = client.recall(space_name, embedding=[1, 0], text="fox", weights={"vector": 1,
                                                                             "text": 2})
    assert res["path"] == "exact+keyword"
    assert res["results"][0]["id"] == a


@pytest.mark.parametrize("body,prefix", [
    ({"embedding": [1, 2, 3]}, "embedding"),
    ({"embedding": [1, "2"]}, "embedding[1]"),
    ({"embedding": [1e39, 1]}, "embedding[0]"),
    ({"embedding": [1, 1], "k": 0}, "k"),
    ({"embedding": [1, 1], "k": 1001}, "k"),
    ({"embedding": [1, 1], "k": 2.5}, "k"),
    ({"embedding": [1, 1], "k": "10"}, "k"),
    ({"embedding": [1, 1], "threshold": "high"}, "threshold"),
    ({"embedding": [1, 1], "min_confidence": 2}, "min_confidence"),
    ({"embedding": [1, 1], "kind": "dream"}, "kind"),
    ({"embedding": [1, 1], "when": {"from": "never"}}, "when.from"),
    ({"embedding": [1, 1], "when": {"since": 1}}, "when.since"),
    ({"embedding": [1, 1], "when": "today"}, "when"),
    ({"embedding": [1, 1], "when": {"from": 2000, "to": 1000}}, "when"),
    ({"embedding": [1, 1], "tags_any": "a"}, "tags_any"),
    ({"embedding": [1, 1], "metadata": {"a": 1}}, "metadata.a"),
    ({"embedding": [1, 1], "include_embedding": "yes"}, "include_embedding"),
    ({"embedding": [1, 1], "weights": {"vector": -1}}, "weights"),
    ({"embedding": [1, 1], "top_k": 5}, "top_k"),
    ({"k": 5}, "a recall needs"),
])
def test_bad_recall_requests_are_422(client, space_name, body, prefix):
    client.create_space(space_name, dim=2)
    r = client.raw("POST", "/v1/spaces/%s/recall" % space_name, body)
    assert r.status == 422, r.body
    assert r.json["error"]["code"] == "invalid_argument"
    assert r.json["error"]["message"].startswith(prefix), r.json["error"]["message"]


def test_recall_on_an_empty_space_returns_nothing(client, space_name):
    client.create_space(space_name, dim=2)
    res = client.recall(space_name, [1, 0])
    assert res["results"] == [] and res["path"] == "exact"


def test_recall_skips_forgotten_memories(client, space_name):
    client.create_space(space_name, dim=2, metric="dot")
    a = client.remember(space_name, "a", [1, 0])
    b = client.remember(space_name, "b", [0.9, 0])
    client.forget(space_name, a)
    assert [h["id"] for h in client.recall(space_name, [1, 0])["results"]] == [b]
    expect_error(lambda: client.recall("no-such-space", [1, 0]), 404, "space_not_found")
