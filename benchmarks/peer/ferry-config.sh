#!/usr/bin/env bash
# Prints the Ferry config benchmarks/peer/compare.sh runs: one HTTP listener whose every path
# goes to one upstream cluster, logs at warn (nothing per request); with a TLS address, a
# second listener with the same routes that terminates TLS without session resumption
# (no tickets, no session cache: every new connection is a full handshake).
#   benchmarks/peer/ferry-config.sh LISTEN_ADDRESS UPSTREAM_ADDRESS [TLS_ADDRESS CERT_FILE KEY_FILE] > ferry.yaml
#   FERRY_WORKERS  workers (default 1)
#   FERRY_ROUTES   extra routes in front of the catch-all (default 0): a third exact paths,
#                  a third prefixes, a third on their own virtual hosts, so a lookup walks a
#                  realistically large table (the benchmark's "/" still ends on the catch-all);
#                  both listeners get them
#   FERRY_FLOOR=1  a plain TCP forwarder instead (`tcp` listeners, splice off, the TLS one
#                  terminating TLS): the kernel floor compare.sh measures as target "floor"
set -euo pipefail
listen=${1:?LISTEN_ADDRESS (e.g. 127.0.0.1:28083)}
upstream=${2:?UPSTREAM_ADDRESS (e.g. 127.0.0.1:28080)}
tls_listen=${3:-}
if [ -n "$tls_listen" ]; then
  cert=${4:?CERT_FILE (PEM certificate, with TLS_ADDRESS)}
  key=${5:?KEY_FILE (PEM private key, with TLS_ADDRESS)}
fi
workers=${FERRY_WORKERS:-1}
routes=${FERRY_ROUTES:-0}
third=$((routes / 3))

http_block() {      # the listener's http: block, the same for both listeners
  local i
  if [ "${FERRY_FLOOR:-0}" = 1 ]; then echo "    tcp: {cluster: upstream, splice: false}"; return; fi
  echo "    http:"
  echo "      virtual_hosts:"
  for ((i = 0; i < third; i++)); do
    echo "        - {name: vh$i, domains: [\"svc$i.example.com\"], routes: [{match: {prefix: /}, route: {cluster: upstream}}]}"
  done
  echo "        - name: all"
  echo "          domains: [\"*\"]"
  echo "          routes:"
  for ((i = 0; i < third; i++)); do
    echo "            - {match: {path: /api/v1/item$i}, route: {cluster: upstream}}"
    echo "            - {match: {prefix: /static/p$i/}, route: {cluster: upstream}}"
  done
  echo "            - {match: {prefix: /}, route: {cluster: upstream}}"
}

echo "runtime: {workers: $workers, log_level: warn}"
echo "listeners:"
echo "  - name: plain"
echo "    address: $listen"
http_block
if [ -n "$tls_listen" ]; then
  echo "  - name: tls"
  echo "    address: $tls_listen"
  echo "    tls:"
  echo "      certificates: [{cert_file: \"$cert\", key_file: \"$key\"}]"
  echo "      session_tickets: false"
  echo "      session_cache_size: 0"
  http_block
fi
echo "clusters:"
echo "  - name: upstream"
echo "    endpoints: [{address: $upstream}]"
