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

from asya.backoff import Backoff
from asya.errors import PermanentError, TransientError
from asya.gateway_http import GatewayEndpoint, RetriesExhausted, job_path, send_with_retries

logger = logging.getLogger(__name__)


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
        self._client = GatewayEndpoint(base_url, token, timeout).client()
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def report_final(self, job_id: str, body: dict[str, Any]) -> bool:
        """Deliver ``body`` for ``job_id``; True when taken, False when the job is unknown."""
        try:
            response = send_with_retries(
                self._client,
                "POST",
                job_path(job_id, "final"),
                json=body,
                attempts=self._attempts,
                backoff=Backoff(self._backoff),
                what=f"Reporting job {job_id}",
                sleep=self._sleep,
            )
        except RetriesExhausted as exc:
            raise ReportError(
                f"could not report job {job_id} to the gateway after {exc.attempts} attempts: "
                f"{exc.problem}"
            ) from exc
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
        raise ReportRejected(
            f"gateway refused the outcome of job {job_id}: "
            f"HTTP {response.status_code}: {response.text[:200]}"
        )
