# Drain: GET --path (a slow response) on one h2c connection; prints "SENT", then the first
# GOAWAY as "GOAWAY <last_stream_id> <code>" as soon as it arrives, waits for the response and
# for ferry to close the connection. PINGs are acknowledged at once, except with --late: then
# the drain PING is held, a second GET (--late-path) goes out on a new stream first, and the
# PING is acknowledged after it (the window the two-step GOAWAY leaves for streams in flight).
# Reports the streams and every GOAWAY.
from hyperframe.frame import PingFrame

import h2util

port = h2util.arg("port", kind=int)
late = "--late" in __import__("sys").argv
c = h2util.Conn(port)
sid, _ = c.request("GET", h2util.arg("path", "/slow"))
c.wait(lambda: c.settings_seen > 0, 5)
if late:
    c.auto_ack = False
h2util.say("SENT")
s = c.streams[sid]
c.wait(lambda: len(c.goaways) > 0 or c.closed, 20)
if c.goaways:
    h2util.say("GOAWAY %d %d" % tuple(c.goaways[0]))
late_sid = None
if late:
    c.wait(lambda: len(c.pings) > 0 or c.closed, 5)
    late_sid, _ = c.request("GET", h2util.arg("late-path", "/late"))
    for p in c.pings:
        c.send(PingFrame(0, opaque_data=p, flags=["ACK"]))
    c.auto_ack = True
c.wait(lambda: (s.ended or s.reset is not None) and (late_sid is None or c.streams[late_sid].ended or
                                                     c.streams[late_sid].reset is not None) or c.closed, 20)
c.wait_closed(20)
out = {"stream": s.summary(), "late": c.streams[late_sid].summary() if late_sid else None,
       "pings_acked": c.pings_acked}
out.update(c.summary())
h2util.result(out)
