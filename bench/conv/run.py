#!/usr/bin/python3
"""Recall quality on real multi-session conversations: mnemo against SQLite FTS5.

Every turn of every conversation is remembered, text only, into one mnemo space per
conversation (content = the turn's text, context.who = its speaker, when = its time,
context.session = its session), over HTTP in batches. Each question is then recalled
with text = the question, k = 10, once with "spread": false and once with
"spread": true. Beside it, SQLite FTS5 (tokenize = 'porter unicode61', ranked by bm25(),
the question's words OR'ed as quoted terms) indexes the same turns per conversation,
and once more without the Porter stemmer ('unicode61', "fts5-nostem").
With --vectors, fastText word vectors are trained on the turn texts (unsupervised), each
turn and question is embedded as the normalised mean of its word vectors, and the hybrid
runs too (mnemo: text + embedding fused by mnemo; FTS5 + cosine fused by RRF here).
--variant adds mnemo systems with more recall parameters, --server-env configures the server
under test, --when session dates turns by their session (see --help).
Each mnemo recall carries "time_ref", when the question is asked (REALTALK: the time of the
conversation's last turn, as the questions are asked after it; LongMemEval: question_date),
so that dates without a year and relative ones ("last week") resolve as they would have
then (--time-ref none leaves it out, for servers older than the field). Beside the question
types, the figures have a column "dated": the questions whose text names a calendar day
(e.g. "on 7 Jan 2024", "on 21.01.2024", "December 28 2023"; a regular expression here,
independent of the server's parser).

Metrics per question: evidence recall@k (share of its evidence turns in the top k) and
MRR (1 / rank of the first evidence turn in the top k, 0 if none); averaged overall and
per question type. Datasets (docs/recall-quality.md says how to obtain them):
  REALTALK  (Lee et al. 2025, arXiv:2502.13270): a directory holding the ten
            data/Chat_<n>_<a>_<b>.json files of github.com/danny911kr/REALTALK, or some of
            them. Evidence "D3:12" names a turn's dia_id; the free-hand evidence strings
            ("D12:11-D12:14", "D1:11; D3:18") are parsed, and ids naming no turn are
            dropped (counted in the output).
  LongMemEval (Wu et al. 2025, arXiv:2410.10813): longmemeval_s*.json / _m / _oracle; one
            space per question (its own haystack); evidence = turns with has_answer.
The held-out set of the project is never read: a --data path naming it is refused.

Everything is seeded and bounded; progress goes to stderr.
"""
import argparse
import glob
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

import numpy as np

BATCH = 200          # memories per remember request (the API allows 1..1000)
RRF_K = 60           # the constant of mnemo's own fusion (docs/recall.md §2)
WORD_RE = re.compile(r"\w+", re.UNICODE)
_MON = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
DATED_RE = re.compile(r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?%s,?\s+\d{4}|\b%s\s+\d{1,2}"
                      r"(?:st|nd|rd|th)?,?\s+\d{4}|\b\d{1,2}\.\d{1,2}\.\d{4}\b" % (_MON, _MON),
                      re.IGNORECASE)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- datasets

# A conversation: {"id", "turns": [{"tid", "text", "who", "when_ms", "session"}],
#                  "questions": [{"qid", "text", "type", "evidence": [tid, ...]}]}

REALTALK_TYPES = {1: "multi-hop", 2: "temporal", 3: "commonsense"}
EVIDENCE_RE = re.compile(r"D\s*(\d+)\s*[:;]\s*(\d+)(?:\s*-\s*(?:D\s*(\d+)\s*:\s*)?(\d+))?")


def parse_realtalk_evidence(items):
    """Free-hand evidence strings to dia_ids: "D1:3", "D12:11-D12:14", "D1:11; D3:18"."""
    out = []
    for raw in items:
        for m in EVIDENCE_RE.finditer(raw if isinstance(raw, str) else ""):
            s, a, s2, b = m.groups()
            a = int(a)
            if b is not None and (s2 is None or s2 == s) and a <= int(b) < a + 50:
                out += ["D%s:%d" % (s, i) for i in range(a, int(b) + 1)]
            else:
                out.append("D%s:%d" % (s, a))
                if b is not None and s2 is not None:
                    out.append("D%s:%s" % (s2, b))
    return list(dict.fromkeys(out))


