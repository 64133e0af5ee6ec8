# Upload backpressure: POST --path with a body of --size bytes (byte i is i % 251) and a
# content-length, sent as fast as ferry's flow-control windows allow. When the windows are
# exhausted and no WINDOW_UPDATE came for 1 s it prints "BLOCKED <bytes sent>" (once), and goes
# on waiting for windows (up to 30 s each). Reports the bytes sent, the response and when it
# was blocked.
import time

from hyperframe.frame import DataFrame

import h2util

port = h2util.arg("port", kind=int)
size = h2util.arg("size", kind=int)
c = h2util.Conn(port)
c.wait(lambda: c.settings_seen > 0 and c.window_updates > 0, 5)  # ferry's SETTINGS and its connection window
sid = c.new_sid()
c.send(c.headers_frame(sid, c.request_fields("POST", h2util.arg("path", "/up"),
                                             extra=[("content-length", str(size))]), end_stream=False))
initial = c.peer_settings.get(4, 65535)
max_frame = c.peer_settings.get(5, 16384)
body = (bytes(range(251)) * (size // 251 + 1))[:size]
sent = 0
blocked_at = None
s = c.streams[sid]
while sent < size and not c.closed and s.reset is None and not s.ended:
    window = min(c.conn_window, initial + c.stream_window.get(sid, 0) - sent)
    if window <= 0:
        seen = c.window_updates
        if not c.wait(lambda: c.window_updates > seen or c.closed or s.reset is not None, 1.0) and blocked_at is None:
            blocked_at = sent
            h2util.say("BLOCKED %d" % sent)
        if blocked_at is not None:
            c.wait(lambda: c.window_updates > seen or c.closed or s.reset is not None, 30)
        continue
    n = min(window, max_frame, size - sent)
    d = DataFrame(sid, data=body[sent:sent + n])
    if sent + n == size:
        d.flags.add("END_STREAM")
    if not c.send(d):
        break
    sent += n
    c.conn_window -= n
    c.wait(lambda: False, 0)  # handle what already arrived (WINDOW_UPDATEs), without waiting
c.wait(lambda: s.ended or s.reset is not None or c.closed, 30)
out = {"sent": sent, "blocked_at": blocked_at, "stream": s.summary()}
out.update(c.summary())
h2util.result(out)
