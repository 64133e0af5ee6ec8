# One GET on a new h2c connection (--path); reports the stream.
import h2util

port = h2util.arg("port", kind=int)
h2util.result(h2util.simple_get(port, h2util.arg("path", "/")))