def realtalk_time(s):
    """'29.12.2023, 22:42:04' (day first; taken as UTC) to epoch ms."""
    dt = datetime.strptime(s.strip(), "%d.%m.%Y, %H:%M:%S").replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def load_realtalk(path, stats, when_mode="turn"):
    d = json.load(open(path, encoding="utf-8"))
    cid = re.sub(r"[^a-z0-9]+", "-", os.path.basename(path).lower().replace(".json", ""))
    sessions = sorted((k for k in d if re.fullmatch(r"session_\d+", k)),
                      key=lambda k: int(k.split("_")[1]))
    turns, ids = [], set()
    for sk in sessions:
        sdate = d.get(sk + "_date_time")
        for ti, t in enumerate(d[sk]):
            text = (t.get("clean_text") or t.get("text") or "").strip()
            if not text:
                stats["empty_turns"] += 1
                continue
            if when_mode == "session":  # the session's time, one second a turn, in order
                when_ms = realtalk_time(sdate or t["date_time"]) + ti * 1000
            else:
                when_ms = realtalk_time(t.get("date_time") or sdate)
            turns.append({"tid": t["dia_id"], "text": text, "who": t.get("speaker") or "",
                          "when_ms": when_ms, "session": sk})
            ids.add(t["dia_id"])
    questions = []
    for i, q in enumerate(d.get("qa", [])):
        ev = parse_realtalk_evidence(q.get("evidence") or [])
        found = [e for e in ev if e in ids]
        stats["evidence_ids"] += len(ev)
        stats["evidence_unresolved"] += len(ev) - len(found)
        if not found:
            stats["questions_without_evidence"] += 1
            continue
        questions.append({"qid": "%s#%d" % (cid, i), "text": q["question"],
                          "type": REALTALK_TYPES.get(q.get("category"), "cat%s" % q.get("category")),
                          "evidence": found,
                          # asked after the conversation: its last turn's time
                          "ref_ms": max((t["when_ms"] for t in turns), default=None)})
    return {"id": cid, "turns": turns, "questions": questions}


def longmemeval_time(s):
    """'2023/05/20 (Sat) 02:21' (taken as UTC) to epoch ms."""
    s = re.sub(r"\s*\([A-Za-z]+\)\s*", " ", s.strip())
    dt = datetime.strptime(s, "%Y/%m/%d %H:%M").replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def load_longmemeval(items, stats):
    """One conversation (haystack) per question; abstention questions (_abs) have no
    evidence and are skipped, as the dataset's own retrieval evaluation does."""
    convs = []
    for it in items:
        qid = it["question_id"]
        if qid.endswith("_abs"):
            stats["questions_without_evidence"] += 1
            continue
        turns, evidence = [], []
        for si, (sid, date, sess) in enumerate(zip(it["haystack_session_ids"],
                                                   it["haystack_dates"],
                                                   it["haystack_sessions"])):
            base = longmemeval_time(date)
            for ti, t in enumerate(sess):
                text = (t.get("content") or "").strip()
                if not text:
                    stats["empty_turns"] += 1
                    continue
                tid = "%d:%d" % (si, ti)
                # turns of a session get the session's time plus a second each, in order
                turns.append({"tid": tid, "text": text[:60000], "who": t.get("role") or "",
                              "when_ms": base + ti * 1000, "session": sid})
                if t.get("has_answer"):
                    evidence.append(tid)
        stats["evidence_ids"] += len(evidence)
        if not evidence:
            stats["questions_without_evidence"] += 1
            continue
        cid = "q-" + re.sub(r"[^a-z0-9]+", "-", qid.lower())
        convs.append({"id": cid[:60], "turns": turns,
                      "questions": [{"qid": qid, "text": it["question"],
                                     "type": it["question_type"], "evidence": evidence,
                                     "ref_ms": (longmemeval_time(it["question_date"])
                                                if it.get("question_date") else None)}]})
    return convs


