"""The chaos harness's workload: concurrent clients on every node, each op
recorded in a history (JSONL, one object per line).

Each client is a thread bound to one node, working on the spaces that node
holds. An op is one of:

- remember: a memory whose content carries a word unique to it (its token),
  `when` set by the client (its wall clock, so lists by time do not depend on a
  node's skewed clock) and an idempotency key; a timeout or error is retried
  with the same key until it is acknowledged or the op's budget is spent;
- forget (mode delete) of an id this client saw acknowledged; one refused
  (outcome fail, not a gone code) did not happen, so the id goes back to the
  client's, to be forgotten later;
- with forget_semantic (chaos.py, on unless --no-forget-semantic), the forget of a semantic
  memory (a consolidation made it: nodes in a chaos run consolidate every few
  seconds) listed in the space: recorded as a forget with
  "kind": "semantic", so the checker holds it to the same rule (never seen again
  once acknowledged, but in a partition answer, which may lag);
- get of an id acknowledged in the space (by any client);
- recall by the token of an acknowledged memory (text cue, k results);
- list of the space's memories whose `when` is in the last LIST_WINDOW_S.

History record (times are seconds since the run's start, monotonic):
  {"op", "client", "node", "space", "inv", "cmp", "outcome": "ok"|"fail"|"unknown", ...}
"unknown" = no answer (timeout, connection reset): the op may have happened.
"fail" = a definite refusal (an error answer, or a refused connection): it did
not happen. The op's own fields: remember: key, token, when_ms, id, attempts;
forget: id; get: id, found, code; recall: token, target, ids; list: when_from_ms,
ids. Each line is flushed as it completes, so a crashed run keeps its history.
"""

import http.client as http_client
import json
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request

DIM = 4
OP_TIMEOUT_S = 3.0          # one HTTP request
REMEMBER_BUDGET_S = 12.0    # a remember's retries (same key) end after this
LIST_WINDOW_S = 2.0
RECALL_K = 5
# each remember asks for a write level drawn from these (docs/replication.md): `one` is
# acknowledged on the primary's fsync alone, so a primary cut off in a minority takes such
# writes until its lease lapses; the checker holds every level to the same promise (no
# fault here loses a disk, so nothing acknowledged may be lost)
CONSISTENCY = ("one", "one", "quorum", "quorum", "all")
WEIGHTS = (("remember", 40), ("get", 20), ("recall", 15), ("list", 10), ("forget", 15))
FORGET_SEMANTIC_WEIGHT = 3  # with forget_semantic (chaos.py --forget-semantic)


class History:
    """Thread-safe JSONL writer; times relative to t0 (monotonic)."""

    def __init__(self, path, t0):
        self.t0 = t0
        self._f = open(path, "w", buffering=1)
        self._mu = threading.Lock()
        self.count = 0

    def now(self):
        return round(time.monotonic() - self.t0, 6)

    def add(self, rec):
        line = json.dumps(rec, separators=(",", ":"))
        with self._mu:
            self._f.write(line + "\n")
            self.count += 1

    def close(self):
        with self._mu:
            self._f.close()


def http(url, method="GET", body=None, timeout=OP_TIMEOUT_S):
    """(status, json doc) or raises: Timeout-like errors as TimeoutError,
    refused connections as ConnectionRefusedError."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read().decode("utf-8") or "null")
    except urllib.error.HTTPError as e:
        try:
            doc = json.loads(e.read().decode("utf-8") or "null")
        except ValueError:
            doc = None
        return e.code, doc
    except urllib.error.URLError as e:
        if isinstance(e.reason, ConnectionRefusedError):
            raise ConnectionRefusedError(str(e)) from None
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise TimeoutError(str(e)) from None
        raise ConnectionError(str(e)) from None
    except (socket.timeout, TimeoutError):
        raise TimeoutError("timed out") from None
    except (http_client.HTTPException, ConnectionResetError, BrokenPipeError) as e:
        raise ConnectionError(repr(e)) from None


def error_code(doc):
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        return doc["error"].get("code")
    return None


# the error codes of a forget that found its id gone (checker.py judges by these too)
GONE_CODES = ("memory_forgotten", "memory_not_found")
TOKEN_RE = re.compile(r"\b(zq[a-z]+xv)\b")


def refused(rec):
    """A forget record that definitely did not happen: refused (a refused connection, an error
    answer) for another reason than its id being gone."""
    return rec["outcome"] == "fail" and rec.get("code") not in GONE_CODES


def token_in(content):
    """The token (token_of) a memory's content carries, or None."""
    m = TOKEN_RE.search(content or "")
    return m.group(1) if m else None


