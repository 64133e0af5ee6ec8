# A raw HTTP/2 client for ferry's integration tests (tests/integration/http2_test.cc), on
# hyperframe (framing) and hpack (header compression), both shipped with python3-h2. Raw frames
# rather than h2.H2Connection so that a script can misbehave on purpose (floods, resets, not
# acknowledging SETTINGS, not reading) and see every frame ferry sends (GOAWAY ids, RST codes).
#
# Every wait has a deadline; nothing sleeps. Scripts report one line "RESULT <json>" on stdout
# (what the C++ test asserts on) and exit 0 unless they could not run at all.
import json
import select
import socket
import sys
import time

from hpack import Decoder, Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               5: "STREAM_CLOSED", 7: "REFUSED_STREAM", 8: "CANCEL", 11: "ENHANCE_YOUR_CALM"}


def result(obj):
    print("RESULT " + json.dumps(obj), flush=True)


def say(line):
    print(line, flush=True)


class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.status = None
        self.headers = []      # the final response's fields (decoded str pairs)
        self.interim = []      # 1xx statuses
        self.data = bytearray()
        self.trailers = []
        self.ended = False
        self.reset = None      # RST_STREAM error code

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def summary(self, with_body=True):
        out = {"status": self.status, "ended": self.ended, "reset": self.reset,
               "body_len": len(self.data), "headers": dict(self.headers),
               "trailers": dict(self.trailers)}
        if with_body:
            out["body"] = self.data.decode("latin-1")
        return out


