#!/usr/bin/env python3
"""Ferry against the better of nginx and HAProxy, from one compare.sh run.

Usage: table.py OUTDIR     (OUTDIR as given to benchmarks/peer/compare.sh --outdir)

Prints a Markdown table from OUTDIR/summary.json: per workload, each peer's proxy CPU per
request, Ferry's, and Ferry's ratio to the better peer for CPU per request, requests/s and
p99. "Better" is chosen per column: the lower CPU, the higher req/s, the lower p99. Below
1.00 is better for Ferry in the CPU, p99 and memory columns; above 1.00 in the req/s one.
With the target "floor" in the run (Ferry as a plain TCP forwarder, no HTTP work), two more
columns: its CPU per request and its ratio to the better peer, the lowest ratio any HTTP
work on Ferry's loop could reach.
"""
import json
import os
import sys

PEERS = ("nginx", "haproxy")
WORKLOAD = {"h1": "keep-alive", "close": "new connection per request",
            "tls": "HTTPS keep-alive", "tlsclose": "HTTPS, full handshake per request"}
MEM_MODE = {"connect": "connected, no request", "req": "after one request",
            "tls": "TLS, after a handshake and one request"}


def _ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def _cell(x, digits=1):
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) else "-"


def ratio_table(data, name="ferry"):
    lines = []
    rows = {}
    for s in data.get("throughput", []):
        rows.setdefault((s["phase"], s["conns"]), {})[s["target"]] = s
    floor = any("floor" in by for by in rows.values())
    if rows:
        lines += ["| workload | conns | nginx CPU µs/req | HAProxy CPU µs/req | Ferry CPU µs/req "
                  "| Ferry CPU / better peer | Ferry req/s / better peer | Ferry p99 / better peer |"
                  + (" floor CPU µs/req | floor CPU / better peer |" if floor else ""),
                  "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if floor else "")]
    for (phase, conns), by in rows.items():
        peers = [by[p] for p in PEERS if p in by]
        ferry = by.get(name)
        def best(key, pick):
            vals = [p.get(key) for p in peers if isinstance(p.get(key), (int, float))]
            return pick(vals) if vals else None
        cpu = ferry.get("proxy_cpu_us_req") if ferry else None
        rps = ferry.get("rps") if ferry else None
        p99 = ferry.get("p99_us") if ferry else None
        lines.append(
            f"| {WORKLOAD.get(phase, phase)} | {conns} "
            f"| {_cell(by.get('nginx', {}).get('proxy_cpu_us_req'))} "
            f"| {_cell(by.get('haproxy', {}).get('proxy_cpu_us_req'))} | {_cell(cpu)} "
            f"| **{_ratio(cpu, best('proxy_cpu_us_req', min))}** "
            f"| {_ratio(rps, best('rps', max))} | {_ratio(p99, best('p99_us', min))} |"
            + (f" {_cell(by.get('floor', {}).get('proxy_cpu_us_req'))} "
               f"| {_ratio(by.get('floor', {}).get('proxy_cpu_us_req'), best('proxy_cpu_us_req', min))} |"
               if floor else ""))
    mem = {}
    for m in data.get("memory", []):
        mem.setdefault(m["mode"], {})[m["target"]] = m.get("kb_per_conn")
    if mem:
        lines += ["", "| idle connections | nginx kB/conn | HAProxy kB/conn | Ferry kB/conn "
                      "| Ferry / better peer |", "|---|---:|---:|---:|---:|"]
        for mode, by in mem.items():
            peers = [by[p] for p in PEERS if isinstance(by.get(p), (int, float))]
            label = MEM_MODE.get(mode, mode)
            lines.append(f"| {label} | {_cell(by.get('nginx'), 2)} | {_cell(by.get('haproxy'), 2)} "
                         f"| {_cell(by.get(name), 2)} | **{_ratio(by.get(name), min(peers) if peers else None)}** |")
    return lines


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(os.path.join(sys.argv[1], "summary.json")) as f:
        print("\n".join(ratio_table(json.load(f))))


if __name__ == "__main__":
    main()
