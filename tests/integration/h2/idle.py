# Idle timeout: an h2c connection that opens no stream (or, with --stream, one GET first, then
# a PING that is not a stream), then keeps quiet; waits up to --wait seconds for ferry to close
# it (PINGs are acknowledged). Prints "READY" once ferry's SETTINGS arrived. Reports the
# GOAWAYs, whether it was closed and after how long.
import time

from hyperframe.frame import PingFrame

import h2util

port = h2util.arg("port", kind=int)
c = h2util.Conn(port)
c.wait(lambda: c.settings_seen > 0, 5)
h2util.say("READY")
status = None
if "--stream" in __import__("sys").argv:
    sid, _ = c.request("GET", "/before-idle")
    c.wait(lambda: c.streams[sid].ended or c.streams[sid].reset is not None, 5)
    status = c.streams[sid].status
    c.send(PingFrame(0, opaque_data=b"notastrm"))
    c.wait(lambda: c.pings_acked > 0, 5)
start = time.monotonic()
c.wait_closed(h2util.arg("wait", 5.0, float))
out = {"status": status, "closed_after": round(time.monotonic() - start, 3)}
out.update(c.summary())
h2util.result(out)
