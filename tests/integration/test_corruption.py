"""A damaged data dir never starts quietly with less than it acknowledged (issue 14, 2).

Each test writes 2000 acknowledged memories (storage.sync = true), damages the data dir
as the issue's table did, and starts the real server on it: it must refuse with an
error that names the damage and what to do, or, started with --salvage, serve what is
readable and say what it dropped (space stats and /ready). `mnemo check` must report
the same damage and exit 1. A crash's torn tail still starts cleanly, with every
acknowledged write."""

import glob
import json
import os
import random
import signal
import subprocess
import threading
import urllib.request

import pytest

from conftest import MnemoServer, mnemo_bin, wait_until
from mnemo_client import MnemoError
from test_durability import _writer

SPACE = "dmg"
DIM = 8
N = 2000


def vec(i):
    r = random.Random(i)
    return [r.uniform(0.1, 1.0) for _ in range(DIM)]


def fill(s):
    """2000 acknowledged memories, 10 per request (200 WAL entries)."""
    c = s.client()
    c.create_space(SPACE, dim=DIM)
    for b in range(0, N, 10):
        c.remember_batch(SPACE, [{"content": "note %d" % i, "embedding": vec(i)}
                                 for i in range(b, b + 10)])
    assert c.stats(SPACE)["memories"] == N
    c.close()


def flush_to_sst(s, tmp_path):
    """A checkpoint flushes the memtables into .sst files; then a clean stop."""
    c = s.client()
    c.checkpoint(str(tmp_path / "ckpt"))
    c.close()
    assert s.stop() == 0, s.log()


def rocksdb_log(d):
    logs = sorted(glob.glob(os.path.join(d, "*.log")), key=os.path.getsize)
    assert logs, "no RocksDB log in %s" % d
    return logs[-1]


def sst_of(d, family):
    """The largest .sst file of a column family: its name is the value of the
    rocksdb.column.family.name property, stored after the shared prefix
    "rocksdb.column.family." (22 bytes) as the key suffix "name"."""
    tag = b"\x16\x04" + bytes([len(family)]) + b"name" + family.encode()
    found = []
    for p in glob.glob(os.path.join(d, "*.sst")):
        with open(p, "rb") as f:
            if tag in f.read():
                found.append((os.path.getsize(p), p))
    assert found, "no .sst of %s in %s" % (family, sorted(os.listdir(d)))
    return max(found)[1]


def flip(path, at, n=64):
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(n)
        f.seek(at)
        f.write(bytes(x ^ 0xFF for x in b))


def must_refuse(s, *words):
    """Starts s: it must exit with an error naming the damage, never listen."""
    try:
        s.start()
    except AssertionError as e:
        log = str(e)
        assert "exited with 1" in log, log
        assert "damaged" in log and "mnemo check" in log and "--salvage" in log, log
        assert "checkpoint" in log, log
        for w in words:
            assert w in log, "%r not in:\n%s" % (w, log)
        return log
    c = s.client()
    n = c.stats(SPACE)["memories"]
    c.close()
    s.kill()
    pytest.fail("mnemo started quietly on a damaged data dir with %d of %d memories:\n%s"
                % (n, N, s.log()))


