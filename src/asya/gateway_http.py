"""HTTP access to the gateway, shared by its three clients.

The sidecar's progress reporter, the crew's outcome reporter and the ``asya`` CLI client all
call the same REST API with the same bearer token. What they share lives here so they cannot
disagree: the base URL, the ``Authorization`` header, paths whose every segment is
percent-quoted (a job id with ``/``, ``?``, ``%`` or spaces stays one segment), the timeout, and
retrying a request with :class:`~asya.backoff.Backoff`. It sits beside the core, not in
``asya.gateway``, because the sidecar may not import the control plane.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from asya.backoff import Backoff

logger = logging.getLogger(__name__)

#: 4xx answers that mean "try again later"; every 5xx does too.
RETRYABLE_STATUS = frozenset({408, 425, 429})


def api_path(*segments: str) -> str:
    """``/a/b/c`` from segments, each percent-quoted so that it stays one segment."""
    return "".join("/" + quote(segment, safe="") for segment in segments)


def job_path(job_id: str, *rest: str) -> str:
    """The path of a job, or of one of its sub-resources: ``/jobs/{id}/progress``."""
    return api_path("jobs", job_id, *rest)


def is_retryable(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUS


class RetriesExhausted(Exception):
    """Every attempt failed; ``problem`` describes the last failure."""

    def __init__(self, attempts: int, problem: str) -> None:
        super().__init__(f"failed after {attempts} attempts: {problem}")
        self.attempts = attempts
        self.problem = problem


@dataclass(frozen=True)
class GatewayEndpoint:
    """One gateway: where it is, the API key that opens it, and how long a request may take."""

    url: str
    token: str | None = None
    timeout: float = 10.0

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, transport: httpx.BaseTransport | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout, transport=transport
        )

    def async_client(self, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout, transport=transport
        )


def send_with_retries(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    attempts: int,
    backoff: Backoff,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> httpx.Response:
    """Send until an answer that is not worth retrying comes back, at most ``attempts`` times.

    Connection errors, 5xx and :data:`RETRYABLE_STATUS` are retried after the backoff's next
    delay; any other answer (success or not) is returned for the caller to judge. Raises
    :class:`RetriesExhausted` when the last attempt failed too.
    """
    problem = ""
    for attempt in range(1, attempts + 1):
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if not is_retryable(response.status_code):
                return response
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
        if attempt < attempts:
            delay = backoff.next()
            logger.warning(
                "%s failed (attempt %d/%d: %s); retrying in %.2f s",
                what,
                attempt,
                attempts,
                problem,
                delay,
            )
            sleep(delay)
    raise RetriesExhausted(attempts, problem)
