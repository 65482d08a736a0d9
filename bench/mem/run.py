#!/usr/bin/python3
"""Peak memory of a real mnemo server under the HTTP memory attacks of issue 14.

Each attack runs against a fresh server (so VmHWM, the peak RSS, is the attack's own) on
loopback, bounded in connections, bytes and time, and prints the server's VmRSS before,
its VmHWM during and its VmRSS after, from /proc/PID/status:

  keyless-get       auth on, no key: each connection sends GET /health with a 16 MiB body,
                    all but its last byte, and holds it (an open route)
  keyless-404       auth on, no key: the same as POSTs to a path no route matches
  keyed-pipeline    a read key: per connection, 16 GET /openapi.json then 40 recalls of
                    16 MiB pipelined, answers never read (requests queue behind the
                    handlers and the unread answers)
  keyed-bodies      a read key: each connection sends all but the last byte of a 16 MiB
                    recall body and holds it (the process-wide budget)

  /usr/bin/python3 bench/mem/run.py --bin build/mnemo [--attack NAME] [--connections N]

Defaults: http.max_body_bytes 16 MiB (the default); 48 connections for the held bodies,
2 for the pipelines. Every attack stops when the server stops taking bytes (1 s without
progress on any connection) or after 60 s. "sent" counts the bytes the server's sockets
took: read, or drained and dropped after a refusal (a refused connection is half-closed
and its input discarded for up to 2 s).
"""

import argparse
import hashlib
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
STALL_GETS = 16  # answers (37 KB each) that fill the socket buffers the client never reads
KEY = "bench-read-key"
ADMIN = "bench-admin-key"
LISTEN_RE = re.compile(r"listening on https?://[^:\s]+:(\d+)")


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="mnemo-mem-")
        env = dict(os.environ)
        keys = ", ".join('{sha256 = "%s", role = "%s", spaces = ["*"]}'
                         % (hashlib.sha256(k.encode()).hexdigest(), r)
                         for k, r in ((KEY, "read"), (ADMIN, "admin")))
        env.update({
            "MNEMO_HTTP_PORT": "0", "MNEMO_HTTP_BIND": "127.0.0.1", "MNEMO_GRPC_PORT": "0",
            "MNEMO_STORAGE_DATA_DIR": self.dir, "MNEMO_AUTH_ENABLED": "true",
            "MNEMO_AUTH_KEYS": "[%s]" % keys,
        })
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.monotonic() + 30
        self.port = None
        while self.port is None:
            line = self.proc.stderr.readline().decode("utf-8", "replace")
            m = LISTEN_RE.search(line)
            if m:
                self.port = int(m.group(1))
            elif not line or time.monotonic() > end:
                raise SystemExit("mnemo did not start")
        # stderr is left unread from here on: the server logs little at the default level
        space = b'{"name":"m","dim":3}'
        self.request(b"POST /v1/spaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + ADMIN.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(space), space))

    def request(self, raw):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(raw)
            while s.recv(65536):
                pass

    def rss(self):
        return status_kib(self.proc.pid, "VmRSS") // 1024

    def hwm(self):
        return status_kib(self.proc.pid, "VmHWM") // 1024

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def stream_out(socks_chunks, deadline_s):
    """Sends each socket's chunks in turn, round robin, until every socket is done or the
    server stops taking bytes (1 s without progress on any socket). Returns bytes sent."""
    sent = 0
    pending = {s: [memoryview(c) for c in chunks] for s, chunks in socks_chunks}
    end = time.monotonic() + deadline_s
    while pending and time.monotonic() < end:
        _, ready, _ = select.select([], list(pending), [], 1.0)
        if not ready:
            break
        for s in ready:
            q = pending[s]
            try:
                n = s.send(q[0][:1 << 20])
            except BlockingIOError:
                continue
            except OSError:  # the server answered and closed: this one is done
                del pending[s]
                continue
            sent += n
            q[0] = q[0][n:]
            if not len(q[0]):
                q.pop(0)
                if not q:
                    del pending[s]
    return sent


def open_socks(srv, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # answers are never read
        s.connect(("127.0.0.1", srv.port))
        s.setblocking(False)
        socks.append(s)
    return socks


def pipeline_chunks(head, body_bytes, bodies):
    stall = [b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"] * STALL_GETS
    body = b" " * (body_bytes - 2) + b"{}"
    return stall + [head % body_bytes, body] * bodies


RECALL = (b"POST /v1/spaces/m/recall HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
          + KEY.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n")
# name: (request head with %d for the body length, pipelined or held, connections)
ATTACKS = {
    "keyless-get": (b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", False, 48),
    "keyless-404": (b"POST /no/such/path HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                    b"\r\nContent-Length: %d\r\n\r\n", False, 48),
    "keyed-pipeline": (RECALL, True, 2),
    "keyed-bodies": (RECALL, False, 48),
}


def run_attack(binary, name, conns, bodies, body_bytes):
    srv = Server(binary)
    try:
        time.sleep(0.5)
        before = srv.rss()
        socks = open_socks(srv, conns)
        head, pipelined, _ = ATTACKS[name]
        if pipelined:
            work = [(s, pipeline_chunks(head, body_bytes, bodies)) for s in socks]
        else:
            work = [(s, [head % body_bytes, b" " * (body_bytes - 1)]) for s in socks]
        t0 = time.monotonic()
        sent = stream_out(work, 60)
        took = time.monotonic() - t0
        time.sleep(1.0)  # let the server take what is in flight
        peak = srv.hwm()
        for s in socks:
            s.close()
        time.sleep(1.5)
        after = srv.rss()
        alive = srv.proc.poll() is None
        print("%-17s conns %3d  sent %6d MiB in %5.1f s  RSS before %5d MiB  peak %5d MiB  "
              "after %5d MiB%s" % (name, conns, sent // MIB, took, before, peak, after,
                                   "" if alive else "  (server died)"))
        sys.stdout.flush()
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the mnemo binary")
    ap.add_argument("--attack", choices=list(ATTACKS), action="append")
    ap.add_argument("--connections", type=int, default=0, help="override the connection count")
    ap.add_argument("--bodies", type=int, default=40, help="bodies pipelined per connection")
    a = ap.parse_args()
    print("binary %s, bodies of 16 MiB" % a.bin)
    for name in a.attack or list(ATTACKS):
        run_attack(a.bin, name, a.connections or ATTACKS[name][2], a.bodies, 16 * MIB)


if __name__ == "__main__":
    main()
