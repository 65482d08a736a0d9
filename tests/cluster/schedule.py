"""A seeded fault schedule for the chaos harness, and its execution.

`plan(seed, n, duration_s)` is a pure function of its arguments: the same
seed gives the same episodes on every machine (replay). An episode is one
fault held for a while and then undone; episodes follow one another with a
gap, so every fault is undone before the next begins (the heal at the end
undoes whatever a failure left). Kinds and their modes:

    partition  majority-minority  a random minority cut from the majority (both ways)
               asymmetric         a -> b dropped, b -> a kept
               bridge             two halves cut from each other, one node reaches both
               flapping           a minority cut and healed every `period_s`
    loss       20, 50 or 100 % of a node's datagrams to and from its peers
    duplicate  every datagram a node sends to its peers arrives twice
    delay      50, 200 or 1000 ms on a node's packets to its peers (tc netem, or
               faults.py's nfqueue delayer on a kernel without sch_netem; where
               neither works, the run records it under "unavailable", with the
               reason, and goes on)
    kill       kill -9, restarted on the same data dir when the episode ends
    pause      SIGSTOP, SIGCONT when it ends
    skew       the node restarted with its wall clock off by +-1..120 s
               (TEST ONLY MNEMO_TEST_CLOCK_OFFSET_MS), restarted true when it ends

`Runner(faults, history).run(episodes, stop_at_s, stop)` applies them at
their times (relative to the history's t0) and writes each as a `fault`
record: {"op": "fault", "kind", "mode", "at_s", "until_s", "targets", ...}.
An episode still on at stop_at_s is left in place (`left_for_heal`): the run's
final heal undoes it. The plan always ends so (on 2 nodes or more): its last
FINAL_S seconds are a minority cut off (`final`), long enough for SWIM to
declare it dead, so convergence is measured from a real partition.
"""

import random

import faults as F

HOLD_S = (2.0, 8.0)
GAP_S = (1.0, 3.0)
FIRST_S = 2.0
FINAL_S = 8.0  # the run's last seconds: a minority cut off until the final heal
KINDS = (("partition", "majority-minority", 3, 3), ("partition", "asymmetric", 2, 2),
         ("partition", "bridge", 3, 2), ("partition", "flapping", 3, 2),
         ("loss", None, 2, 2), ("duplicate", None, 2, 1), ("delay", None, 1, 1),
         ("kill", None, 1, 3), ("pause", None, 1, 2), ("skew", None, 1, 2))
# (kind, mode, the fewest nodes it needs, weight)


