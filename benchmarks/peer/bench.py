#!/usr/bin/env python3
"""Helper of benchmarks/peer/compare.sh (Python 3 standard library only).

  bench.py measure --raw RAW --log LOG --timeout S --proxy PID --upstream PID --ours PID,...
                   --proxy-cpu N --client-cpu N --row PHASE,TARGET,CONNS,ROUND,ATTEMPT
                   [--runlog FILE] -- wrk ...
      Runs one load command (wrk), reads /proc before and after it, appends one row to RAW
      (header written when RAW is new), prints a one-line summary on stderr (and appends it
      to FILE), and prints the background load (% of one core) on stdout, for the shell to
      decide whether to repeat the run.
  bench.py quiet --ours PID,... [--seconds S]
      Background load right now (% of one core) over S seconds (default 0.5).
  bench.py rss PID
      VmRSS (kB) summed over PID and its descendants.
  bench.py idle HOST PORT COUNT MODE READY HOLD_S
      Opens COUNT connections and keeps them open (MODE connect: TCP only; req: one
      keep-alive GET first; tls: a TLS handshake, certificate not verified, then one
      keep-alive GET over it). Writes "held failed seconds" to READY when done, then sleeps
      until killed, HOLD_S at most.
  bench.py report OUTDIR [NOISY_MAX]
      OUTDIR/raw.tsv and OUTDIR/mem.tsv -> OUTDIR/summary.json and OUTDIR/summary.md, and
      prints the ratio table (table.py) on stdout.

Background load ("bg") is CPU time that no process of the benchmark used: the machine's
user+nice+system time over the run minus the CPU time of the servers we started (their
whole process trees) and of the load generator. It is given in % of one core.
"""
import json
import os
import re
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table  # noqa: E402  (same directory)

RAW_COLUMNS = ["phase", "target", "conns", "round", "attempt", "seconds", "requests", "rps",
               "p50_us", "p99_us", "errors", "non2xx", "proxy_cpu_us_req", "upstream_cpu_us_req",
               "wrk_cpu_us_req", "bg_pct", "proxy_core_pct", "client_core_pct"]
MEM_COLUMNS = ["target", "mode", "wanted", "held", "failed", "setup_s", "rss_before_kb",
               "rss_holding_kb", "rss_after_kb", "kb_per_conn"]


# ------------------------------------------------------------------------------ /proc
def process_tree(root):
    """root and all of its descendants (pids), from one scan of /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(rest[1]), []).append(int(name))
    tree, todo = [], [root]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_ticks(pid):
    """utime+stime (all threads) of one process, in clock ticks; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # after the command name: state is fields[0], so utime (field 14) is fields[11]
    return int(fields[11]) + int(fields[12])


def tree_ticks(root):
    return sum(cpu_ticks(p) for p in process_tree(root)) if root else 0


