"""docs/openapi.yaml against the real router, both ways, and against real answers.

- GET /openapi.json serves exactly docs/openapi.yaml (converted at build time).
- The document's structure: OpenAPI 3.1, unique operationIds, responses, every
  $ref resolves, every {param} of a path is declared, every schema is a valid
  JSON Schema 2020-12 (python3-jsonschema).
- The served document passes Redocly CLI's recommended lint rules with no error and no
  warning (openapi_lint/redocly.yaml turns two rules off, each with its reason).
- Every route in the router's own table (GET /v1/admin/routes, a server with
  [cluster] enabled so /v1/cluster/members is there too) is documented.
- Every documented operation is routed and answers without the router's
  404/405; its JSON answer validates against the documented response schema.
  Operations that other branches add (/mcp, the SSE events route) are checked
  the same way once the router has them.
"""

import http.client
import json
import os
import re
import subprocess
import warnings

import jsonschema
import yaml

from conftest import npm_ready

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "..", "docs", "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Every documented operation is routed today; this set is for one documented ahead of its code.
PENDING = set()  # documented operations not routed yet
ROUTER_404 = "no route matches the path"
ROUTER_405 = "is not allowed on this path"


def load_doc():
    with open(DOC, encoding="utf-8") as f:
        return yaml.safe_load(f)


def operations(doc):
    for path, item in doc["paths"].items():
        for m in METHODS:
            if m in item:
                yield m.upper(), path, item, item[m]


def resolve(doc, ref):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, "unresolved $ref %s" % ref
        node = node[part]
    return node


def walk(node, fn, where="#"):
    fn(node, where)
    if isinstance(node, dict):
        for k, v in node.items():
            walk(v, fn, where + "/" + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, fn, "%s/%d" % (where, i))


def cluster_env():
    return {"MNEMO_CLUSTER_ENABLED": "true", "MNEMO_CLUSTER_BIND": "127.0.0.1",
            "MNEMO_CLUSTER_SWIM_PORT": "0", "MNEMO_CLUSTER_PEER_PORT": "0",
            "MNEMO_CLUSTER_PROFILE": "fast",
            "MNEMO_CLUSTER_KEY": "openapi-test-key", "MNEMO_CLUSTER_SEEDS": ""}


def test_document_structure():
    doc = load_doc()
    assert str(doc["openapi"]).startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    ids = set()
    for method, path, item, op in operations(doc):
        assert op.get("operationId"), (method, path)
        assert op["operationId"] not in ids, "operationId %s twice" % op["operationId"]
        ids.add(op["operationId"])
        assert op.get("responses"), (method, path)
        for code in op["responses"]:
            assert code == "default" or re.fullmatch(r"[1-5]\d\d", str(code)), (path, code)
        declared = set()
        for p in item.get("parameters", []) + op.get("parameters", []):
            p = resolve(doc, p["$ref"]) if "$ref" in p else p
            assert p["in"] in ("path", "query", "header", "cookie"), p
            if p["in"] == "path":
                assert p.get("required") is True, (path, p["name"])
                declared.add(p["name"])
        assert declared == set(re.findall(r"\{([^}]+)\}", path)), (method, path, declared)

    def check_ref(node, where):
        if isinstance(node, dict) and "$ref" in node:
            resolve(doc, node["$ref"])
    walk(doc, check_ref)
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)


