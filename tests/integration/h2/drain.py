# Drain: GET --path (a slow response) on one h2c connection; prints "SENT", then the first
# GOAWAY as "GOAWAY <last_stream_id> <code>" as soon as it arrives (PINGs are acknowledged),
# waits for the response and for ferry to close the connection. Reports the stream and every
# GOAWAY.
import h2util

port = h2util.arg("port", kind=int)
c = h2util.Conn(port)
sid, _ = c.request("GET", h2util.arg("path", "/slow"))
c.wait(lambda: c.settings_seen > 0, 5)
h2util.say("SENT")
s = c.streams[sid]
c.wait(lambda: len(c.goaways) > 0 or c.closed, 20)
if c.goaways:
    h2util.say("GOAWAY %d %d" % tuple(c.goaways[0]))
c.wait(lambda: s.ended or s.reset is not None or c.closed, 20)
c.wait_closed(20)
out = {"stream": s.summary(), "pings_acked": c.pings_acked}
out.update(c.summary())
h2util.result(out)
