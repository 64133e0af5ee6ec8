#!/usr/bin/env python3
"""Helper of benchmarks/reload.sh (Python 3 standard library only).

  reload.py config --routes N --workers W --port P --admin-port A --marker M --out FILE
      Writes the benchmark's Ferry config to FILE (a temporary file, then rename): one HTTP
      listener on 127.0.0.1:P whose routes are N prefix routes /r0 ... /rN-1, each a
      direct_response with body "rI\\n", and a catch-all `/` whose body is "M\\n" (the
      version marker); runtime.workers W, log_level info (the reload line; nothing is
      logged per request), the admin API on 127.0.0.1:A.
  reload.py latency --pid PID --log LOG --conf FILE --routes N --workers W --port P
                    --admin-port A --reloads K --label L --out TSV [--timeout S]
      K times: rewrite FILE with a new marker (atomic rename), note the time, SIGHUP PID,
      then GET / on one keep-alive connection, as fast as it answers, until the body is the
      new marker: latency = that time. Then waits for the log line "config reloaded (SIGHUP):
      version V in X ms" (server-side duration). One row per reload in TSV.
  reload.py cpu --pid PID --log LOG --conf FILE --routes N --workers W --port P
                --admin-port A --mode quiet|reload --window S --interval MS --label L
                --out TSV --wrk-pid-file F -- wrk ...
      Runs the load command (wrk, its own -d) and reads the CPU time (utime+stime) of every
      thread of PID from /proc/PID/task/*/stat before it starts and after it has ended (and
      after the last reload has finished): the main thread (TID = PID) and the workers (the
      other threads). --mode reload: meanwhile, a SIGHUP every --interval ms, or as soon as
      the previous reload has finished when one takes longer (each waits for its log line);
      no reload starts that would end after the load. One row per window in TSV.
  reload.py rss --pid PID --log LOG --conf FILE --routes N --workers W --port P
                --admin-port A --reloads K --steps M --step-budget S --label L --out TSV
                --wrk-pid-file F -- wrk ...
      Starts the load (wrk, a -d longer than the steps), waits --warmup seconds (2), reads
      VmRSS of PID, then M steps of K back-to-back reloads (each waiting for its log line;
      a step stops early after S seconds) with VmRSS read after each step. One row in TSV.
  reload.py report DIR
      DIR/latency.tsv, DIR/cpu.tsv and DIR/rss.tsv -> the tables, on stdout (markdown).

CPU times are in clock ticks (normally 10 ms): a window's figure is exact to 10 ms per
thread; per-reload figures divide that by the reloads made in the window.
"""
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer"))
from bench import HZ, background_pct, machine_ticks, parse_wrk  # noqa: E402

RELOADED = re.compile(rb"config reloaded \(([^)]*)\): version (\d+) in ([\d.]+) ms")
REJECTED = re.compile(rb"config reload \(([^)]*)\) rejected")


def die(msg):
    print(f"reload.py: {msg}", file=sys.stderr)
    sys.exit(1)


def parse_opts(argv):
    opts, cmd, i = {}, [], 0
    while i < len(argv):
        if argv[i] == "--":
            cmd = argv[i + 1:]
            break
        if i + 1 >= len(argv):
            die(f"option {argv[i]} needs a value")
        opts[argv[i].lstrip("-").replace("-", "_")] = argv[i + 1]
        i += 2
    return opts, cmd


# ----------------------------------------------------------------------------- config
class ConfigWriter:
    """The config text with everything but the marker rendered once (10,000 routes)."""

    def __init__(self, opts):
        self.path = opts["conf"] if "conf" in opts else opts["out"]
        n = int(opts["routes"])
        head = [
            f"runtime: {{workers: {int(opts['workers'])}, log_level: info}}",
            f"admin: {{address: 127.0.0.1:{int(opts['admin_port'])}}}",
            "listeners:",
            "  - name: web",
            f"    address: 127.0.0.1:{int(opts['port'])}",
            "    http:",
            "      virtual_hosts:",
            "        - name: all",
            "          domains: [\"*\"]",
            "          routes:",
        ]
        head += [f"            - {{match: {{prefix: /r{i}}}, direct_response: {{status: 200, body: \"r{i}\\n\"}}}}"
                 for i in range(n)]
        self.head = "\n".join(head) + "\n"

    def write(self, marker):
        text = (self.head + f"            - {{match: {{prefix: /}}, direct_response: "
                f"{{status: 200, body: \"{marker}\\n\"}}}}\n")
        tmp = f"{self.path}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)


