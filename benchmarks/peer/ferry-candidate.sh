#!/bin/bash
# peerbench candidate for Ferry (see ../shared/peerbench/README.md): writes a config from the
# PB_* variables peerbench exports and execs Ferry in the foreground.
#   FERRY_BIN      the binary (default build-rel/proxy/ferry)
#   FERRY_WORKERS  workers (default 1)
#   FERRY_ROUTES   extra routes in front of the catch-all (default 0): a third exact paths,
#                  a third prefixes, a third on their own virtual hosts, so a lookup walks a
#                  realistically large table (the benchmark's "/" still ends on the catch-all)
set -euo pipefail
bin=${FERRY_BIN:-build-rel/proxy/ferry}
[ -x "$bin" ] || { echo "ferry-candidate: no executable at $bin (set FERRY_BIN)" >&2; exit 1; }
workers=${FERRY_WORKERS:-1}
routes=${FERRY_ROUTES:-0}
cfg="$PB_WORKDIR/ferry.yaml"
{
  echo "runtime: {workers: $workers, log_level: warn}"
  echo "listeners:"
  echo "  - name: plain"
  echo "    address: 127.0.0.1:$PB_PORT"
  echo "    http:"
  echo "      virtual_hosts:"
  third=$((routes / 3))
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
  echo "clusters:"
  echo "  - name: upstream"
  echo "    endpoints: [{address: $PB_UPSTREAM_HOST:$PB_UPSTREAM_PORT}]"
} > "$cfg"
exec "$bin" -c "$cfg"
