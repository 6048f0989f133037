"""Which waiting MCP call a ``notifications/cancelled`` names.

See docs/reference/gateway-api.md#mcp-cancellation.
"""

from __future__ import annotations

from typing import Any

import pytest

from asya.gateway.mcp_calls import call_key, cancelled_request_id


def _notification(params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}


def test_a_call_is_known_by_its_id_and_what_the_two_posts_share() -> None:
    headers = {"authorization": "Bearer k1"}
    key = call_key(headers, "10.0.0.1", 7)
    assert key == call_key(dict(headers), "10.0.0.1", 7)
    others = [
        call_key(headers, "10.0.0.1", "7"),  # another JSON type is another id
        call_key({"authorization": "Bearer k2"}, "10.0.0.1", 7),
        call_key({}, "10.0.0.1", 7),
        call_key(headers, "10.0.0.2", 7),
        call_key({**headers, "mcp-session-id": "s1"}, "10.0.0.1", 7),
    ]
    assert key not in others
    assert len(set(others)) == len(others)


@pytest.mark.parametrize("request_id", ["x" * 1_000_000, 2**200, -(2**63) - 1, "\ud800", "a\x00b"])
def test_any_id_gives_a_key_of_the_same_size_without_the_credential(request_id: Any) -> None:
    key = call_key({"authorization": "Bearer secret"}, None, request_id)
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert "secret" not in key


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (_notification({"requestId": 3, "reason": "stop"}), 3),
        (_notification({"requestId": "abc"}), "abc"),
        (_notification({"requestId": True}), None),
        (_notification({"requestId": 1.5}), None),
        (_notification({"requestId": None}), None),
        (_notification({"requestId": [1]}), None),
        (_notification({"requestId": {"id": 1}}), None),
        (_notification({}), None),
        (_notification("nonsense"), None),
        ({**_notification({"requestId": 3}), "id": 9}, None),  # a request, not a notification
        ({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}, None),
        ([_notification({"requestId": 3})], None),
    ],
)
def test_only_a_cancelled_notification_names_a_request(message: Any, expected: Any) -> None:
    assert cancelled_request_id(message) == expected