def cmd_config(argv):
    opts, _ = parse_opts(argv)
    ConfigWriter(opts).write(opts["marker"])


# ------------------------------------------------------------------- log and HTTP client
class LogWatch:
    """Follows Ferry's log from its current end."""

    def __init__(self, path, poll=0.001):
        self.poll = poll  # seconds between reads: coarser under load (it shares the client's CPU)
        self.f = open(path, "rb")
        self.f.seek(0, os.SEEK_END)
        self.buf = b""
        self.lines = []

    def wait_reload(self, timeout):
        """(version, server ms) of the next "config reloaded" line; dies on a rejection."""
        deadline = time.monotonic() + timeout
        while True:
            while self.lines:
                line = self.lines.pop(0)
                if REJECTED.search(line):
                    die("Ferry rejected a reload: " + line.decode(errors="replace"))
                m = RELOADED.search(line)
                if m:
                    return int(m.group(2)), float(m.group(3))
            chunk = self.f.read()
            if chunk:
                self.buf += chunk
                *self.lines, self.buf = self.buf.split(b"\n")
                continue
            if time.monotonic() > deadline:
                die(f"no 'config reloaded' line in the log within {timeout:.0f} s")
            time.sleep(self.poll)


class Http:
    """HTTP/1.1 GET on one keep-alive connection; bodies with Content-Length only."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def get(self, path="/"):
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self._read()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if not m:
            die("answer without content-length: " + head.decode(errors="replace"))
        n = int(m.group(1))
        while len(self.buf) < n:
            self._read()
        body, self.buf = self.buf[:n], self.buf[n:]
        if re.search(rb"(?im)^connection:\s*close", head):
            self.sock.close()
            self.__init__(self.port)
        return head.split(b"\r\n", 1)[0], body

    def _read(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            die("the server closed the keep-alive connection")
        self.buf += chunk


def append_tsv(path, columns, row):
    new = not os.path.exists(path)
    with open(path, "a") as f:
        if new:
            f.write("\t".join(columns) + "\n")
        f.write("\t".join(str(row[c]) for c in columns) + "\n")


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return [dict(zip(lines[0], v)) for v in lines[1:]] if lines else []


# --------------------------------------------------------------------------- latency
LAT_COLUMNS = ["label", "routes", "workers", "reload", "version", "latency_ms", "server_ms", "polls", "bg_pct"]


def cmd_latency(argv):
    opts, _ = parse_opts(argv)
    pid, reloads, timeout = int(opts["pid"]), int(opts["reloads"]), float(opts.get("timeout", 30))
    conf = ConfigWriter(opts)
    log = LogWatch(opts["log"])
    http = Http(int(opts["port"]))
    status, body = http.get("/r5")
    if int(opts["routes"]) > 5 and body != b"r5\n":
        die(f"GET /r5 answered {status!r} {body!r}, not r5")
    run = f"{os.getpid()}-{int(time.time())}"
    rows = []
    ticks0, m0, self0, w0 = thread_ticks(pid), machine_ticks(), self_ticks(), time.monotonic()
    for k in range(1, reloads + 1):
        marker = f"m-{run}-{k}"
        want = (marker + "\n").encode()
        conf.write(marker)
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGHUP)
        polls = 0
        while True:
            status, body = http.get("/")
            polls += 1
            if body == want:
                t1 = time.perf_counter()
                break
            if time.perf_counter() - t0 > timeout:
                die(f"reload {k}: GET / still answers {body!r} after {timeout:.0f} s")
        version, server_ms = log.wait_reload(timeout)
        rows.append({
            "label": opts["label"], "routes": opts["routes"], "workers": opts["workers"], "reload": k,
            "version": version, "latency_ms": f"{(t1 - t0) * 1e3:.3f}", "server_ms": f"{server_ms:.1f}",
            "polls": polls})
        time.sleep(0.02)
    ticks1, m1, self1, w1 = thread_ticks(pid), machine_ticks(), self_ticks(), time.monotonic()
    ours = sum(ticks1.get(t, 0) - ticks0.get(t, 0) for t in ticks1) + (self1 - self0)
    bg = f"{background_pct(m0, m1, ours, w1 - w0):.1f}"
    for r in rows:
        r["bg_pct"] = bg
        append_tsv(opts["out"], LAT_COLUMNS, r)
    lat = [float(r["latency_ms"]) for r in rows]
    srv = [float(r["server_ms"]) for r in rows]
    print(f"  {opts['label']}: {len(lat)} reloads, latency median {statistics.median(lat):.2f} ms, worst "
          f"{max(lat):.2f} ms; server-side median {statistics.median(srv):.1f} ms, worst {max(srv):.1f} ms; "
          f"background {bg}% of a core", file=sys.stderr)


# ------------------------------------------------------------------------ CPU windows
def thread_ticks(pid):
    """{tid: utime+stime} for every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = int(fields[11]) + int(fields[12])
    return out


