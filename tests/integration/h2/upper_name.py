# HTTP/2 field names must be lower-case (RFC 9113, 8.2.1): on one h2c connection, a request
# with an upper-case field name, then a POST whose trailer name is upper-case, then a plain
# GET. Reports each stream's summary and the connection's.
import h2util

port = h2util.arg("port", kind=int)
c = h2util.Conn(port)
upper, _ = c.request("GET", "/upper", extra=[("x-Upper", "1")])
c.wait(lambda: c.streams[upper].ended or c.streams[upper].reset is not None, 5)
trailer, _ = c.request("POST", "/trailer", body=b"abc", trailers=[("X-Checksum", "abc")])
c.wait(lambda: c.streams[trailer].ended or c.streams[trailer].reset is not None, 5)
ok, _ = c.request("GET", "/ok", extra=[("x-lower", "1")])
c.wait(lambda: c.streams[ok].ended or c.streams[ok].reset is not None, 5)
out = {"upper": c.streams[upper].summary(False), "trailer": c.streams[trailer].summary(False),
       "ok": c.streams[ok].summary(False)}
out.update(c.summary())
h2util.result(out)
