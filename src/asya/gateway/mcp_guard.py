"""A check of ``POST /mcp`` bodies before the MCP SDK sees them.

The SDK decodes the body as UTF-8 and parses it with the standard library, both inside its
request handler: a body that is not UTF-8, or JSON nested deeper than Python's recursion limit,
raises there and the client gets a 500. Here the body is read once, parsed with orjson and its
nesting measured; a bad one is answered with the JSON-RPC parse error (-32700) and HTTP 400,
a good one is handed to the SDK unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from asya.gateway.http import OrjsonResponse

#: Deeper than any JSON-RPC message needs, far below what the SDK's parser can take.
MAX_DEPTH = 200
PARSE_ERROR = -32700


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0); no recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def body_problem(raw: bytes) -> str | None:
    """Why ``raw`` cannot be a JSON-RPC message body, or None when it parses."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc).lower() or "recursion" in str(exc).lower():
            return f"JSON nested deeper than {MAX_DEPTH} levels"
        return "the body is not valid UTF-8 JSON"
    if nesting_depth(parsed) > MAX_DEPTH:
        return f"JSON nested deeper than {MAX_DEPTH} levels"
    return None


async def parse_error(scope: Scope, receive: Receive, send: Send, problem: str) -> None:
    response = OrjsonResponse(
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": PARSE_ERROR, "message": f"Parse error: {problem}"},
        },
        status_code=400,
    )
    await response(scope, receive, send)


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then defers to the original (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