def answer(port, method, path, body):
    """(status, content type, parsed JSON or None); reads only the head of a stream."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Accept": "application/json, text/event-stream"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        ctype = r.getheader("content-type", "")
        if "event-stream" in ctype:
            return r.status, ctype, None  # an open stream: the status is the answer
        raw = r.read()
        parsed = json.loads(raw) if raw and ctype.startswith("application/json") else None
        return r.status, ctype, parsed
    finally:
        conn.close()


def response_schema(doc, op, status):
    resp = op["responses"].get(str(status)) or op["responses"].get("default")
    if resp is None:
        return None
    if "$ref" in resp:
        resp = resolve(doc, resp["$ref"])
    content = resp.get("content", {})
    return content.get("application/json", {}).get("schema")


def test_router_and_document_agree(server_factory, tmp_path):
    doc = load_doc()
    s = server_factory(env=cluster_env())
    with s.client() as c:
        served = c.request("GET", "/openapi.json")
        assert served == json.loads(json.dumps(doc)), "/openapi.json differs from docs/openapi.yaml"
        routes = {(r["method"], r["path"]) for r in c.request("GET", "/v1/admin/routes")["routes"]}
        documented = {(m, p) for m, p, _, _ in operations(doc)}
        undocumented = routes - documented
        assert not undocumented, "routes missing from docs/openapi.yaml: %s" % sorted(undocumented)
        unrouted = documented - routes
        assert unrouted <= PENDING, "documented but not routed: %s" % sorted(unrouted - PENDING)
        if unrouted:
            warnings.warn("not routed on this branch yet: %s" % sorted(unrouted))

        # real values for the path parameters and good bodies for the main operations
        c.create_space("oa-main", 3)
        c.create_space("oa-victim", 3)
        m1 = c.remember("oa-main", "hello world", embedding=[1, 0, 0])
        m2 = c.remember("oa-main", "hello there", embedding=[0.9, 0.1, 0])
        m3 = c.remember("oa-main", "to forget", embedding=[0, 1, 0])
        good = {
            "createSpace": {"name": "oa-new", "dim": 3},
            "remember": {"content": "more", "embedding": [0, 0, 1]},
            "recall": {"embedding": [1, 0, 0], "k": 2, "spread": True, "trace": True},
            "associate": {"edges": [{"from": m1, "to": m2, "kind": "causal"}]},
            "consolidate": {},
            "recognize": {"text": "hello"},
            "reminisce": {"limit": 5},
            "complete": {"content": "hello"},
            "checkpoint": {"path": str(tmp_path / "checkpoint")},
            "mcpPost": {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            "clusterCatalogPush": {"spaces": []},
            "clusterDrain": {"node": "oa-no-such-node"},
        }
        # deletes run last, on their own targets
        ordered = sorted(operations(doc), key=lambda o: o[0] == "DELETE")
        for method, path, item, op in ordered:
            if (method, path) not in routes:
                continue
            oid = op["operationId"]
            victim = method == "DELETE"
            url = path.replace("{space}", "oa-victim" if victim and path == "/v1/spaces/{space}"
                               else "oa-main")
            url = url.replace("{id}", m3 if victim else m1)
            body = good.get(oid, {} if method == "POST" else None)
            status, ctype, parsed = answer(s.port, method, url, body)
            msg = (parsed or {}).get("error", {}).get("message", "") if isinstance(parsed, dict) \
                else ""
            assert not (status == 404 and msg == ROUTER_404), "%s %s: router 404" % (method, url)
            assert not (status == 405 and ROUTER_405 in msg), "%s %s: router 405" % (method, url)
            assert str(status) in op["responses"] or "default" in op["responses"], \
                "%s %s answered %d, not documented" % (method, path, status)
            if parsed is None:
                continue
            schema = response_schema(doc, op, status)
            assert schema is not None, "%s %s %d: no JSON schema documented" % (method, path,
                                                                                 status)
            v = jsonschema.Draft202012Validator(schema,
                                                resolver=jsonschema.RefResolver.from_schema(doc))
            errors = sorted(v.iter_errors(parsed), key=lambda e: list(e.path))
            assert not errors, "%s %s %d: %s at %s\n%s" % (
                method, path, status, errors[0].message, list(errors[0].path),
                json.dumps(parsed)[:500])


def test_served_document_passes_the_openapi_linter(server, tmp_path):
    lint_dir = os.path.join(HERE, "openapi_lint")
    node = npm_ready(lint_dir, "@redocly/cli")
    with server.client() as c:
        served = c.request("GET", "/openapi.json")
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(served))
    cli = os.path.join(lint_dir, "node_modules", "@redocly", "cli", "bin", "cli.js")
    p = subprocess.run([node, cli, "lint", str(path), "--config",
                        os.path.join(lint_dir, "redocly.yaml"), "--format", "json"],
                       cwd=lint_dir, capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(p.stdout)
    except ValueError:
        raise AssertionError("redocly lint printed no JSON report (exit %d):\n%s\n%s"
                             % (p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    problems = ["%s %s: %s" % (q.get("severity"), q.get("ruleId"), q.get("message"))
                for q in report.get("problems", [])]
    assert report["totals"]["errors"] == 0 and report["totals"]["warnings"] == 0, \
        "redocly lint: %s" % "\n".join(problems)
    assert p.returncode == 0, p.stderr[-3000:]
