# Backpressure: GET --path for a body of --size bytes (byte i is i % 251) with the default
# 64 KiB windows, and no WINDOW_UPDATE: once a window's worth has arrived it prints
# "STALLED <bytes>" and stops reading until it gets SIGUSR1. Then it opens the windows, reads
# the rest and reports whether the body arrived whole and intact.
import signal

from hyperframe.frame import WindowUpdateFrame

import h2util

signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
port = h2util.arg("port", kind=int)
size = h2util.arg("size", kind=int)
c = h2util.Conn(port)
c.auto_window = False
sid, _ = c.request("GET", h2util.arg("path", "/big"))
s = c.streams[sid]
c.wait(lambda: len(s.data) >= 65535 or s.ended or s.reset is not None, 10)
h2util.say("STALLED %d" % len(s.data))
stalled_at = len(s.data)
signal.sigwait([signal.SIGUSR1])
# The socket was not read meanwhile; whatever ferry sent is still within the window.
c.wait(lambda: False, 0.2)
before_resume = len(s.data)
c.auto_window = True
c.send(WindowUpdateFrame(0, window_increment=32 << 20), WindowUpdateFrame(sid, window_increment=32 << 20))
c.wait(lambda: s.ended or s.reset is not None or c.closed, 60)
pattern = bytes(range(251))
expected = (pattern * (size // 251 + 1))[:size]
h2util.result({"status": s.status, "ended": s.ended, "reset": s.reset, "stalled_at": stalled_at,
               "before_resume": before_resume, "body_len": len(s.data),
               "intact": bytes(s.data) == expected, "goaways": [list(g) for g in c.goaways]})
