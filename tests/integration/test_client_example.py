"""examples/agent_memory.py end to end against a real server: text only, and with
embeddings; a later turn gets back what an earlier one said."""
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "examples", "agent_memory.py")

TURNS = [
    "my sister Ada lives in Lisbon near the river",
    "I drink green tea every morning",
    "remind me where Ada lives",
]


def run_example(server, tmp_path, space, extra):
    script = tmp_path / ("turns-%s.txt" % space)
    script.write_text("\n".join(TURNS) + "\n", encoding="utf-8")
    out = subprocess.run(
        ["/usr/bin/python3", EXAMPLE, "--url", "http://127.0.0.1:%d" % server.port,
         "--space", space, "--script", str(script)] + extra,
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stdout.splitlines() if l.startswith("agent> ")]
    assert len(lines) == len(TURNS), out.stdout
    return lines


def test_text_only_agent_recalls_an_earlier_turn(server, client, tmp_path):
    lines = run_example(server, tmp_path, "agent-text", [])
    assert "don't remember" in lines[0]
    assert "Lisbon" in lines[2]
    assert "green tea" not in lines[2].split("|")[0]  # the best match comes first
    mems = client.list_memories("agent-text")["memories"]
    assert len(mems) == len(TURNS)
    assert all(m["context"]["who"] == ["user"] for m in mems)
    assert len({m["context"]["session"] for m in mems}) == 1


def test_agent_with_embeddings(server, client, tmp_path):
    lines = run_example(server, tmp_path, "agent-embed", ["--embed"])
    assert "Lisbon" in lines[2]
    mems = client.list_memories("agent-embed", include_embedding=True)["memories"]
    assert all(len(m["embedding"]) == 64 for m in mems)
