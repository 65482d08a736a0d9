#!/usr/bin/python3
"""A local stand-in for an OpenAI-compatible embeddings provider (POST /v1/embeddings), for
mnemo's tests (tests/integration/test_embedding.py) and benchmarks.

Request {"model": ..., "input": [texts] or "text"}; answer
{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...]}], "model": ...}.

Vectors are deterministic:
- default: each word (lower-cased [a-z0-9]+ runs) has a pseudo-random Gaussian vector seeded by
  the word's SHA-256 (and --seed); a text's vector is the normalised sum of its words' vectors,
  so texts that share words are similar and texts that share none are nearly orthogonal (for
  dim >= 32). A text without words gets the first unit vector.
- --vectors FILE: the normalised mean of the text's words' vectors from a fastText .vec text
  file ("count dim" header, then "word v1 ... vdim" lines; e.g. Debian's fasttext trains
  them, or the published cc.*.vec files). Words not in the file are left out of the mean
  (write every word a benchmark uses, e.g. from `fasttext print-word-vectors`, which gives
  out-of-vocabulary words their n-gram vector); a text with no word in the file gets the
  default vector above.

Switches, for failure tests (POST /control with a JSON object; GET /stats for what happened):
  {"mode": "ok"}          answer normally
  {"mode": "fail"}        answer 500 with a JSON error
  {"mode": "slow", "delay_s": 5}   answer correctly after delay_s seconds
  {"mode": "malformed"}   answer 200 with a body that is not JSON
  {"mode": "wrong_dim"}   answer vectors of dim + 1 values
  {"mode": "close"}       close the connection without an answer
  {"mode": "chunked"}     answer correctly in Transfer-Encoding: chunked (small chunks)
  {"mode": "eof"}         answer correctly without Content-Length, ended by the close
"Down" is this process stopped (connection refused); start it again on the same --port.

Usage: standin.py [--host 127.0.0.1] [--port 0] [--dim 32] [--seed 0] [--vectors FILE]
         [--api-key KEY] [--tls-cert PEM --tls-key PEM]
With --tls-cert it speaks HTTPS. It prints "listening on HOST:PORT" on stdout once it accepts connections.
"""

import argparse
import hashlib
import json
import math
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORD = re.compile(r"[a-z0-9]+")


class Model:
    def __init__(self, dim, seed, vectors=None):
        self.dim = dim
        self.seed = seed
        self.table = {}
        self.cache = {}
        if vectors:
            self._load(vectors)

    def _load(self, path):
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            head = f.readline().split()
            dim = int(head[1]) if len(head) == 2 else len(head) - 1
            self.dim = dim
            if len(head) != 2:  # no header: the first line is a vector
                self.table[head[0].lower()] = [float(x) for x in head[1:]]
            for line in f:
                parts = line.rstrip().split(" ")
                if len(parts) != dim + 1:
                    continue
                w = parts[0].lower()
                if w not in self.table:
                    self.table[w] = [float(x) for x in parts[1:]]

    def word(self, w):
        v = self.table.get(w)
        if v is not None:
            return v
        v = self.cache.get(w)
        if v is None:
            h = hashlib.sha256(("%d:%s" % (self.seed, w)).encode()).digest()
            rng = random.Random(int.from_bytes(h[:8], "big"))
            v = [rng.gauss(0.0, 1.0) for _ in range(self.dim)]
            self.cache[w] = v
        return v

    def embed(self, text):
        words = WORD.findall(text.lower())
        s = [0.0] * self.dim
        known = [w for w in words if w in self.table] if self.table else words
        for w in (known or words):
            v = self.word(w)
            for i in range(self.dim):
                s[i] += v[i]
        n = math.sqrt(sum(x * x for x in s))
        if not words or n == 0:
            s = [0.0] * self.dim
            s[0] = 1.0
            return s
        return [x / n for x in s]


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "ok"
        self.delay_s = 0.0
        self.requests = 0
        self.texts = 0
        self.batches = []  # sizes of the answered requests
        self.inputs = []   # every text received, in order


def make_handler(model, state, api_key):
    class H(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet
            pass

        def _json(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def do_GET(self):
            if self.path == "/stats":
                with state.lock:
                    self._json(200, {"mode": state.mode, "requests": state.requests,
                                     "texts": state.texts, "batches": state.batches,
                                     "inputs": state.inputs})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self):
            raw = self._body()
            if self.path == "/control":
                c = json.loads(raw or b"{}")
                with state.lock:
                    state.mode = c.get("mode", state.mode)
                    state.delay_s = float(c.get("delay_s", state.delay_s))
                self._json(200, {"mode": state.mode})
                return
            if self.path != "/v1/embeddings":
                self._json(404, {"error": {"message": "no such route"}})
                return
            if api_key and self.headers.get("Authorization") != "Bearer " + api_key:
                self._json(401, {"error": {"message": "bad API key"}})
                return
            with state.lock:
                mode, delay = state.mode, state.delay_s
                state.requests += 1
            try:
                req = json.loads(raw)
                inp = req["input"]
                texts = [inp] if isinstance(inp, str) else list(inp)
                assert all(isinstance(t, str) for t in texts)
            except Exception as e:  # noqa: BLE001
                self._json(400, {"error": {"message": "bad request: %s" % e}})
                return
            with state.lock:
                state.texts += len(texts)
                state.inputs.extend(texts)
            if mode == "fail":
                self._json(500, {"error": {"message": "the stand-in is set to fail"}})
                return
            if mode == "close":
                self.close_connection = True
                return
            if mode == "malformed":
                body = b'{"data": [{"index": 0, "embedding": [0.1, '
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if mode == "slow":
                time.sleep(delay)
            data = []
            for i, t in enumerate(texts):
                v = model.embed(t)
                if mode == "wrong_dim":
                    v = v + [0.0]
                data.append({"object": "embedding", "index": i, "embedding": v})
            with state.lock:
                state.batches.append(len(texts))
            if mode in ("chunked", "eof"):
                body = json.dumps({"object": "list", "data": data, "model": req.get("model")})
                body = body.encode()
                head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%s"
                        "Connection: close\r\n\r\n"
                        % ("Transfer-Encoding: chunked\r\n" if mode == "chunked" else ""))
                out = head.encode()
                if mode == "chunked":
                    for i in range(0, len(body), 100):
                        part = body[i:i + 100]
                        out += b"%x\r\n" % len(part) + part + b"\r\n"
                    out += b"0\r\n\r\n"
                else:
                    out += body
                self.wfile.write(out)
                self.wfile.flush()
                self.close_connection = True
                return
            try:
                self._json(200, {"object": "list", "data": data, "model": req.get("model"),
                                 "usage": {"prompt_tokens": 0, "total_tokens": 0}})
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout)

    return H


def start_in_thread(dim=32, seed=0, vectors=None, host="127.0.0.1", port=0, api_key=None):
    """Serves in a daemon thread of this process (for a benchmark that would rather not run a
    process): returns (server, url of /v1/embeddings, dim); server.shutdown() stops it."""
    model = Model(dim, seed, vectors)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer((host, port), make_handler(model, State(), api_key))
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    return srv, "http://%s:%d/v1/embeddings" % (host, srv.server_address[1]), model.dim


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vectors", help="fastText .vec text file")
    ap.add_argument("--api-key", help="require Authorization: Bearer KEY")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (and --tls-key)")
    ap.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    a = ap.parse_args()
    model = Model(a.dim, a.seed, a.vectors)
    state = State()
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer((a.host, a.port), make_handler(model, state, a.api_key))
    if a.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("listening on %s:%d dim %d" % (a.host, srv.server_address[1], model.dim), flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
