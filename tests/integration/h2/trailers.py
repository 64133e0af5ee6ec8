# Request trailers and response trailers over h2c: POST /trailers with a body and trailers
# (x-checksum); reports the response's status, body and trailers.
import h2util

port = h2util.arg("port", kind=int)
c = h2util.Conn(port)
sid, _ = c.request("POST", "/trailers", body=b"hello trailers", extra=[("content-type", "application/grpc"), ("te", "trailers")],
                   trailers=[("x-checksum", "abc123")])
c.wait(lambda: c.streams[sid].ended or c.streams[sid].reset is not None, 5)
out = c.streams[sid].summary()
out.update(c.summary())
h2util.result(out)
