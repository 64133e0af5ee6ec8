#!/usr/bin/env python3
"""Fails when an #include points the wrong way between Ferry's layers.

The layers, top to bottom: proxy -> filters -> core -> config (docs/architecture.md).
  config/   includes nothing of core/, filters/ or proxy/
  core/     includes nothing of filters/ or proxy/, and of config/ only the plain types
            of config/model.h and config/values.h
  filters/  includes nothing of proxy/
  nothing   includes proxy/ except proxy/ itself (and the tests)
Usage: layering_check.py SOURCE_ROOT [--self-test]
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
CORE_MAY_USE_CONFIG = {"config/model.h", "config/values.h"}


def layer(path):
    top = path.split("/", 1)[0]
    return top if top in ("config", "core", "filters", "proxy") else None


def problem(src, inc):
    """Why `src` must not include `inc`, or None."""
    a, b = layer(src), layer(inc)
    if a is None or b is None or a == b:
        return None
    if a == "config":
        return "config/ is plain data and includes nothing of core/, filters/ or proxy/"
    if a == "core":
        if b == "config" and inc in CORE_MAY_USE_CONFIG:
            return None
        if b == "config":
            return "core/ may read only config/model.h and config/values.h of config/"
        return "core/ must not include %s/ (layers point proxy -> filters -> core -> config)" % b
    if a == "filters" and b == "proxy":
        return "filters/ must not include proxy/"
    return None


def scan(root):
    found = []
    for top in ("config", "core", "filters", "proxy"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".h", ".cc")):
                    continue
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root)
                with open(full, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        why = problem(rel, m.group(1))
                        if why:
                            found.append("%s:%d: includes \"%s\": %s" % (rel, lineno, m.group(1), why))
    return found


def self_test():
    bad = [("config/loader.cc", "core/stats.h"), ("core/net/listener.h", "proxy/runtime.h"),
           ("core/x.cc", "config/loader.h"), ("core/x.cc", "filters/registry.h"),
           ("filters/a.cc", "proxy/server.h")]
    good = [("core/x.cc", "config/model.h"), ("core/x.cc", "config/values.h"),
            ("filters/a.cc", "core/buffer.h"), ("filters/a.cc", "config/model.h"),
            ("proxy/server.cc", "filters/registry.h"), ("proxy/server.cc", "config/loader.h")]
    ok = all(problem(s, i) for s, i in bad) and not any(problem(s, i) for s, i in good)
    print("self-test", "passed" if ok else "FAILED")
    return ok


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    if not self_test():
        return 1
    found = scan(sys.argv[1])
    for line in found:
        print(line)
    if found:
        print("%d include(s) point the wrong way" % len(found))
        return 1
    print("layering: every include points down (proxy -> filters -> core -> config)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
