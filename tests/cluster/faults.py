"""Faults for the chaos harness, on a `nodes.Cluster` over a `netns.Net`.

Network faults are nftables rules in a table `ip mnchaos` inside each node's
namespace (the harness never touches the root namespace's rules):

- partition(groups): every pair in different groups drops both ways
  (a rule `ip daddr <peer> drop` in each side's output hook);
- one_way(a, b): only a -> b is dropped (a rule in a's output hook), b -> a
  is kept: nftables gives asymmetric partitions with one rule, which is why
  it is used rather than taking a veth link down (that cuts both directions
  and every peer at once, and the harness's own HTTP path with them);
- loss(i, pct): `numgen random mod 100 < pct drop` on node i's traffic with
  its peers, both directions (the harness's HTTP to the node is spared, so
  its view can still be read); 100 % behaves as a partition of i;
- duplicate(i): `dup to <peer>` in i's output hook: every datagram i sends
  to a peer arrives twice;
- delay(i, ms): every packet i sends to a peer leaves ms later. With the
  kernel's sch_netem, `tc qdisc ... netem delay` on i's eth0 (which delays
  the harness's HTTP to i too). Without it (nftables has no delay, and this
  harness's usual kernel has no netem), an iptables rule in i's namespace
  sends its packets to its peers to netfilter queue 0, and nfq_delay.py,
  started in the namespace, gives each its ACCEPT ms after it came (the
  harness's HTTP is spared, as with loss). Where neither can be set up,
  FaultUnavailable says why (never a skip).

- bridge(left, mid, right): left and right cannot reach each other (both
  ways), mid reaches both: a node that bridges two halves.

Process faults: kill(i) (SIGKILL) / restart(i) (same data dir), pause(i)
(SIGSTOP) / resume(i) (SIGCONT), skew(i, ms): node i is stopped and started
again with the TEST ONLY MNEMO_TEST_CLOCK_OFFSET_MS=ms (its wall clock runs
ms ahead, or behind when negative; docs/config.md), unskew(i) the same with
the offset removed.

heal() undoes all of them (rules removed, qdisc deleted, paused nodes
resumed, killed nodes restarted, skewed nodes restarted unskewed); leaving the Net removes the namespaces,
and with them whatever rules were left.
"""

import json
import os
import select
import subprocess
import sys
import time

from netns import NetError

TABLE = "mnchaos"
DELAY_CHAIN = "MNCHAOS_DELAY"  # iptables chain of the nfqueue delay
DELAY_QUEUE = 0
NFQ_DELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nfq_delay.py")


class FaultUnavailable(RuntimeError):
    pass


