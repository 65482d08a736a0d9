#!/usr/bin/python3
"""Recall of the REALTALK questions that name a day (run.py's "dated" column), rephrased
with relative or year-less dates (synthetic: REALTALK has no question dates): the date in
the question is replaced by "yesterday", "3 days ago", "last <weekday>" or "<Month> <day>",
and time_ref is chosen so that the phrase names the same day (docs/recall.md section 9).
Each form is recalled with "time": "boost" and "off" (words, spread off, k = 10).

usage: bench/conv/time_rephrase.py MNEMO_BINARY [REALTALK_DIR]"""
import importlib.util, re, sys, tempfile, shutil
from datetime import datetime, timezone, timedelta
import numpy as np
import os
spec = importlib.util.spec_from_file_location(
    "run", os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py"))
run = importlib.util.module_from_spec(spec); spec.loader.exec_module(run)
if len(sys.argv) < 2:
    sys.exit(__doc__)
convs, _, _ = run.load_data([sys.argv[2] if len(sys.argv) > 2 else "realtalk"])
MON = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
def qdate(m):
    t = m.group(0).lower()
    x = re.search(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", t)
    if x: return datetime(int(x.group(3)), int(x.group(2)), int(x.group(1)), tzinfo=timezone.utc)
    y = int(re.search(r"\d{4}", t).group(0)); mo = MON[re.search(run._MON, t).group(1)]
    d = int(re.search(r"\b(\d{1,2})(?:st|nd|rd|th)?\b", t).group(1))
    return datetime(y, mo, d, tzinfo=timezone.utc)
WD = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
tmp = tempfile.mkdtemp(); proc, port = run.start_server(sys.argv[1], tmp + "/db")
res = {}
try:
    h = run.Http(port)
    for n, c in enumerate(convs):
        m = run.mnemo_ingest(h, c, "c%d" % n, 8, None)
        last = max(t["when_ms"] for t in c["turns"])
        for q in c["questions"]:
            mt = run.DATED_RE.search(q["text"])
            if not mt: continue
            d = qdate(mt)
            ms = lambda dt: int(dt.timestamp() * 1000)
            forms = {"absolute": (q["text"], last),
                     "yesterday": (q["text"][:mt.start()] + "yesterday" + q["text"][mt.end():], ms(d + timedelta(days=1, hours=12))),
                     "3 days ago": (q["text"][:mt.start()] + "3 days ago" + q["text"][mt.end():], ms(d + timedelta(days=3, hours=12))),
                     "last <weekday>": (q["text"][:mt.start()] + "last " + WD[d.weekday()] + q["text"][mt.end():], ms(d + timedelta(days=3, hours=12))),
                     "<Month> <day>": (q["text"][:mt.start()] + d.strftime("%B ") + str(d.day) + q["text"][mt.end():], last)}
            for name, (text, ref) in forms.items():
                for mode in ("boost", "off"):
                    top, _ = run.mnemo_recall(h, "c%d" % n, {"text": text, "k": 10, "spread": False, "time": mode, "time_ref": ref}, m)
                    r, rr = run.score(top, q["evidence"], 10)
                    res.setdefault((name, mode), []).append((r, rr))
finally:
    run.stop_server(proc); shutil.rmtree(tmp, ignore_errors=True)
for (name, mode), v in sorted(res.items()):
    print("%-16s %-5s n=%d recall %.3f MRR %.3f" % (name, mode, len(v), np.mean([x[0] for x in v]), np.mean([x[1] for x in v])))
