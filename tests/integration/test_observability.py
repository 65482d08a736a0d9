"""GET /metrics and structured logs against a real server.

The exposition is parsed here (HELP/TYPE lines, label escapes, samples) and
checked for what an operator relies on: every family is mnemo_* with HELP and
TYPE, request counters move with traffic and are keyed by route pattern (never
the raw path), histogram buckets never decrease and end in +Inf == _count, the
per-space memory gauge follows remember/forget, and the engine, RocksDB and
process figures are there. With log.format = json every stderr line is one
JSON object; access lines carry request_id, route, status, duration_ms, op.
"""

import json
import math
import re

from conftest import wait_until

DIM = 4
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def unescape(v):
    out, i = [], 0
    while i < len(v):
        if v[i] == "\\" and i + 1 < len(v):
            out.append({"n": "\n", "\\": "\\", '"': '"'}[v[i + 1]])
            i += 2
        else:
            out.append(v[i])
            i += 1
    return "".join(out)


def parse(text):
    """{family: {"help", "type", "samples": [(name, labels, value)]}}; asserts the format."""
    fams, cur = {}, None
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            cur, _, help_ = line[7:].partition(" ")
            assert cur not in fams, "family %s twice" % cur
            fams[cur] = {"help": help_, "type": None, "samples": []}
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert name == cur and fams[name]["type"] is None, line
            assert typ in ("counter", "gauge", "histogram"), line
            fams[name]["type"] = typ
            continue
        m = SAMPLE_RE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels_text, val = m.group(1), m.group(3) or "", m.group(4)
        labels, pos = {}, 0
        while pos < len(labels_text):
            lm = LABEL_RE.match(labels_text, pos)
            assert lm, "bad labels in %r" % line
            labels[lm.group(1)] = unescape(lm.group(2))
            pos = lm.end()
        ok = {cur} if fams.get(cur, {}).get("type") != "histogram" else \
            {cur + "_bucket", cur + "_sum", cur + "_count"}
        assert name in ok, "sample %s outside its family %s" % (name, cur)
        fams[cur]["samples"].append((name, labels, float(val)))
    return fams


def samples(fams, name, **labels):
    fam = name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in fams:
            fam = name[: -len(suffix)]
    return [(l, v) for n, l, v in fams.get(fam, {"samples": []})["samples"]
            if n == name and all(l.get(k) == w for k, w in labels.items())]


def value(fams, name, **labels):
    found = samples(fams, name, **labels)
    assert len(found) == 1, "%s %s: %d samples" % (name, labels, len(found))
    return found[0][1]


def scrape(c):
    r = c.raw("GET", "/metrics")
    assert r.status == 200, r.body
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.body.decode("utf-8"))


def check_histograms(fams):
    for name, fam in fams.items():
        if fam["type"] != "histogram":
            continue
        series = {}
        for n, labels, v in fam["samples"]:
            key = tuple(sorted((k, w) for k, w in labels.items() if k != "le"))
            s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
            if n.endswith("_bucket"):
                le = labels["le"]
                s["buckets"].append((math.inf if le == "+Inf" else float(le), v))
            elif n.endswith("_sum"):
                s["sum"] = v
            else:
                s["count"] = v
        for key, s in series.items():
            les = [b[0] for b in s["buckets"]]
            counts = [b[1] for b in s["buckets"]]
            assert les == sorted(les) and les[-1] == math.inf, (name, key, les)
            assert counts == sorted(counts), "%s %s buckets decrease: %s" % (name, key, counts)
            assert s["count"] == counts[-1], (name, key)
            assert s["sum"] is not None and s["sum"] >= 0, (name, key)


