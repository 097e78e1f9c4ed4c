"""A gRPC server and client (grpcio, no generated code) for the proxy tests.

Server: `grpc_peer.py serve PORT TAG` serves service `spar.test.Echo` on 127.0.0.1:PORT:
  Unary      echo the request bytes, prefixed with TAG + ":"
  Stream     server streaming: the request is a count N, answers N messages
  Collect    client streaming: answers the number of messages and bytes received
  Chat       bidirectional: echoes each message as it arrives
  Fail       answers status NOT_FOUND with message "no such thing"
  Slow       sleeps the number of milliseconds in the request, then echoes
  Flaky      fails UNAVAILABLE on odd-numbered calls to it, succeeds on even ones
It prints "ready" when listening and stops on SIGTERM or stdin EOF.

Client: `grpc_peer.py call ADDR [CHECK...]` runs the checks (default: every call kind)
through ADDR and prints one JSON line per check with what was observed; it exits 0 only
when every check passed. Extra checks: `deadline` (the proxy caps grpc-timeout at 0.3 s),
`retry_on_unavailable` (the route retries UNAVAILABLE once).
"""
import json
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "spar.test.Echo"
ident = lambda b: b


def serve(port, tag):
    flaky = {"n": 0}
    lock = threading.Lock()

    def unary(req, ctx):
        return tag.encode() + b":" + req

    def stream(req, ctx):
        for i in range(int(req)):
            yield b"%s:%d" % (tag.encode(), i)

    def collect(it, ctx):
        n = size = 0
        for m in it:
            n += 1
            size += len(m)
        return b"%d %d" % (n, size)

    def chat(it, ctx):
        for m in it:
            yield tag.encode() + b":" + m

    def fail(req, ctx):
        ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    def slow(req, ctx):
        time.sleep(int(req) / 1000)
        return tag.encode() + b":slow"

    def flaky_call(req, ctx):
        with lock:
            flaky["n"] += 1
            n = flaky["n"]
        if n % 2 == 1:
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return tag.encode() + b":flaky%d" % n

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
        "Stream": grpc.unary_stream_rpc_method_handler(stream, ident, ident),
        "Collect": grpc.stream_unary_rpc_method_handler(collect, ident, ident),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, ident, ident),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, ident, ident),
        "Slow": grpc.unary_unary_rpc_method_handler(slow, ident, ident),
        "Flaky": grpc.unary_unary_rpc_method_handler(flaky_call, ident, ident),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    server.stop(0)


def call(addr):
    ch = grpc.insecure_channel(addr)
    m = lambda name: "/%s/%s" % (SERVICE, name)
    results = []

    def check(name, fn):
        try:
            got, ok = fn()
        except grpc.RpcError as e:
            got, ok = "%s %s" % (e.code().name, e.details()), False
        except Exception as e:  # noqa: BLE001
            got, ok = "error %r" % e, False
        results.append(ok)
        print(json.dumps({"check": name, "ok": ok, "got": str(got)}), flush=True)

    def unary():
        r = ch.unary_unary(m("Unary"), ident, ident)(b"hello", timeout=10)
        return r, r.endswith(b":hello")

    def server_stream():
        rs = list(ch.unary_stream(m("Stream"), ident, ident)(b"50", timeout=10))
        return len(rs), len(rs) == 50 and rs[-1].endswith(b":49")

    def client_stream():
        msgs = (b"x" * 1000 for _ in range(200))
        r = ch.stream_unary(m("Collect"), ident, ident)(msgs, timeout=10)
        return r, r == b"200 200000"

    def bidi():
        seen = []
        done = threading.Event()
        q = []
        cv = threading.Condition()

        def gen():
            # Each message waits for the previous answer: proves nothing is buffered whole.
            for i in range(20):
                with cv:
                    cv.wait_for(lambda: len(seen) >= i, timeout=5)
                yield b"m%d" % i

        for r in ch.stream_stream(m("Chat"), ident, ident)(gen(), timeout=10):
            with cv:
                seen.append(r)
                cv.notify_all()
        done.set()
        return len(seen), len(seen) == 20 and seen[-1].endswith(b":m19")

    def status():
        try:
            ch.unary_unary(m("Fail"), ident, ident)(b"", timeout=10)
        except grpc.RpcError as e:
            return "%s %s" % (e.code().name, e.details()), (
                e.code() == grpc.StatusCode.NOT_FOUND and e.details() == "no such thing"
            )
        return "no error", False

    def big():
        payload = b"y" * (3 * 1024 * 1024)
        r = ch.unary_unary(m("Unary"), ident, ident)(payload, timeout=20)
        return len(r), r.endswith(payload[-10:]) and len(r) > len(payload)

    def deadline():
        # The server takes 3 s; the proxy's cap on grpc-timeout (0.3 s in the test's
        # route) answers first, long before the client's own 5 s deadline.
        start = time.monotonic()
        try:
            ch.unary_unary(m("Slow"), ident, ident)(b"3000", timeout=5)
        except grpc.RpcError as e:
            took = time.monotonic() - start
            return "%s %s %.2fs" % (e.code().name, e.details(), took), (
                e.code() == grpc.StatusCode.UNAVAILABLE and took < 2.5
            )
        return "no error", False

    def retried():
        got = [ch.unary_unary(m("Flaky"), ident, ident)(b"", timeout=10) for _ in range(4)]
        return got, all(g.startswith(b"A:flaky") for g in got)

    which = sys.argv[3:] or ["unary", "server_streaming", "client_streaming",
                             "bidi_streaming", "status_and_message", "large_message"]
    checks = {
        "unary": unary, "server_streaming": server_stream, "client_streaming": client_stream,
        "bidi_streaming": bidi, "status_and_message": status, "large_message": big,
        "deadline": deadline, "retry_on_unavailable": retried,
    }
    for name in which:
        check(name, checks[name])
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        call(sys.argv[2])