def self_ticks():
    t = os.times()
    return (t.user + t.system + t.children_user + t.children_system) * HZ


def vm_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def start_load(cmd, pid_file):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(pid_file, "w") as f:
        f.write(f"{p.pid}\n")
    return p


CPU_COLUMNS = ["label", "routes", "workers", "mode", "seconds", "reloads", "requests", "rps", "p99_us",
               "errors", "main_ms", "workers_ms", "worker_threads", "server_ms_median", "bg_pct"]


def cmd_cpu(argv):
    opts, cmd = parse_opts(argv)
    pid, window, interval = int(opts["pid"]), float(opts["window"]), float(opts["interval"]) / 1e3
    log = LogWatch(opts["log"])
    mode = opts["mode"]
    if mode not in ("quiet", "reload", "idle"):
        die(f"unknown --mode {mode!r} (quiet reload idle)")
    log.poll = 0.005
    ticks0, m0, self0, w0 = thread_ticks(pid), machine_ticks(), self_ticks(), time.monotonic()
    wrk = start_load(cmd, opts["wrk_pid_file"]) if mode != "idle" else None
    t_start = time.monotonic()
    reloads, server_ms, last_ms = 0, [], 0.0
    out = ""
    try:
        if mode in ("reload", "idle"):
            next_at = t_start + (0.2 if wrk else 0)
            while wrk is None or wrk.poll() is None:
                now = time.monotonic()
                # no reload that would still run when the load stops
                if now - t_start + last_ms / 1e3 + 0.1 > window:
                    break
                if now < next_at:
                    time.sleep(min(next_at - now, 0.01))
                    continue
                sent = time.monotonic()
                os.kill(pid, signal.SIGHUP)
                _, last_ms = log.wait_reload(60)
                server_ms.append(last_ms)
                reloads += 1
                next_at = max(sent + interval, time.monotonic())
        if wrk:
            out, _ = wrk.communicate(timeout=window + 30)
    finally:
        if wrk and wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    time.sleep(0.2)  # a worker's share of the last install
    ticks1, m1, self1, w1 = thread_ticks(pid), machine_ticks(), self_ticks(), time.monotonic()
    w = parse_wrk(out) if wrk else {"requests": 0, "rps": 0.0, "p99_us": float("nan"), "errors": 0, "non2xx": 0}
    delta = {t: ticks1.get(t, 0) - ticks0.get(t, 0) for t in ticks1}
    main = delta.get(pid, 0)
    workers = sum(v for t, v in delta.items() if t != pid)
    ours = sum(delta.values()) + (self1 - self0)
    row = {
        "label": opts["label"], "routes": opts["routes"], "workers": opts["workers"], "mode": mode,
        "seconds": f"{w1 - w0:.2f}", "reloads": reloads, "requests": w["requests"], "rps": f"{w['rps']:.0f}",
        "p99_us": f"{w['p99_us']:.0f}", "errors": w["errors"] + w["non2xx"],
        "main_ms": f"{main * 1e3 / HZ:.0f}", "workers_ms": f"{workers * 1e3 / HZ:.0f}",
        "worker_threads": len(delta) - 1,
        "server_ms_median": f"{statistics.median(server_ms):.1f}" if server_ms else "-",
        "bg_pct": f"{background_pct(m0, m1, ours, w1 - w0):.1f}",
    }
    append_tsv(opts["out"], CPU_COLUMNS, row)
    print(f"  {opts['label']} {mode}: {reloads} reloads, {row['rps']} req/s, main {row['main_ms']} ms, "
          f"workers {row['workers_ms']} ms CPU, background {row['bg_pct']}% of a core", file=sys.stderr)


