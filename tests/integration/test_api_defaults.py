"""Defaults of the recall API over HTTP (docs/api.md, Limits): a recall that names
no k returns the best 10, for a vector cue, a words cue and both."""

import numpy as np


def test_recall_without_k_returns_the_best_ten(server):
    c = server.client()
    rng = np.random.default_rng(11)
    c.create_space("defk", dim=8)
    vecs = rng.standard_normal((40, 8))
    ids = c.remember_batch("defk", [{"content": "common word %d" % i, "embedding": v.tolist()}
                                    for i, v in enumerate(vecs)])
    q = rng.standard_normal(8)
    path = "/v1/spaces/defk/recall"
    res = c.request("POST", path, {"embedding": q.tolist(), "spread": False})["results"]
    assert len(res) == 10
    # the ten best by cosine, best first (numpy brute force)
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    cos = unit @ (q / np.linalg.norm(q))
    want = [ids[i] for i in np.argsort(-cos, kind="stable")[:10]]
    assert [h["id"] for h in res] == want
    # a words cue and a hybrid cue default to 10 as well
    assert len(c.request("POST", path, {"text": "common word", "spread": False})["results"]) == 10
    assert len(c.request("POST", path, {"text": "common", "embedding": q.tolist(),
                                        "spread": False})["results"]) == 10
    # fewer memories than 10: all of them
    c.create_space("defk-small", dim=8)
    c.remember_batch("defk-small", [{"content": "x", "embedding": v.tolist()} for v in vecs[:4]])
    assert len(c.request("POST", "/v1/spaces/defk-small/recall",
                         {"embedding": q.tolist()})["results"]) == 4
    c.close()
