"""What ``asya call`` says about a job whose first queue nobody consumes."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx

from asya.client.gateway import GatewayClient
from asya.client.stall import StallWatch, stall_notice


def test_a_queue_without_consumers_is_named() -> None:
    notice = stall_notice({"queue": "shout", "consumers": 0}, Path("/nonexistent"))
    assert notice is not None
    assert notice.startswith("no actor is consuming queue 'shout' — is the actor running?")


def test_unknown_or_present_consumers_say_nothing() -> None:
    assert stall_notice({"queue": "shout", "consumers": None}) is None
    assert stall_notice({"queue": "shout", "consumers": 2}) is None


def test_an_asya_up_actor_that_failed_to_start_is_named_with_its_reason(tmp_path: Path) -> None:
    status = {
        "actors": {
            "shout": {
                "state": "failed",
                "error": "the runtime of shout#1 exited with code 3 before serving:\n"
                "    AttributeError: module 'handlers' has no attribute 'shuot'",
            }
        }
    }
    (tmp_path / ".asya").mkdir()
    (tmp_path / ".asya" / "up.json").write_text(json.dumps(status))
    notice = stall_notice({"queue": "shout", "consumers": 0}, tmp_path)
    assert notice is not None
    assert "actor 'shout' failed to start under asya up" in notice
    assert "has no attribute 'shuot'" in notice


def test_the_watch_asks_after_the_quiet_time_and_says_it_once() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(200, json={"queue": "shout", "consumers": 0})

    said: list[str] = []
    done = threading.Event()

    def say(text: str) -> None:
        said.append(text)
        done.set()

    def client() -> GatewayClient:
        return GatewayClient("http://gw", transport=httpx.MockTransport(answer))

    watch = StallWatch(client, "j1", say, first_check=0.05, recheck=0.05)
    watch.start()
    assert done.wait(5)
    watch.stop()
    assert asked == ["/jobs/j1/diagnosis"]
    assert len(said) == 1
    assert "queue 'shout'" in said[0]


def test_a_job_that_moves_is_never_diagnosed() -> None:
    asked: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json={"queue": "shout", "consumers": 0})

    watch = StallWatch(
        lambda: GatewayClient("http://gw", transport=httpx.MockTransport(answer)),
        "j1",
        lambda text: None,
        first_check=0.2,
    )
    watch.start()
    watch.moved()
    watch.stop()
    assert asked == []