def check(d):
    p = subprocess.run([mnemo_bin(), "check", str(d)], capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stdout + p.stderr


def ready(s):
    with urllib.request.urlopen(s.url + "/ready", timeout=30) as r:
        return json.loads(r.read())


def salvage(d):
    """Starts on d with --salvage and stops; returns (stats of the space or None, /ready,
    the log)."""
    s = MnemoServer(d, args=["--salvage"]).start()
    c = s.client()
    try:
        st = c.stats(SPACE)
    except MnemoError:
        st = None
    c.close()
    r = ready(s)
    assert s.stop() == 0, s.log()
    return st, r, s.log()


def stop(s):
    assert s.stop() == 0, s.log()


def damaged_sst(tmp_path, family):
    """A stopped server whose data dir has 64 bytes flipped a quarter into the .sst of
    family; returns (server, data dir, .sst path)."""
    d = tmp_path / "data"
    s = MnemoServer(d).start()
    fill(s)
    flush_to_sst(s, tmp_path)
    sst = sst_of(str(d), family)
    flip(sst, os.path.getsize(sst) // 4)
    return s, d, sst


def killed_after_fill(tmp_path):
    """A server killed (-9) after 2000 acknowledged memories: (server, data dir, its log)."""
    d = tmp_path / "data"
    s = MnemoServer(d).start()
    fill(s)
    s.kill()
    return s, d, rocksdb_log(str(d))


def test_flipped_bytes_in_the_log_refuse_and_salvage_reports(tmp_path):
    s, d, log = killed_after_fill(tmp_path)
    flip(log, os.path.getsize(log) // 4)
    must_refuse(s, "Corruption", os.path.basename(log))
    rc, out = check(d)
    assert rc == 1 and "DAMAGED" in out, out
    st, r, _ = salvage(d)
    assert r["salvaged"] is True and r["ready"] is True, r
    assert "log" in r["damage"], r
    if st is not None:  # the space survives when its creation came before the damage
        assert st["damaged"] is True and st["memories"] < N, st
        assert "acknowledged" in st["damage"], st
    # the salvage start accepted the loss: the next plain start serves what is left
    s3 = MnemoServer(d).start()
    assert "salvaged" not in ready(s3)
    stop(s3)


def test_log_cut_to_half_refuses_and_salvage_reports(tmp_path):
    s, d, log = killed_after_fill(tmp_path)
    os.truncate(log, os.path.getsize(log) // 2)
    must_refuse(s, "acknowledged")
    rc, out = check(d)
    assert rc == 1 and "acknowledged" in out, out
    st, r, log = salvage(d)
    assert r["salvaged"] is True, r
    assert st["damaged"] is True and 0 < st["memories"] < N, st
    assert "entries lost" in st["damage"] and "salvage" in log, st


def test_flipped_bytes_in_the_memories_sst_refuse_and_salvage_reports(tmp_path):
    s, d, sst = damaged_sst(tmp_path, "memories")
    must_refuse(s, "memories", os.path.basename(sst))
    rc, out = check(d)
    assert rc == 1 and os.path.basename(sst) in out, out
    st, r, _ = salvage(d)
    assert r["salvaged"] is True, r
    assert st["damaged"] is True and st["memories"] < N, st
    assert "memories dropped" in st["damage"], st


def test_flipped_bytes_in_the_vectors_sst_refuse_and_salvage_reports(tmp_path):
    s, d, sst = damaged_sst(tmp_path, "vectors")
    must_refuse(s, "vectors", os.path.basename(sst))
    rc, out = check(d)
    assert rc == 1 and "vectors" in out, out
    st, r, _ = salvage(d)
    assert r["salvaged"] is True, r
    assert st["damaged"] is True and st["memories"] == N, st
    assert "lost their embedding" in st["damage"], st


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_meta_sst_or_truncated_sst_still_refuse(tmp_path, damage):
    d = tmp_path / "data"
    s = MnemoServer(d).start()
    fill(s)
    flush_to_sst(s, tmp_path)
    if damage == "flip":
        sst = sst_of(str(d), "meta")
        flip(sst, 0, os.path.getsize(sst))
    else:
        sst = sst_of(str(d), "memories")
        os.truncate(sst, os.path.getsize(sst) // 2)
    try:
        s.start()
    except AssertionError as e:
        assert "exited with 1" in str(e), e
        rc, out = check(d)
        assert rc == 1, out
        return
    s.kill()
    pytest.fail("mnemo started on a damaged .sst:\n%s" % s.log())


def test_whole_data_dir_checks_clean_and_starts_unmarked(tmp_path):
    d = tmp_path / "data"
    s = MnemoServer(d).start()
    fill(s)
    flush_to_sst(s, tmp_path)
    rc, out = check(d)
    assert rc == 0 and "ok (0 problems)" in out, out
    assert "2000 memory records" in out, out
    s.start()
    c = s.client()
    st = c.stats(SPACE)
    assert st["damaged"] is False and st["damage"] is None and st["memories"] == N
    assert c.get_space(SPACE)["stats"]["damaged"] is False
    assert ready(s) == {"ready": True}  # "salvaged" only on a salvaged node
    c.close()
    stop(s)
    rc, out = check(tmp_path / "nope")
    assert rc == 2 and "not a data dir" in out, out


def test_check_refuses_a_data_dir_in_use(tmp_path):
    d = tmp_path / "data"
    s = MnemoServer(d).start()
    try:
        rc, out = check(d)
        assert rc == 2 and "a server runs on it" in out, out
    finally:
        stop(s)


def test_torn_tail_after_kill9_under_load_starts_clean_with_every_acked_write(tmp_path):
    d = tmp_path / "data"
    s = MnemoServer(d).start()
    c = s.client()
    c.create_space(SPACE, dim=16)
    c.close()
    acked, requests, lock, stop_ev = [], [0], threading.Lock(), threading.Event()
    threads = [threading.Thread(target=_writer, args=(s.url, SPACE, 16, t, acked, requests,
                                                      lock, stop_ev))
               for t in range(6)]
    for t in threads:
        t.start()
    wait_until(lambda: requests[0] >= 600, 300, 0.002, "600 acknowledged writes")
    s.proc.send_signal(signal.SIGKILL)
    s._wait_exit()
    stop_ev.set()
    for t in threads:
        t.join(60)
    s.start()
    assert "damaged" not in s.log() and "salvage" not in s.log(), s.log()
    c = s.client()
    missing = [mid for mid, _ in acked if not _present(c, mid)]
    assert not missing, "%d of %d acknowledged writes lost" % (len(missing), len(acked))
    assert c.stats(SPACE)["damaged"] is False
    assert "salvaged" not in ready(s)
    c.close()
    stop(s)
    rc, out = check(d)
    assert rc == 0, out


def _present(c, mid):
    try:
        c.get(SPACE, mid)
        return True
    except MnemoError:
        return False