def test_metrics_move_with_traffic(server_factory, space_name):
    s = server_factory(env={"MNEMO_LOG_FORMAT": "json", "MNEMO_LOG_LEVEL": "debug"})
    with s.client() as c:
        before = scrape(c)
        for name, fam in before.items():
            assert name.startswith("mnemo_"), name
            assert fam["help"] and fam["type"], name
        check_histograms(before)

        c.create_space(space_name, DIM)
        ids = [c.remember(space_name, "memory %d about apples" % i,
                          embedding=[1.0, float(i), 0.5, 0.25]) for i in range(3)]
        c.recall(space_name, embedding=[1.0, 0.0, 0.5, 0.25], k=2)
        c.recall(space_name, text="apples", k=2)
        c.forget(space_name, ids[0])
        assert c.raw("GET", "/no/such/path").status == 404
        assert c.raw("PUT", "/v1/spaces").status == 405
        r = c.raw("GET", "/v1/spaces/%s/memories/%s" % (space_name, ids[1]),
                  headers={"x-request-id": "obs-test-42"})
        assert r.status == 200

        after = scrape(c)
    check_histograms(after)

    route = "/v1/spaces/{space}/memories"
    assert value(after, "mnemo_http_requests_total", method="POST", route=route,
                 status="201") == 3
    assert value(after, "mnemo_http_request_duration_seconds_count", method="POST",
                 route=route, status="201") == 3
    assert value(after, "mnemo_http_requests_total", method="POST",
                 route="/v1/spaces/{space}/recall", status="200") == 2
    assert value(after, "mnemo_http_requests_total", method="GET", route="unmatched",
                 status="404") == 1
    assert value(after, "mnemo_http_requests_total", method="PUT", route="unmatched",
                 status="405") == 1
    # the previous scrape counts as a /metrics request; raw paths never become labels
    assert value(after, "mnemo_http_requests_total", method="GET", route="/metrics",
                 status="200") >= 1
    routes = {l["route"] for l, _ in samples(after, "mnemo_http_requests_total")}
    assert not any(space_name in r for r in routes), routes

    # engine figures
    assert value(after, "mnemo_engine_remember_duration_seconds_count") >= 3
    assert value(after, "mnemo_engine_recall_duration_seconds_count") >= 2
    assert value(after, "mnemo_engine_commits_total") > value(before, "mnemo_engine_commits_total")
    assert value(after, "mnemo_engine_fsync_group_entries_count") >= 1
    assert value(after, "mnemo_memories", space=space_name, kind="episodic") == 2
    assert value(after, "mnemo_memories", space=space_name, kind="semantic") == 0
    assert value(after, "mnemo_memory_tombstones", space=space_name) == 1
    assert value(after, "mnemo_index_keyword_docs", space=space_name) == 2
    assert value(after, "mnemo_index_hnsw_nodes", space=space_name) == 0
    assert value(after, "mnemo_spaces") == 1
    # RocksDB and process
    assert value(after, "mnemo_rocksdb_block_cache_capacity_bytes") > 0
    assert value(after, "mnemo_rocksdb_live_sst_bytes", cf="wal") >= 0
    assert value(after, "mnemo_rocksdb_pending_compaction_bytes", cf="memories") >= 0
    assert value(after, "mnemo_rocksdb_wal_bytes") > 0
    assert value(after, "mnemo_process_resident_memory_bytes") > 1 << 20
    assert value(after, "mnemo_process_open_fds") > 3
    assert value(after, "mnemo_ready") == 1
    assert value(after, "mnemo_build_info", version=samples(after, "mnemo_build_info")[0][0]
                 ["version"]) == 1

    # JSON logs: every line parses; the access line of our request has its fields
    def access_line():
        for line in s.log().splitlines():
            obj = json.loads(line)
            if obj.get("request_id") == "obs-test-42":
                return obj
        return None

    obj = wait_until(access_line, 10, what="the access log line")
    assert obj["level"] == "debug"
    assert obj["route"] == "/v1/spaces/{space}/memories/{id}"
    assert obj["method"] == "GET"
    assert obj["status"] == 200
    assert obj["op"] == "getMemory"
    assert obj["space"] == space_name
    assert isinstance(obj["duration_ms"], (int, float)) and obj["duration_ms"] >= 0
    for line in s.log().splitlines():
        o = json.loads(line)
        assert set(("ts", "level", "msg")) <= set(o), line
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", o["ts"]), line
        assert o["level"] in ("debug", "info", "warn", "error"), line


def test_metrics_gauge_follows_space_drop(server_factory, space_name):
    s = server_factory()
    with s.client() as c:
        c.create_space(space_name, DIM)
        c.remember(space_name, "one", embedding=[1, 0, 0, 0])
        assert value(scrape(c), "mnemo_memories", space=space_name, kind="episodic") == 1
        c.delete_space(space_name)
        assert samples(scrape(c), "mnemo_memories", space=space_name) == []


def test_text_log_stays_human(server_factory):
    s = server_factory(env={"MNEMO_LOG_LEVEL": "debug"})
    with s.client() as c:
        assert c.raw("GET", "/health", headers={"x-request-id": "human-1"}).status == 200

    def line():
        for ln in s.log().splitlines():
            if "request_id=human-1" in ln:
                return ln
        return None

    ln = wait_until(line, 10, what="the text access line")
    assert not ln.startswith("{")
    assert " debug GET /health 200 " in ln
    assert "op=health" in ln
