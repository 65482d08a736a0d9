"""Fixtures for the integration suites: a real `mnemo serve` process on a free port
with a temporary data dir, and a client for it.

MNEMO_BIN names the binary (ctest sets it); PYTHONPATH must reach clients/python.
The server is started with http.port = 0 and the port is read from its
"listening on http://HOST:PORT" log line, waited for with a deadline.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))

from mnemo_client import MnemoClient, MnemoError  # noqa: E402

LISTEN_RE = re.compile(r"listening on https?://(\[[^\]]+\]|[^:\s]+):(\d+)")
GRPC_LISTEN_RE = re.compile(r"grpc listening on (\[[^\]]+\]|[^:\s]+):(\d+)")
# Sanitizer builds start and stop slower; every wait is bounded by these.
START_DEADLINE_S = float(os.environ.get("MNEMO_TEST_START_DEADLINE", "60"))
STOP_DEADLINE_S = float(os.environ.get("MNEMO_TEST_STOP_DEADLINE", "60"))


def mnemo_bin():
    b = os.environ.get("MNEMO_BIN")
    if not b:
        for cand in ("build/mnemo", "build-api/mnemo"):
            p = os.path.join(HERE, "..", "..", cand)
            if os.path.exists(p):
                return os.path.abspath(p)
        pytest.fail("MNEMO_BIN is not set (the path of the mnemo binary)")
    return b


def wait_until(pred, deadline_s, interval_s=0.05, what="condition"):
    """Polls pred() until it returns a true value or the deadline passes."""
    end = time.monotonic() + deadline_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out after %.1fs waiting for %s" % (deadline_s, what))
        time.sleep(interval_s)


class MnemoServer:
    """One mnemo process over a data dir; can be stopped, killed and started again."""

    def __init__(self, data_dir, env=None, args=None):
        self.data_dir = str(data_dir)
        self.extra_env = dict(env or {})
        self.args = list(args or [])
        self.proc = None
        self.port = None
        self.host = None
        self.grpc_port = None
        self.lines = []
        self._lock = threading.Lock()
        self._reader = None

    def env(self):
        e = dict(os.environ)
        e.update({
            "MNEMO_HTTP_PORT": "0",
            "MNEMO_HTTP_BIND": "127.0.0.1",
            # gRPC on any free port too, so servers of parallel suites never collide
            "MNEMO_GRPC_PORT": "0",
            "MNEMO_STORAGE_DATA_DIR": self.data_dir,
            "MNEMO_ENGINE_EXPIRY_INTERVAL_MS": "100",
            # scheduled consolidation would add semantic memories by itself; suites that
            # test it turn it on explicitly
            "MNEMO_ENGINE_CONSOLIDATE_INTERVAL_S": "0",
        })
        e.update(self.extra_env)
        return e

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self.lines.append(line)
        stream.close()

    def log(self):
        with self._lock:
            return "\n".join(self.lines)

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        with self._lock:
            self.lines = []
        self.proc = subprocess.Popen([mnemo_bin(), "serve"] + self.args, env=self.env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self._reader.start()

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("mnemo exited with %s before listening:\n%s"
                                     % (self.proc.returncode, self.log()))
            with self._lock:
                for line in self.lines:
                    m = LISTEN_RE.search(line)
                    if m:
                        return m
            return None

        m = wait_until(listening, START_DEADLINE_S, what="the listening line")
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))
        with self._lock:
            g = [GRPC_LISTEN_RE.search(line) for line in self.lines]
        g = [x for x in g if x]
        # the gRPC line comes before the HTTP one (or not at all with grpc.enabled = false)
        self.grpc_port = int(g[-1].group(2)) if g else None
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def client(self, timeout=30.0):
        return MnemoClient(self.url, timeout=timeout)

    def _wait_exit(self):
        try:
            rc = self.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_DEADLINE_S)
            raise AssertionError("mnemo did not stop within %.0fs:\n%s"
                                 % (STOP_DEADLINE_S, self.log()))
        if self._reader:
            self._reader.join(timeout=STOP_DEADLINE_S)
        return rc

    def stop(self, sig=signal.SIGTERM):
        """Graceful stop; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        return self._wait_exit()

    def kill(self):
        """SIGKILL: no flush, no close."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self._wait_exit()

    def restart(self):
        assert self.stop() == 0, self.log()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def server_factory(tmp_path):
    """Makes servers on their own data dirs; every one is stopped at teardown."""
    made = []

    def make(env=None, data_dir=None, start=True, args=None):
        d = data_dir or tmp_path / ("data%d" % len(made))
        s = MnemoServer(d, env=env, args=args)
        made.append(s)
        return s.start() if start else s

    yield make
    for s in made:
        if s.alive():
            rc = s.stop()
            assert rc == 0, "mnemo exited with %s:\n%s" % (rc, s.log())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server shared by a test module (tests use their own space names)."""
    s = MnemoServer(tmp_path_factory.mktemp("data")).start()
    yield s
    if s.alive():
        rc = s.stop()
        assert rc == 0, "mnemo exited with %s:\n%s" % (rc, s.log())


@pytest.fixture
def client(server):
    c = server.client()
    yield c
    c.close()
    # a crash of the shared server is reported by the test that caused it, with the log
    assert server.alive(), "mnemo died (exit %s):\n%s" % (server.proc.returncode, server.log())


_space_counter = [0]


@pytest.fixture
def space_name(request):
    """A fresh space name per test."""
    _space_counter[0] += 1
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return "%s-%d" % (base or "t", _space_counter[0])


def expect_error(fn, status, code=None, message_part=None):
    """Calls fn() and checks it raises MnemoError with status (and code/message part)."""
    try:
        fn()
    except MnemoError as e:
        assert e.status == status, "expected %s, got %s %s: %s" % (status, e.status, e.code,
                                                                   e.message)
        if code is not None:
            assert e.code == code, "expected code %s, got %s (%s)" % (code, e.code, e.message)
        if message_part is not None:
            assert message_part in e.message, "%r not in %r" % (message_part, e.message)
        return e
    raise AssertionError("expected an error %s %s" % (status, code or ""))


def npm_ready(node_dir, probe):
    """Installs node_dir's pinned packages (package-lock.json) with npm ci when
    node_modules/<probe> is missing. Returns the path of node; fails the test when node or
    npm are missing or npm ci fails."""
    node = shutil.which("node") or "/usr/bin/node"
    if not os.path.exists(node):
        pytest.fail("node is not installed (install Node.js 18 or later with npm)")
    if not os.path.isdir(os.path.join(node_dir, "node_modules", probe)):
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm is not installed: it is needed to fetch %s (install Node.js 18 or "
                        "later with npm)" % probe)
        try:
            p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=node_dir,
                               capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail("npm ci in %s took over 300 s: is the npm registry reachable?"
                        % node_dir)
        if p.returncode != 0:
            pytest.fail("npm ci in %s failed (is the npm registry reachable?):\n%s\n%s"
                        % (node_dir, p.stdout[-2000:], p.stderr[-2000:]))
    return node


def node_client(node_dir, probe, args, timeout=120):
    """Runs `node client.mjs args...` in node_dir after npm_ready; returns the completed
    process."""
    node = npm_ready(node_dir, probe)
    return subprocess.run([node, os.path.join(node_dir, "client.mjs")] + list(args),
                          cwd=node_dir, capture_output=True, text=True, timeout=timeout)