def load_data(paths, when_mode="turn"):
    stats = {"empty_turns": 0, "evidence_ids": 0, "evidence_unresolved": 0,
             "questions_without_evidence": 0}
    files = []
    for p in paths:
        if "locomo" in os.path.abspath(p).lower():
            sys.exit("refusing %s: the LoCoMo set is held out and never used here" % p)
        if os.path.isdir(p):
            files += sorted(glob.glob(os.path.join(p, "*.json")))
        else:
            files.append(p)
    if not files:
        sys.exit("no .json files in %s" % paths)
    convs = []
    for f in files:
        if "locomo" in os.path.abspath(f).lower():
            sys.exit("refusing %s: the LoCoMo set is held out and never used here" % f)
        try:
            head = open(f, encoding="utf-8").read(1)
            if head == "[":
                convs += load_longmemeval(json.load(open(f, encoding="utf-8")), stats)
            else:
                convs.append(load_realtalk(f, stats, when_mode))
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.exit("%s: not a REALTALK conversation or a LongMemEval file: %s: %s"
                     % (f, type(e).__name__, e))
    return convs, stats, files


# ---------------------------------------------------------------- mnemo over HTTP

def start_server(binary, data_dir, extra_env=None):
    env = dict(os.environ)
    env.update({"MNEMO_HTTP_PORT": "0", "MNEMO_HTTP_BIND": "127.0.0.1", "MNEMO_GRPC_PORT": "0",
                "MNEMO_STORAGE_DATA_DIR": data_dir, "MNEMO_LOG_LEVEL": "info",
                # scheduled consolidation would add semantic memories on its own clock
                "MNEMO_ENGINE_CONSOLIDATE_INTERVAL_S": "0"})
    env.update(extra_env or {})
    proc = subprocess.Popen([binary, "serve"], env=env, stderr=subprocess.PIPE, text=True)
    found = queue.Queue()

    def drain():  # reads every line, so the server never blocks on a full pipe
        for line in proc.stderr:
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                found.put(int(m.group(1)))
        found.put(None)

    threading.Thread(target=drain, daemon=True).start()
    try:
        port = found.get(timeout=60)
    except queue.Empty:
        port = None
    if port is None:
        proc.kill()
        proc.wait()
        raise RuntimeError("mnemo did not report its port within 60 s (exit %s)" % proc.poll())
    return proc, port


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Http:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def call(self, method, path, body=None):
        data = json.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if data is not None else {}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                if attempt:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        if resp.status >= 300:
            raise RuntimeError("%s %s -> %d %s" % (method, path, resp.status, raw[:300]))
        return json.loads(raw) if raw else None


def vec_list(v):
    return [round(float(x), 6) for x in v]


def mnemo_ingest(h, conv, space, dim, tvecs):
    h.call("POST", "/v1/spaces", {"name": space, "dim": dim, "metric": "cosine"})
    id2tid = {}
    turns = conv["turns"]
    for i in range(0, len(turns), BATCH):
        mems = []
        for j, t in enumerate(turns[i:i + BATCH]):
            m = {"content": t["text"], "when": t["when_ms"],
                 "context": {"session": t["session"]}}
            if t["who"]:
                m["context"]["who"] = t["who"]
            if tvecs is not None and tvecs[i + j] is not None:
                m["embedding"] = vec_list(tvecs[i + j])
            mems.append(m)
        ids = h.call("POST", "/v1/spaces/%s/memories" % space, {"memories": mems})["ids"]
        for j, mid in enumerate(ids):
            id2tid[mid] = turns[i + j]["tid"]
    held = h.call("GET", "/v1/spaces/%s/stats" % space).get("memories")
    if held != len(turns) or len(id2tid) != len(turns):
        raise RuntimeError("space %s holds %s memories, %d turns were sent" % (space, held, len(turns)))
    return id2tid