# ------------------------------------------------------------------------------- RSS
RSS_COLUMNS = ["label", "routes", "workers", "rss0_kb", "reloads1", "rss1_kb", "reloads2", "rss2_kb",
               "hwm_kb", "seconds1", "seconds2", "rps", "errors"]


def cmd_rss(argv):
    opts, cmd = parse_opts(argv)
    pid, per_step, steps = int(opts["pid"]), int(opts["reloads"]), int(opts.get("steps", 2))
    budget, warmup = float(opts["step_budget"]), float(opts.get("warmup", 2))
    log = LogWatch(opts["log"], poll=0.005)
    wrk = start_load(cmd, opts["wrk_pid_file"])
    row = {"label": opts["label"], "routes": opts["routes"], "workers": opts["workers"]}
    try:
        time.sleep(warmup)
        if wrk.poll() is not None:
            die("the load stopped before the reloads: " + wrk.communicate()[0])
        row["rss0_kb"] = vm_kb(pid, "VmRSS")
        for s in range(1, steps + 1):
            t0, n = time.monotonic(), 0
            while n < per_step and time.monotonic() - t0 < budget:
                os.kill(pid, signal.SIGHUP)
                log.wait_reload(60)
                n += 1
            time.sleep(0.2)
            row[f"reloads{s}"], row[f"seconds{s}"] = n, f"{time.monotonic() - t0:.1f}"
            row[f"rss{s}_kb"] = vm_kb(pid, "VmRSS")
        row["hwm_kb"] = vm_kb(pid, "VmHWM")
        if wrk.poll() is not None:
            die("the load stopped during the reloads: " + wrk.communicate()[0])
        wrk.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
        out, _ = wrk.communicate(timeout=10)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    w = parse_wrk(out)
    row["rps"], row["errors"] = f"{w['rps']:.0f}", w["errors"] + w["non2xx"]
    append_tsv(opts["out"], RSS_COLUMNS, row)
    print(f"  {opts['label']}: VmRSS {row['rss0_kb']} kB, after {row['reloads1']} reloads {row['rss1_kb']} kB, "
          f"after {row['reloads2']} more {row['rss2_kb']} kB", file=sys.stderr)


# ----------------------------------------------------------------------------- report
def fnum(x, digits=1):
    return "-" if x is None else f"{x:,.{digits}f}"


