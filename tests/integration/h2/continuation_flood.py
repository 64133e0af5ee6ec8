# CONTINUATION flood: a HEADERS frame without END_HEADERS, then CONTINUATION frames (each one
# header field of --field bytes, none with END_HEADERS) until --frames were sent or ferry closes
# the connection; on --connections connections one after the other. Reports, per connection,
# the frames sent and the GOAWAYs.
from hyperframe.frame import ContinuationFrame

import h2util

port = h2util.arg("port", kind=int)
frames_max = h2util.arg("frames", 1000, int)
field = h2util.arg("field", 1000, int)
conns = h2util.arg("connections", 1, int)
results = []
for n in range(conns):
    c = h2util.Conn(port)
    sid = c.new_sid()
    first = c.headers_frame(sid, c.request_fields("GET", "/cont"), end_stream=True, end_headers=False)
    sent = 0
    ok = c.send(first)
    while ok and sent < frames_max:
        batch = []
        for i in range(20):
            f = ContinuationFrame(sid)
            # Literal without indexing: the decoder's table does not grow; the field list does.
            f.data = c.enc.encode([("x-pad-%d" % (sent + i), "v" * field)], huffman=False)
            batch.append(f)
        ok = c.send(*batch)
        if ok:
            sent += len(batch)
    c.wait_closed(5)
    r = {"sent": sent}
    r.update(c.summary())
    results.append(r)
    c.close()
h2util.result({"connections": results})
