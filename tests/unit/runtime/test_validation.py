"""Request validation and route protection (docs/reference/runtime-protocol.md#validation)."""

from __future__ import annotations

from typing import Any

import pytest

from asya.runtime import route_rewrite_problem, validate_request


def request(**route: Any) -> dict[str, Any]:
    return {"payload": {}, "route": {"steps": ["a", "b"], "current": 0, **route}}


@pytest.mark.parametrize(
    "message",
    [
        request(),
        request(current=1),
        request(current=2),  # finished route, as terminal actors receive it
        {"payload": None, "route": {"steps": [], "current": 0}},
        {
            "payload": 1,
            "route": {"steps": ["a"], "current": 0, "metadata": {"x": 1}},
            "job_id": "j",
        },
    ],
)
def test_valid_requests_pass(message: object) -> None:
    assert validate_request(message) is None


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ([], "must be a JSON object, got array"),
        ("text", "must be a JSON object, got string"),
        ({"route": {"steps": ["a"], "current": 0}}, "no 'payload' field"),
        ({"payload": 1}, "no 'route' object"),
        ({"payload": 1, "route": ["a"]}, "'route' must be an object"),
        (request(steps="a,b"), "route.steps must be a list, got string"),
        (request(steps=None), "route.steps must be a list, got null"),
        (request(steps=["a", ""]), "route.steps[1] must be a non-empty string"),
        (request(steps=["a", 3]), "route.steps[1] must be a non-empty string"),
        (request(current=None), "route.current must be an integer, got null"),
        (request(current=True), "route.current must be an integer, got boolean"),
        (request(current=1.0), "route.current must be an integer, got number"),
        (request(current="0"), "route.current must be an integer, got string"),
        (request(current=-1), "route.current -1 is out of range"),
        (request(current=3), "route.current 3 is out of range: the route has 2 steps"),
    ],
)
def test_invalid_requests_say_what_is_wrong(message: object, complaint: str) -> None:
    problem = validate_request(message)

    assert problem is not None
    assert complaint in problem


BEFORE = {"steps": ["a", "b", "c"], "current": 1, "metadata": {}}


@pytest.mark.parametrize(
    "after",
    [
        {"steps": ["a", "b", "c"], "current": 1},
        {"steps": ["a", "b"], "current": 1},
        {"steps": ["a", "b", "x", "y", "z"], "current": 1, "metadata": {"changed": True}},
    ],
)
def test_steps_after_current_may_change(after: dict[str, Any]) -> None:
    assert route_rewrite_problem(BEFORE, after) is None


@pytest.mark.parametrize(
    ("after", "complaint"),
    [
        ({"steps": ["a", "b", "c"], "current": 2}, "route.current changed from 1 to 2"),
        ({"steps": ["z", "b", "c"], "current": 1}, "route.steps[:2] changed"),
        ({"steps": ["a", "x", "c"], "current": 1}, "route.steps[:2] changed"),
        ({"steps": ["a"], "current": 1}, "route.steps[:2] changed"),
        ({"steps": "a", "current": 1}, "route.steps must be a list"),
        (None, "no 'route' object"),
    ],
)
def test_route_behind_the_actor_is_protected(after: object, complaint: str) -> None:
    assert complaint in (route_rewrite_problem(BEFORE, after) or "")
