# Control-frame flood: a small receive buffer, then PING frames (--pings of them, in batches)
# without reading anything, so ferry's acknowledgements pile up behind a full socket. Then
# reads everything to the end. Reports the PINGs sent, acks received and the GOAWAYs.
import socket

from hyperframe.frame import PingFrame

import h2util

port = h2util.arg("port", kind=int)
total = h2util.arg("pings", 200000, int)
c = h2util.Conn(port, rcvbuf=4096)
c.sock.settimeout(5)
ping = PingFrame(0, opaque_data=b"floodpng").serialize()
batch = ping * 1000
sent = 0
while sent < total:
    if not c.send_raw(batch):
        break
    sent += 1000
c.sock.settimeout(5)
c.wait_closed(10)
out = {"sent": sent, "acks": c.pings_acked}
out.update(c.summary())
h2util.result(out)