class Conn:
    """One HTTP/2 connection to 127.0.0.1:port with prior knowledge (h2c)."""

    def __init__(self, port, settings=None, rcvbuf=0, send_preface=True, timeout=5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf > 0:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.enc = Encoder()
        self.dec = Decoder()
        self.buf = bytearray()
        self.streams = {}
        self.goaways = []          # (last_stream_id, error_code) in arrival order
        self.pings_acked = 0       # PING acks received
        self.pings = []            # opaque data of the PINGs received (not acks)
        self.settings_seen = 0     # non-ACK SETTINGS received
        self.peer_settings = {}
        self.closed = False        # EOF or reset read from ferry
        self.write_failed = False  # a write failed (EPIPE, ECONNRESET)
        self.send_blocked = False  # a write timed out
        self.reset_by_peer = False
        self.auto_ack = True       # acknowledge SETTINGS and answer PINGs
        self.auto_window = True    # give back the window of every DATA frame at once
        self.frames_in = 0
        # Send-side flow control (what ferry allows us to send): the connection window and
        # each stream's increments beyond SETTINGS_INITIAL_WINDOW_SIZE (peer_settings[4]).
        self.conn_window = 65535
        self.stream_window = {}
        self.window_updates = 0
        self._hdr_sid = None       # a header block being continued
        self._hdr_frag = b""
        self._hdr_end_stream = False
        self.next_sid = 1
        if send_preface:
            self.send_raw(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())

    # ---- sending
    def send_raw(self, data):
        """False if the write failed (ferry closed or reset the connection: write_failed) or
        did not complete within the socket timeout (ferry stopped reading: send_blocked).
        Reading goes on either way: what ferry sent before closing is still to be read."""
        try:
            self.sock.sendall(data)
            return True
        except socket.timeout:
            self.send_blocked = True
            return False
        except OSError:
            self.write_failed = True
            return False

    def send(self, *frames):
        return self.send_raw(b"".join(f.serialize() for f in frames))

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        self.streams[sid] = Stream(sid)
        return sid

    def headers_frame(self, sid, fields, end_stream=True, end_headers=True):
        f = HeadersFrame(sid)
        f.data = self.enc.encode(fields)
        if end_headers:
            f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        return f

    def request_fields(self, method="GET", path="/", authority="h2.test", extra=()):
        return [(":method", method), (":scheme", "http"), (":authority", authority),
                (":path", path)] + list(extra)

    def request(self, method="GET", path="/", body=None, extra=(), trailers=None):
        """Opens a stream and sends it; returns (sid, frames). Bodies go in 16 KiB DATA frames
        (the caller must stay within the default 64 KiB window). Frames made with the encoder
        must be sent, in order: HPACK state is shared with ferry."""
        sid = self.new_sid()
        frames = [self.headers_frame(sid, self.request_fields(method, path, extra=extra),
                                     end_stream=body is None and trailers is None)]
        if body is not None:
            chunks = [body[i:i + 16384] for i in range(0, len(body), 16384)] or [b""]
            for i, c in enumerate(chunks):
                d = DataFrame(sid, data=c)
                if i == len(chunks) - 1 and trailers is None:
                    d.flags.add("END_STREAM")
                frames.append(d)
        if trailers is not None:
            frames.append(self.headers_frame(sid, trailers, end_stream=True))
        self.send(*frames)
        return sid, frames

    # ---- receiving
    def _read_once(self, deadline):
        """Reads once into buf; False on timeout or close."""
        if self.closed:
            return False
        left = max(0.0, deadline - time.monotonic())  # 0: only what is there already
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return False
        try:
            chunk = self.sock.recv(262144)
        except (ConnectionResetError, OSError):
            self.closed = True
            self.reset_by_peer = True
            return False
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def _next_frame(self):
        if len(self.buf) < 9:
            return None
        length = int.from_bytes(self.buf[0:3], "big")
        if len(self.buf) < 9 + length:
            return None
        frame, _ = Frame.parse_frame_header(memoryview(bytes(self.buf[0:9])))
        frame.parse_body(memoryview(bytes(self.buf[9:9 + length])))
        del self.buf[0:9 + length]
        return frame

    def _stream(self, sid):
        if sid not in self.streams:
            self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def _header_block(self, sid, block, end_stream):
        fields = [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                  for k, v in self.dec.decode(block)]
        s = self._stream(sid)
        status = next((v for k, v in fields if k == ":status"), None)
        if status is not None and 100 <= int(status) < 200:
            s.interim.append(int(status))
        elif status is not None:
            s.status = int(status)
            s.headers = [(k, v) for k, v in fields if not k.startswith(":")]
        else:
            s.trailers = fields
        if end_stream:
            s.ended = True

    def handle(self, f):
        self.frames_in += 1
        if isinstance(f, SettingsFrame):
            if "ACK" not in f.flags:
                self.settings_seen += 1
                self.peer_settings.update(f.settings)
                if self.auto_ack:
                    self.send(SettingsFrame(0, flags=["ACK"]))
        elif isinstance(f, PingFrame):
            if "ACK" in f.flags:
                self.pings_acked += 1
                return f
            self.pings.append(f.opaque_data)
            if self.auto_ack:
                self.send(PingFrame(0, opaque_data=f.opaque_data, flags=["ACK"]))
        elif isinstance(f, WindowUpdateFrame):
            self.window_updates += 1
            if f.stream_id == 0:
                self.conn_window += f.window_increment
            else:
                self.stream_window[f.stream_id] = self.stream_window.get(f.stream_id, 0) + f.window_increment
        elif isinstance(f, GoAwayFrame):
            self.goaways.append((f.last_stream_id, f.error_code))
        elif isinstance(f, RstStreamFrame):
            self._stream(f.stream_id).reset = f.error_code
        elif isinstance(f, HeadersFrame):
            end_stream = "END_STREAM" in f.flags
            if "END_HEADERS" in f.flags:
                self._header_block(f.stream_id, f.data, end_stream)
            else:
                self._hdr_sid, self._hdr_frag, self._hdr_end_stream = f.stream_id, f.data, end_stream
        elif isinstance(f, ContinuationFrame):
            self._hdr_frag += f.data
            if "END_HEADERS" in f.flags:
                self._header_block(self._hdr_sid, self._hdr_frag, self._hdr_end_stream)
                self._hdr_sid = None
        elif isinstance(f, DataFrame):
            s = self._stream(f.stream_id)
            s.data += f.data
            if "END_STREAM" in f.flags:
                s.ended = True
            n = f.flow_controlled_length
            if self.auto_window and n > 0:
                ups = [WindowUpdateFrame(0, window_increment=n)]
                if not s.ended:
                    ups.append(WindowUpdateFrame(f.stream_id, window_increment=n))
                self.send(*ups)
        return f

    def pump(self, deadline):
        """Handles every complete frame that arrives before the deadline; returns when at
        least one was handled (True) or on timeout/close (False)."""
        handled = False
        while True:
            f = self._next_frame()
            if f is not None:
                self.handle(f)
                handled = True
                continue
            if handled:
                return True
            if not self._read_once(deadline):
                return False

    def wait(self, pred, timeout=5.0):
        """Pumps until pred() holds (True) or the deadline/close (pred() then)."""
        deadline = time.monotonic() + timeout
        while not pred():
            if not self.pump(deadline):
                # Frames that are already buffered still count.
                while True:
                    f = self._next_frame()
                    if f is None:
                        break
                    self.handle(f)
                return pred()
        return True

    def wait_closed(self, timeout=5.0):
        return self.wait(lambda: self.closed, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def summary(self):
        return {"goaways": [list(g) for g in self.goaways], "closed": self.closed,
                "reset_by_peer": self.reset_by_peer, "write_failed": self.write_failed,
                "send_blocked": self.send_blocked}


def simple_get(port, path="/", timeout=5.0):
    """One GET on a new connection: the stream's summary (status None if it failed)."""
    try:
        c = Conn(port)
        sid, _ = c.request("GET", path)
        c.wait(lambda: c.streams[sid].ended or c.streams[sid].reset is not None, timeout)
        out = c.streams[sid].summary()
        c.close()
        return out
    except OSError as e:
        return {"status": None, "error": str(e)}


def arg(name, default=None, kind=str):
    """--name value from argv."""
    flag = "--" + name
    if flag in sys.argv:
        return kind(sys.argv[sys.argv.index(flag) + 1])
    return default
