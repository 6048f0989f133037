"""Real servers for the crew's unit tests: a scripted HTTP gateway and moto's S3 server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.helpers import free_port


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGateway:
    """Answers ``POST`` with the next scripted status (200 once the script runs out)."""

    url: str
    statuses: list[int] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    port = free_port()
    state = FakeGateway(url=f"http://127.0.0.1:{port}")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with lock:
                state.requests.append(
                    Recorded(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw)
                    )
                )
                status = state.statuses.pop(0) if state.statuses else 200
            reply = b'{"status": "ok"}' if status < 400 else b'{"error": "scripted"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class S3Server:
    endpoint: str
    bucket: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_server: str, unique_name: str) -> S3Server:
    """A bucket name of this test's own on moto's S3 server (created by the crew on first use)."""
    return S3Server(endpoint=moto_server, bucket=unique_name.lower())
