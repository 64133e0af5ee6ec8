#!/usr/bin/python3
# gRPC peer for Ferry's integration tests (Debian's python3-grpcio; run with /usr/bin/python3).
#
#   peer.py server            serves test.Echo and grpc.health.v1.Health on 127.0.0.1 (a free
#                             port) and prints "listening: listener=grpc address=127.0.0.1:PORT"
#   peer.py client PORT CASE  runs CASE against 127.0.0.1:PORT, prints one line per result,
#                             exits 0 when the client itself worked
#
# Messages are raw bytes (no generated code): the identity (de)serialisers.
import sys
import threading
import time
from concurrent import futures

import grpc

ident = lambda b: b
health = {"status": b"\x08\x01"}  # SERVING; test.Control/SetHealth changes it


def unary(req, ctx):
    return b"echo:" + req


def server_stream(req, ctx):
    for i in range(5):
        yield b"s%d" % i


def client_stream(it, ctx):
    return b"+".join(it)


def bidi(it, ctx):
    for m in it:
        yield b"b:" + m


def fail(req, ctx):
    ctx.abort(grpc.StatusCode.NOT_FOUND, "nope")


def slow(req, ctx):
    time.sleep(3)
    return b"late"


def check(req, ctx):
    return health["status"]


def set_health(req, ctx):
    health["status"] = b"\x08\x01" if req == b"SERVING" else b"\x08\x02"
    return b"ok"


def serve():
    s = grpc.server(futures.ThreadPoolExecutor(8))
    s.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("test.Echo", {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, ident, ident),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, ident, ident),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi, ident, ident),
            "Fail": grpc.unary_unary_rpc_method_handler(fail, ident, ident),
            "Slow": grpc.unary_unary_rpc_method_handler(slow, ident, ident),
        }),
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(check, ident, ident),
        }),
        grpc.method_handlers_generic_handler("test.Control", {
            "SetHealth": grpc.unary_unary_rpc_method_handler(set_health, ident, ident),
        }),
    ))
    port = s.add_insecure_port("127.0.0.1:0")
    s.start()
    print("listening: listener=grpc address=127.0.0.1:%d" % port, flush=True)
    s.wait_for_termination(120)  # bounded: the test kills it long before


def call(ch, kind, method, arg, timeout=5):
    try:
        if kind == "uu":
            r = ch.unary_unary(method)(arg, timeout=timeout)
        elif kind == "us":
            r = b",".join(ch.unary_stream(method)(arg, timeout=timeout))
        elif kind == "su":
            r = ch.stream_unary(method)(iter(arg), timeout=timeout)
        else:
            r = b",".join(ch.stream_stream(method)(iter(arg), timeout=timeout))
        return "OK " + r.decode()
    except grpc.RpcError as e:
        return "ERR %s %s" % (e.code().name, e.details())


def client(port, case):
    ch = grpc.insecure_channel("127.0.0.1:%s" % port)
    if case == "all":
        print("unary", call(ch, "uu", "/test.Echo/Unary", b"hi"))
        print("server_stream", call(ch, "us", "/test.Echo/ServerStream", b"x"))
        print("client_stream", call(ch, "su", "/test.Echo/ClientStream", [b"a", b"b", b"c"]))
        print("bidi", call(ch, "ss", "/test.Echo/Bidi", [b"1", b"2", b"3"]))
        print("fail", call(ch, "uu", "/test.Echo/Fail", b"x"))
    elif case == "errors":
        print("unrouted", call(ch, "uu", "/other.Svc/X", b"x"))
        print("down", call(ch, "uu", "/test.Echo/Unary", b"x"))
    elif case in ("health_ok", "health_bad"):
        print("set", call(ch, "uu", "/test.Control/SetHealth", b"SERVING" if case == "health_ok" else b"NOT_SERVING"))
    elif case.startswith("unary_n="):
        n = int(case.split("=")[1])
        u = ch.unary_unary("/test.Echo/Unary")
        t0 = time.monotonic()
        ok = 0
        for i in range(n):
            if u(b"x", timeout=5) == b"echo:x":
                ok += 1
        dt = time.monotonic() - t0
        print("unary_n ok=%d seconds=%.3f rps=%.0f" % (ok, dt, n / dt))
    else:
        print("unknown case", case)
        return 2
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve()
    else:
        sys.exit(client(sys.argv[2], sys.argv[3]))
