"""``GET /actors``'s probe: which queues, their rate, replicas from the ``asya up`` status file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from asya.gateway.actors import ActorsProbe, watched_queues
from asya.gateway.overview import window_seconds
from asya.gateway.service import BadRequest
from asya.gateway.tools import parse_tools
from asya.transports import open_transport

TOOLS = parse_tools(
    {
        "tools": [
            {"name": "first", "route": ["a", "b"]},
            {"name": "second", "route": ["b", "c"]},
        ]
    }
)


def test_queues_are_route_steps_then_crew_and_dead_letters() -> None:
    queues = watched_queues(TOOLS, "happy-end", "error-end")

    assert [(q.name, q.role, q.tools) for q in queues] == [
        ("a", "step", ("first",)),
        ("b", "step", ("first", "second")),
        ("c", "step", ("second",)),
        ("happy-end", "happy-end", ()),
        ("error-end", "error-end", ()),
        ("asya-dead-letter", "dead-letter", ()),
    ]


async def test_snapshot_reports_depth_rate_and_replicas(tmp_path: Path) -> None:
    status = tmp_path / "up.json"
    status.write_text(
        json.dumps({"actors": {"a": {"replicas": 1, "desired": 2, "state": "running"}}})
    )
    moments = iter([100.0, 102.0])
    transport = open_transport(f"memory://{uuid.uuid4().hex}")
    await transport.connect()
    for queue in ("a", "b", "c", "happy-end", "error-end"):
        await transport.declare_queue(queue)
    queues = watched_queues(TOOLS, "happy-end", "error-end")[:2]
    probe = ActorsProbe(transport, queues, str(status), clock=lambda: next(moments))

    first = await probe.snapshot()
    for _ in range(4):
        await transport.publish("a", b"{}")
    second = await probe.snapshot()

    a_then, a_now = first["actors"][0], second["actors"][0]
    assert (a_then["depth"], a_then["depth_per_second"]) == (0, None)
    assert (a_now["depth"], a_now["depth_per_second"]) == (4, 2.0)  # 4 more in 2 s
    assert (a_now["replicas"], a_now["desired"], a_now["state"]) == (1, 2, "running")
    assert second["actors"][1]["replicas"] is None
    assert second["mesh"] is True
    await transport.close()


async def test_a_queue_the_broker_does_not_know_is_an_error_on_its_row() -> None:
    transport = open_transport(f"memory://{uuid.uuid4().hex}")
    await transport.connect()
    probe = ActorsProbe(transport, watched_queues(TOOLS, "happy-end", "error-end"), None)

    answer = await probe.snapshot()

    assert answer["mesh"] is False
    assert all(
        row["depth"] is None and "no queue named" in row["error"] for row in answer["actors"]
    )
    await transport.close()


@pytest.mark.parametrize(("raw", "seconds"), [("1h", 3600), ("15m", 900), ("90", 90)])
def test_summary_window(raw: str, seconds: float) -> None:
    assert window_seconds(raw) == seconds


@pytest.mark.parametrize("raw", ["0s", "yesterday", "32d", "-5m"])
def test_summary_window_refuses(raw: str) -> None:
    with pytest.raises(BadRequest):
        window_seconds(raw)