def wait_index(h, space, deadline_s=600):
    end = time.time() + deadline_s
    while time.time() < end:
        st = h.call("GET", "/v1/spaces/%s/stats" % space)
        ix = st.get("index") or {}
        if ix.get("state") != "catching_up":
            return
        time.sleep(0.2)
    raise RuntimeError("index of %s still catching up after %d s" % (space, deadline_s))


def metric(h, name):
    h.conn.request("GET", "/metrics")
    resp = h.conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def settle_links(h, deadline_s=600):
    """The background linker makes semantic links after remember has answered; recall is
    measured once mnemo_engine_links_total has not moved for 2 s (bounded)."""
    end = time.time() + deadline_s
    last, still = None, 0
    while time.time() < end:
        n = metric(h, "mnemo_engine_links_total")
        if n is None:
            return None
        still = still + 1 if n == last else 0
        if still >= 4:
            return int(n)
        last = n
        time.sleep(0.5)
    raise RuntimeError("semantic linking still going after %d s" % deadline_s)


TIME_REF = True  # send "time_ref" (main() turns it off for --time-ref none)
QUESTION_REF = {"ms": None}  # the reference time of the question being recalled


def mnemo_recall(h, space, body, id2tid, ref_ms=None, info=None):
    ref_ms = QUESTION_REF["ms"] if ref_ms is None else ref_ms
    if TIME_REF and ref_ms is not None and "time_ref" not in body:
        body = dict(body, time_ref=ref_ms)
    t0 = time.perf_counter()
    r = h.call("POST", "/v1/spaces/%s/recall" % space, body)
    lat = time.perf_counter() - t0
    if info is not None:
        info["time_window"] = r.get("time_window")
    out = []
    for res in r["results"]:
        tid = id2tid.get(res["id"])
        out.append(tid if tid is not None else "(not a turn:%s)" % res["memory"].get("kind"))
    return out, lat


# ---------------------------------------------------------------- SQLite FTS5

def fts_query(text):
    words = list(dict.fromkeys(w.lower() for w in WORD_RE.findall(text)))
    return " OR ".join('"%s"' % w.replace('"', '""') for w in words)


class Fts:
    def __init__(self):
        self.db = sqlite3.connect(":memory:")

    def ingest(self, conv, table, tokenize="porter unicode61"):
        self.db.execute("CREATE VIRTUAL TABLE %s USING fts5(content, tokenize='%s')"
                        % (table, tokenize))
        self.db.executemany("INSERT INTO %s(rowid, content) VALUES (?, ?)" % table,
                            [(i, t["text"]) for i, t in enumerate(conv["turns"])])
        self.db.commit()

    def search(self, table, conv, text, k):
        q = fts_query(text)
        t0 = time.perf_counter()
        if not q:
            return [], time.perf_counter() - t0
        rows = self.db.execute("SELECT rowid FROM %s WHERE %s MATCH ? ORDER BY bm25(%s) LIMIT ?"
                               % (table, table, table), (q, k)).fetchall()
        lat = time.perf_counter() - t0
        return [conv["turns"][r[0]]["tid"] for r in rows], lat


# ---------------------------------------------------------------- word vectors

def tokens(text):
    return [w.lower() for w in WORD_RE.findall(text)]


def train_vectors(convs, dim, epoch, seed, workdir):
    corpus = os.path.join(workdir, "corpus.txt")
    vocab = set()
    counts = {}
    with open(corpus, "w", encoding="utf-8") as f:
        for c in convs:
            for t in c["turns"]:
                tk = tokens(t["text"])
                vocab.update(tk)
                for w in tk:
                    counts[w] = counts.get(w, 0) + 1
                f.write(" ".join(tk) + "\n")
            for q in c["questions"]:
                vocab.update(tokens(q["text"]))
    model = os.path.join(workdir, "ft")
    t0 = time.perf_counter()
    # one thread: fastText is only reproducible so (its own help says so)
    subprocess.run(["fasttext", "skipgram", "-input", corpus, "-output", model, "-dim", str(dim),
                    "-epoch", str(epoch), "-minCount", "2", "-thread", "1", "-seed", str(seed),
                    "-verbose", "0"], check=True, timeout=3600)
    train_s = time.perf_counter() - t0
    words = sorted(vocab)
    # print-word-vectors also gives out-of-vocabulary words a vector (from their n-grams)
    out = subprocess.run(["fasttext", "print-word-vectors", model + ".bin"],
                         input="\n".join(words) + "\n", capture_output=True, text=True,
                         check=True, timeout=3600).stdout
    table = {}
    for line in out.splitlines():
        parts = line.rstrip().split(" ")
        if len(parts) == dim + 1:
            table[parts[0]] = np.array([float(x) for x in parts[1:]], dtype=np.float32)
    return table, counts, train_s


