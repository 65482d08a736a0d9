"""Delays every packet of one netfilter queue by a fixed time: the chaos
harness's `delay` on kernels without tc netem (sch_netem).

Run inside a node's namespace next to an iptables rule that sends the node's
packets to the queue (faults.py installs both):

    iptables -A OUTPUT -d PEER -j NFQUEUE --queue-num Q --queue-bypass
    /usr/bin/python3 nfq_delay.py --queue Q --ms MS

It speaks the kernel's nfnetlink_queue protocol on a raw netlink socket
(the message layout is the one of <linux/netfilter/nfnetlink_queue.h>): it
binds queue Q in meta-only copy mode (it never reads the payload), and
gives the verdict ACCEPT to each packet MS milliseconds after it arrived.
The delay is fixed, so packets leave in the order they came, and one batch
verdict (every id up to the newest due one) releases each group.

The queue is bound fail-open: when it is full, the kernel lets packets
through undelayed rather than dropping them. `--queue-bypass` on the rule
does the same when this process is gone, so killing it ends the fault.
Prints "ready" on stdout once the queue is bound.
"""

import argparse
import collections
import os
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLA_F_MASK = 0x3FFF  # nla_type without the nested / byte-order flags


def _attr(kind, payload):
    head = struct.pack("=HH", 4 + len(payload), kind)
    pad = (-len(payload)) % 4
    return head + payload + b"\0" * pad


class Queue:
    def __init__(self, num, maxlen):
        self.num = num
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((0, 0))
        cmd = struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)
        self._config(_attr(NFQA_CFG_CMD, cmd))
        params = struct.pack("!IB", 0, NFQNL_COPY_META)
        self._config(_attr(NFQA_CFG_PARAMS, params)
                     + _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen))
                     + _attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
                     + _attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)))

    def _send(self, msg_type, attrs, flags):
        self.seq += 1
        body = struct.pack("!BBH", socket.AF_UNSPEC, 0, self.num) + attrs
        head = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type,
                           NLM_F_REQUEST | flags, self.seq, 0)
        self.sock.send(head + body)

    def _config(self, attrs):
        """Sends a config message and waits for the kernel's answer to it."""
        self._send(NFQNL_MSG_CONFIG, attrs, NLM_F_ACK)
        while True:
            data = self.sock.recv(65536)
            for kind, _, payload, seq in _messages(data):
                if kind == NLMSG_ERROR and seq == self.seq:
                    (code,) = struct.unpack_from("=i", payload)
                    if code != 0:
                        raise OSError(-code, "nfqueue %d config: %s" % (self.num, os.strerror(-code)))
                    return

    def accept_through(self, packet_id):
        """ACCEPT for every queued packet whose id is <= packet_id."""
        self._send(NFQNL_MSG_VERDICT_BATCH,
                   _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)), 0)


def _messages(data):
    """(type, flags, payload after the netlink header, seq) of each message in data."""
    at = 0
    while at + 16 <= len(data):
        length, kind, flags, seq, _ = struct.unpack_from("=IHHII", data, at)
        if length < 16 or at + length > len(data):
            return
        yield kind, flags, data[at + 16:at + length], seq
        at += (length + 3) & ~3


def _packet_id(payload):
    """The packet id of an NFQNL_MSG_PACKET's payload (after nfgenmsg), or None."""
    at = 4
    while at + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, at)
        if length < 4:
            return None
        if kind & NLA_F_MASK == NFQA_PACKET_HDR and length >= 8:
            return struct.unpack_from("!I", payload, at + 4)[0]
        at += (length + 3) & ~3
    return None


def run(num, ms, maxlen, life_s):
    q = Queue(num, maxlen)
    print("ready", flush=True)
    delay = ms / 1000.0
    waiting = collections.deque()  # (due monotonic s, packet id), ids ascending
    deadline = time.monotonic() + life_s
    packet_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET
    while time.monotonic() < deadline:
        now = time.monotonic()
        last = None
        while waiting and waiting[0][0] <= now:
            last = waiting.popleft()[1]
        if last is not None:
            q.accept_through(last)
        wait = (waiting[0][0] - now) if waiting else 0.5
        ready, _, _ = select.select([q.sock], [], [], max(0.0, wait))
        if not ready:
            continue
        try:
            data = q.sock.recv(1 << 20)
        except OSError:
            continue  # ENOBUFS: the kernel let those packets through (fail-open)
        arrived = time.monotonic()
        for kind, _, payload, _ in _messages(data):
            if kind == packet_type:
                pid = _packet_id(payload)
                if pid is not None:
                    waiting.append((arrived + delay, pid))
    # the life ran out: let everything go now
    if waiting:
        q.accept_through(waiting[-1][1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queue", type=int, required=True, help="netfilter queue number")
    ap.add_argument("--ms", type=int, required=True, help="delay of each packet")
    ap.add_argument("--maxlen", type=int, default=16384, help="packets the kernel may queue")
    ap.add_argument("--life-s", type=float, default=3600.0, help="exit after this long")
    a = ap.parse_args()
    if not (0 <= a.queue <= 65535 and 1 <= a.ms <= 60000):
        ap.error("--queue 0..65535, --ms 1..60000")
    try:
        run(a.queue, a.ms, a.maxlen, a.life_s)
    except OSError as e:
        print("nfq_delay: %s" % e, file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
