# SETTINGS_MAX_CONCURRENT_STREAMS: --streams GETs opened at once, in the same write as the
# preface (before ferry's SETTINGS could be acknowledged). Reports each stream.
from hyperframe.frame import SettingsFrame

import h2util

port = h2util.arg("port", kind=int)
n = h2util.arg("streams", 6, int)
c = h2util.Conn(port, send_preface=False)
sids = []
frames = []
for i in range(n):
    sid = c.new_sid()
    sids.append(sid)
    frames.append(c.headers_frame(sid, c.request_fields("GET", "/s%d" % sid)))
c.send_raw(h2util.PREFACE + SettingsFrame(0).serialize() + b"".join(f.serialize() for f in frames))
c.wait(lambda: all(c.streams[x].ended or c.streams[x].reset is not None for x in sids), 8)
out = {"streams": {str(x): c.streams[x].summary() for x in sids},
       "max_concurrent_streams": c.peer_settings.get(3)}
out.update(c.summary())
h2util.result(out)
