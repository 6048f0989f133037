"""What ``asya up`` prints once started: the headline, failed actors and a tool that works."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console

from asya.up.status import headline, print_ready, working_tools

REASON = (
    "the runtime of shout#1 exited with code 3 before serving:\n"
    "    Traceback (most recent call last):\n"
    "    AttributeError: module 'handlers' has no attribute 'shuot'"
)


def _actor(state: str = "running", error: str | None = None) -> dict[str, Any]:
    return {
        "handler": "handlers.x",
        "replicas": 0 if error else 1,
        "queue": "q",
        "state": state,
        "error": error,
        "scaling": None,
    }


def _status(broken: bool) -> dict[str, Any]:
    return {
        "actors": {
            "shout": _actor("failed", REASON) if broken else _actor(),
            "split": _actor(),
            "upper": _actor(),
        },
        "crew": {},
        "gateway": {
            "url": "http://127.0.0.1:8080",
            "tools": "tools.yaml",
            "tool_names": ["loud", "words"],
            "tool_routes": {"loud": ["shout"], "words": ["split", "upper"]},
        },
        "transport": "sqlite:///q.db",
        "database": "sqlite:///j.db",
    }


def _printed(status: dict[str, Any]) -> str:
    out = io.StringIO()
    print_ready(Console(file=out, width=120, color_system=None), status, Path(".asya/up.json"))
    return out.getvalue()


def test_a_healthy_mesh_is_ready_and_suggests_its_first_tool() -> None:
    status = _status(broken=False)
    assert headline(status) == "mesh ready"
    assert working_tools(status) == ["loud", "words"]
    assert "asya call loud key=value" in _printed(status)


def test_a_mesh_with_a_failed_actor_counts_it_names_why_and_suggests_a_working_tool() -> None:
    status = _status(broken=True)
    printed = _printed(status)

    assert headline(status) == "mesh started with 2 of 3 actors"
    assert "asya up: mesh started with 2 of 3 actors" in printed
    assert "mesh ready" not in printed
    assert (
        "not running shout: AttributeError: module 'handlers' has no attribute 'shuot'" in printed
    )
    assert working_tools(status) == ["words"]
    assert "asya call words key=value" in printed
    assert "asya call loud" not in printed
