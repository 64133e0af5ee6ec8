#!/usr/bin/env python3
"""Deterministic upstream and lock-step client for benchmarks/callgrind_check.sh.

  loadgen.py upstream                      serve on 127.0.0.1:<free port>, print the port
  loadgen.py client PORT REQUESTS [--mix standard|get] [--conns C]

The upstream is an HTTP/1.1 keep-alive server with fixed answers; it checks what Ferry
forwarded (headers, query, body) and answers 500 with the reason if something is off.
The client sends one request at a time (send, read the whole response, next) over C
keep-alive connections, checks every response (status, headers, body) and exits 1 with
the reason on the first mismatch. Every request and every response goes out in a single
send(), so Ferry sees the same reads every run and its instruction count repeats.
Python 3 standard library only.
"""
import socket
import sys
import threading
import zlib

HOST = "bench.local"

# ---- the fixed request mix -------------------------------------------------------------

UPLOAD = bytes((i * 7 + 3) & 0xFF for i in range(1024))
UPLOAD_CRC = zlib.crc32(UPLOAD)
SMALL_BODY = b"hello world\n"
ITEMS_BODY = (b'{"page":2,"limit":50,"items":['
              + b",".join(b'{"id":%d,"name":"item-%03d"}' % (i, i) for i in range(8))
              + b"]}\n")
CHUNKS = [bytes([65 + i]) * 256 for i in range(4)]  # 4 chunks of 256 bytes
STREAM_BODY = b"".join(CHUNKS)
UPLOAD_REPLY = b"stored 1024 bytes crc32=%08x\n" % UPLOAD_CRC


def req(method, target, headers, body=b""):
    head = "%s %s HTTP/1.1\r\nhost: %s\r\n" % (method, target, HOST)
    head += "".join("%s: %s\r\n" % kv for kv in headers)
    return head.encode() + b"\r\n" + body


