# RFC 7540 priority signals, which ferry announces it does not use
# (SETTINGS_NO_RFC7540_PRIORITIES = 1, RFC 9218 2.1): a PRIORITY frame for a stream not yet
# opened, a HEADERS frame carrying a priority (exclusive, on that stream), and a PRIORITY
# frame for a stream already closed. Reports ferry's setting and each stream.
from hyperframe.frame import PriorityFrame

import h2util

port = h2util.arg("port", kind=int)
c = h2util.Conn(port)
a, b = c.new_sid(), c.new_sid()
c.send(PriorityFrame(b, depends_on=a, stream_weight=200))
c.send(c.headers_frame(a, c.request_fields("GET", "/a")))
c.wait(lambda: c.streams[a].ended or c.streams[a].reset is not None, 5)
c.send(PriorityFrame(a, depends_on=0, stream_weight=16))  # a is closed now
hb = c.headers_frame(b, c.request_fields("GET", "/b"))
hb.flags.add("PRIORITY")
hb.depends_on, hb.stream_weight, hb.exclusive = a, 32, True
c.send(hb)
c.wait(lambda: c.streams[b].ended or c.streams[b].reset is not None, 5)
out = {"streams": {str(x): c.streams[x].summary() for x in (a, b)},
       "no_rfc7540_priorities": c.peer_settings.get(9)}
out.update(c.summary())
h2util.result(out)
