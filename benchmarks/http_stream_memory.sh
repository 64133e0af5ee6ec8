#!/usr/bin/env bash
# Streams a large body through Ferry's HTTP proxy, up and down, and reports Ferry's peak RSS
# growth (VmHWM minus the RSS before the transfers). Upstream: nginx serving a file and
# storing uploads with WebDAV PUT. Usage: benchmarks/http_stream_memory.sh [BUILD_DIR (build-rel)] [MiB (1024)]
# Everything it starts stops at exit; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-rel}; mib=${2:-1024}
ferry=$build/proxy/ferry
[ -x "$ferry" ] || { echo "build first: scripts/build $build --buildtype=release"; exit 1; }
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
up=19800; px=19801
truncate -s "${mib}M" "$work/big"
mkdir -p "$work/nginx"
cat > "$work/nginx.conf" <<NGX
user root; daemon off; worker_processes 1; error_log $work/nginx/error.log; pid $work/nginx/pid;
events {}
http {
  access_log off; client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  client_max_body_size 0;
  server { listen 127.0.0.1:$up; root $work;
    location /upload/ { dav_methods PUT; create_full_put_path on; client_body_in_file_only clean; }
  }
}
NGX
cat > "$work/ferry.yaml" <<YAML
runtime: {workers: 1, log_level: warn}
listeners:
  - name: web
    address: 127.0.0.1:$px
    http:
      virtual_hosts:
        - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: up, timeout: 0s}}]}
clusters:
  - {name: up, endpoints: [{address: 127.0.0.1:$up}]}
YAML
timeout 600 nginx -c "$work/nginx.conf" &
timeout 600 "$ferry" -c "$work/ferry.yaml" & fpid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$px/" && break; sleep 0.1; done
rss() { awk -v k="$1:" '$1==k {print $2}' /proc/$fpid/status; }
base=$(rss VmRSS)
t0=$(date +%s.%N)
curl -s -o /dev/null -w "download: %{size_download} bytes, %{speed_download} B/s\n" "http://127.0.0.1:$px/big"
curl -s -o /dev/null -w "upload:   %{size_upload} bytes, %{speed_upload} B/s, status %{http_code}\n" \
  -T "$work/big" "http://127.0.0.1:$px/upload/a"
rm -f "$work/upload/a"
curl -s -o /dev/null -w "chunked upload: %{size_upload} bytes, status %{http_code}\n" -T "$work/big" \
  -H 'transfer-encoding: chunked' "http://127.0.0.1:$px/upload/b"

peak=$(rss VmHWM)
echo "ferry RSS before: ${base} kB, peak: ${peak} kB, growth: $((peak - base)) kB ($(awk -v s="$t0" 'BEGIN{printf "%.1f", '"$(date +%s.%N)"' - s}') s)"
