#!/usr/bin/env bash
# Prints the Ferry config benchmarks/peer/compare.sh runs: one HTTP listener whose every path
# goes to one upstream cluster, logs at warn (nothing per request).
#   benchmarks/peer/ferry-config.sh LISTEN_ADDRESS UPSTREAM_ADDRESS > ferry.yaml
#   FERRY_WORKERS  workers (default 1)
#   FERRY_ROUTES   extra routes in front of the catch-all (default 0): a third exact paths,
#                  a third prefixes, a third on their own virtual hosts, so a lookup walks a
#                  realistically large table (the benchmark's "/" still ends on the catch-all)
set -euo pipefail
listen=${1:?LISTEN_ADDRESS (e.g. 127.0.0.1:28083)}
upstream=${2:?UPSTREAM_ADDRESS (e.g. 127.0.0.1:28080)}
workers=${FERRY_WORKERS:-1}
routes=${FERRY_ROUTES:-0}
third=$((routes / 3))
echo "runtime: {workers: $workers, log_level: warn}"
echo "listeners:"
echo "  - name: plain"
echo "    address: $listen"
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
echo "clusters:"
echo "  - name: upstream"
echo "    endpoints: [{address: $upstream}]"
