"""Reporting a job's outcome to the gateway: ``POST /jobs/{id}/final``
(docs/reference/crew.md#handlers).

A report is retried a few times with exponential backoff when the gateway cannot be reached or
answers 5xx/408/429. When it still fails, :class:`ReportError` is raised out of the handler: the
terminal sidecar retries the whole message and finally dead-letters it, so an outcome is never
lost silently. A 404 means the gateway does not know the job (expired, or another deployment's):
retrying cannot help, so it is logged and the message is considered handled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from asya.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 425, 429})


class ReportError(TransientError):
    """The gateway did not take the outcome after every attempt."""


class ReportRejected(PermanentError):
    """The gateway refused the outcome (bad request or bad token): fix the deployment."""


class GatewayReporter:
    """Sends final outcomes of jobs to one gateway (sync: the runtime worker is synchronous)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def report_final(self, job_id: str, body: dict[str, Any]) -> bool:
        """Deliver ``body`` for ``job_id``; True when taken, False when the job is unknown."""
        path = f"/jobs/{job_id}/final"
        last_problem = ""
        for attempt in range(1, self._attempts + 1):
            try:
                response = self._client.post(path, json=body)
            except httpx.HTTPError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    logger.info("Reported job %s as %s", job_id, body.get("status"))
                    return True
                if response.status_code == 404:
                    logger.warning(
                        "Gateway does not know job %s (404): outcome %s not recorded",
                        job_id,
                        body.get("status"),
                    )
                    return False
                last_problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code not in _RETRYABLE_STATUS:
                    raise ReportRejected(
                        f"gateway refused the outcome of job {job_id}: {last_problem}"
                    )
            if attempt < self._attempts:
                delay = self._backoff * 2 ** (attempt - 1)
                logger.warning(
                    "Reporting job %s failed (attempt %d/%d: %s); retrying in %.2f s",
                    job_id,
                    attempt,
                    self._attempts,
                    last_problem,
                    delay,
                )
                self._sleep(delay)
        raise ReportError(
            f"could not report job {job_id} to the gateway after {self._attempts} attempts: "
            f"{last_problem}"
        )
