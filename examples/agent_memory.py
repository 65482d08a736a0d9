#!/usr/bin/python3
"""An agent loop with mnemo as its memory (standard library only).

Each turn: recall what the agent knows that bears on the user's message, build
the prompt from it, answer, and remember the user's message in the session (so consecutive turns are linked and can be reached by spreading
activation). A real agent would send `prompt` to its model; this one answers
with the context it found, so the loop can run anywhere.

Embeddings: a real agent passes its model's embeddings. This example has none
by default and works from text alone (keyword recall); --embed uses a small
hashed bag-of-words vector instead, just to show the embedding path.

    /usr/bin/python3 examples/agent_memory.py --url http://127.0.0.1:7700
    /usr/bin/python3 examples/agent_memory.py --script turns.txt   # one message per line
"""
import argparse
import hashlib
import math
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients",
                                "python"))
from mnemo_client import MnemoClient, MnemoError  # noqa: E402

DIM = 64


def toy_embedding(text, dim=DIM):
    """Hashed bag of words, L2-normalised: a stand-in for a real embedding model."""
    v = [0.0] * dim
    for w in re.findall(r"\w+", text.lower()):
        h = hashlib.blake2b(w.encode(), digest_size=8).digest()
        v[int.from_bytes(h[:4], "little") % dim] += 1.0 if h[4] & 1 else -1.0
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v] if n else None


class AgentMemory:
    def __init__(self, client, space, embed):
        self.c = client
        self.space = space
        self.embed = embed
        self.session = "chat-" + uuid.uuid4().hex[:8]
        try:
            self.c.create_space(space, dim=DIM)
        except MnemoError as e:
            if e.code != "space_exists":
                raise

    def recall(self, message, k=5):
        emb = toy_embedding(message) if self.embed else None
        if emb is None and not re.search(r"\w", message):
            return []
        r = self.c.recall(self.space, embedding=emb, text=message, k=k, spread=True)
        return [h for h in r["results"] if h["confidence"]["value"] >= 0.2]

    def remember(self, who, text):
        emb = toy_embedding(text) if self.embed else None
        return self.c.remember(self.space, text, emb, context={"who": [who],
                                                               "session": self.session},
                               when=int(time.time() * 1000))


def answer(message, context):
    if not context:
        return "I don't remember anything about that yet."
    lines = ["%s (confidence %.2f)" % (h["memory"]["content"], h["confidence"]["value"])
             for h in context[:3]]
    return "What I remember: " + " | ".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("MNEMO_URL", "http://127.0.0.1:7700"))
    ap.add_argument("--api-key", default=os.environ.get("MNEMO_API_KEY"))
    ap.add_argument("--space", default="agent-demo")
    ap.add_argument("--embed", action="store_true", help="use toy embeddings too")
    ap.add_argument("--script", help="file with one user message per line (else stdin)")
    args = ap.parse_args()
    with MnemoClient(args.url, api_key=args.api_key) as c:
        mem = AgentMemory(c, args.space, args.embed)
        src = open(args.script, encoding="utf-8") if args.script else sys.stdin
        interactive = src.isatty()
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            line = src.readline()
            if not line:
                break
            message = line.strip()
            if not message:
                continue
            context = mem.recall(message)
            prompt = "\n".join(["Relevant memories:"] +
                               ["- " + h["memory"]["content"] for h in context] +
                               ["User: " + message])
            reply = answer(message, context)
            print("agent> " + reply, flush=True)
            mem.remember("user", message)  # the agent's own replies are not facts
            del prompt  # a real agent sends it to its model
    return 0


if __name__ == "__main__":
    sys.exit(main())
