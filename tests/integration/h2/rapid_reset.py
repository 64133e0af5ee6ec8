# Rapid reset (CVE-2023-44487): opens streams and cancels each at once (HEADERS + RST_STREAM
# CANCEL), `--streams` of them in batches of 50, until ferry closes the connection; then reads
# to the end (or, with --then-get, sends one more GET on the same connection and reads its
# response instead). Reports how many were sent, the GOAWAYs and the GET.
import sys

from hyperframe.frame import RstStreamFrame

import h2util

port = h2util.arg("port", kind=int)
total = h2util.arg("streams", 1000, int)
c = h2util.Conn(port)
c.wait(lambda: c.settings_seen > 0, 5)
sent = 0
while sent < total:
    frames = []
    for _ in range(min(50, total - sent)):
        sid = c.new_sid()
        frames.append(c.headers_frame(sid, c.request_fields("GET", "/r%d" % sid)))
        frames.append(RstStreamFrame(sid, error_code=8))
    if not c.send(*frames):
        break
    sent += len(frames) // 2
out = {"sent": sent, "get": None}
if "--then-get" in sys.argv:
    sid, _ = c.request("GET", "/after-resets")
    c.wait(lambda: c.streams[sid].ended or c.streams[sid].reset is not None or c.closed, 5)
    out["get"] = c.streams[sid].summary()
else:
    c.wait_closed(5)
out.update(c.summary())
h2util.result(out)
