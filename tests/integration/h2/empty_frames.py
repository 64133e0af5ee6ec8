# Empty-frame flood: a POST whose body is --frames DATA frames without payload nor END_STREAM.
from hyperframe.frame import DataFrame

import h2util

port = h2util.arg("port", kind=int)
n = h2util.arg("frames", 100, int)
c = h2util.Conn(port)
sid = c.new_sid()
first = c.headers_frame(sid, c.request_fields("POST", "/empty", extra=[("content-type", "text/plain")]), end_stream=False)
c.send(first, *[DataFrame(sid, data=b"") for _ in range(n)])
c.wait_closed(5)
out = c.summary()
out["stream"] = c.streams[sid].summary()
h2util.result(out)
