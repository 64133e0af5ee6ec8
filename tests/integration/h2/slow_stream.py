# A slow client on one stream, to meet ferry's stream timeouts.
#   --mode trickle: POST --path with content-length 100, then one DATA byte every 0.3 s until
#                   the stream gets a response or a reset (at most 10 s).
#   --mode stall:   GET --path and never give back any window: the response stops once the
#                   initial window is used up. Waits (at most 10 s) for the stream's end.
# Then checks the connection still works (a PING is acknowledged) and reports the stream.
import time

from hyperframe.frame import DataFrame, PingFrame

import h2util

port = h2util.arg("port", kind=int)
mode = h2util.arg("mode")
path = h2util.arg("path", "/slow")
c = h2util.Conn(port)
c.wait(lambda: c.settings_seen > 0, 5)
start = time.monotonic()
if mode == "trickle":
    sid = c.new_sid()
    c.send(c.headers_frame(sid, c.request_fields("POST", path, extra=[("content-length", "100")]),
                           end_stream=False))
    s = c.streams[sid]
    sent = 0
    while sent < 100 and time.monotonic() - start < 10:
        if c.wait(lambda: s.status is not None or s.reset is not None or c.closed, 0.3):
            break
        c.send(DataFrame(sid, data=b"x"))
        sent += 1
    c.wait(lambda: s.ended or s.reset is not None or c.closed, 5)
else:
    c.auto_window = False
    sid, _ = c.request("GET", path)
    s = c.streams[sid]
    c.wait(lambda: s.ended or s.reset is not None or c.closed, 10)
elapsed = time.monotonic() - start
acks = c.pings_acked
c.send(PingFrame(0, opaque_data=b"12345678"))
alive = c.wait(lambda: c.pings_acked > acks, 5)
h2util.result({"status": s.status, "flags": s.header("x-ferry-flags"), "reset": s.reset, "ended": s.ended,
               "elapsed": elapsed, "body_len": len(s.data), "connection_alive": alive})
