"""Each fault kind of the chaos harness, seen through SWIM membership of three
real mnemo processes, each in a network namespace of its own (tests/cluster/
README.md). Every wait polls GET /v1/cluster/members with a deadline; every
test ends with a heal and a converged cluster, and its namespaces gone.

Run as root: /usr/bin/python3 -m pytest tests/cluster/test_faults.py [--bin PATH]
"""

import signal
import subprocess
import sys
import time

import pytest

from conftest import DEADLINE_S, HERE
import faults as F
import netns

N = 3
GONE = ("suspect", "dead")
F_STATES = ("alive", "suspect", "dead", "left")


def test_partition_one_node_away_then_heal(env):
    net, c, f = env
    f.partition([[2]])
    c.wait_states([0, 1], [2], "dead", DEADLINE_S, "the majority sees node 2 dead")
    c.wait_states([0, 1], [0, 1], "alive", DEADLINE_S, "the majority sees itself alive")
    c.wait_states([2], [0, 1], GONE, DEADLINE_S, "node 2 sees the majority gone")
    f.heal()
    c.wait_converged(DEADLINE_S)


def test_one_way_partition_is_asymmetric(env):
    net, c, f = env
    f.one_way(0, 1)
    # the network: 0 -> 1 dropped, 1 -> 0 delivered
    assert F.udp_deliveries(net, 0, 1, count=20) == []
    assert len(F.udp_deliveries(net, 1, 0, count=20)) == 20
    assert "ip daddr %s drop" % net.addrs[1] in f.rules(0)
    assert f.rules(1) == ""
    # SWIM: node 2 reaches both and relays indirect probes (0 -> 2 -> 1 and
    # the acks 1 -> 2 -> 0 and 0 -> 2 -> 1), so no view declares 0 or 1 dead
    # (suspect may come and go); record every view over a bounded window.
    # Observed here: every view stays all-alive, SWIM masks a one-way link.
    seen = {o: set() for o in range(N)}
    end = time.monotonic() + 6.0
    polls = 0
    while time.monotonic() < end and polls < 200:
        for o in range(N):
            v = c.nodes[o].view()
            for t in range(N):
                seen[o].add((t, v.get(c.nodes[t].id)))
        polls += 1
        time.sleep(0.05)
    assert polls > 0
    print("one-way 0->1, states seen by each observer:", {o: sorted(seen[o], key=str) for o in seen})
    for o in range(N):
        assert (0, "dead") not in seen[o] and (1, "dead") not in seen[o], seen
    assert all(st in F_STATES for o in seen for (_, st) in seen[o]), seen
    f.heal()
    c.wait_converged(DEADLINE_S)


def test_kill_9_then_restart(env):
    net, c, f = env
    old_id = c.nodes[1].id
    f.kill(1)
    c.wait_states([0, 2], [1], "dead", DEADLINE_S, "node 1 dead after kill -9")
    f.restart(1)
    assert c.nodes[1].id == old_id  # same data dir, same node id
    c.wait_converged(DEADLINE_S)


def test_pause_then_resume(env):
    net, c, f = env
    f.pause(1)
    c.wait_states([0, 2], [1], GONE, DEADLINE_S, "paused node 1 suspect or dead")
    c.wait_states([0, 2], [1], "dead", DEADLINE_S, "paused node 1 dead")
    f.resume(1)
    c.wait_converged(DEADLINE_S)


def test_full_loss_on_a_link_is_a_partition(env):
    net, c, f = env
    f.loss(2, 100)
    assert "ip saddr %s drop" % net.addrs[0] in f.rules(2)
    assert F.udp_deliveries(net, 0, 2, count=10) == []
    assert F.udp_deliveries(net, 2, 0, count=10) == []
    c.wait_states([0, 1], [2], "dead", DEADLINE_S, "node 2 dead behind 100% loss")
    c.wait_states([2], [0, 1], GONE, DEADLINE_S, "node 2 sees its peers gone")
    f.heal()
    assert f.rules(2) == ""
    c.wait_converged(DEADLINE_S)


