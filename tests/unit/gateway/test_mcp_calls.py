"""Which waiting MCP call a ``notifications/cancelled`` names.

See docs/reference/gateway-api.md#mcp-cancellation.
"""

from __future__ import annotations

from typing import Any

import pytest

from asya.gateway.mcp_calls import WaitingCalls, call_key, cancelled_request_id


def _notification(params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}


def test_a_call_is_found_by_its_id_and_what_the_two_posts_share() -> None:
    calls = WaitingCalls()
    headers = {"authorization": "Bearer k1"}
    with calls.track(call_key(headers, "10.0.0.1", 7), "job-a"):
        assert calls.job_for(call_key(headers, "10.0.0.1", 7)) == "job-a"
        assert calls.job_for(call_key(headers, "10.0.0.1", "7")) is None
        assert calls.job_for(call_key({"authorization": "Bearer k2"}, "10.0.0.1", 7)) is None
        assert calls.job_for(call_key(headers, "10.0.0.2", 7)) is None
        session = {**headers, "mcp-session-id": "s1"}
        assert calls.job_for(call_key(session, "10.0.0.1", 7)) is None
    assert calls.job_for(call_key(headers, "10.0.0.1", 7)) is None
    assert len(calls) == 0


def test_two_calls_under_one_key_are_ambiguous_and_cancel_nothing() -> None:
    calls = WaitingCalls()
    key = call_key({}, "127.0.0.1", 1)
    with calls.track(key, "job-a"):
        with calls.track(key, "job-b"):
            assert calls.job_for(key) is None
        assert calls.job_for(key) == "job-a"


def test_the_credential_is_kept_only_as_a_hash() -> None:
    key = call_key({"authorization": "Bearer secret"}, None, 1)
    assert all("secret" not in part for part in key)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (_notification({"requestId": 3, "reason": "stop"}), 3),
        (_notification({"requestId": "abc"}), "abc"),
        (_notification({"requestId": True}), None),
        (_notification({}), None),
        (_notification("nonsense"), None),
        ({**_notification({"requestId": 3}), "id": 9}, None),  # a request, not a notification
        ({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}, None),
        ([_notification({"requestId": 3})], None),
    ],
)
def test_only_a_cancelled_notification_names_a_request(message: Any, expected: Any) -> None:
    assert cancelled_request_id(message) == expected
