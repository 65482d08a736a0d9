"""Build step: docs/openapi.yaml -> a C source embedding it as compact JSON.

usage: openapi_embed.py IN.yaml OUT.c

Fails (exit 1) when the YAML does not parse or lacks the basic OpenAPI 3.1
structure (openapi, info.title, info.version, paths with operations that each
have an operationId and responses), so a broken document breaks the build
rather than the served /openapi.json. The generated file defines
mn_openapi_json (NUL-terminated) and mn_openapi_json_len.
"""

import json
import sys

import yaml

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def check(doc):
    errs = []
    if not isinstance(doc, dict):
        return ["the document is not a mapping"]
    if not str(doc.get("openapi", "")).startswith("3.1"):
        errs.append("openapi: must be 3.1.x")
    info = doc.get("info") or {}
    if not info.get("title") or not info.get("version"):
        errs.append("info: title and version are required")
    paths = doc.get("paths")
    if not isinstance(paths, dict) or not paths:
        errs.append("paths: missing or empty")
        return errs
    seen = set()
    for path, item in paths.items():
        if not path.startswith("/"):
            errs.append("paths: %r does not start with /" % path)
        ops = [m for m in METHODS if m in (item or {})]
        if not ops:
            errs.append("paths.%s: no operation" % path)
        for m in ops:
            op = item[m]
            oid = op.get("operationId")
            if not oid:
                errs.append("%s %s: operationId missing" % (m.upper(), path))
            elif oid in seen:
                errs.append("%s %s: operationId %s used twice" % (m.upper(), path, oid))
            seen.add(oid)
            if not op.get("responses"):
                errs.append("%s %s: responses missing" % (m.upper(), path))
    return errs


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            sys.stderr.write("%s: %s\n" % (sys.argv[1], e))
            return 1
    errs = check(doc)
    if errs:
        for e in errs:
            sys.stderr.write("%s: %s\n" % (sys.argv[1], e))
        return 1
    data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    lines = ["/* Generated from docs/openapi.yaml by scripts/openapi_embed.py: do not edit. */",
             "#include <stddef.h>", "", "static const unsigned char bytes[] = {"]
    for i in range(0, len(data), 16):
        lines.append("    " + ", ".join("%d" % b for b in data[i:i + 16]) + ",")
    lines.append("    0};")
    lines.append("const char *const mn_openapi_json = (const char *)bytes;")
    lines.append("const size_t mn_openapi_json_len = %d;" % len(data))
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