def test_partial_loss_drops_some_datagrams(env):
    net, c, f = env
    f.loss(2, 50)
    assert "numgen random mod 100 < 50 drop" in f.rules(2)
    # 200 datagrams through a 50 % drop: all or none arrive with p = 2^-199
    got = F.udp_deliveries(net, 0, 2, count=200, life_s=5.0)
    assert 0 < len(got) < 200, len(got)
    f.heal()
    assert len(F.udp_deliveries(net, 0, 2, count=20)) == 20
    c.wait_converged(DEADLINE_S)


def test_duplication_delivers_every_datagram_twice(env):
    net, c, f = env
    f.duplicate(0)
    assert "dup to %s" % net.addrs[1] in f.rules(0)
    got = F.udp_deliveries(net, 0, 1, count=20)
    assert sorted(got) == sorted(["p%d" % k for k in range(20)] * 2)
    assert len(F.udp_deliveries(net, 1, 0, count=20)) == 20  # the other way is untouched
    # SWIM keeps everyone alive with duplicated datagrams
    c.wait_converged(DEADLINE_S)
    f.heal()
    assert f.rules(0) == ""
    assert len(F.udp_deliveries(net, 0, 1, count=20)) == 20


def test_delay_adds_round_trip_time(env):
    net, c, f = env
    base = F.udp_rtts(net, 0, 1, count=3)
    assert len(base) == 3
    # netem where the kernel has it, else the nfqueue delayer: one of the two must work
    f.delay(1, 200)
    assert f.delay_ways[1] in ("netem", "nfqueue")
    if f.delay_ways[1] == "netem":
        assert "netem" in f.qdiscs(1) and "delay 200ms" in f.qdiscs(1)
    else:
        assert f.delayers[1].poll() is None  # the delayer runs
        assert "NFQUEUE" in net.ns_run(1, ["iptables", "-S", F.DELAY_CHAIN]).stdout
    rtts = F.udp_rtts(net, 0, 1, count=3)
    # only 1 -> 0 is delayed (its output); neither way delivers early
    assert len(rtts) == 3 and min(rtts) >= 0.2, rtts
    other = F.udp_rtts(net, 0, 2, count=3)  # a pair without node 1 is untouched
    assert len(other) == 3
    delayer = f.delayers.get(1)
    f.heal()
    assert "netem" not in f.qdiscs(1) and 1 not in f.delayed
    assert net.ns_run(1, ["iptables", "-S", F.DELAY_CHAIN], check=False).returncode != 0
    if delayer is not None:
        assert delayer.poll() is not None  # stopped with the heal
    c.wait_converged(DEADLINE_S)


def test_teardown_leaves_nothing_even_on_sigterm_or_crash():
    # a run killed by SIGTERM cleans up in its handler
    script = ("import sys, time; sys.path.insert(0, %r); import netns\n"
              "with netns.Net(2) as net:\n"
              "    print(net.prefix, flush=True)\n"
              "    time.sleep(60)\n" % HERE)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    prefix = p.stdout.readline().strip()
    assert netns.PREFIX_RE.match(prefix), prefix
    assert len(netns.leftovers(prefix)) == 2 + 2 + 1  # 2 namespaces, 2 host veths, bridge
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=20) == 128 + signal.SIGTERM
    assert netns.leftovers(prefix) == []

    # a run that died without its cleanup: cleanup_stale removes the leftovers
    net = netns.Net(2)
    net.__enter__()
    net._restore_signal_handlers()
    holder = subprocess.Popen(net.ns_cmd(0, ["sleep", "60"]))
    assert len(netns.leftovers(net.prefix)) == 5
    removed = netns.cleanup_stale(net.prefix)
    assert holder.wait(timeout=20) == -signal.SIGKILL
    assert set(net.namespaces + [net.bridge]) <= set(removed)
    assert netns.leftovers(net.prefix) == []

    with pytest.raises(ValueError):
        netns.cleanup_stale("")  # never a prefix that could match others' names
