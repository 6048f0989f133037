"""A failed job's ``error_details``: the cause of the failure, kept beside the one-line ``error``
(docs/reference/jobs.md#error-details).

error-end sends them with its final report; the gateway checks their shape and fills them itself
when the failure is its own (a deadline, a heartbeat ``error``, a publish that failed) or comes
from a reporter that sends only the ``error`` text (the original Asya's crew).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from asya.errors import MessageTooLargeError

#: The keys every stored ``error_details`` has (null when unknown); others are kept as sent.
FIELDS = ("code", "message", "type", "traceback", "failed_step", "branch", "attempts", "severity")
_TEXT_FIELDS = ("code", "message", "type", "traceback", "failed_step", "severity")
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")

DEADLINE_EXCEEDED = "deadline_exceeded"
HEARTBEAT_ERROR = "heartbeat_error"
PUBLISH_ERROR = "publish_error"
MESSAGE_TOO_LARGE = "message_too_large"


class DetailsInvalid(ValueError):
    """``error_details`` of a report has the wrong shape (the report is answered 400)."""


def details(**known: Any) -> dict[str, Any]:
    """Every field of :data:`FIELDS`, null unless given."""
    return {name: known.get(name) for name in FIELDS}


def checked_details(value: Any) -> dict[str, Any] | None:
    """``error_details`` from a final report: None when absent, else an object of the shape."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DetailsInvalid("field 'error_details' must be an object")
    for name in _TEXT_FIELDS:
        if value.get(name) is not None and not isinstance(value[name], str):
            raise DetailsInvalid(f"field 'error_details.{name}' must be a string or null")
    attempts = value.get("attempts")
    if attempts is not None and (not isinstance(attempts, int) or isinstance(attempts, bool)):
        raise DetailsInvalid("field 'error_details.attempts' must be an integer or null")
    branch = value.get("branch")
    if branch is not None and not isinstance(branch, list):
        raise DetailsInvalid("field 'error_details.branch' must be a list or null")
    return {**details(), **value}


def details_of_error_text(error: str) -> dict[str, Any]:
    """Details from a bare ``"<code>: <message>"`` (a report that sent no ``error_details``)."""
    code, sep, message = error.partition(": ")
    if sep and _CODE.match(code):
        return details(code=code, message=message)
    return details(message=error)


def deadline_details(seconds: float | None, step: str | None) -> dict[str, Any]:
    return details(
        code=DEADLINE_EXCEEDED,
        message=f"the job's deadline passed after {seconds or 0:g} s",
        failed_step=step,
    )


def heartbeat_details(actor: str, message: str) -> dict[str, Any]:
    return details(code=HEARTBEAT_ERROR, message=message, failed_step=actor or None)


def publish_details(step: str, error: str) -> dict[str, Any]:
    return details(code=PUBLISH_ERROR, message=error, failed_step=step)


def too_large_error(exc: MessageTooLargeError) -> str:
    """The job's ``error`` when its arguments do not fit the transport: what to set."""
    return (
        f"{MESSAGE_TOO_LARGE}: the tool's arguments make a message of {exc.size} bytes, over the"
        f" transport's limit of {exc.limit} bytes; set ASYA_PAYLOAD_STORE_URL on the gateway"
        " so that large arguments travel by reference"
    )


def too_large_details(step: str, error: str) -> dict[str, Any]:
    return details(code=MESSAGE_TOO_LARGE, message=error, failed_step=step)
