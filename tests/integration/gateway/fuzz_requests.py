"""Malformed requests for every public route of the gateway, drawn from a seeded generator.

``malformed_requests(seed, count)`` is deterministic: a failing request can be replayed from
its seed and index. Each request is (method, path, body bytes or None, headers).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

Request = tuple[str, str, bytes | None, dict[str, str]]

ODD_IDS = [
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f",
    "..",
    "%00",
    "a%00b",
    "%ff%fe",
    "%C3%A9t%C3%A9",
    "%F0%9F%98%80",
    "x" * 5000,
    "%20",
    "-1",
    "0",
    "null",
    "%22%3Cscript%3E",
    "00000000-0000-0000-0000-000000000000",
    "%E2%80%AE",
    "a;b",
    "%25",
]

JSON_ROUTES = ["/tools/call", "/jobs/{id}/progress", "/jobs/{id}/heartbeat", "/jobs/{id}/final"]
GET_ROUTES = ["/jobs", "/jobs/{id}", "/jobs/{id}/active", "/tools", "/health", "/ready"]
FIELDS = {
    "/tools/call": ["name", "arguments"],
    "/jobs/{id}/progress": [
        "step",
        "step_index",
        "total_steps",
        "status",
        "actor_name",
        "message",
        "progress_percent",
        "branch",
    ],
    "/jobs/{id}/heartbeat": ["actor_name", "step"],
    "/jobs/{id}/final": ["status", "result", "error", "error_details", "branch", "progress"],
}
QUERY_KEYS = ["status", "limit", "tool", "cursor", "offset", "since"]


def _nested(depth: int, rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


class _Draw:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def scalar(self) -> Any:
        return self.rng.choice(
            [
                None,
                True,
                False,
                0,
                -1,
                2**70,
                1.5,
                float("1e308"),
                "",
                "succeeded",
                "failed",
                "x" * self.rng.choice([1, 100, 70_000]),
                "\u0000",
                "\ud7ff\ue000",
                "🙂",
            ]
        )

    def value(self, depth: int = 0) -> Any:
        kind = self.rng.random()
        if depth > 3 or kind < 0.5:
            return self.scalar()
        if kind < 0.75:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 3))]
        return {self.rng.choice(["a", "", "status", "name"]): self.value(depth + 1)}

    def json_body(self, route: str) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.55:
            body: Any = {field: self.value() for field in FIELDS[route] if rng.random() < 0.7}
            if route == "/tools/call" and rng.random() < 0.5:
                body["name"] = rng.choice(["test_echo", "test_pipeline", "nope", ""])
        elif roll < 0.7:
            body = self.value()
        elif roll < 0.8:
            return _nested(rng.choice([1_000, 5_000, 100_000]), rng)
        elif roll < 0.9:
            good = json.dumps({field: self.value() for field in FIELDS[route]}).encode()
            return good[: rng.randint(0, max(0, len(good) - 1))]
        else:
            return rng.choice(
                [b"\xff\xfe\x00", b'{"name": "\xff"}', b"\x80" * 50, b"", b"nul\x00l", b"{" * 3]
            )
        return json.dumps(body).encode()

    def job_id(self, known: list[str]) -> str:
        if known and self.rng.random() < 0.4:
            return self.rng.choice(known)
        return self.rng.choice(ODD_IDS)


def _mcp_body(draw: _Draw) -> bytes:
    rng = draw.rng
    roll = rng.random()
    if roll < 0.3:
        message: Any = {
            "jsonrpc": rng.choice(["2.0", 2, None]),
            "id": draw.value(),
            "method": rng.choice(["initialize", "tools/call", "tools/list", draw.scalar()]),
            "params": draw.value(),
        }
        return json.dumps(message).encode()
    if roll < 0.55:
        return _nested(rng.choice([1_000, 5_000, 100_000]), rng)
    if roll < 0.75:
        return rng.choice([b"\xff\xfe\x00", b'{"jsonrpc": "\xff"}', b"\xc3\x28" * 9, b"\x00"])
    if roll < 0.9:
        return b'{"jsonrpc": "2.0", "method": "tools/l'
    return json.dumps(draw.value()).encode()


MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def malformed_requests(seed: int, count: int, known_ids: list[str]) -> Iterator[Request]:
    """``count`` malformed requests, the same for the same seed."""
    draw = _Draw(random.Random(seed))
    rng = draw.rng
    for _ in range(count):
        roll = rng.random()
        if roll < 0.45:
            route = rng.choice(JSON_ROUTES)
            path = route.replace("{id}", draw.job_id(known_ids))
            headers = {"content-type": rng.choice(["application/json", "text/plain", "x/y"])}
            yield "POST", path, draw.json_body(route), headers
        elif roll < 0.65:
            route = rng.choice(GET_ROUTES)
            path = route.replace("{id}", draw.job_id(known_ids))
            if rng.random() < 0.6:
                key = rng.choice(QUERY_KEYS)
                value = rng.choice(["-1", "0", "abc", "1e9", "%00", "%ff", "x" * 3000, ""])
                path += f"?{key}={value}"
            yield "GET", path, None, {}
        elif roll < 0.9:
            yield "POST", "/mcp", _mcp_body(draw), dict(MCP_HEADERS)
        else:
            method = rng.choice(["GET", "DELETE", "PUT", "POST"])
            path = rng.choice(["/mcp", "/tools/call", "/jobs/x/final", "/tools/nope/call"])
            yield method, path, rng.choice([None, b"{}", b"\xff"]), {}
