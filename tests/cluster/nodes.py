"""mnemo processes for the chaos harness, one in each namespace of a `Net`.

Node i runs `ip netns exec <ns i> <bin> serve --insecure` (ip netns exec
execs the binary, so the Popen pid is mnemo's own: SIGKILL/SIGSTOP reach it
directly). It binds HTTP and SWIM on its namespace address (<subnet>.<10+i>,
HTTP 7700, SWIM 7946: each namespace has its own ports), with [cluster]
enabled, the `fast` SWIM profile, a shared cluster key, and seeds = the
other nodes' SWIM addresses. --insecure is what lets HTTP bind beyond
loopback without auth; only the run's bridge can reach it. The harness
(root namespace) reaches the API through the bridge, which has an address on
the same /24. Each node has its own temp data dir (kept over restarts) and
its stderr appended to <dir>/node<i>.log.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

HTTP_PORT = 7700
SWIM_PORT = 7946
KEY = "chaos-harness-cluster-key"
START_DEADLINE_S = 30.0
STATES = ("alive", "suspect", "dead", "left")


class NodeExited(AssertionError):
    """A node's process ended while it was waited for: no point polling on."""


def wait_for(pred, deadline_s, what, interval_s=0.1):
    """Polls pred until it returns something truthy or deadline_s passes."""
    end = time.monotonic() + deadline_s
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except NodeExited:
            raise
        except Exception as e:  # noqa: BLE001 - a node restarting or paused: poll again
            last_exc = e
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                deadline_s, what, "" if last_exc is None else " (last error: %r)" % last_exc))
        time.sleep(interval_s)


class Node:
    def __init__(self, net, i, binary, root):
        self.net, self.i, self.binary = net, i, binary
        self.addr = net.addrs[i]
        self.data_dir = os.path.join(root, "node%d" % i)
        self.log_path = os.path.join(root, "node%d.log" % i)
        os.makedirs(self.data_dir, exist_ok=True)
        self.proc = None
        self.id = None
        self.paused = False
        self.expect_exit = False  # the harness killed or stopped it: an exit is no surprise
        self.extra_env = {}  # e.g. the test-only MNEMO_TEST_* hooks; applied at the next start

    @property
    def url(self):
        return "http://%s:%d" % (self.addr, HTTP_PORT)

    def env(self):
        e = dict(os.environ)
        seeds = ["%s:%d" % (a, SWIM_PORT) for j, a in enumerate(self.net.addrs) if j != self.i]
        e.update({
            "MNEMO_HTTP_BIND": self.addr,
            "MNEMO_HTTP_PORT": str(HTTP_PORT),
            "MNEMO_GRPC_ENABLED": "false",
            "MNEMO_STORAGE_DATA_DIR": self.data_dir,
            "MNEMO_ENGINE_CONSOLIDATE_INTERVAL_S": "0",
            "MNEMO_CLUSTER_ENABLED": "true",
            "MNEMO_CLUSTER_BIND": self.addr,
            "MNEMO_CLUSTER_SWIM_PORT": str(SWIM_PORT),
            "MNEMO_CLUSTER_PROFILE": "fast",
            "MNEMO_CLUSTER_KEY": KEY,
            "MNEMO_CLUSTER_SEEDS": ",".join(seeds),
        })
        e.update(self.extra_env)
        return e

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def died_alone(self):
        """The exit code when the process ended without the harness killing or stopping it
        (a crash, an abort, a fail-stop of its own), else None."""
        if self.proc is None or self.expect_exit:
            return None
        return self.proc.poll()

    def start(self):
        assert not self.running(), "node %d is already running" % self.i
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                self.net.ns_cmd(self.i, [self.binary, "serve", "--insecure"]),
                env=self.env(), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        self.paused = False
        self.expect_exit = False

        def up():
            if self.proc.poll() is not None:
                raise NodeExited("node %d exited with %s:\n%s"
                                   % (self.i, self.proc.returncode, self.log()[-4000:]))
            doc = self.members_doc(timeout=1.0)
            for m in doc["members"]:
                if m.get("self"):
                    return m["id"]
            return None

        node_id = wait_for(up, START_DEADLINE_S, "node %d's HTTP API" % self.i)
        assert self.id is None or self.id == node_id, "node %d changed id" % self.i
        self.id = node_id
        return self

    def members_doc(self, timeout=2.0):
        with urllib.request.urlopen(self.url + "/v1/cluster/members", timeout=timeout) as r:
            return json.loads(r.read().decode("utf-8"))

    def view(self, timeout=2.0):
        """{node id: state} as this node sees the cluster."""
        return {m["id"]: m["state"] for m in self.members_doc(timeout)["members"]}

    def kill(self):
        """kill -9 (a paused node too); waits for the exit."""
        if self.proc is None:
            return
        self.expect_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.paused = False

    def stop(self):
        self.expect_exit = True
        if self.running():
            if self.paused:
                self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def pause(self):
        assert self.running(), "node %d is not running" % self.i
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.running():
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False


class Cluster:
    """n nodes over a Net; a context manager that stops them and removes the
    data dirs (kept, with the logs, when MNEMO_CHAOS_KEEP is set)."""

    def __init__(self, net, binary, extra_env=None):
        if not os.access(binary, os.X_OK):
            raise FileNotFoundError("mnemo binary %r is not executable" % binary)
        self.net = net
        self.root = tempfile.mkdtemp(prefix="mnemo-chaos-%s-" % net.prefix)
        self.nodes = [Node(net, i, os.path.abspath(binary), self.root) for i in range(net.n)]
        for nd in self.nodes:
            nd.extra_env.update(extra_env or {})

    def __enter__(self):
        try:
            for nd in self.nodes:
                nd.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        for nd in self.nodes:
            try:
                nd.stop()
            except Exception:  # noqa: BLE001 - Net's exit kills whatever is left
                pass
        if not os.environ.get("MNEMO_CHAOS_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)

    def logs(self):
        return "\n".join("--- node %d (%s)\n%s" % (nd.i, nd.addr, nd.log()[-3000:])
                         for nd in self.nodes)

    def state(self, observer, target):
        """target's state in observer's view (None if absent or unreachable)."""
        try:
            return self.nodes[observer].view().get(self.nodes[target].id)
        except Exception:  # noqa: BLE001
            return None

    def wait_states(self, observers, targets, states, deadline_s, what=None):
        """Waits until every observer sees every target in one of states."""
        if isinstance(states, str):
            states = (states,)

        def ok():
            for o in observers:
                view = self.nodes[o].view()
                for t in targets:
                    if view.get(self.nodes[t].id) not in states:
                        return False
            return True
        try:
            wait_for(ok, deadline_s, what or "nodes %s see %s in %s" % (observers, targets, states))
        except AssertionError as e:
            raise AssertionError("%s\nviews: %s\n%s" % (e, self.views(), self.logs())) from None

    def views(self):
        out = {}
        for nd in self.nodes:
            try:
                out[nd.i] = {self.index_of(k): v for k, v in nd.view(timeout=1.0).items()}
            except Exception as e:  # noqa: BLE001
                out[nd.i] = "unreachable (%s)" % type(e).__name__
        return out

    def index_of(self, node_id):
        for nd in self.nodes:
            if nd.id == node_id:
                return nd.i
        return node_id

    def wait_converged(self, deadline_s):
        """Every node sees every node alive (call it after heal())."""
        live = [nd.i for nd in self.nodes]
        self.wait_states(live, live, "alive", deadline_s, "every node alive in every view")