def cmd_report(argv):
    d = argv[0]
    lat, cpu, rss = (read_tsv(os.path.join(d, f)) for f in ("latency.tsv", "cpu.tsv", "rss.tsv"))
    if lat:
        print("Reload latency: SIGHUP to GET / answering with the new config (one keep-alive connection")
        print("polling), and the server's own duration (log line), in ms:")
        print()
        print("| routes | workers | reloads | latency median | latency worst | server median | server worst | bg % |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        seen = []
        for r in lat:
            if r["label"] not in seen:
                seen.append(r["label"])
        for label in seen:
            rows = [r for r in lat if r["label"] == label]
            lt = [float(r["latency_ms"]) for r in rows]
            sv = [float(r["server_ms"]) for r in rows]
            digits = 1 if statistics.median(lt) >= 10 else 2
            print(f"| {int(rows[0]['routes']):,} | {rows[0]['workers']} | {len(rows)} | "
                  f"{fnum(statistics.median(lt), digits)} | {fnum(max(lt), digits)} | "
                  f"{fnum(statistics.median(sv))} | {fnum(max(sv))} | {rows[0].get('bg_pct', '-')} |")
        print()
    if cpu:
        print("CPU a reload costs (one worker; wrk on CPU 1, Ferry on CPU 0): under load, a window without")
        print("reloads (quiet), then one with a SIGHUP every interval, back to back when a reload takes")
        print("longer (reload; workers ms/reload: their CPU beyond the quiet window's CPU per request);")
        print("then reloads with no load (idle: all the CPU is the reloads'):")
        print()
        print("| routes | window | s | reloads | req/s | errors | main CPU ms | workers CPU ms | "
              "main ms/reload | workers ms/reload | req/s vs quiet | bg % |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        by = {}
        for r in cpu:
            by.setdefault(r["label"], {})[r["mode"]] = r
        for label, m in by.items():
            q = m.get("quiet")
            for mode in ("quiet", "reload", "idle"):
                r = m.get(mode)
                if r is None:
                    continue
                per_main = per_workers = ratio = None
                n = int(r["reloads"])
                if mode == "idle" and n > 0:  # no load: every tick is the reloads'
                    per_main, per_workers = float(r["main_ms"]) / n, float(r["workers_ms"]) / n
                if mode == "reload" and q and n > 0:
                    # main: the quiet window's main-thread time (per second) is the baseline;
                    # workers: their quiet CPU per request, times the requests of this window
                    qs, rs = float(q["seconds"]), float(r["seconds"])
                    per_main = (float(r["main_ms"]) - float(q["main_ms"]) * rs / qs) / n
                    qreq, rreq = int(q["requests"]), int(r["requests"])
                    if qreq > 0:
                        per_workers = (float(r["workers_ms"]) - float(q["workers_ms"]) * rreq / qreq) / n
                    if float(q["rps"]) > 0:
                        ratio = float(r["rps"]) / float(q["rps"])
                rps = f"{int(r['rps']):,}" if mode != "idle" else "no load"
                print(f"| {int(r['routes']):,} | {mode} | {float(r['seconds']):.1f} | {n} | {rps} | "
                      f"{r['errors']} | {r['main_ms']} | {r['workers_ms']} | {fnum(per_main, 2)} | "
                      f"{fnum(per_workers, 2)} | {fnum(ratio, 2)} | {r['bg_pct']} |")
        print()
    if rss:
        print("RSS under load (VmRSS of Ferry, wrk running), before and after two rounds of reloads:")
        print()
        print("| routes | RSS before kB | reloads | RSS after kB | growth kB | reloads | RSS after kB | growth kB | "
              "VmHWM kB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rss:
            r0, r1, r2 = int(r["rss0_kb"]), int(r["rss1_kb"]), int(r["rss2_kb"])
            print(f"| {int(r['routes']):,} | {r0:,} | {r['reloads1']} | {r1:,} | {r1 - r0:+,} | {r['reloads2']} | "
                  f"{r2:,} | {r2 - r1:+,} | {int(r['hwm_kb']):,} |")
        print()


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmds = {"config": cmd_config, "latency": cmd_latency, "cpu": cmd_cpu, "rss": cmd_rss, "report": cmd_report}
    if sys.argv[1] not in cmds:
        die(f"unknown command {sys.argv[1]!r} ({', '.join(cmds)})")
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
