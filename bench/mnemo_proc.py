"""Starting `mnemo serve` for a benchmark script: loopback, ports the kernel picks, a data
dir of the caller's, consolidation off. Shared by bench/words_latency.py,
bench/forget_filter.py and bench/recall_multi.py."""
import json
import os
import re
import shutil
import subprocess
import threading


def start(binary, data_dir, extra_env=None):
    """Starts the server and returns (process, HTTP port) once it reports its port."""
    env = dict(os.environ)
    env.update({"MNEMO_HTTP_PORT": "0", "MNEMO_HTTP_BIND": "127.0.0.1", "MNEMO_GRPC_PORT": "0",
                "MNEMO_STORAGE_DATA_DIR": data_dir, "MNEMO_LOG_LEVEL": "info",
                "MNEMO_ENGINE_CONSOLIDATE_INTERVAL_S": "0"})
    env.update(extra_env or {})
    proc = subprocess.Popen([binary, "serve"], env=env, stderr=subprocess.PIPE, text=True)
    port = []
    ready = threading.Event()

    def drain():
        for line in proc.stderr:
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m and not port:
                port.append(int(m.group(1)))
                ready.set()
    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(60):
        proc.kill()
        raise RuntimeError("mnemo did not report its port")
    return proc, port[0]


def stop(proc, data_dir):
    """Stops the server (SIGTERM, waited for) and removes its data dir."""
    proc.terminate()
    proc.wait(60)
    shutil.rmtree(data_dir, ignore_errors=True)


def call(conn, method, path, body=None):
    """One JSON request on conn; the decoded answer, or RuntimeError on a status >= 300."""
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"content-type": "application/json"})
    r = conn.getresponse()
    out = r.read()
    if r.status >= 300:
        raise RuntimeError("%s %s: %d %s" % (method, path, r.status, out[:300]))
    return json.loads(out) if out else None