def tree_rss_kb(root):
    total = 0
    for p in process_tree(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def machine_ticks():
    """{'all': (process_busy, busy, total), 'cpuN': (...)} from /proc/stat.

    process_busy = user+nice+system: the time processes are charged for, which is what the
    background load is computed from. irq/softirq are left out of it: the benchmark's own
    loopback traffic is handled there and not charged to any process. busy (for the core
    load columns) counts them: everything but idle, iowait and steal."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            name, *v = line.split()
            v = [int(x) for x in v]
            total = sum(v[:8])  # user nice system idle iowait irq softirq steal
            out["all" if name == "cpu" else name] = (v[0] + v[1] + v[2], total - v[3] - v[4] - v[7], total)
    return out


def snapshot(pids):
    return machine_ticks(), {p: tree_ticks(p) for p in pids}, time.monotonic()


def children_ticks():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * HZ


def background_pct(m0, m1, ours_ticks, seconds):
    busy = m1["all"][0] - m0["all"][0]
    return max(0.0, 100.0 * (busy - ours_ticks) / (seconds * HZ)) if seconds > 0 else 0.0


def core_pct(m0, m1, cpu):
    key = f"cpu{cpu}"
    if key not in m0:
        return float("nan")
    busy = m1[key][1] - m0[key][1]
    total = m1[key][2] - m0[key][2]
    return 100.0 * busy / total if total else float("nan")


def pid_list(text):
    return [int(x) for x in text.split(",") if x.strip()]


# -------------------------------------------------------------------------------- wrk
def micros(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[m.group(2)]


def parse_wrk(text):
    def find(pattern, conv, default):
        m = re.search(pattern, text, re.M)
        return conv(m) if m else default
    return {
        "requests": find(r"(\d+) requests in", lambda m: int(m.group(1)), 0),
        "rps": find(r"^Requests/sec:\s+([\d.]+)", lambda m: float(m.group(1)), float("nan")),
        "p50_us": find(r"^\s+50%\s+(\S+)", lambda m: micros(m.group(1)), float("nan")),
        "p99_us": find(r"^\s+99%\s+(\S+)", lambda m: micros(m.group(1)), float("nan")),
        "errors": find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       lambda m: sum(int(g) for g in m.groups()), 0),
        "non2xx": find(r"Non-2xx or 3xx responses: (\d+)", lambda m: int(m.group(1)), 0),
    }


def fmt(x, digits=1):
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return f"{x:.{digits}f}"


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
    upstream = int(opts["upstream"])
    ours = sorted(set(pid_list(opts.get("ours", "")) + [proxy, upstream]))
    phase, target, conns, rnd, attempt = opts["row"].split(",")

    m0, t0, w0 = snapshot(ours)
    c0 = children_ticks()
    with open(opts["log"], "w") as log:
        try:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                           timeout=float(opts["timeout"]))
        except subprocess.TimeoutExpired:
            log.write("\nbench.py: load command timed out and was killed\n")
    m1, t1, w1 = snapshot(ours)
    wrk_ticks = children_ticks() - c0
    seconds = w1 - w0

    with open(opts["log"]) as f:
        r = parse_wrk(f.read())
    n = r["requests"]
    per_req = (lambda ticks: ticks * 1e6 / HZ / n) if n else (lambda ticks: float("nan"))
    ours_ticks = sum(t1[p] - t0[p] for p in ours) + wrk_ticks
    row = {
        "phase": phase, "target": target, "conns": conns, "round": rnd, "attempt": attempt,
        "seconds": seconds, **r,
        "proxy_cpu_us_req": per_req(t1[proxy] - t0[proxy]),
        "upstream_cpu_us_req": per_req(t1[upstream] - t0[upstream]),
        "wrk_cpu_us_req": per_req(wrk_ticks),
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
    line = (f"[{time.strftime('%H:%M:%S')}]     {phase:8} {target:8} c{conns:<4} round {rnd}"
            f"{' (repeat)' if attempt != '0' else ''}: {fmt(row['rps'], 0):>7} req/s  "
            f"p99 {fmt(row['p99_us'], 0):>6} us  proxy {fmt(row['proxy_cpu_us_req'], 2):>6} us/req  "
            f"errors {r['errors'] + r['non2xx']}  cores {fmt(row['proxy_core_pct'], 0)}%/"
            f"{fmt(row['client_core_pct'], 0)}%  bg {fmt(row['bg_pct'])}%")
    print(line, file=sys.stderr)
    if opts.get("runlog"):
        with open(opts["runlog"], "a") as f:
            f.write(line + "\n")
    print(fmt(row["bg_pct"]))


def cmd_quiet(argv):
    ours = pid_list(argv[argv.index("--ours") + 1]) if "--ours" in argv else []
    seconds = float(argv[argv.index("--seconds") + 1]) if "--seconds" in argv else 0.5
    m0, t0, w0 = snapshot(ours)
    time.sleep(seconds)
    m1, t1, w1 = snapshot(ours)
    print(fmt(background_pct(m0, m1, sum(t1[p] - t0[p] for p in ours), w1 - w0)))


# ----------------------------------------------------------------------- idle clients
def cmd_idle(argv):
    host, port, count, mode, ready, hold = argv[0], int(argv[1]), int(argv[2]), argv[3], argv[4], float(argv[5])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    tls = None
    if mode == "tls":  # a self-signed certificate: no verification, no hostname check
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    held, failed, start = [], 0, time.monotonic()
    deadline = start + 120  # opening must not run away either
    while len(held) + failed < count and time.monotonic() < deadline and failed <= 50:
        try:
            s = socket.create_connection((host, port), timeout=5)
            # as wrk and browsers do: without it the GET that follows the client's TLS Finished
            # waits for that segment's ACK (Nagle), which a server that sends nothing after the
            # handshake (no tickets) delays by 40 ms
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                s = tls.wrap_socket(s)  # the handshake happens here (blocking, 5 s timeout)
            if mode in ("req", "tls"):
                s.sendall(request)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise OSError("closed before the response head")
                    data += chunk
                head, body = data.split(b"\r\n\r\n", 1)
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                while m and len(body) < int(m.group(1)):
                    chunk = s.recv(65536)
                    if not chunk:
                        raise OSError("closed inside the body")
                    body += chunk
            held.append(s)
        except OSError as e:
            failed += 1
            print(f"idle: {e}", file=sys.stderr)
    with open(ready + ".part", "w") as f:
        f.write(f"{len(held)} {failed} {time.monotonic() - start:.2f}\n")
    os.rename(ready + ".part", ready)
    time.sleep(hold)


def cmd_rss(argv):
    print(tree_rss_kb(int(argv[0])))


# ----------------------------------------------------------------------------- report
def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def median(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else None


def summarize(rows, noisy_max):
    # the last attempt of a (workload, target, round) is the one that counts
    last = {}
    for r in rows:
        last[(r["phase"], r["conns"], r["target"], r["round"])] = r
    groups = {}
    for (phase, conns, target, _), r in last.items():
        groups.setdefault((phase, conns, target), []).append(r)
    out = []
    for (phase, conns, target), rs in groups.items():
        clean = [r for r in rs if num(r["bg_pct"]) <= noisy_max]
        used = clean or rs
        rps = [num(r["rps"]) for r in used]
        p99 = [num(r["p99_us"]) for r in used]
        out.append({
            "phase": phase, "conns": int(conns), "target": target,
            "rounds": len(rs), "clean_rounds": len(clean),
            "repeats": sum(1 for r in rows if r["phase"] == phase and r["conns"] == conns
                           and r["target"] == target and r["attempt"] != "0"),
            "rps": median(rps), "rps_min": min(rps), "rps_max": max(rps),
            "p50_us": median([num(r["p50_us"]) for r in used]),
            "p99_us": median(p99), "p99_us_worst": max((x for x in p99 if x == x), default=None),
            "proxy_cpu_us_req": median([num(r["proxy_cpu_us_req"]) for r in used]),
            "upstream_cpu_us_req": median([num(r["upstream_cpu_us_req"]) for r in used]),
            "proxy_core_pct": median([num(r["proxy_core_pct"]) for r in used]),
            "client_core_pct": median([num(r["client_core_pct"]) for r in used]),
            "bg_pct_max": max(num(r["bg_pct"]) for r in used),
            "errors": sum(int(r["errors"]) + int(r["non2xx"]) for r in used),
        })
    return out


PHASE_TITLES = {
    "h1": "HTTP/1.1 keep-alive (wrk -t1)",
    "close": "HTTP/1.1, a new connection per request (wrk -H 'Connection: close')",
    "tls": "HTTPS keep-alive (wrk -t1 over TLS; no session resumption anywhere)",
    "tlsclose": "HTTPS, a new connection and a full TLS handshake per request (wrk -H 'Connection: close')",
}


def cmd_report(argv):
    outdir = argv[0]
    noisy_max = float(argv[1]) if len(argv) > 1 else 15.0
    summary = summarize(read_tsv(os.path.join(outdir, "raw.tsv")), noisy_max)
    memory = read_tsv(os.path.join(outdir, "mem.tsv"))
    for m in memory:
        m["kb_per_conn"] = num(m["kb_per_conn"])
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump({"noisy_max_pct": noisy_max, "throughput": summary, "memory": memory}, f,
                  indent=1, default=lambda o: None)

    md = []
    env = os.path.join(outdir, "env.txt")
    if os.path.exists(env):
        md += ["```", open(env).read().rstrip(), "```", ""]
    md += [f"Medians over clean rounds (background load <= {noisy_max:g}% of a core; all rounds "
           "when none was clean). proxy CPU = utime+stime of the proxy's processes / requests; "
           "cores = busy % of the proxy's and of the load generator's CPU.", ""]
    for phase in dict.fromkeys(s["phase"] for s in summary):
        md += [f"### {PHASE_TITLES.get(phase, phase)}", "",
               "| target | conns | req/s median | min..max | p50 µs | p99 µs (worst) | proxy CPU µs/req "
               "| upstream CPU µs/req | cores % | bg % max | clean | errors |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in sorted((s for s in summary if s["phase"] == phase), key=lambda s: s["conns"]):
            md.append(
                f"| {s['target']} | {s['conns']} | {fmt(s['rps'], 0)} | {fmt(s['rps_min'], 0)}..{fmt(s['rps_max'], 0)} "
                f"| {fmt(s['p50_us'], 0)} | {fmt(s['p99_us'], 0)} ({fmt(s['p99_us_worst'], 0)}) "
                f"| {fmt(s['proxy_cpu_us_req'], 2) if s['target'] != 'direct' else '-'} "
                f"| {fmt(s['upstream_cpu_us_req'], 2)} | {fmt(s['proxy_core_pct'], 0)}/{fmt(s['client_core_pct'], 0)} "
                f"| {fmt(s['bg_pct_max'])} | {s['clean_rounds']}/{s['rounds']} | {s['errors']} |")
        md.append("")
    if memory:
        md += ["### Idle connections: proxy RSS (fresh process per row)", "",
               "| target | mode | held | RSS before kB | RSS holding kB | RSS after close kB | kB per connection |",
               "|---|---|---:|---:|---:|---:|---:|"]
        for m in memory:
            md.append(f"| {m['target']} | {m['mode']} | {m['held']}/{m['wanted']} | {m['rss_before_kb']} "
                      f"| {m['rss_holding_kb']} | {m['rss_after_kb']} | {fmt(m['kb_per_conn'], 2)} |")
        md.append("")
    ratios = table.ratio_table({"throughput": summary, "memory": memory})
    md += ["### Ferry against the better peer", ""] + ratios
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(ratios))


def main():
    commands = {"measure": cmd_measure, "quiet": cmd_quiet, "idle": cmd_idle, "rss": cmd_rss,
                "report": cmd_report}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
