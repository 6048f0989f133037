"""What the crew adds to a job's logs and trace: no HTTP client chatter, and the closing span."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from asya.message import branch_text
from asya.tracing import Tracing, trace_carrier

_HTTP_CLIENT_LOGGERS = ("httpx", "httpcore")


def quiet_http_client_logs() -> None:
    """Keep httpx/httpcore below WARNING out of the log (one line per report otherwise), unless
    the runtime logs at DEBUG. The runtime configures logging itself, so the crew does this."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    for name in _HTTP_CLIENT_LOGGERS:
        http_logger = logging.getLogger(name)
        if http_logger.level < logging.WARNING:
            http_logger.setLevel(logging.WARNING)


@contextlib.contextmanager
def report_span(
    tracing: Tracing, job_id: str, message: Mapping[str, Any], body: Mapping[str, Any]
) -> Iterator[None]:
    """``report <status>`` under the message's ``trace``; an exception marks it failed."""
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {"asya.job_id": job_id, "asya.outcome": str(body.get("status"))}
    branch = branch_text(body.get("branch"))
    if branch is not None:
        attributes["asya.branch"] = branch
    with tracing.tracer.start_as_current_span(
        f"report {body.get('status')}",
        context=tracing.context_of(trace_carrier(message)),
        kind=SpanKind.CLIENT,
        attributes=attributes,
    ):
        yield
