# A header list over the listener's limits on stream 1 (one field of --size bytes, or with
# --fields N, N small fields), then a normal request on stream 3 of the same connection.
# Reports both streams.
import h2util

port = h2util.arg("port", kind=int)
size = h2util.arg("size", 4096, int)
fields = h2util.arg("fields", 0, int)
extra = [("x-f%d" % i, "v") for i in range(fields)] if fields else [("x-big", "b" * size)]
c = h2util.Conn(port)
big, _ = c.request("GET", "/big-headers", extra=extra)
c.wait(lambda: c.streams[big].ended or c.streams[big].reset is not None, 5)
small, _ = c.request("GET", "/after")
c.wait(lambda: c.streams[small].ended or c.streams[small].reset is not None, 5)
out = {"big": c.streams[big].summary(), "small": c.streams[small].summary()}
out.update(c.summary())
h2util.result(out)
