# Control-frame flood: a small receive buffer, then PING (or, with --frame settings, empty
# SETTINGS) frames in batches of --batch, up to --count of them, without reading anything, so
# ferry's acknowledgements pile up behind a full socket. Sending stops when a write fails
# (ferry closed the connection) or blocks for 5 s (ferry stopped reading). With --hold it then
# prints "SENT <frames>" and still reads nothing until SIGUSR1. Then it reads everything to the
# end. Reports the frames sent, the PING acks received and the GOAWAYs.
import signal

from hyperframe.frame import PingFrame, SettingsFrame

import h2util

signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
port = h2util.arg("port", kind=int)
total = h2util.arg("count", 1000000, int)
batch_n = h2util.arg("batch", 100, int)
kind = h2util.arg("frame", "ping")
c = h2util.Conn(port, rcvbuf=4096)
one = (PingFrame(0, opaque_data=b"floodpng") if kind == "ping" else SettingsFrame(0)).serialize()
batch = one * batch_n
sent = 0
while sent < total:
    if not c.send_raw(batch):
        break
    sent += batch_n
if "--hold" in __import__("sys").argv:
    h2util.say("SENT %d" % sent)
    signal.sigwait([signal.SIGUSR1])
c.wait_closed(10)
out = {"sent": sent, "sent_bytes": sent * len(one), "acks": c.pings_acked}
out.update(c.summary())
h2util.result(out)
