#!/usr/bin/env bash
# testssl.sh against a Ferry TLS listener with default TLS settings, once.
#
#   benchmarks/testssl.sh [--out FILE] [--ferry BIN] [--port P]
#
# Starts Ferry (one worker) with a TLS listener on 127.0.0.1:P that holds two certificates
# for the same name, generated here in a temporary directory: ECDSA P-256 and RSA 2048
# (self-signed, CN=localhost). Every other TLS setting is Ferry's default. The listener
# answers GET / with "hello world\n" (a direct_response route). Then runs
#   timeout 900 testssl.sh --quiet --color 0 --warnings off 127.0.0.1:P
# (Debian's package `testssl.sh` installs it as `testssl`), writes its raw output to FILE
# (default: stdout only) and stops Ferry. testssl.sh contacts nothing but 127.0.0.1 (no
# --phone-out, an address rather than a name, so no DNS). Exit status: testssl.sh's.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
ferry_bin=${FERRY_BIN:-$root/build-rel/proxy/ferry}
port=28543
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2;;
    --ferry) ferry_bin=$2; shift 2;;
    --port) port=$2; shift 2;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0;;
    *) echo "testssl.sh: unknown option '$1'" >&2; exit 2;;
  esac
done
die() { echo "testssl.sh: $*" >&2; exit 1; }

tool=$(command -v testssl.sh || command -v testssl) || die "testssl.sh not found: apt-get install -y testssl.sh"
command -v openssl >/dev/null || die "openssl not found"
[ -x "$ferry_bin" ] || die "no Ferry binary at $ferry_bin: scripts/build build-rel --buildtype=release, or --ferry BIN"
[ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] || die "port $port is in use (--port)"

dir=$(mktemp -d /tmp/ferry-testssl.XXXXXX) || die "mktemp failed"
ferry_pid=""
cleanup() {
  if [ -n "$ferry_pid" ]; then
    kill -TERM "$ferry_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$ferry_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ferry_pid" 2>/dev/null
    wait "$ferry_pid" 2>/dev/null
    ferry_pid=""
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

san="subjectAltName=DNS:localhost,IP:127.0.0.1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ecdsa.key" \
  -out "$dir/ecdsa.pem" -days 365 -subj /CN=localhost -addext "$san" >"$dir/req.log" 2>&1 \
  || die "openssl req (ECDSA) failed: $(cat "$dir/req.log")"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/rsa.key" \
  -out "$dir/rsa.pem" -days 365 -subj /CN=localhost -addext "$san" >"$dir/req.log" 2>&1 \
  || die "openssl req (RSA) failed: $(cat "$dir/req.log")"
cat >"$dir/ferry.yaml" <<EOF
runtime: {workers: 1, log_level: warn}
listeners:
  - name: tls
    address: 127.0.0.1:$port
    tls:
      certificates:
        - {cert_file: $dir/ecdsa.pem, key_file: $dir/ecdsa.key}
        - {cert_file: $dir/rsa.pem, key_file: $dir/rsa.key}
    http:
      virtual_hosts:
        - name: all
          domains: ["*"]
          routes:
            - match: {prefix: /}
              direct_response: {status: 200, body: "hello world\n"}
EOF
"$ferry_bin" -c "$dir/ferry.yaml" --validate >"$dir/validate.log" 2>&1 || die "Ferry refuses its config: $(cat "$dir/validate.log")"
"$ferry_bin" -c "$dir/ferry.yaml" >"$dir/ferry.log" 2>&1 &
ferry_pid=$!
for _ in $(seq 100); do   # 10 s at most
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$ferry_pid" 2>/dev/null || die "Ferry exited: $(cat "$dir/ferry.log")"
  sleep 0.1
done
echo "Ferry $("$ferry_bin" --version 2>/dev/null | head -1) (pid $ferry_pid) on 127.0.0.1:$port; $("$tool" --version 2>/dev/null | grep -m1 -Eo 'testssl(\.sh)? +[0-9][0-9.a-z+~-]*' | tr -s ' ')" >&2

cmd=(timeout -k 10 900 "$tool" --quiet --color 0 --warnings off "127.0.0.1:$port")
if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")" || exit 1
  out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
  (cd "$dir" && "${cmd[@]}" </dev/null) | tee "$out"
  rc=${PIPESTATUS[0]}
else
  (cd "$dir" && "${cmd[@]}" </dev/null)
  rc=$?
fi
[ "$rc" = 124 ] && echo "testssl.sh: timed out after 900 s" >&2
exit "$rc"
