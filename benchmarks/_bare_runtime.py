"""The ceiling of ``asya bench runtime``: a bare standard-library Unix-socket server.

Run as ``python benchmarks/_bare_runtime.py SOCKET_PATH``. Per connection it does what the
runtime must do at minimum for a no-op payload-mode handler -- read one length-prefixed frame,
parse the JSON, answer ``[message with its payload]`` as one frame -- and nothing else (no
validation, no supervisor, no timeouts, no error handling).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

HEADER = struct.Struct(">I")


def read_exactly(conn: socket.socket, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = conn.recv(size - len(buffer))
        if not chunk:
            raise ConnectionError("client went away")
        buffer += chunk
    return bytes(buffer)


def serve(path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4096)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            conn, _ = listener.accept()
            with conn:
                try:
                    (length,) = HEADER.unpack(read_exactly(conn, HEADER.size))
                    message = json.loads(read_exactly(conn, length))
                except (ConnectionError, ValueError):
                    continue
                body = json.dumps([{**message, "payload": message["payload"]}]).encode()
                conn.sendall(HEADER.pack(len(body)) + body)
    finally:
        listener.close()
        os.unlink(path)


if __name__ == "__main__":
    serve(sys.argv[1])
