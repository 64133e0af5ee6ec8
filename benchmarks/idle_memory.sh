#!/usr/bin/env bash
# Memory per idle keep-alive client connection: starts Ferry (2 workers, an HTTP listener
# answering a direct response), opens N connections and keeps them open without sending a
# byte ("connect"), then sends one GET on each and reads the answer, keeping them all open
# and idle ("request"). Reports Ferry's VmRSS at the start and after each phase, and the
# growth per connection over the start for each phase. Kernel socket memory is not in VmRSS (see docs/operations.md,
# "Sizing"). Usage: benchmarks/idle_memory.sh [BUILD_DIR (build-rel)] [N (10000)]
# FERRY_IO=io_uring runs the workers on io_uring (default: runtime.io's default).
# Everything it starts stops at exit; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-rel}; n=${2:-10000}
ferry=$build/proxy/ferry
[ -x "$ferry" ] || { echo "build first: scripts/build $build --buildtype=release"; exit 1; }
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
io_line=
[ -n "${FERRY_IO:-}" ] && io_line=", io: $FERRY_IO"
cat > "$work/ferry.yaml" <<YAML
runtime: {workers: 2$io_line}
listeners:
  - name: web
    address: 127.0.0.1:0
    http:
      idle_timeout: 600s
      virtual_hosts:
        - name: all
          domains: ["*"]
          routes:
            - match: {prefix: /}
              direct_response: {status: 200, body: "ok\n"}
YAML
"$ferry" -c "$work/ferry.yaml" > "$work/ferry.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "listener=web address=" "$work/ferry.log" && break; sleep 0.1; done
port=$(grep -o "listener=web address=127.0.0.1:[0-9]*" "$work/ferry.log" | head -1 | cut -d: -f2)
/usr/bin/python3 - "$pid" "$port" "$n" <<'PY'
import os, resource, socket, sys, time
pid, port, n = (int(a) for a in sys.argv[1:4])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
time.sleep(0.5)
before = rss()
base_fds = len(os.listdir(f"/proc/{pid}/fd"))
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
# Every connection accepted (Ferry holds a descriptor for each), still without a request.
def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))
for _ in range(600):
    if fds() >= base_fds + n:
        break
    time.sleep(0.1)
time.sleep(1)
connected = rss()
for s in socks:
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while not got.endswith(b"ok\n"):
        got += s.recv(4096)
time.sleep(1)
after = rss()
print(f"idle keep-alive connections: {n}; ferry VmRSS {before} kB at start, {connected} kB after connect, "
      f"{after} kB after one request each")
print(f"connect: {(connected - before) * 1024 // n} bytes per connection")
print(f"request: {(after - before) * 1024 // n} bytes per connection")
PY
