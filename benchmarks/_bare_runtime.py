"""The ceiling of ``asya bench runtime``: a bare standard-library Unix-socket server.

Run as ``python benchmarks/_bare_runtime.py SOCKET_PATH``. For every request it does what the
runtime must do at minimum for a no-op payload-mode handler -- read one length-prefixed frame,
parse the JSON, answer ``[message with its payload]`` as one frame -- and nothing else (no
validation, no supervisor, no timeouts, no error handling). A connection may carry one request
(the original sidecar's way) or many, one after another or pipelined (a kept connection, as
the sidecar's runtime client does); connections are served one request at a time, in the
order their data arrives, by one thread. ``asya bench relay`` uses it as the far end of the
"relay + socket call" floor (``_bare_pyamqp_relay.py``).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import struct
import sys

HEADER = struct.Struct(">I")


def answer(body: bytes) -> bytes:
    message = json.loads(body)
    response = json.dumps([{**message, "payload": message["payload"]}]).encode()
    return HEADER.pack(len(response)) + response


def serve(path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4096)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    buffers: dict[socket.socket, bytes] = {}
    try:
        while True:
            for key, _ in selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is listener:
                    conn, _ = listener.accept()
                    buffers[conn] = b""
                    selector.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                data = buffers[sock] + chunk
                replies = []
                while len(data) >= HEADER.size:
                    (length,) = HEADER.unpack_from(data)
                    end = HEADER.size + length
                    if len(data) < end:
                        break
                    try:
                        replies.append(answer(data[HEADER.size : end]))
                    except ValueError:
                        chunk = b""  # a broken request: drop the client
                        break
                    data = data[end:]
                if replies:
                    try:
                        sock.sendall(b"".join(replies))
                    except OSError:
                        chunk = b""
                if chunk:
                    buffers[sock] = data
                else:  # the client went away (or sent garbage)
                    selector.unregister(sock)
                    del buffers[sock]
                    sock.close()
    finally:
        listener.close()
        os.unlink(path)


if __name__ == "__main__":
    serve(sys.argv[1])
