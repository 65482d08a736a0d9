"""Network namespaces for the chaos harness (stdlib only, run as root).

`Net(n)` makes, for one run, a Linux bridge in the root namespace and n
network namespaces, each joined to the bridge by a veth pair:

    root ns: bridge <prefix>br, address <subnet>.1/24
    ns i:    eth0 (veth peer of <prefix>h<i> on the bridge), address <subnet>.<10+i>/24, lo up

Every name starts with a per-run random prefix ("mc" + 6 hex digits), so
parallel runs never collide, and the /24 is picked at random inside
10.200.0.0/13 among subnets no interface of the machine uses. The harness in
the root namespace reaches the nodes through the bridge address; nodes reach
each other through the bridge. No other interface is touched.

Teardown (`__exit__`, SIGTERM, SIGINT, or `cleanup_stale(prefix)` for the
leftovers of a crashed run) kills every process still inside the run's
namespaces, deletes the namespaces (which deletes their veth ends) and the
bridge. Namespaces that cannot be made raise NetError: never a silent skip.
"""

import os
import random
import re
import signal
import subprocess
import sys
import time

PREFIX_RE = re.compile(r"^mc[0-9a-f]{6}$")
CMD_TIMEOUT_S = 20.0


class NetError(RuntimeError):
    pass


def run(cmd, check=True, input_text=None, timeout=CMD_TIMEOUT_S):
    """Runs one command (a list); raises NetError with its stderr when check."""
    p = subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise NetError("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode,
                                                    (p.stderr or p.stdout).strip()))
    return p


def _netns_list():
    p = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def _links():
    p = run(["ip", "-o", "link", "show"], check=False)
    out = []
    for line in p.stdout.splitlines():
        m = re.match(r"^\d+:\s+([^:@\s]+)", line)
        if m:
            out.append(m.group(1))
    return out


def _kill_ns_pids(ns):
    """SIGKILLs every process inside namespace ns; waits (bounded) until none is left."""
    for _ in range(50):
        p = run(["ip", "netns", "pids", ns], check=False)
        pids = [int(x) for x in p.stdout.split() if x.isdigit()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)  # a stopped process dies on SIGKILL anyway; be sure
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def cleanup_stale(prefix):
    """Removes every namespace and link whose name starts with prefix (a run's
    prefix, "mc" + 6 hex digits). Returns the names removed."""
    if not PREFIX_RE.match(prefix):
        raise ValueError("refusing to clean up %r: not a harness prefix (mc + 6 hex digits)" % prefix)
    removed = []
    for ns in _netns_list():
        if ns.startswith(prefix):
            _kill_ns_pids(ns)
            run(["ip", "netns", "del", ns], check=False)
            removed.append(ns)
    for link in _links():
        if link.startswith(prefix):
            run(["ip", "link", "del", link], check=False)
            removed.append(link)
    return removed


def leftovers(prefix):
    """Names of namespaces and links of the run that still exist."""
    return ([ns for ns in _netns_list() if ns.startswith(prefix)]
            + [link for link in _links() if link.startswith(prefix)])


def _used_subnets():
    p = run(["ip", "-o", "-4", "addr", "show"], check=False)
    used = set()
    for m in re.finditer(r"inet (\d+)\.(\d+)\.(\d+)\.\d+/", p.stdout):
        used.add((int(m.group(1)), int(m.group(2)), int(m.group(3))))
    return used


class Net:
    """A bridge and n namespaces for one run (see the module doc)."""

    def __init__(self, n, seed=None):
        if not 1 <= n <= 200:
            raise ValueError("n must be 1..200, not %r" % (n,))
        self.n = n
        rnd = random.Random(seed if seed is not None else os.urandom(8))
        self.prefix = "mc%06x" % rnd.getrandbits(24)
        used = _used_subnets()
        for _ in range(100):
            net = (10, rnd.randrange(200, 208), rnd.randrange(0, 256))
            if net not in used:
                break
        else:
            raise NetError("no free /24 in 10.200.0.0/13")
        self.subnet = "%d.%d.%d" % net
        self.bridge = self.prefix + "br"
        self.bridge_addr = self.subnet + ".1"
        self.namespaces = ["%s-n%d" % (self.prefix, i) for i in range(n)]
        self.addrs = ["%s.%d" % (self.subnet, 10 + i) for i in range(n)]
        self.dev = "eth0"  # the veth end inside every namespace
        self._old_handlers = {}
        self._up = False

    # --- running commands inside a namespace

    def ns_cmd(self, i, cmd):
        """The argv that runs cmd (a list) inside namespace i."""
        return ["ip", "netns", "exec", self.namespaces[i]] + list(cmd)

    def ns_run(self, i, cmd, check=True, input_text=None, timeout=CMD_TIMEOUT_S):
        return run(self.ns_cmd(i, cmd), check=check, input_text=input_text, timeout=timeout)

    # --- lifecycle

    def __enter__(self):
        if os.geteuid() != 0:
            raise NetError("the chaos harness needs root to make network namespaces (euid %d)"
                           % os.geteuid())
        self._install_signal_handlers()
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        self._up = True
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _setup(self):
        try:
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
        except NetError as e:
            raise NetError("cannot make the bridge (are network namespaces available here?): %s"
                           % e) from e
        run(["ip", "addr", "add", self.bridge_addr + "/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        for i, ns in enumerate(self.namespaces):
            try:
                run(["ip", "netns", "add", ns])
            except NetError as e:
                raise NetError("cannot make network namespace %s: %s" % (ns, e)) from e
            host_end = "%sh%d" % (self.prefix, i)
            peer = "%sp%d" % (self.prefix, i)
            run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", peer])
            run(["ip", "link", "set", peer, "netns", ns])
            run(["ip", "link", "set", host_end, "master", self.bridge])
            run(["ip", "link", "set", host_end, "up"])
            self.ns_run(i, ["ip", "link", "set", peer, "name", self.dev])
            self.ns_run(i, ["ip", "addr", "add", self.addrs[i] + "/24", "dev", self.dev])
            self.ns_run(i, ["ip", "link", "set", self.dev, "up"])
            self.ns_run(i, ["ip", "link", "set", "lo", "up"])

    def close(self):
        """Kills what runs in the namespaces and removes everything of the run.
        Idempotent."""
        cleanup_stale(self.prefix)
        self._up = False
        self._restore_signal_handlers()

    # --- signals: a SIGTERM/SIGINT mid-run still cleans up

    def _on_signal(self, signum, frame):
        self.close()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        sys.exit(128 + signum)

    def _install_signal_handlers(self):
        import threading
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; __exit__ still cleans up
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signal_handlers(self):
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        self._old_handlers = {}
