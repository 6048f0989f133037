"""Send one framed request to a runtime socket and print the answer (standard library only).

Usage: python client.py SOCKET_PATH TEXT
"""

from __future__ import annotations

import json
import socket
import struct
import sys

HEADER = struct.Struct(">I")  # each frame: 4-byte big-endian length, then UTF-8 JSON


def call(path: str, message: dict[str, object]) -> list[dict[str, object]]:
    body = json.dumps(message).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(HEADER.pack(len(body)) + body)
        (length,) = HEADER.unpack(sock.recv(HEADER.size, socket.MSG_WAITALL))
        return json.loads(sock.recv(length, socket.MSG_WAITALL))  # type: ignore[no-any-return]


def main() -> int:
    path, text = sys.argv[1], sys.argv[2]
    message = {
        "job_id": "demo-job-1",
        "route": {"steps": ["text-stats", "publish"], "current": 0, "metadata": {}},
        "payload": {"text": text},
    }
    print("request :", json.dumps(message))
    response = call(path, message)
    print("response:", json.dumps(response, indent=2))
    if len(response) != 1 or "error" in response[0]:
        print("demo: the runtime answered with an error", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
