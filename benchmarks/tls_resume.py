#!/usr/bin/env python3
"""Helper of benchmarks/tls_resume.sh (Python 3 standard library only).

  tls_resume.py measure --raw RAW --log LOG --timeout S --proxy PID --ours PID,...
                        --proxy-cpu N --client-cpu N --row TLS,MODE,TARGET,ROUND,ATTEMPT
                        [--runlog FILE] -- openssl s_time ...
      Runs one `openssl s_time` (bounded by --timeout), reads /proc before and after it,
      appends one row to RAW (header written when RAW is new), prints a one-line summary on
      stderr (and appends it to FILE) and the background load (% of one core) on stdout, for
      the shell to decide whether to repeat the run.
  tls_resume.py report OUTDIR [NOISY_MAX]
      OUTDIR/raw.tsv and OUTDIR/check.tsv -> OUTDIR/summary.md and OUTDIR/summary.json; prints
      the table on stdout.

What a run counts. s_time prints one character per connection: 'r' when the session was
resumed, '*' (or 't', '3') when it was a full handshake. handshakes = all of them; resumed %
= 'r' / handshakes. Handshakes/s = handshakes over the wall time of s_time (its -time T runs
T to T+1 s, plus the first, unrecorded connection of -reuse). CPU per handshake = utime+stime
of the proxy's process tree (/proc/PID/stat, every thread) over the run / handshakes.
Background load as in benchmarks/peer/bench.py: CPU time of processes that are not ours.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer"))
from bench import (HZ, background_pct, children_ticks, core_pct, fmt, num,  # noqa: E402
                   pid_list, read_tsv, snapshot)

RAW_COLUMNS = ["tls", "mode", "target", "round", "attempt", "seconds", "handshakes", "resumed",
               "hs_per_s", "proxy_cpu_us_hs", "client_cpu_us_hs", "bytes_per_conn", "errors",
               "bg_pct", "proxy_core_pct", "client_core_pct"]
TARGETS = ["nginx", "haproxy", "ferry"]
NAMES = {"nginx": "nginx", "haproxy": "HAProxy", "ferry": "Ferry"}


def parse_s_time(text):
    """(handshakes, resumed, bytes per connection, error) from s_time's output."""
    marks = "".join(line for line in text.splitlines() if line and re.fullmatch(r"[r*t3]+", line))
    m = re.search(r"(\d+) connections in \d+ real seconds, (\d+) bytes read per connection", text)
    error = "ERROR" in text or "timed out" in text or not m
    return len(marks), marks.count("r"), int(m.group(2)) if m else 0, error


def cmd_measure(argv):
    opts, cmd = {}, []
    i = 0
    while i < len(argv):
        if argv[i] == "--":
            cmd = argv[i + 1:]
            break
        opts[argv[i].lstrip("-")] = argv[i + 1]
        i += 2
    proxy = int(opts["proxy"])
    ours = sorted(set(pid_list(opts.get("ours", "")) + [proxy]))
    tls, mode, target, rnd, attempt = opts["row"].split(",")

    m0, t0, w0 = snapshot(ours)
    c0 = children_ticks()
    rc = 0
    with open(opts["log"], "w") as log:
        try:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                                timeout=float(opts["timeout"])).returncode
        except subprocess.TimeoutExpired:
            log.write("\ntls_resume.py: s_time timed out and was killed\n")
            rc = -1
    m1, t1, w1 = snapshot(ours)
    client_ticks = children_ticks() - c0
    seconds = w1 - w0

    with open(opts["log"]) as f:
        n, resumed, bytes_per_conn, error = parse_s_time(f.read())
    per_hs = (lambda ticks: ticks * 1e6 / HZ / n) if n else (lambda ticks: float("nan"))
    ours_ticks = sum(t1[p] - t0[p] for p in ours) + client_ticks
    row = {
        "tls": tls, "mode": mode, "target": target, "round": rnd, "attempt": attempt,
        "seconds": seconds, "handshakes": n, "resumed": resumed,
        "hs_per_s": n / seconds if seconds > 0 else float("nan"),
        "proxy_cpu_us_hs": per_hs(t1[proxy] - t0[proxy]),
        "client_cpu_us_hs": per_hs(client_ticks),
        "bytes_per_conn": bytes_per_conn,
        "errors": int(error or rc != 0),
        "bg_pct": background_pct(m0, m1, ours_ticks, seconds),
        "proxy_core_pct": core_pct(m0, m1, opts.get("proxy-cpu", "0")),
        "client_core_pct": core_pct(m0, m1, opts.get("client-cpu", "1")),
    }
    new = not os.path.exists(opts["raw"])
    with open(opts["raw"], "a") as f:
        if new:
            f.write("\t".join(RAW_COLUMNS) + "\n")
        f.write("\t".join(fmt(row[k], 2) if isinstance(row[k], float) else str(row[k])
                          for k in RAW_COLUMNS) + "\n")
    line = (f"[{time.strftime('%H:%M:%S')}]     TLS {tls} {mode:6} {target:8} round {rnd}"
            f"{' (repeat)' if attempt != '0' else ''}: {n:6} handshakes, "
            f"{100.0 * resumed / n if n else 0:5.1f}% resumed, {fmt(row['hs_per_s'], 0):>6}/s  "
            f"proxy {fmt(row['proxy_cpu_us_hs'], 1):>6} us/handshake  "
            f"{'ERROR  ' if row['errors'] else ''}cores {fmt(row['proxy_core_pct'], 0)}%/"
            f"{fmt(row['client_core_pct'], 0)}%  bg {fmt(row['bg_pct'])}%")
    print(line, file=sys.stderr)
    if opts.get("runlog"):
        with open(opts["runlog"], "a") as f:
            f.write(line + "\n")
    print(fmt(row["bg_pct"]))