def _targets(rnd, kind, mode, n):
    nodes = list(range(n))
    rnd.shuffle(nodes)
    if kind == "partition" and mode in ("majority-minority", "flapping"):
        k = rnd.randint(1, max(1, (n - 1) // 2))
        return {"groups": [sorted(nodes[:k]), sorted(nodes[k:])]}
    if kind == "partition" and mode == "asymmetric":
        return {"from": nodes[0], "to": nodes[1]}
    if kind == "partition" and mode == "bridge":
        mid, rest = nodes[0], nodes[1:]
        k = rnd.randint(1, len(rest) - 1)
        return {"left": sorted(rest[:k]), "mid": mid, "right": sorted(rest[k:])}
    if kind == "loss":
        return {"node": nodes[0], "pct": rnd.choice((20, 50, 100))}
    if kind == "delay":
        return {"node": nodes[0], "ms": rnd.choice((50, 200, 1000))}
    if kind == "skew":
        ms = rnd.randint(1000, 120000) * rnd.choice((-1, 1))
        return {"node": nodes[0], "ms": ms}
    return {"node": nodes[0]}  # duplicate, kill, pause


def plan(seed, n, duration_s):
    """The episodes of a run: [{"kind", "mode", "at_s", "hold_s", "targets", ...}]."""
    rnd = random.Random(seed)
    kinds = [(k, m) for (k, m, least, w) in KINDS if n >= least for _ in range(w)]
    final = n >= 2 and duration_s >= FIRST_S + FINAL_S + 1.0
    end_s = duration_s - FINAL_S if final else duration_s
    out = []
    t = FIRST_S
    while t + 1.0 <= end_s:
        kind, mode = rnd.choice(kinds)
        hold = round(min(rnd.uniform(*HOLD_S), end_s - t), 3)  # the last one may be cut short
        ep = {"kind": kind, "mode": mode, "at_s": round(t, 3), "hold_s": hold,
              "targets": _targets(rnd, kind, mode, n)}
        if mode == "flapping":
            ep["period_s"] = round(rnd.uniform(0.3, 1.5), 3)
        out.append(ep)
        t += hold + rnd.uniform(*GAP_S)
    if final:
        at = max(t, end_s)
        out.append({"kind": "partition", "mode": "majority-minority", "at_s": round(at, 3),
                    "hold_s": round(duration_s - at, 3), "final": True,
                    "targets": _targets(rnd, "partition", "majority-minority", n)})
    return out


class Runner:
    def __init__(self, faults, history):
        self.f = faults
        self.h = history
        self.unavailable = {}   # kind -> why (said once in the report, every skip recorded)
        self.errors = []

    def _sleep_until(self, at_s, stop):
        left = at_s - self.h.now()
        if left > 0:
            stop.wait(left)

    def apply(self, ep):
        k, t = ep["kind"], ep["targets"]
        if k == "partition":
            m = ep["mode"]
            if m == "majority-minority" or m == "flapping":
                self.f.partition([t["groups"][0]])
            elif m == "asymmetric":
                self.f.one_way(t["from"], t["to"])
            else:
                self.f.bridge(t["left"], t["mid"], t["right"])
        elif k == "loss":
            self.f.loss(t["node"], t["pct"])
        elif k == "duplicate":
            self.f.duplicate(t["node"])
        elif k == "delay":
            self.f.delay(t["node"], t["ms"])
        elif k == "kill":
            self.f.kill(t["node"])
        elif k == "pause":
            self.f.pause(t["node"])
        elif k == "skew":
            self.f.skew(t["node"], t["ms"])

    def undo(self, ep):
        k, t = ep["kind"], ep["targets"]
        if k in ("partition", "loss", "duplicate", "delay"):
            self.f.clear_network()
        elif k == "kill":
            self.f.restart(t["node"])
        elif k == "pause":
            self.f.resume(t["node"])
        elif k == "skew":
            self.f.unskew(t["node"])

    def _hold(self, ep, end_s, stop):
        """Waits out the episode; a flapping partition heals and cuts again each period."""
        if ep.get("mode") != "flapping":
            self._sleep_until(end_s, stop)
            return 0
        flips, cut = 0, True
        while not stop.is_set() and self.h.now() < end_s:
            stop.wait(min(ep["period_s"], max(0.0, end_s - self.h.now())))
            if self.h.now() >= end_s:
                break
            if cut:
                self.f.clear_network()
            else:
                self.apply(ep)
            cut = not cut
            flips += 1
        return flips

    def episode(self, ep, stop, stop_at_s):
        rec = {"op": "fault", "kind": ep["kind"], "mode": ep["mode"], "targets": ep["targets"],
               "planned_at_s": ep["at_s"], "at_s": self.h.now(), "final": ep.get("final")}
        try:
            self.apply(ep)
        except F.FaultUnavailable as e:
            self.unavailable.setdefault(ep["kind"], str(e))
            rec.update({"skipped": True, "why": str(e)})
            self.h.add(rec)
            return
        except Exception as e:  # noqa: BLE001 - e.g. a node that does not come back
            self.errors.append("%s at %.1fs: %r" % (ep["kind"], rec["at_s"], e))
            rec["error"] = repr(e)
            self.h.add(rec)
            return
        end_s = min(rec["at_s"] + ep["hold_s"], stop_at_s)
        flips = self._hold(ep, end_s, stop)
        if end_s >= stop_at_s:
            rec["left_for_heal"] = True  # still on when the run ends: the final heal undoes it
        else:
            try:
                self.undo(ep)
            except Exception as e:  # noqa: BLE001
                self.errors.append("undo %s at %.1fs: %r" % (ep["kind"], self.h.now(), e))
                rec["error"] = repr(e)
        rec["until_s"] = self.h.now()
        if ep.get("mode") == "flapping":
            rec.update({"period_s": ep["period_s"], "flips": flips})
        self.h.add(rec)

    def reap_deaths(self):
        """A node whose process ended on its own (a crash, an abort, a fail-stop: nothing the
        schedule did) is recorded as `node_died`, a violation, with the end of its log; it is
        then started again on its data dir, so the run goes on and its copies are judged.
        Called before each episode, at the end of the schedule and before the heal."""
        for nd in self.f.cluster.nodes:
            code = nd.died_alone()
            if code is None:
                continue
            rec = {"op": "node_died", "node": nd.i, "code": code, "at_s": self.h.now(),
                   "log_tail": nd.log()[-2000:]}
            nd.expect_exit = True  # recorded once
            self.f.paused.discard(nd.i)
            try:
                self.f.restart(nd.i)
                rec["restarted_s"] = self.h.now()
            except Exception as e:  # noqa: BLE001 - it does not come back: said in the record
                rec["restart_error"] = repr(e)
            self.h.add(rec)

    def run(self, episodes, stop_at_s, stop):
        for ep in episodes:
            if stop.is_set() or ep["at_s"] >= stop_at_s:
                break
            self._sleep_until(ep["at_s"], stop)
            if stop.is_set() or self.h.now() >= stop_at_s:
                break
            self.reap_deaths()
            self.episode(ep, stop, stop_at_s)
        self._sleep_until(stop_at_s, stop)
        self.reap_deaths()


def probe_delay(faults):
    """None if a delay can be set in the run's namespaces (netem or nfqueue), else why not."""
    try:
        faults.delay(0, 1)
    except F.FaultUnavailable as e:
        return str(e)
    faults.clear_network()
    return None

