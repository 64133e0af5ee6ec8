#!/usr/bin/env python3
"""Ferry against the better of nginx and HAProxy, from one peerbench run's summary.json.

Usage: table.py OUTDIR [LABEL]   (OUTDIR as given to peerbench --outdir)
Prints a Markdown table: for each workload the better peer's figure and Ferry's ratio to it.
Lower is better for CPU per request, p99 and memory; higher for requests/s.
"""
import json
import os
import sys


def main():
    outdir = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else "ferry"
    with open(os.path.join(outdir, "summary.json")) as f:
        data = json.load(f)
    rows = {}
    for s in data["throughput"]:
        rows.setdefault((s["phase"], s["pin"], s["conns"]), {})[s["target"]] = s
    print(f"| workload | conns | nginx CPU us/req | HAProxy CPU us/req | {label} CPU us/req | "
          f"{label} CPU / better peer | {label} req/s / better peer | {label} p99 / better peer |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (phase, pin, conns), t in rows.items():
        peers = [t[p] for p in ("nginx", "haproxy") if p in t]
        cand = next((t[k] for k in t if k not in ("nginx", "haproxy", "direct")), None)
        if not peers or cand is None:
            continue
        def num(s, k):
            v = s.get(k)
            return v if isinstance(v, (int, float)) else None
        cpu = [num(p, "tgt_cpu_us_req") for p in peers]
        best_cpu = min(c for c in cpu if c is not None)
        best_rps = max(num(p, "rps_median") or 0 for p in peers)
        best_p99 = min(num(p, "p99_us_median") or 1e18 for p in peers)
        c_cpu, c_rps, c_p99 = num(cand, "tgt_cpu_us_req"), num(cand, "rps_median"), num(cand, "p99_us_median")
        def cell(s, k):
            v = num(s, k) if s else None
            return f"{v:.1f}" if v is not None else "-"
        ratio = lambda a, b: f"{a / b:.2f}" if a is not None and b else "-"
        print(f"| {phase} {pin} | {conns} | {cell(t.get('nginx'), 'tgt_cpu_us_req')} | "
              f"{cell(t.get('haproxy'), 'tgt_cpu_us_req')} | {cell(cand, 'tgt_cpu_us_req')} | "
              f"**{ratio(c_cpu, best_cpu)}** | {ratio(c_rps, best_rps)} | {ratio(c_p99, best_p99)} |")
    mem = data.get("memory") or []
    if mem:
        print()
        print("| idle connections | mode | nginx kB/conn | HAProxy kB/conn | " + label + " kB/conn |")
        print("|---|---|---:|---:|---:|")
        by = {}
        for m in mem:
            held = int(m["held"]) or 1
            kpc = (int(m["rss_holding_kb"]) - int(m["rss_before_kb"])) / held
            by.setdefault(m["mode"], {})[m["target"]] = (kpc, held)
        for mode, t in by.items():
            cand = next((v for k, v in t.items() if k not in ("nginx", "haproxy", "direct")), None)
            f = lambda v: f"{v[0]:.2f} ({v[1]} held)" if v else "-"
            print(f"| | {mode} | {f(t.get('nginx'))} | {f(t.get('haproxy'))} | {f(cand)} |")


if __name__ == "__main__":
    main()