# ----------------------------------------------------------------------------- report
def median(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else None


def summarize(rows, noisy_max):
    last = {}  # the last attempt of a (tls, mode, target, round) is the one that counts
    for r in rows:
        last[(r["tls"], r["mode"], r["target"], r["round"])] = r
    groups = {}
    for (tls, mode, target, _), r in last.items():
        groups.setdefault((tls, mode, target), []).append(r)
    out = []
    for (tls, mode, target), rs in groups.items():
        clean = [r for r in rs if num(r["bg_pct"]) <= noisy_max]
        used = clean or rs
        hs = [num(r["hs_per_s"]) for r in used]
        cpu = [num(r["proxy_cpu_us_hs"]) for r in used]
        total = sum(int(r["handshakes"]) for r in used)
        out.append({
            "tls": tls, "mode": mode, "target": target,
            "rounds": len(rs), "clean_rounds": len(clean),
            "repeats": sum(1 for r in rows if (r["tls"], r["mode"], r["target"]) == (tls, mode, target)
                           and r["attempt"] != "0"),
            "hs_per_s": median(hs), "hs_per_s_min": min(hs), "hs_per_s_max": max(hs),
            "proxy_cpu_us_hs": median(cpu), "proxy_cpu_min": min(cpu), "proxy_cpu_max": max(cpu),
            "client_cpu_us_hs": median([num(r["client_cpu_us_hs"]) for r in used]),
            "resumed_pct": 100.0 * sum(int(r["resumed"]) for r in used) / total if total else None,
            "bytes_per_conn": median([num(r["bytes_per_conn"]) for r in used]),
            "proxy_core_pct": median([num(r["proxy_core_pct"]) for r in used]),
            "client_core_pct": median([num(r["client_core_pct"]) for r in used]),
            "bg_pct_max": max(num(r["bg_pct"]) for r in used),
            "errors": sum(int(r["errors"]) for r in used),
        })
    return out


def main_table(summary, checks):
    """One row per TLS version and target: resumed and full side by side."""
    by = {(s["tls"], s["mode"], s["target"]): s for s in summary}
    chk = {(c["tls"], c["target"]): c for c in checks}
    lines = ["| TLS | proxy | resumed: CPU µs/handshake | resumed: handshakes/s | full: CPU µs/handshake "
             "| full: handshakes/s | resumed / full CPU | resumed % | tickets sent (full / resumed) "
             "| clean rounds (resumed, full) | bg % max |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    tls_list = list(dict.fromkeys(s["tls"] for s in summary))
    for tls in tls_list:
        for t in TARGETS:
            r, f = by.get((tls, "reuse", t)), by.get((tls, "new", t))
            if not r and not f:
                continue
            c = chk.get((tls, t), {})

            def cell(s, key, d):
                return fmt(s[key], d) if s else "-"

            ratio = (fmt(r["proxy_cpu_us_hs"] / f["proxy_cpu_us_hs"], 2)
                     if r and f and r["proxy_cpu_us_hs"] and f["proxy_cpu_us_hs"] else "-")
            clean = ", ".join(f"{s['clean_rounds']}/{s['rounds']}" if s else "-" for s in (r, f))
            bg = max(s["bg_pct_max"] for s in (r, f) if s)
            err = sum(s["errors"] for s in (r, f) if s)
            lines.append(
                f"| {tls} | {NAMES[t]}{' (errors: %d runs)' % err if err else ''} "
                f"| {cell(r, 'proxy_cpu_us_hs', 1)} | {cell(r, 'hs_per_s', 0)} "
                f"| {cell(f, 'proxy_cpu_us_hs', 1)} | {cell(f, 'hs_per_s', 0)} | {ratio} "
                f"| {cell(r, 'resumed_pct', 1)} | {c.get('tickets_full', '?')} / {c.get('tickets_resumed', '?')} "
                f"| {clean} | {fmt(bg)} |")
    return lines


def ratio_lines(summary):
    by = {(s["tls"], s["mode"], s["target"]): s for s in summary}
    out = []
    for tls in dict.fromkeys(s["tls"] for s in summary):
        for mode, title in (("reuse", "resumed"), ("new", "full")):
            fe = by.get((tls, mode, "ferry"))
            peers = [by[(tls, mode, p)] for p in ("nginx", "haproxy") if (tls, mode, p) in by]
            if not fe or not peers or not fe["proxy_cpu_us_hs"]:
                continue
            best_cpu = min(p["proxy_cpu_us_hs"] for p in peers if p["proxy_cpu_us_hs"])
            best_hs = max(p["hs_per_s"] for p in peers if p["hs_per_s"])
            out.append(f"- TLS {tls}, {title} handshakes: Ferry CPU / better peer "
                       f"{fe['proxy_cpu_us_hs'] / best_cpu:.2f}, Ferry handshakes/s / better peer "
                       f"{fe['hs_per_s'] / best_hs:.2f}")
    return out


def cmd_report(argv):
    outdir = argv[0]
    noisy_max = float(argv[1]) if len(argv) > 1 else 15.0
    summary = summarize(read_tsv(os.path.join(outdir, "raw.tsv")), noisy_max)
    checks = read_tsv(os.path.join(outdir, "check.tsv"))
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump({"noisy_max_pct": noisy_max, "runs": summary, "checks": checks}, f,
                  indent=1, default=lambda o: None)
    table = main_table(summary, checks)
    ratios = ratio_lines(summary)
    md = []
    env = os.path.join(outdir, "env.txt")
    if os.path.exists(env):
        md += ["```", open(env).read().rstrip(), "```", ""]
    md += [f"Medians over clean rounds (background load <= {noisy_max:g}% of a core; all rounds when "
           "none was clean). CPU = utime+stime of the proxy's processes / handshakes; every "
           "handshake carries one `GET / HTTP/1.0` and its 12-byte answer, then the connection "
           "closes. `openssl s_time -reuse` resumes one session over and over (one connection at "
           "a time); `-new` makes a full handshake each time.", "", "### Summary", ""] + table + [""]
    if ratios:
        md += ratios + [""]
    md += ["### The resumption check before the runs (openssl s_client -sess_out, then -sess_in)", "",
           "| TLS | proxy | negotiated | key exchange | second connection | tickets on a full / resumed handshake "
           "| ticket lifetime hint s |",
           "|---|---|---|---|---|---:|---:|"]
    for c in checks:
        md.append(f"| {c['tls']} | {NAMES.get(c['target'], c['target'])} | {c['protocol']} {c['cipher']} "
                  f"| {c['temp_key']} | {c['second']} | {c['tickets_full']} / {c['tickets_resumed']} "
                  f"| {c['lifetime']} |")
    md += ["", "### Every figure", "",
           "| TLS | handshakes | proxy | CPU µs/hs median | min..max | handshakes/s median | min..max "
           "| s_time CPU µs/hs | resumed % | bytes/conn | cores % | bg % max | clean | repeats | errors |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary:
        md.append(
            f"| {s['tls']} | {'resumed' if s['mode'] == 'reuse' else 'full'} | {NAMES[s['target']]} "
            f"| {fmt(s['proxy_cpu_us_hs'])} | {fmt(s['proxy_cpu_min'])}..{fmt(s['proxy_cpu_max'])} "
            f"| {fmt(s['hs_per_s'], 0)} | {fmt(s['hs_per_s_min'], 0)}..{fmt(s['hs_per_s_max'], 0)} "
            f"| {fmt(s['client_cpu_us_hs'])} | {fmt(s['resumed_pct'])} | {fmt(s['bytes_per_conn'], 0)} "
            f"| {fmt(s['proxy_core_pct'], 0)}/{fmt(s['client_core_pct'], 0)} | {fmt(s['bg_pct_max'])} "
            f"| {s['clean_rounds']}/{s['rounds']} | {s['repeats']} | {s['errors']} |")
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(table + ([""] + ratios if ratios else [])))


def main():
    commands = {"measure": cmd_measure, "report": cmd_report}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