# (name, request bytes, expected status, expected body, header checks)
# header checks: list of (name, value) where value None means "must be absent".
MIX_STANDARD = [
    ("get_small", req("GET", "/", [("user-agent", "cg-bench/1"), ("accept", "*/*")]),
     200, SMALL_BODY, [("content-type", "text/plain"), ("server", "cg-upstream")]),
    ("get_headers_query",
     req("GET", "/api/v1/items?page=2&limit=50&sort=name&fields=id,name", [
         ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"),
         ("accept", "application/json, text/plain, */*"),
         ("accept-language", "en-GB,en;q=0.7,de;q=0.3"),
         ("accept-encoding", "gzip, deflate, br"),
         ("cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; lang=en"),
         ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl"),
         ("x-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
         ("referer", "http://bench.local/app/list"),
         ("cache-control", "no-cache"),
     ]),
     200, ITEMS_BODY, [("content-type", "application/json"), ("server", None)]),
    ("post_1k",
     req("POST", "/api/v1/upload", [("content-type", "application/octet-stream"),
                                    ("content-length", "1024")], UPLOAD),
     201, UPLOAD_REPLY, [("server", None)]),
    ("get_chunked", req("GET", "/stream", [("accept", "*/*")]),
     200, STREAM_BODY, [("transfer-encoding", "chunked")]),
]
MIX_GET = MIX_STANDARD[:1]  # the keep-alive GET path alone, for profiling
MIXES = {"standard": MIX_STANDARD, "get": MIX_GET}

# ---- HTTP/1.1 message reading (both sides) --------------------------------------------


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def head(self):
        """Returns (start line, [(lower-case name, value)]), or None on a clean EOF."""
        try:
            start = self.line()
        except EOFError:
            if self.buf:
                raise
            return None
        headers = []
        while True:
            line = self.line()
            if not line:
                break
            name, _, value = line.partition(b":")
            headers.append((name.decode().lower(), value.decode().strip()))
        return start.decode(), headers

    def body(self, headers, chunked_ok=True):
        h = dict(headers)
        if h.get("transfer-encoding") == "chunked":
            if not chunked_ok:
                raise ValueError("unexpected chunked body")
            out = b""
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():  # trailers
                        pass
                    return out
                out += self.exact(size)
                if self.exact(2) != b"\r\n":
                    raise ValueError("bad chunk end")
        return self.exact(int(h.get("content-length", "0")))


def get(headers, name):
    vals = [v for k, v in headers if k == name]
    return vals[0] if len(vals) == 1 else (None if not vals else vals)

# ---- upstream -------------------------------------------------------------------------


def response(status, reason, headers, body, chunks=None):
    head = "HTTP/1.1 %d %s\r\nserver: cg-upstream\r\n" % (status, reason)
    head += "".join("%s: %s\r\n" % kv for kv in headers)
    if chunks is None:
        return (head + "content-length: %d\r\n\r\n" % len(body)).encode() + body
    data = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return (head + "transfer-encoding: chunked\r\n\r\n").encode() + data


def check_forwarded(headers):
    """What every proxied request must carry; returns an error string or None."""
    if get(headers, "host") != HOST:
        return "host %r" % (get(headers, "host"),)
    if get(headers, "x-forwarded-for") != "127.0.0.1":
        return "x-forwarded-for %r" % (get(headers, "x-forwarded-for"),)
    if get(headers, "x-forwarded-proto") != "http":
        return "x-forwarded-proto %r" % (get(headers, "x-forwarded-proto"),)
    rid = get(headers, "x-request-id")
    if not isinstance(rid, str) or len(rid) != 36:
        return "x-request-id %r" % (rid,)
    return None


def handle(method, target, headers, body):
    err = check_forwarded(headers)
    if err:
        return response(500, "Bad Forward", [], ("upstream: " + err + "\n").encode())
    if method == "GET" and target == "/":
        return response(200, "OK", [("content-type", "text/plain")], SMALL_BODY)
    if method == "GET" and target == "/api/v1/items?page=2&limit=50&sort=name&fields=id,name":
        for name, want in (("x-env", "bench"), ("x-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
                           ("cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; lang=en"),
                           ("accept-language", "en-GB,en;q=0.7,de;q=0.3")):
            if get(headers, name) != want:
                return response(500, "Bad Forward", [], b"upstream: %s %r\n" % (name.encode(), get(headers, name)))
        return response(200, "OK", [("content-type", "application/json")], ITEMS_BODY)
    if method == "POST" and target == "/api/v1/upload":
        if body != UPLOAD:
            return response(500, "Bad Body", [], b"upstream: body %d bytes crc32=%08x\n" % (len(body), zlib.crc32(body)))
        return response(201, "Created", [("content-type", "text/plain")], UPLOAD_REPLY)
    if method == "GET" and target == "/stream":
        return response(200, "OK", [("content-type", "application/octet-stream")], b"", CHUNKS)
    return response(404, "Not Found", [], b"upstream: no such resource\n")


def serve_conn(sock):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    r = Reader(sock)
    try:
        while True:
            head = r.head()
            if head is None:
                return
            start, headers = head
            method, target, _ = start.split(" ", 2)
            body = r.body(headers)
            sock.sendall(handle(method, target, headers, body))
    except (EOFError, OSError, ValueError):
        pass
    finally:
        sock.close()


def upstream():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    print(ls.getsockname()[1], flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve_conn, args=(c,), daemon=True).start()

# ---- client ---------------------------------------------------------------------------


def fail(msg):
    print("loadgen: FAIL: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def client(port, total, mix_name, conns):
    mix = MIXES[mix_name]
    if total % (len(mix) * conns):
        fail("request count %d must be a multiple of %d" % (total, len(mix) * conns))
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append((s, Reader(s)))
    for i in range(total):
        # Whole rounds of the mix per connection, connections in turn.
        s, r = socks[(i // len(mix)) % conns]
        name, data, status, body, checks = mix[i % len(mix)]
        try:
            s.sendall(data)
            head = r.head()
            if head is None:
                fail("request %d (%s): connection closed before a response" % (i, name))
            start, headers = head
            got = r.body(headers)
        except (OSError, EOFError, ValueError) as e:
            fail("request %d (%s): %s" % (i, name, e))
        code = int(start.split(" ")[1])
        if code != status:
            fail("request %d (%s): status %d, want %d; body %r" % (i, name, code, status, got[:200]))
        if got != body:
            fail("request %d (%s): body differs (%d bytes, want %d): %r" % (i, name, len(got), len(body), got[:200]))
        for hname, want in checks:
            if get(headers, hname) != want:
                fail("request %d (%s): header %s = %r, want %r" % (i, name, hname, get(headers, hname), want))
        conn = get(headers, "connection")
        if conn is not None and conn.lower() == "close":
            fail("request %d (%s): connection: close from the proxy" % (i, name))
    for s, _ in socks:
        s.close()
    print("loadgen: %d requests (%s mix, %d connections) all correct" % (total, mix_name, conns), flush=True)


def main(argv):
    if len(argv) >= 1 and argv[0] == "upstream":
        upstream()
        return
    if len(argv) >= 3 and argv[0] == "client":
        mix, conns = "standard", 4
        rest = argv[3:]
        while rest:
            if rest[0] == "--mix" and len(rest) > 1 and rest[1] in MIXES:
                mix, rest = rest[1], rest[2:]
            elif rest[0] == "--conns" and len(rest) > 1:
                conns, rest = int(rest[1]), rest[2:]
            else:
                fail("bad argument %r" % rest[0])
        client(int(argv[1]), int(argv[2]), mix, conns)
        return
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
