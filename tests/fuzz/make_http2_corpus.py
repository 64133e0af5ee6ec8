#!/usr/bin/python3
# Writes the seed corpus of tests/fuzz/http2_fuzz.cc into tests/fuzz/corpus/http2 (run with
# Debian's /usr/bin/python3: hyperframe and hpack come with python3-h2). Each file: byte 0 =
# mode (0x80 small limits, 0x20 drain, 0x10 answer at the headers, low bits = answer kind),
# byte 1 = feed chunk size, then client frames (the target adds the preface).
import os
import sys

from hpack import Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame,
                              PingFrame, PriorityFrame, RstStreamFrame, SettingsFrame,
                              WindowUpdateFrame)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "http2")
os.makedirs(out, exist_ok=True)


def req(enc, sid, method="GET", path="/", extra=(), end=True):
    h = [(":method", method), (":scheme", "http"), (":path", path), (":authority", "a.test")] + list(extra)
    f = HeadersFrame(sid, enc.encode(h))
    f.flags.add("END_HEADERS")
    if end:
        f.flags.add("END_STREAM")
    return f.serialize()


def data(sid, payload, end=False):
    f = DataFrame(sid, payload)
    if end:
        f.flags.add("END_STREAM")
    return f.serialize()


def settings():
    return SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535}).serialize()


def write(name, mode, chunk, body):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([mode, chunk]) + body)


e = Encoder()
write("get", 0x00, 63, settings() + req(e, 1))
e = Encoder()
write("get_bytewise_small", 0x81, 0, settings() + req(e, 1) + req(e, 3))
e = Encoder()
write("post_body", 0x01, 17, settings() + req(e, 1, "POST", "/up", [("content-length", "10")], end=False)
      + data(1, b"0123456789", end=True))
e = Encoder()
trailer = HeadersFrame(1, e.encode([("grpc-status", "0")]))
trailer.flags.add("END_HEADERS")
trailer.flags.add("END_STREAM")
write("trailers", 0x02, 40, settings() + req(Encoder(), 1, "POST", "/g", [("content-type", "application/grpc"), ("te", "trailers")], end=False)
      + data(1, b"\0\0\0\0\0") + trailer.serialize())
e = Encoder()
write("early_answer", 0x11, 33, settings() + req(e, 1, "POST", "/x", end=False) + data(1, b"a" * 100)
      + data(1, b"b" * 100, end=True))
e = Encoder()
body = settings()
for sid in range(1, 40, 2):
    body += req(e, sid, end=False) + RstStreamFrame(sid, error_code=8).serialize()
write("rapid_reset", 0x80, 60, body)
e = Encoder()
h = HeadersFrame(1, e.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")]))
body = settings() + h.serialize()
for i in range(6):
    body += ContinuationFrame(1, e.encode([("x-a%d" % i, "v" * 30)])).serialize()
write("continuation_flood", 0x80, 50, body)
e = Encoder()
write("big_headers", 0x80, 64, settings() + req(e, 1, extra=[("x-h%d" % i, "v" * 40) for i in range(20)]) + req(e, 3))
body = settings()
for i in range(20):
    body += PingFrame(0, opaque_data=b"%08d" % i).serialize()
write("ping_flood", 0x80, 64, body)
body = b""
for i in range(10):
    body += settings()
write("settings_flood", 0x80, 64, body)
e = Encoder()
body = settings() + req(e, 1, "POST", "/e", end=False)
for i in range(5):
    body += data(1, b"")
write("empty_frames", 0x00, 64, body)
e = Encoder()
write("window_and_priority", 0x03, 64, settings() + WindowUpdateFrame(0, window_increment=1000).serialize()
      + PriorityFrame(1, depends_on=0, stream_weight=16).serialize() + req(e, 1)
      + WindowUpdateFrame(1, window_increment=10).serialize())
e = Encoder()
write("drain", 0x21, 64, settings() + req(e, 1) + req(e, 3, end=False) + GoAwayFrame(0, last_stream_id=0).serialize())
e = Encoder()
write("uppercase_header", 0x00, 64, settings() + req(e, 1, extra=[("X-Upper", "v")]))
e = Encoder()
write("connection_header", 0x00, 64, settings() + req(e, 1, extra=[("connection", "close")]))
e = Encoder()
write("cookies_host", 0x00, 64, settings() + req(e, 1, extra=[("cookie", "a=1"), ("cookie", "b=2"), ("host", "h")]))
write("garbage", 0x00, 7, b"\x00\x00\x05\x09\x00\x00\x00\x00\x01hello" + b"\xff" * 20)
print("wrote", len(os.listdir(out)), "files to", out)