class Faults:
    def __init__(self, cluster):
        self.cluster = cluster
        self.net = cluster.net
        self.drops = set()   # (src, dst): src's datagrams to dst are dropped
        self.lossy = {}      # node -> percent
        self.dups = set()    # nodes whose datagrams to peers are duplicated
        self.delayed = {}    # node -> ms
        self.delayers = {}   # node -> nfq_delay.py process (delay without netem)
        self.delay_ways = {} # node -> "netem" | "nfqueue"
        self.killed = set()
        self.paused = set()
        self.skewed = {}     # node -> ms
        self.log = []        # (monotonic s, kind, targets), in order

    def _note(self, kind, targets):
        self.log.append((time.monotonic(), kind, targets))

    def _check_node(self, i):
        if not (isinstance(i, int) and 0 <= i < self.net.n):
            raise ValueError("no node %r (0..%d)" % (i, self.net.n - 1))

    # --- network

    def _ruleset(self, i):
        peers = [j for j in range(self.net.n) if j != i]
        out, inp = [], []
        for (s, d) in sorted(self.drops):
            if s == i:
                out.append("ip daddr %s drop" % self.net.addrs[d])
        if i in self.lossy:
            pct = self.lossy[i]
            # numgen gives 0..99; nft refuses "< 100", and 100 % is a plain drop
            cond = "" if pct == 100 else "numgen random mod 100 < %d " % pct
            for j in peers:
                out.append("ip daddr %s %sdrop" % (self.net.addrs[j], cond))
                inp.append("ip saddr %s %sdrop" % (self.net.addrs[j], cond))
        if i in self.dups:
            for j in peers:
                out.append("ip daddr %s dup to %s" % (self.net.addrs[j], self.net.addrs[j]))
        return out, inp

    def _apply(self, i):
        out, inp = self._ruleset(i)
        # "table" then "delete table" makes the reload atomic and idempotent
        text = "table ip %s\ndelete table ip %s\n" % (TABLE, TABLE)
        if out or inp:
            text += "table ip %s {\n" % TABLE
            text += "  chain out {\n    type filter hook output priority 0; policy accept;\n"
            text += "".join("    %s\n" % r for r in out) + "  }\n"
            text += "  chain in {\n    type filter hook input priority 0; policy accept;\n"
            text += "".join("    %s\n" % r for r in inp) + "  }\n}\n"
        try:
            self.net.ns_run(i, ["nft", "-f", "-"], input_text=text)
        except FileNotFoundError:
            raise FaultUnavailable("nft is not installed (scripts/deps.sh installs nftables)") from None
        except NetError as e:
            raise FaultUnavailable("nftables rules cannot be loaded in namespace %s: %s"
                                   % (self.net.namespaces[i], e)) from None

    def rules(self, i):
        """The namespace's chaos table as `nft list` prints it ("" if none)."""
        p = self.net.ns_run(i, ["nft", "list", "table", "ip", TABLE], check=False)
        return p.stdout if p.returncode == 0 else ""

    def partition(self, groups):
        """Symmetric partition: nodes in different groups cannot reach each
        other. Nodes in no group form one more group."""
        seen = [i for g in groups for i in g]
        for i in seen:
            self._check_node(i)
        if len(seen) != len(set(seen)):
            raise ValueError("a node is in two groups: %r" % (groups,))
        rest = [i for i in range(self.net.n) if i not in seen]
        groups = [list(g) for g in groups] + ([rest] if rest else [])
        side = {i: k for k, g in enumerate(groups) for i in g}
        for a in range(self.net.n):
            for b in range(self.net.n):
                if a != b and side[a] != side[b]:
                    self.drops.add((a, b))
        for i in range(self.net.n):
            self._apply(i)
        self._note("partition", groups)

    def bridge(self, left, mid, right):
        """left and right (lists) are cut from each other both ways; mid, in
        neither, reaches both sides (and is reached by both)."""
        self._check_node(mid)
        for i in list(left) + list(right):
            self._check_node(i)
        if mid in left or mid in right or set(left) & set(right):
            raise ValueError("bridge: left, mid and right must be disjoint")
        for a in left:
            for b in right:
                self.drops.update({(a, b), (b, a)})
        for i in range(self.net.n):
            self._apply(i)
        self._note("bridge", [list(left), mid, list(right)])

    def one_way(self, src, dst):
        """src's datagrams to dst are dropped; dst's to src still arrive."""
        self._check_node(src)
        self._check_node(dst)
        if src == dst:
            raise ValueError("one_way needs two nodes")
        self.drops.add((src, dst))
        self._apply(src)
        self._note("one_way", [src, dst])

    def loss(self, i, pct):
        self._check_node(i)
        if not (isinstance(pct, int) and 1 <= pct <= 100):
            raise ValueError("loss percent must be an integer 1..100, not %r" % (pct,))
        self.lossy[i] = pct
        self._apply(i)
        self._note("loss", [i, pct])

    def duplicate(self, i):
        self._check_node(i)
        self.dups.add(i)
        self._apply(i)
        self._note("duplicate", [i])

    def delay(self, i, ms):
        self._check_node(i)
        if not (isinstance(ms, int) and 1 <= ms <= 60000):
            raise ValueError("delay must be an integer 1..60000 ms, not %r" % (ms,))
        self._undelay(i)
        p = self.net.ns_run(i, ["tc", "qdisc", "replace", "dev", self.net.dev, "root", "netem",
                                "delay", "%dms" % ms], check=False)
        if p.returncode == 0:
            self.delayed[i] = ms
            self.delay_ways[i] = "netem"
        else:
            self._delay_by_queue(i, ms, p.stderr.strip())
            self.delayed[i] = ms
            self.delay_ways[i] = "nfqueue"
        self._note("delay", [i, ms])

    def _delay_by_queue(self, i, ms, netem_error):
        """Delay without netem: i's packets to its peers go to a netfilter queue that
        nfq_delay.py (in i's namespace) releases ms later."""
        ns = self.net.namespaces[i]
        why = "tc netem cannot be set in namespace %s (%s: no sch_netem)" % (ns, netem_error)
        rules = [["iptables", "-w", "-N", DELAY_CHAIN], ["iptables", "-w", "-A", "OUTPUT", "-j",
                                                          DELAY_CHAIN]]
        for j in range(self.net.n):
            if j != i:
                rules.append(["iptables", "-w", "-A", DELAY_CHAIN, "-d", self.net.addrs[j], "-j",
                              "NFQUEUE", "--queue-num", str(DELAY_QUEUE), "--queue-bypass"])
        proc = subprocess.Popen(self.net.ns_cmd(i, [sys.executable, NFQ_DELAY, "--queue",
                                                    str(DELAY_QUEUE), "--ms", str(ms)]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.delayers[i] = proc
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            self._undelay(i)
            err = proc.stderr.read().strip() if proc.poll() is not None else "no answer in 10 s"
            raise FaultUnavailable("%s, and the nfqueue delayer did not start: %s" % (why, err))
        for cmd in rules:
            try:
                self.net.ns_run(i, cmd)
            except FileNotFoundError:
                self._undelay(i)
                raise FaultUnavailable("%s, and iptables is not installed (scripts/deps.sh "
                                       "installs it)" % why) from None
            except NetError as e:
                self._undelay(i)
                raise FaultUnavailable("%s, and the NFQUEUE rule cannot be set: %s"
                                       % (why, e)) from None

    def _undelay(self, i):
        """Removes i's delay, whichever way it was set (no error if there is none)."""
        way = self.delay_ways.pop(i, None)
        self.delayed.pop(i, None)
        if way == "netem":
            self.net.ns_run(i, ["tc", "qdisc", "del", "dev", self.net.dev, "root"], check=False)
        # the rules go first: with no queue rule, nothing waits in the queue any more
        for cmd in (["iptables", "-w", "-D", "OUTPUT", "-j", DELAY_CHAIN],
                    ["iptables", "-w", "-F", DELAY_CHAIN], ["iptables", "-w", "-X", DELAY_CHAIN]):
            try:
                self.net.ns_run(i, cmd, check=False)
            except FileNotFoundError:
                break
        proc = self.delayers.pop(i, None)
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    def qdiscs(self, i):
        return self.net.ns_run(i, ["tc", "qdisc", "show", "dev", self.net.dev]).stdout

    def clear_network(self):
        self.drops.clear()
        self.lossy.clear()
        self.dups.clear()
        for i in range(self.net.n):
            self._apply(i)
        for i in list(self.delayed):
            self._undelay(i)

    # --- processes

    def kill(self, i):
        self._check_node(i)
        self.cluster.nodes[i].kill()
        self.paused.discard(i)
        self.killed.add(i)
        self._note("kill", [i])

    def restart(self, i):
        self._check_node(i)
        self.cluster.nodes[i].start()
        self.killed.discard(i)
        self._note("restart", [i])

    def pause(self, i):
        self._check_node(i)
        self.cluster.nodes[i].pause()
        self.paused.add(i)
        self._note("pause", [i])

    def resume(self, i):
        self._check_node(i)
        self.cluster.nodes[i].resume()
        self.paused.discard(i)
        self._note("resume", [i])

    def _restart_with_offset(self, i, ms):
        nd = self.cluster.nodes[i]
        if nd.paused:
            self.resume(i)
        nd.stop()
        if ms:
            nd.extra_env["MNEMO_TEST_CLOCK_OFFSET_MS"] = str(ms)
        else:
            nd.extra_env.pop("MNEMO_TEST_CLOCK_OFFSET_MS", None)
        nd.start()
        self.killed.discard(i)

    def skew(self, i, ms):
        """Restarts node i (SIGTERM, same data dir) with its wall clock ms off."""
        self._check_node(i)
        if not (isinstance(ms, int) and ms != 0 and abs(ms) <= 86400000):
            raise ValueError("skew must be a non-zero integer of ms within a day, not %r" % (ms,))
        self._restart_with_offset(i, ms)
        self.skewed[i] = ms
        self._note("skew", [i, ms])

    def unskew(self, i):
        self._check_node(i)
        self._restart_with_offset(i, 0)
        self.skewed.pop(i, None)
        self._note("unskew", [i])

    def heal(self):
        """Undoes every fault: network rules and qdiscs removed, paused nodes
        resumed, killed nodes restarted, skewed nodes restarted on the true clock."""
        self.clear_network()
        for i in sorted(self.paused):
            self.resume(i)
        for i in sorted(self.killed):
            self.restart(i)
        for i in sorted(self.skewed):
            self.unskew(i)
        self._note("heal", [])


# --- probes: datagrams between namespaces (the namespaces' own traffic only)

_RECEIVER = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
echo = sys.argv[3] == "echo"
print("ready", flush=True)
got = []
end = time.monotonic() + float(sys.argv[4])
while time.monotonic() < end:
    # after the first datagram, 1 s of silence ends the wait (the sender is done)
    s.settimeout(max(0.01, min(end - time.monotonic(), 1.0 if got else 1e9)))
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        break
    if echo:
        s.sendto(data, peer)
    else:
        got.append(data.decode())
print(json.dumps(got), flush=True)
"""

_SENDER = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
dst = (sys.argv[2], int(sys.argv[3]))
n, echo = int(sys.argv[4]), sys.argv[5] == "echo"
rtts = []
for k in range(n):
    t = time.monotonic()
    try:
        s.sendto(("p%d" % k).encode(), dst)
    except PermissionError:
        pass  # a local nftables drop refuses the send (EPERM): the datagram is lost
    if echo:
        s.settimeout(3.0)
        try:
            while s.recv(2048).decode() != "p%d" % k:
                pass
            rtts.append(time.monotonic() - t)
        except socket.timeout:
            pass
    else:
        time.sleep(0.01)
print(json.dumps(rtts), flush=True)
"""

PROBE_PORT = 47999


def _receiver(net, i, mode, life_s):
    p = subprocess.Popen(net.ns_cmd(i, ["/usr/bin/python3", "-c", _RECEIVER, net.addrs[i],
                                        str(PROBE_PORT), mode, str(life_s)]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r, _, _ = select.select([p.stdout], [], [], 10.0)
    line = p.stdout.readline() if r else ""
    if line.strip() != "ready":
        p.kill()
        p.wait(timeout=10)
        raise NetError("probe receiver in %s did not start: %s" % (net.namespaces[i],
                                                                   p.stderr.read()))
    return p


def udp_deliveries(net, src, dst, count=20, life_s=3.0):
    """Sends count datagrams src -> dst; returns the payloads dst received."""
    rx = _receiver(net, dst, "collect", life_s)
    try:
        net.ns_run(src, ["/usr/bin/python3", "-c", _SENDER, net.addrs[src], net.addrs[dst],
                         str(PROBE_PORT), str(count), "oneway"])
        out, _ = rx.communicate(timeout=life_s + 10)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait(timeout=10)
    return json.loads(out.strip().splitlines()[-1])


def udp_rtts(net, src, dst, count=5, life_s=20.0):
    """Round-trip times (s) of count echoed datagrams src -> dst -> src."""
    rx = _receiver(net, dst, "echo", life_s)
    try:
        p = net.ns_run(src, ["/usr/bin/python3", "-c", _SENDER, net.addrs[src], net.addrs[dst],
                             str(PROBE_PORT), str(count), "echo"], timeout=life_s + 10)
    finally:
        rx.kill()
        rx.wait(timeout=10)
    return json.loads(p.stdout.strip().splitlines()[-1])
