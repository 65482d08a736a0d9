"""A small client for the mnemo HTTP API (docs/api.md). Standard library only.

    from mnemo_client import MnemoClient, MnemoError
    c = MnemoClient("http://127.0.0.1:7700")
    c.create_space("notes", dim=3)
    mid = c.remember("notes", "met Ada at the station", [0.1, 0.2, 0.3], tags=["ada"])
    hits = c.recall("notes", embedding=[0.1, 0.2, 0.3], k=5)["results"]

One client holds one keep-alive connection: use one client per thread.
Errors from the server raise MnemoError(status, code, message, hint, request_id).
With API keys on: MnemoClient(url, api_key="..."); over TLS: an https:// URL,
with ssl_context=ssl.create_default_context(cafile=...) for a private CA.
"""

import http.client
import json
import ssl
import urllib.parse

__all__ = ["MnemoClient", "MnemoError"]

_IDEMPOTENT = ("GET", "HEAD", "DELETE", "PUT", "OPTIONS")


class MnemoError(Exception):
    """An error response: HTTP status, error code (e.g. "space_not_found"), message, hint."""

    def __init__(self, status, code, message, hint=None, request_id=None):
        super().__init__("%s %s: %s" % (status, code, message))
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.request_id = request_id


class Response:
    """A raw response: status, headers (lower-case names), body bytes and parsed JSON."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def request_id(self):
        return self.headers.get("x-request-id")


def _q(segment):
    return urllib.parse.quote(str(segment), safe="")


class MnemoClient:
    def __init__(self, base_url="http://127.0.0.1:7700", timeout=30.0, api_key=None,
                 ssl_context=None):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https"):
            raise ValueError("only http:// and https:// URLs are supported")
        self.tls = u.scheme == "https"
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if self.tls else 80)
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key
        self.ssl_context = ssl_context or (ssl.create_default_context() if self.tls else None)
        self._conn = None
        self._used = False

    # ---- transport ----

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _new_connection(self, timeout):
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _connection(self):
        if self._conn is None:
            self._conn = self._new_connection(self.timeout)
            self._used = False
        return self._conn

    def _base_headers(self, accept="application/json"):
        h = {"Accept": accept}
        if self.api_key:
            h["Authorization"] = "Bearer " + self.api_key
        return h

    def raw(self, method, path, body=None, headers=None, query=None):
        """Sends one request and returns a Response without raising on error statuses.

        body: bytes/str sent as is, or any other value encoded as JSON.
        A GET/DELETE that fails on a reused keep-alive connection (the server closed
        it while idle) is retried once on a fresh connection; a POST is never retried.
        """
        hdrs = self._base_headers()
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body, separators=(",", ":"), allow_nan=False)
            hdrs["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode("utf-8")
        if headers:
            hdrs.update(headers)
        url = self.prefix + path
        if query:
            items = [(k, v) for k, v in query.items() if v is not None]
            if items:
                url += "?" + urllib.parse.urlencode(items)
        for attempt in (0, 1):
            conn = self._connection()
            reused = self._used
            try:
                conn.request(method, url, body=body, headers=hdrs)
                r = conn.getresponse()
                data = r.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.BadStatusLine):
                self.close()
                if attempt == 0 and reused and method in _IDEMPOTENT:
                    continue
                raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            self._used = True
            hd = {k.lower(): v for k, v in r.getheaders()}
            if r.will_close:
                self.close()
            return Response(r.status, hd, data)
        raise AssertionError("unreachable")

    def request(self, method, path, body=None, query=None, expect=(200, 201)):
        """Sends a request and returns its parsed JSON body; raises MnemoError otherwise."""
        r = self.raw(method, path, body=body, query=query)
        if r.status in expect:
            return r.json
        err = (r.json or {}).get("error", {}) if isinstance(r.json, dict) else {}
        raise MnemoError(r.status, err.get("code", "http_%d" % r.status),
                         err.get("message", r.body[:200].decode("utf-8", "replace")),
                         err.get("hint"), r.request_id)

    # ---- service ----

    def health(self):
        return self.request("GET", "/health")

    def ready(self):
        """True when the server is serving, False while it shuts down."""
        r = self.raw("GET", "/ready")
        return r.status == 200 and bool((r.json or {}).get("ready"))

    def checkpoint(self, path):
        """Writes a consistent backup of the whole store into path (must not exist)."""
        return self.request("POST", "/v1/admin/checkpoint", {"path": path})

    # ---- spaces ----

    def create_space(self, name, dim, metric="cosine", default_lifecycle=None,
                     text_language=None, embedding_model=None, dedup=None, dedup_threshold=None):
        """text_language: stemming of word search ("english" by default, "none", "french" ...).
        embedding_model: the model whose vectors the space holds ("" = never embedded by the
        server's provider; None: the provider's model when it applies).
        dedup: "exact" (default: a remember equal to a live memory returns its id and
        duplicate_of) or "off"; dedup_threshold: near-duplicate links at this similarity."""
        body = {"name": name, "dim": dim, "metric": metric}
        if default_lifecycle is not None:
            body["default_lifecycle"] = default_lifecycle
        if text_language is not None:
            body["text_language"] = text_language
        if embedding_model is not None:
            body["embedding_model"] = embedding_model
        if dedup is not None:
            body["dedup"] = dedup
        if dedup_threshold is not None:
            body["dedup_threshold"] = dedup_threshold
        return self.request("POST", "/v1/spaces", body)

    def list_spaces(self):
        return self.request("GET", "/v1/spaces")["spaces"]

    def get_space(self, name):
        return self.request("GET", "/v1/spaces/" + _q(name))

    def delete_space(self, name):
        return self.request("DELETE", "/v1/spaces/" + _q(name))

    def stats(self, name):
        return self.request("GET", "/v1/spaces/%s/stats" % _q(name))

    # ---- memories ----

    def remember(self, space, content, embedding=None, **fields):
        """Remembers one memory; returns its id. fields: kind, when, confidence, importance,
        emotional_valence, context, tags, metadata, lifecycle, ttl_seconds, idempotency_key."""
        body = dict(fields)
        body["content"] = content
        if embedding is not None:
            body["embedding"] = [float(x) for x in embedding]
        return self.request("POST", "/v1/spaces/%s/memories" % _q(space), body)["id"]

    def remember_batch(self, space, memories):
        """Remembers 1..1000 memories (dicts) atomically; returns their ids in order."""
        return self.request("POST", "/v1/spaces/%s/memories" % _q(space),
                            {"memories": list(memories)})["ids"]

    def get(self, space, memory_id, include_embedding=False):
        q = {"include_embedding": "true"} if include_embedding else None
        return self.request("GET", "/v1/spaces/%s/memories/%s" % (_q(space), _q(memory_id)),
                            query=q)

    def forget(self, space, memory_id, mode="delete"):
        return self.request("DELETE", "/v1/spaces/%s/memories/%s" % (_q(space), _q(memory_id)),
                            query={"mode": mode})

    def forget_where(self, space, mode="delete", dry_run=False, run_async=False, **conditions):
        """Forget by filter: conditions are the filter shorthands (tags_any, metadata, kind,
        when, who, ...) and/or filter=<the nested filter>. Returns the answer: a count (and a
        sample on a dry run), or a job (HTTP 202) to poll with job()."""
        body = dict(conditions, mode=mode)
        if dry_run:
            body["dry_run"] = True
        if run_async:
            body["async"] = True
        return self.request("POST", "/v1/spaces/%s/forget" % _q(space), body=body,
                            expect=(200, 202))

    def job(self, space, job_id):
        return self.request("GET", "/v1/spaces/%s/jobs/%s" % (_q(space), _q(job_id)))

    def cancel_job(self, space, job_id):
        return self.request("DELETE", "/v1/spaces/%s/jobs/%s" % (_q(space), _q(job_id)))

    def unsuppress(self, space, memory_id):
        return self.request("POST", "/v1/spaces/%s/memories/%s/unsuppress"
                            % (_q(space), _q(memory_id)))

    # ---- corrections (docs/api.md, "Corrections") ----

    def update(self, space, memory_id, **fields):
        """Corrects a memory: a new version with the fields given (content, embedding, tags,
        metadata, importance, context), the others carried over; expected_version (or
        idempotency_key) as in the docs. Returns the new version."""
        if fields.get("embedding") is not None:
            fields["embedding"] = [float(x) for x in fields["embedding"]]
        return self.request("PATCH", "/v1/spaces/%s/memories/%s" % (_q(space), _q(memory_id)),
                            fields)

    def history(self, space, memory_id):
        """Every version of a memory, oldest first."""
        return self.request("GET", "/v1/spaces/%s/memories/%s/history"
                            % (_q(space), _q(memory_id)))["versions"]

    def invalidate(self, space, memory_id, by=None, reason=None):
        """Marks a memory as no longer valid (another contradicts it), without deleting it."""
        body = {k: v for k, v in (("by", by), ("reason", reason)) if v is not None}
        return self.request("POST", "/v1/spaces/%s/memories/%s/invalidate"
                            % (_q(space), _q(memory_id)), body)

    @staticmethod
    def _list_query(limit=None, cursor=None, tags_any=None, tags_all=None, kind=None,
                    when_from=None, when_to=None, min_confidence=None, include_suppressed=None,
                    include_embedding=None, who=None, where=None, session=None, metadata=None,
                    filter=None):
        q = {"limit": limit, "cursor": cursor, "kind": kind, "when_from": when_from,
             "when_to": when_to, "min_confidence": min_confidence, "who": who, "where": where,
             "session": session}
        if filter is not None:  # the filter language (docs/api.md, "Filters") as JSON
            q["filter"] = json.dumps(filter, separators=(",", ":"))
        if tags_any:
            q["tags_any"] = ",".join(tags_any)
        if tags_all:
            q["tags_all"] = ",".join(tags_all)
        if include_suppressed:
            q["include_suppressed"] = "true"
        if include_embedding:
            q["include_embedding"] = "true"
        for k, v in (metadata or {}).items():
            q["metadata." + k] = v
        return q

    def list_memories(self, space, **filters):
        """One page: {"memories": [...], "next": cursor or None}. Filters as in docs/api.md."""
        return self.request("GET", "/v1/spaces/%s/memories" % _q(space),
                            query=self._list_query(**filters))

    def iter_memories(self, space, max_pages=1000000, **filters):
        """Every memory matching the filters, in (when, id) order, page after page."""
        cursor = None
        for _ in range(max_pages):
            page = self.list_memories(space, cursor=cursor, **filters)
            for m in page["memories"]:
                yield m
            cursor = page["next"]
            if not cursor:
                return

    def recall(self, space, embedding=None, k=10, text=None, **options):
        """Recall by embedding and/or text. options: threshold, tags_any, tags_all, metadata,
        kind, when={"from","to"}, min_confidence, include_suppressed, include_embedding,
        who, where, session, weights={"vector","text"}, spread, trace, reinforce, time
        ("boost" | "filter" | "off": a time the text names, docs/recall.md §9), time_boost,
        time_ref (when the question is asked) ...; the response's "time_window" says which
        time the text named."""
        body = dict(options)
        body["k"] = k
        if embedding is not None:
            body["embedding"] = [float(x) for x in embedding]
        if text is not None:
            body["text"] = text
        return self.request("POST", "/v1/spaces/%s/recall" % _q(space), body)

    # ---- cognitive operations (docs/api.md, "Cognitive operations") ----

    def associate(self, space, edges):
        """Adds client associations: edges = [{"from", "to", "kind": causal|explicit,
        "weight"?}]; returns the number created."""
        return self.request("POST", "/v1/spaces/%s/associations" % _q(space),
                            {"edges": list(edges)})["created"]

    def associations(self, space, memory_id):
        """The associations of a memory: [{"id", "kind", "direction": out|in, "weight"}]."""
        return self.request("GET", "/v1/spaces/%s/memories/%s/associations"
                            % (_q(space), _q(memory_id)))["associations"]

    def consolidate(self, space, threshold=None, min_support=None):
        """Runs consolidation now: {"candidates", "created", "updated", "episodes", "ids"}."""
        body = {}
        if threshold is not None:
            body["threshold"] = threshold
        if min_support is not None:
            body["min_support"] = min_support
        return self.request("POST", "/v1/spaces/%s/consolidate" % _q(space), body)

    def recognize(self, space, embedding=None, text=None, **options):
        """Familiarity of a cue: {"recognized", "familiarity", "best"}. options: threshold
        and the recall filters."""
        body = dict(options)
        if embedding is not None:
            body["embedding"] = [float(x) for x in embedding]
        if text is not None:
            body["text"] = text
        return self.request("POST", "/v1/spaces/%s/recognize" % _q(space), body)

    def reminisce(self, space, **options):
        """Episodes in time order. options: from, to, who, where, session, topic, kind, limit,
        include_embedding, as_of. Returns the list of memories."""
        return self.request("POST", "/v1/spaces/%s/reminisce" % _q(space),
                            dict(options))["memories"]

    def complete(self, space, content=None, embedding=None, context=None, tags=None, k=None):
        """Pattern completion from a partial memory: {"candidates", "fields"}."""
        body = {}
        if content is not None:
            body["content"] = content
        if embedding is not None:
            body["embedding"] = [float(x) for x in embedding]
        if context is not None:
            body["context"] = context
        if tags is not None:
            body["tags"] = tags
        if k is not None:
            body["k"] = k
        return self.request("POST", "/v1/spaces/%s/complete" % _q(space), body)

    # ---- operators ----

    def metrics(self):
        """The Prometheus exposition text of GET /metrics."""
        r = self.raw("GET", "/metrics", headers={"Accept": "text/plain"})
        if r.status != 200:
            raise MnemoError(r.status, "http_%d" % r.status, r.body[:200].decode("utf-8", "replace"))
        return r.body.decode("utf-8")

    def openapi(self):
        """The OpenAPI 3.1 document of the server (GET /openapi.json)."""
        return self.request("GET", "/openapi.json")

    def cluster_members(self):
        """Cluster membership as this node sees it (cluster mode only)."""
        return self.request("GET", "/v1/cluster/members")["members"]

    # ---- events (Server-Sent Events) ----

    def events(self, space, timeout=None, max_events=None, filter=None):
        """Yields the events of a space as dicts ({"event": kind, "id": seq, "data": {...}})
        from GET /v1/spaces/{space}/events, on a connection of its own. The stream ends
        after a final event (dropped, space_dropped, closed), after max_events, or when
        timeout seconds pass without a byte (socket.timeout is raised). filter (the filter
        language, docs/api.md "Filters") keeps the remember and consolidate events of the
        memories that match it."""
        conn = self._new_connection(timeout)
        path = "/v1/spaces/%s/events" % _q(space)
        if filter is not None:
            path += "?" + urllib.parse.urlencode({"filter": json.dumps(filter)})
        try:
            conn.request("GET", self.prefix + path,
                         headers=self._base_headers("text/event-stream"))
            r = conn.getresponse()
            if r.status != 200:
                body = r.read()
                try:
                    err = json.loads(body).get("error", {})
                except ValueError:
                    err = {}
                raise MnemoError(r.status, err.get("code", "http_%d" % r.status),
                                 err.get("message", body[:200].decode("utf-8", "replace")),
                                 err.get("hint"), r.getheader("x-request-id"))
            n = 0
            ev = {}
            while max_events is None or n < max_events:
                line = r.fp.readline()
                if not line:
                    return
                line = line.decode("utf-8").rstrip("\r\n")
                if not line:  # blank line: end of one event
                    if "data" in ev:
                        try:
                            ev["data"] = json.loads(ev["data"])
                        except ValueError:
                            pass
                        yield ev
                        n += 1
                        if ev.get("event") in ("dropped", "space_dropped", "closed"):
                            return
                    ev = {}
                    continue
                if line.startswith(":"):
                    continue  # comment (keep-alive)
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    ev["data"] = ev["data"] + "\n" + value if "data" in ev else value
                elif field in ("event", "id"):
                    ev[field] = value
        finally:
            conn.close()
