"""Assertions on what lands in happy-end and error-end
(docs/reference/message.md#error-end-message)."""

from __future__ import annotations

import json
from typing import Any

ERROR_DETAIL_KEYS = {"message", "type", "traceback", "severity"}


def assert_routed_to_end(out: dict[str, Any], sent: dict[str, Any], payload: Any) -> None:
    """A message that finished its route: every step done, fields kept, ``payload`` as given."""
    steps = sent["route"]["steps"]
    assert out["route"]["steps"] == steps
    assert out["route"]["current"] == len(steps)
    assert out["payload"] == payload
    for key, value in sent.items():
        if key not in ("route", "payload"):
            assert out.get(key) == value, f"top-level field {key!r} was not kept"


def assert_error_end(
    out: dict[str, Any],
    sent: dict[str, Any] | None,
    *,
    code: str,
    failed_step: str | None,
    severity: str | None = None,
    error_type: str | None = None,
    attempts: int | None = 1,
) -> dict[str, Any]:
    """The error-end shape: code, details, the failed message as a JSON string, the route as it
    was at the failed step (``sent`` is the message as that step received it). Returns details."""
    assert out["error"] == code, f"expected error {code!r}, got {out.get('error')!r}: {out}"
    details = out["error_details"]
    assert isinstance(details, dict)
    assert details.keys() >= ERROR_DETAIL_KEYS, (
        f"error_details lacks {ERROR_DETAIL_KEYS}: {details}"
    )
    assert isinstance(details["message"], str)
    assert details["message"]
    assert isinstance(details["traceback"], str)
    if severity is not None:
        assert details["severity"] == severity
    if error_type is not None:
        assert details["type"] == error_type
    if failed_step is not None:
        assert out["failed_step"] == failed_step
    if attempts is not None:
        assert out["attempts"] == attempts
    assert isinstance(out["original_message"], str), "original_message must be a JSON string"
    if sent is not None:
        assert json.loads(out["original_message"]) == sent
        assert out["route"]["steps"] == sent["route"]["steps"]
        assert out["route"]["current"] == sent["route"]["current"]
        assert out["payload"] == sent["payload"]
        if "job_id" in sent:
            assert out["job_id"] == sent["job_id"]
    return details
