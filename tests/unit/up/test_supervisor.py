"""Restart backoff, log prefixes and the status file helpers."""

from __future__ import annotations

import io
from pathlib import Path

from asya.up.mesh import Mesh
from asya.up.model import MeshConfig
from asya.up.status import read_status, write_status
from asya.up.supervisor import LogSink, RestartBackoff


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = RestartBackoff(first=0.5, cap=4.0, healthy_after=10.0)

    delays = [backoff.next_delay(ran_for=0.1) for _ in range(6)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_starts_over_after_a_healthy_run() -> None:
    backoff = RestartBackoff(first=0.5, cap=30.0, healthy_after=10.0)
    backoff.next_delay(0.1)
    backoff.next_delay(0.1)

    assert backoff.next_delay(ran_for=60.0) == 0.5


def test_log_lines_are_prefixed_with_the_child_name_in_one_column() -> None:
    out = io.StringIO()
    sink = LogSink(out)
    sink.width = 12

    sink.line("gateway", "ready")
    sink.line("a#1 sidecar", "consuming [a] {x}")
    sink.say("scaling out")

    assert out.getvalue().splitlines() == [
        "gateway      | ready",
        "a#1 sidecar  | consuming [a] {x}",
        "asya up      | scaling out",
    ]


def test_the_status_shows_urls_without_their_passwords(tmp_path: Path) -> None:
    config = MeshConfig(
        path=tmp_path / "asya.yaml",
        transport="amqp://guest:s3cr@t@host:5672/",
        database="postgresql://asya:pw@db:5432/asya",
        exchange="asya",
        gateway=None,
        crew=False,
        actors=(),
    )

    status = Mesh(config, LogSink(io.StringIO()), environ={}).status()

    assert status["transport"] == "amqp://guest:***@host:5672/"
    assert status["database"] == "postgresql://asya:***@db:5432/asya"


def test_urls_without_a_password_are_shown_as_they_are(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db"
    config = MeshConfig(tmp_path / "asya.yaml", url, url, "asya", None, False, ())

    status = Mesh(config, LogSink(io.StringIO()), environ={}).status()

    assert status["transport"] == status["database"] == url


def test_status_file_is_written_whole_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / ".asya" / "up.json"

    write_status(path, {"ready": True, "actors": {}})

    assert read_status(path) == {"ready": True, "actors": {}}
    assert list(path.parent.iterdir()) == [path]
    assert read_status(tmp_path / "missing.json") is None