class Embedder:
    """A text's vector: the mean of its words' vectors, normalised ("mean"), or with
    "sif" the smooth-inverse-frequency weighted mean a / (a + p(w)), a = 1e-3, less its
    projection on the first principal component of the turns' vectors (Arora, Liang & Ma
    2017, "A simple but tough-to-beat baseline for sentence embeddings")."""

    def __init__(self, table, counts, mode, turn_texts):
        self.table, self.mode = table, mode
        total = float(sum(counts.values())) or 1.0
        self.weight = {w: 1e-3 / (1e-3 + counts.get(w, 0) / total) for w in table}
        self.pc = None
        if mode == "sif":
            raw = [self._raw(t) for t in turn_texts]
            m = np.stack([v for v in raw if v is not None])
            # the first right singular vector of the stacked vectors (no centring, as the paper)
            self.pc = np.linalg.svd(m, full_matrices=False)[2][0]

    def _raw(self, text):
        ws = [w for w in tokens(text) if w in self.table]
        if not ws:
            return None
        if self.mode == "sif":
            return np.sum([self.table[w] * self.weight[w] for w in ws], axis=0) / len(ws)
        return np.mean([self.table[w] for w in ws], axis=0)

    def __call__(self, text):
        v = self._raw(text)
        if v is None:
            return None
        if self.pc is not None:
            v = v - self.pc * float(v @ self.pc)
        n = float(np.linalg.norm(v))
        if not np.isfinite(n) or n < 1e-9:
            return None
        return (v / n).astype(np.float32)


def rrf(lists, k):
    score = {}
    for lst in lists:
        for r, x in enumerate(lst):
            score[x] = score.get(x, 0.0) + 1.0 / (RRF_K + r + 1)
    return [x for x, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))][:k]


# ---------------------------------------------------------------- metrics

def score(ranked, evidence, k):
    ev = set(evidence)
    top = ranked[:k]
    hit = sum(1 for x in set(top) if x in ev)
    rr = 0.0
    for i, x in enumerate(top):
        if x in ev:
            rr = 1.0 / (i + 1)
            break
    return hit / len(ev), rr


def pct(lat, q):
    if not lat:
        return float("nan")
    s = sorted(lat)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] * 1000.0


