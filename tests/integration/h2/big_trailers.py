# Request trailers over the header-list limit: POST /big-trailers with a body and one trailer
# field of --size bytes, then a normal GET on a second stream of the same connection. Reports
# both streams.
import h2util

port = h2util.arg("port", kind=int)
size = h2util.arg("size", 4096, int)
c = h2util.Conn(port)
big, _ = c.request("POST", "/big-trailers", body=b"some body", trailers=[("x-trailer", "t" * size)])
c.wait(lambda: c.streams[big].ended or c.streams[big].reset is not None, 5)
small, _ = c.request("GET", "/after")
c.wait(lambda: c.streams[small].ended or c.streams[small].reset is not None, 5)
out = {"big": c.streams[big].summary(), "small": c.streams[small].summary()}
out.update(c.summary())
h2util.result(out)