def token_of(client, seq):
    """A word unique to (client, seq): letters only, so every stemmer keeps it whole
    enough to match itself."""
    n = client * 1000003 + seq
    out = ""
    while True:
        out = "abcdefghijklmnopqrstuvwxyz"[n % 26] + out
        n //= 26
        if not n:
            break
    return "zq" + out + "xv"


class Shared:
    """What the clients of one space know: acknowledged ids (and their tokens),
    ids whose forget was invoked."""

    def __init__(self):
        self.mu = threading.Lock()
        self.acked = {}      # space -> [(id, token)]
        self.forgetting = set()


class Client(threading.Thread):
    def __init__(self, num, node, spaces, url_of, history, shared, stop, seed, think_s,
                 write_url_of=None, forget_semantic=False):
        super().__init__(name="client-%d" % num, daemon=True)
        self.num, self.node, self.spaces = num, node, spaces
        self.url_of, self.h, self.shared, self.stop = url_of, history, shared, stop
        self.write_url_of = write_url_of or url_of  # where remembers go
        self.rnd = random.Random(seed)
        self.think_s = think_s
        self.seq = 0
        self.mine = {s: [] for s in spaces}  # ids this client saw acknowledged, not yet forgotten
        self.errors = 0
        self.weights = WEIGHTS + ((("forget_semantic", FORGET_SEMANTIC_WEIGHT),)
                                  if forget_semantic else ())

    def base(self, op, space):
        return {"op": op, "client": self.num, "node": self.node, "space": space,
                "inv": self.h.now()}

    def finish(self, rec, outcome, **kw):
        rec.update(kw)
        rec["outcome"] = outcome
        rec["cmp"] = self.h.now()
        self.h.add(rec)
        return rec

    def run(self):
        kinds = [k for k, w in self.weights for _ in range(w)]
        while not self.stop.is_set():
            space = self.rnd.choice(self.spaces)
            kind = self.rnd.choice(kinds)
            try:
                getattr(self, "op_" + kind)(space)
            except Exception as e:  # noqa: BLE001 - a harness bug must not stop the others
                self.errors += 1
                self.h.add({"op": "client_error", "client": self.num, "error": repr(e)})
            self.stop.wait(self.rnd.uniform(0, self.think_s))

    def url(self, space, tail=""):
        return "%s/v1/spaces/%s%s" % (self.url_of(self.node), space, tail)

    def op_remember(self, space):
        self.seq += 1
        token = token_of(self.num, self.seq)
        when_ms = int(time.time() * 1000)
        key = "c%d-%d" % (self.num, self.seq)
        level = self.rnd.choice(CONSISTENCY)
        body = {"content": "chaos memory %s" % token, "when": when_ms, "idempotency_key": key,
                "consistency": level,
                "embedding": [self.rnd.uniform(-1, 1) for _ in range(DIM - 1)] + [1.0],
                "tags": ["chaos"], "metadata": {"client": str(self.num)}}
        rec = self.base("remember", space)
        rec.update({"key": key, "token": token, "when_ms": when_ms, "consistency": level})
        end = time.monotonic() + REMEMBER_BUDGET_S
        attempts, maybe = 0, False
        last = None
        while True:
            attempts += 1
            try:
                st, doc = http("%s/v1/spaces/%s/memories" % (self.write_url_of(self.node), space),
                               "POST", body)
                if st == 201:
                    self.finish(rec, "ok", id=doc["id"], attempts=attempts)
                    with self.shared.mu:
                        self.shared.acked.setdefault(space, []).append((doc["id"], token))
                    self.mine[space].append(doc["id"])
                    return
                if st == 202 and doc.get("accepted") == "partition":
                    # a hint (partition_writes = accept): acknowledged, its id final, but not
                    # readable (nor forgettable) until merged: judged by the final lists only
                    self.finish(rec, "ok", id=doc["id"], attempts=attempts, hinted=True)
                    return
                last = "%d %s" % (st, error_code(doc))
                if st < 500 and st not in (408, 429):
                    break  # a definite refusal: retrying would get the same
                maybe = True
            except ConnectionRefusedError as e:
                last = repr(e)
            except (TimeoutError, ConnectionError) as e:
                last, maybe = repr(e), True
            if time.monotonic() >= end or (self.stop.is_set() and attempts >= 3):
                break
            time.sleep(min(0.2 * attempts, 1.0))
        self.finish(rec, "unknown" if maybe else "fail", attempts=attempts, error=last)

    def read(self, rec, fn):
        """Runs fn() -> dict of fields; records ok, or unknown/fail on errors; returns the
        record (None when fn() gave nothing)."""
        try:
            fields = fn()
        except ConnectionRefusedError as e:
            return self.finish(rec, "fail", error=repr(e))
        except (TimeoutError, ConnectionError) as e:
            return self.finish(rec, "unknown", error=repr(e))
        if fields is None:
            return None
        outcome = fields.pop("_outcome", "ok")
        return self.finish(rec, outcome, **fields)

    def op_forget(self, space):
        if not self.mine[space]:
            return self.op_remember(space)
        mid = self.mine[space].pop(self.rnd.randrange(len(self.mine[space])))
        with self.shared.mu:
            self.shared.forgetting.add(mid)
        if refused(self.forget(space, mid)):
            # it did not happen: the id stays this client's to forget later
            with self.shared.mu:
                self.shared.forgetting.discard(mid)
            self.mine[space].append(mid)

    def forget(self, space, mid, **fields):
        """The forget (mode delete) of mid, recorded with fields; returns the record."""
        rec = self.base("forget", space)
        rec["id"] = mid
        rec.update(fields)

        def go():
            st, doc = http(self.url(space, "/memories/%s?mode=delete" % mid), "DELETE")
            if st == 200:
                return {}
            return {"_outcome": "unknown" if st >= 500 else "fail", "status": st,
                    "code": error_code(doc)}
        return self.read(rec, go)

    def op_forget_semantic(self, space):
        try:
            st, doc = http(self.url(space, "/memories?kind=semantic&limit=100"))
        except (TimeoutError, ConnectionError):
            st = None
        if st != 200:
            return None  # no answer now (a fault): nothing was asked to change
        with self.shared.mu:
            ids = [m["id"] for m in doc.get("memories", [])
                   if m.get("kind") == "semantic" and m["id"] not in self.shared.forgetting]
            if not ids:
                return None
            mid = self.rnd.choice(ids)
            self.shared.forgetting.add(mid)
        if refused(self.forget(space, mid, kind="semantic")):
            with self.shared.mu:  # it did not happen: it may be picked again
                self.shared.forgetting.discard(mid)

    def pick_acked(self, space):
        with self.shared.mu:
            acked = self.shared.acked.get(space) or []
            if not acked:
                return None
            return acked[self.rnd.randrange(len(acked))]

    def op_get(self, space):
        pick = self.pick_acked(space)
        if not pick:
            return self.op_remember(space)
        rec = self.base("get", space)
        rec["id"] = pick[0]

        def go():
            st, doc = http(self.url(space, "/memories/%s" % pick[0]))
            if st == 200:
                return {"found": True}
            if st == 404:
                return {"found": False, "code": error_code(doc)}
            return {"_outcome": "fail", "status": st, "code": error_code(doc)}
        self.read(rec, go)

    def op_recall(self, space):
        pick = self.pick_acked(space)
        if not pick:
            return self.op_remember(space)
        rec = self.base("recall", space)
        rec.update({"target": pick[0], "token": pick[1]})

        def go():
            st, doc = http(self.url(space, "/recall"), "POST", {"text": pick[1], "k": RECALL_K})
            if st != 200:
                return {"_outcome": "fail", "status": st, "code": error_code(doc)}
            # path "partition": answered from gossiped semantic memories, the episodes said
            # unreachable (docs/gossip.md): kept apart by the checker's staleness
            return {"ids": [r["id"] for r in doc.get("results", [])], "path": doc.get("path")}
        self.read(rec, go)

    def op_list(self, space):
        rec = self.base("list", space)
        when_from = int((time.time() - LIST_WINDOW_S) * 1000)
        rec["when_from_ms"] = when_from

        def go():
            ids, cursor = [], None
            for _ in range(5):
                q = "/memories?limit=1000&when_from=%d" % when_from
                if cursor:
                    q += "&cursor=" + urllib.request.quote(cursor, safe="")
                st, doc = http(self.url(space, q))
                if st != 200:
                    return {"_outcome": "fail", "status": st, "code": error_code(doc)}
                ids += [m["id"] for m in doc["memories"]]
                cursor = doc.get("next")
                if not cursor:
                    return {"ids": ids}
            return {"_outcome": "fail", "error": "more than 5 pages", "ids": ids}
        self.read(rec, go)


def run_clients(nodes_spaces, url_of, history, seed, per_node, think_s, stop, write_url_of=None,
                forget_semantic=False):
    """Starts per_node clients on every node; returns the threads (joined by the caller
    after stop is set). write_url_of: where remembers go (default url_of); forget_semantic:
    the clients also forget semantic memories."""
    shared = Shared()
    clients = []
    num = 0
    for node, spaces in sorted(nodes_spaces.items()):
        for _ in range(per_node):
            c = Client(num, node, spaces, url_of, history, shared, stop,
                       (seed << 16) ^ num, think_s, write_url_of, forget_semantic)
            clients.append(c)
            num += 1
    for c in clients:
        c.start()
    return clients