def summarize(per_q, systems, types):
    out = {}
    for s in systems:
        row = {}
        for ty in ["all"] + types + ["dated"]:
            qs = [q for q in per_q if ty == "all" or q["type"] == ty
                  or (ty == "dated" and q.get("dated"))]
            if not qs:
                continue
            row[ty] = {"n": len(qs),
                       "recall": float(np.mean([q["sys"][s]["recall"] for q in qs])),
                       "mrr": float(np.mean([q["sys"][s]["mrr"] for q in qs]))}
        out[s] = row
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the mnemo binary")
    ap.add_argument("--data", required=True, nargs="+",
                    help="REALTALK data directory or files, or a LongMemEval json file")
    ap.add_argument("--limit", type=int, default=0, help="at most this many questions (seeded sample)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--when", choices=("turn", "session"), default="turn",
                    help="REALTALK: a turn's `when` is its own message time, or its session's "
                         "time plus one second a turn (as data with only session dates gives)")
    ap.add_argument("--time-ref", choices=("question", "none"), default="question",
                    help="send each question's reference time as time_ref (none: servers "
                         "older than the field)")
    ap.add_argument("--vectors", action="store_true", help="train fastText vectors and run hybrids")
    ap.add_argument("--vec-dim", type=int, default=100)
    ap.add_argument("--vec-epoch", type=int, default=10)
    ap.add_argument("--vec-weight", choices=("mean", "sif"), default="mean",
                    help="a text's vector: plain mean of its word vectors, or SIF-weighted")
    ap.add_argument("--json", help="write every figure (and each question's top k) here")
    ap.add_argument("--server-env", action="append", default=[], metavar="MNEMO_X=VALUE",
                    help="configuration for the server, e.g. MNEMO_ENGINE_LINK_THRESHOLD=0.95 "
                         "(docs/config.md; repeatable)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="one more mnemo system: the text recall body with JSON merged in, e.g. "
                         "'hops1={\"spread\": true, \"max_hops\": 1}' (repeatable)")
    args = ap.parse_args()
    global TIME_REF
    TIME_REF = args.time_ref == "question"
    if not 1 <= args.k <= 1000:
        sys.exit("--k must be in 1..1000")
    variants = []
    for v in args.variant:
        name, _, body = v.partition("=")
        try:
            extra = json.loads(body)
        except ValueError as e:
            sys.exit("--variant %s: not JSON: %s" % (v, e))
        if not name or not isinstance(extra, dict):
            sys.exit("--variant takes NAME={json object}, got %r" % v)
        variants.append((name, extra))
    server_env = {}
    for v in args.server_env:
        key, eq, val = v.partition("=")
        if not eq or not key.startswith("MNEMO_"):
            sys.exit("--server-env takes MNEMO_<TABLE>_<KEY>=VALUE, got %r" % v)
        server_env[key] = val
    t_start = time.perf_counter()

    convs, dstats, files = load_data(args.data, args.when)
    allq = [(ci, qi) for ci, c in enumerate(convs) for qi in range(len(c["questions"]))]
    if args.limit and args.limit < len(allq):
        rng = random.Random(args.seed)
        allq = sorted(rng.sample(allq, args.limit))
    keep = {}
    for ci, qi in allq:
        keep.setdefault(ci, []).append(qi)
    convs = [dict(convs[ci], questions=[convs[ci]["questions"][qi] for qi in qis])
             for ci, qis in sorted(keep.items())]
    nturns = sum(len(c["turns"]) for c in convs)
    nq = sum(len(c["questions"]) for c in convs)
    types = sorted({q["type"] for c in convs for q in c["questions"]})
    log("data: %d files, %d conversations, %d turns, %d questions (%s); evidence ids %d, "
        "unresolved %d, questions without evidence %d"
        % (len(files), len(convs), nturns, nq, ", ".join(types), dstats["evidence_ids"],
           dstats["evidence_unresolved"], dstats["questions_without_evidence"]))

    tmp = tempfile.mkdtemp(prefix="mnemo-bench-conv-")
    figures = {"dataset": {"files": [os.path.basename(f) for f in files], "conversations": len(convs),
                           "turns": nturns, "questions": nq, **dstats},
               "k": args.k, "seed": args.seed, "limit": args.limit, "vectors": args.vectors,
               "server_env": args.server_env, "variants": args.variant, "when": args.when,
               "time_ref": args.time_ref,
               "vec": {"dim": args.vec_dim, "epoch": args.vec_epoch, "weight": args.vec_weight}}
    proc = None
    try:
        tvecs_by_conv, qvecs = {}, {}
        dim = 8  # text only: a space needs a dim; no embedding is ever sent
        if args.vectors:
            dim = args.vec_dim
            log("vectors: training fastText skipgram (dim %d, %d epochs, 1 thread) on %d turns"
                % (dim, args.vec_epoch, nturns))
            table, counts, train_s = train_vectors(convs, dim, args.vec_epoch, args.seed, tmp)
            embed = Embedder(table, counts, args.vec_weight,
                             [t["text"] for c in convs for t in c["turns"]])
            figures["vector_train_s"] = train_s
            log("vectors: trained in %.1f s, %d words" % (train_s, len(table)))
            for c in convs:
                tvecs_by_conv[c["id"]] = [embed(t["text"]) for t in c["turns"]]
                for q in c["questions"]:
                    qvecs[q["qid"]] = embed(q["text"])

        proc, port = start_server(args.bin, os.path.join(tmp, "db"), server_env)
        h = Http(port)
        fts = Fts()
        id2tid, fts_ing = {}, 0.0
        t0 = time.perf_counter()
        for n, c in enumerate(convs):
            space = "c%d" % n
            id2tid[c["id"]] = mnemo_ingest(h, c, space, dim, tvecs_by_conv.get(c["id"]))
            if (n + 1) % max(1, len(convs) // 10) == 0 or n + 1 == len(convs):
                log("ingest: mnemo %d/%d conversations, %.1f s"
                    % (n + 1, len(convs), time.perf_counter() - t0))
        if args.vectors:
            for n in range(len(convs)):
                wait_index(h, "c%d" % n)
        mnemo_ing = time.perf_counter() - t0
        links = settle_links(h)
        figures["semantic_links"] = links
        figures["links_settled_s"] = time.perf_counter() - t0 - mnemo_ing
        if links is not None:
            log("ingest: %d semantic links (%.2f a turn), settled %.1f s after the last write "
                "(2 s of them waiting for quiet)" % (links, links / max(nturns, 1),
                                                     figures["links_settled_s"]))
        t0 = time.perf_counter()
        for n, c in enumerate(convs):
            fts.ingest(c, "t%d" % n)
        fts_ing = time.perf_counter() - t0
        for n, c in enumerate(convs):  # the same without stemming: what the stemmer is worth
            fts.ingest(c, "u%d" % n, "unicode61")
        figures["ingest_s"] = {"mnemo": mnemo_ing, "fts5": fts_ing}
        log("ingest: mnemo %.2f s (%.0f turns/s), fts5 %.2f s"
            % (mnemo_ing, nturns / max(mnemo_ing, 1e-9), fts_ing))

        systems = ["mnemo", "mnemo+spread", "fts5", "fts5-nostem"]
        systems += [name for name, _ in variants]
        if args.vectors:
            systems += ["mnemo-vec", "mnemo-hybrid", "mnemo-hybrid+spread", "vec", "fts5+vec"]
        lat = {s: [] for s in systems}
        per_q = []
        k = args.k
        done = 0
        t0 = time.perf_counter()
        for n, c in enumerate(convs):
            space, table = "c%d" % n, "t%d" % n
            m = id2tid[c["id"]]
            tv = None
            if args.vectors:
                tv = tvecs_by_conv[c["id"]]
                idx = [i for i, v in enumerate(tv) if v is not None]
                mat = np.stack([tv[i] for i in idx]) if idx else np.zeros((0, dim), np.float32)
            for q in c["questions"]:
                ranked = {}
                QUESTION_REF["ms"] = q.get("ref_ms")
                info = {}
                ranked["mnemo"], l1 = mnemo_recall(h, space, {"text": q["text"], "k": k,
                                                              "spread": False}, m, info=info)
                ranked["mnemo+spread"], l2 = mnemo_recall(h, space, {"text": q["text"], "k": k,
                                                                     "spread": True}, m)
                ranked["fts5"], l3 = fts.search(table, c, q["text"], k)
                lat["mnemo"].append(l1)
                lat["mnemo+spread"].append(l2)
                lat["fts5"].append(l3)
                ranked["fts5-nostem"], l3 = fts.search("u%d" % n, c, q["text"], k)
                lat["fts5-nostem"].append(l3)
                for name, extra in variants:
                    ranked[name], l3 = mnemo_recall(h, space, dict({"text": q["text"], "k": k,
                                                                    "spread": False}, **extra), m)
                    lat[name].append(l3)
                if args.vectors:
                    qv = qvecs[q["qid"]]
                    if qv is not None:
                        ev = vec_list(qv)
                        ranked["mnemo-vec"], l4 = mnemo_recall(
                            h, space, {"embedding": ev, "k": k, "spread": False}, m)
                        ranked["mnemo-hybrid"], l5 = mnemo_recall(
                            h, space, {"text": q["text"], "embedding": ev, "k": k,
                                       "spread": False}, m)
                        ranked["mnemo-hybrid+spread"], l6 = mnemo_recall(
                            h, space, {"text": q["text"], "embedding": ev, "k": k,
                                       "spread": True}, m)
                        lat["mnemo-vec"].append(l4)
                        lat["mnemo-hybrid"].append(l5)
                        lat["mnemo-hybrid+spread"].append(l6)
                        t1 = time.perf_counter()
                        sims = mat @ qv
                        order = np.argsort(-sims, kind="stable")
                        deep = max(k, 100)
                        ranked["vec"] = [c["turns"][idx[i]]["tid"] for i in order[:deep]]
                        lat["vec"].append(time.perf_counter() - t1)
                        t1 = time.perf_counter()
                        deep_fts, _ = fts.search(table, c, q["text"], deep)
                        ranked["fts5+vec"] = rrf([deep_fts, ranked["vec"]], k)
                        lat["fts5+vec"].append(time.perf_counter() - t1)
                        ranked["vec"] = ranked["vec"][:k]
                    else:
                        # no word of the question has a vector: the hybrids have only words
                        for s in ("mnemo-vec", "vec"):
                            ranked[s] = []
                        ranked["mnemo-hybrid"] = ranked["mnemo"]
                        ranked["mnemo-hybrid+spread"] = ranked["mnemo+spread"]
                        ranked["fts5+vec"] = ranked["fts5"]
                rec = {"qid": q["qid"], "conv": c["id"], "type": q["type"], "question": q["text"],
                       "evidence": q["evidence"], "dated": bool(DATED_RE.search(q["text"])),
                       "time_window": info.get("time_window"), "sys": {}}
                for s in systems:
                    r, rr = score(ranked[s], q["evidence"], k)
                    rec["sys"][s] = {"recall": r, "mrr": rr, "top": ranked[s][:k]}
                per_q.append(rec)
                done += 1
                if done % 100 == 0:
                    log("recall: %d/%d questions, %.1f s" % (done, nq, time.perf_counter() - t0))
        h.conn.close()

        summary = summarize(per_q, systems, types)
        figures["summary"] = summary
        figures["latency_ms"] = {s: {"p50": pct(lat[s], 0.5), "p99": pct(lat[s], 0.99),
                                     "n": len(lat[s])} for s in systems}
        figures["total_s"] = time.perf_counter() - t_start

        cols = [ty for ty in ["all"] + types + ["dated"] if ty in summary[systems[0]]]
        print("evidence recall@%d / MRR@%d over %d questions (%d conversations, %d turns)"
              % (k, k, nq, len(convs), nturns))
        heads = ["%s (%d)" % (ty, summary[systems[0]][ty]["n"]) for ty in cols]
        widths = [max(15, len(hd)) + 2 for hd in heads]
        print("%-20s" % "system" + "".join(hd.rjust(w) for hd, w in zip(heads, widths)))
        for s in systems:
            print("%-20s" % s + "".join(("%.3f / %.3f" % (summary[s][ty]["recall"],
                                                         summary[s][ty]["mrr"])).rjust(w)
                                        for ty, w in zip(cols, widths)))
        print()
        print("ingest: mnemo %.2f s, fts5 %.2f s%s" % (
            mnemo_ing, fts_ing,
            (", fastText training %.1f s" % figures["vector_train_s"]) if args.vectors else ""))
        print("%-20s %10s %10s" % ("recall latency", "p50 ms", "p99 ms"))
        for s in systems:
            print("%-20s %10.2f %10.2f" % (s, figures["latency_ms"][s]["p50"],
                                           figures["latency_ms"][s]["p99"]))
        print("total %.1f s" % figures["total_s"])
        if args.json:
            figures["questions"] = per_q
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(figures, f, indent=1)
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
