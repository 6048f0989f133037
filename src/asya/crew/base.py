"""What happy-end and error-end share: persist the message, then report the outcome.

Each crew handler is a class built once per runtime worker (settings, HTTP client, S3 client)
and a module-level ``handle`` that the runtime calls (``ASYA_HANDLER=asya.crew.happy_end.handle``,
message mode). Both always return ``[]``: a terminal actor routes nothing onward.
"""

from __future__ import annotations

import logging
from typing import Any

from asya.crew.reporting import GatewayReporter
from asya.crew.settings import CrewSettings
from asya.crew.storage import S3Store
from asya.crew.tracing import quiet_http_client_logs, report_span
from asya.tracing import setup_tracing

logger = logging.getLogger(__name__)

Message = dict[str, Any]


def job_id_of(message: object) -> str | None:
    """The job id at the top level, or in ``route.metadata`` (set by the gateway)."""
    if not isinstance(message, dict):
        return None
    job_id = message.get("job_id")
    if not job_id:
        route = message.get("route")
        metadata = route.get("metadata") if isinstance(route, dict) else None
        job_id = metadata.get("job_id") if isinstance(metadata, dict) else None
    return str(job_id) if job_id else None


def object_name(job_id: str, branch: Any) -> str:
    """The stored object's name: the job id, plus the branch (``job.2-5.0-4``) for a fan-out
    branch, so the branches of one job do not overwrite each other."""
    if not isinstance(branch, list) or not branch:
        return job_id
    levels = (
        f"{level.get('index')}-{level.get('count')}" if isinstance(level, dict) else "x"
        for level in branch
    )
    return f"{job_id}.{'.'.join(levels)}"


class CrewMember:
    """Holds the worker's clients; subclasses decide what to persist and report."""

    #: Used in log lines: ``happy-end`` or ``error-end``.
    role = "crew"

    def __init__(self, settings: CrewSettings | None = None) -> None:
        self.settings = settings or CrewSettings.from_env()
        self.reporter = (
            GatewayReporter(
                self.settings.gateway_url,
                token=self.settings.gateway_token,
                attempts=self.settings.report_attempts,
                backoff=self.settings.report_backoff,
                timeout=self.settings.http_timeout,
            )
            if self.settings.gateway_url
            else None
        )
        self.store = S3Store(self.settings.s3) if self.settings.s3 else None
        quiet_http_client_logs()
        self.tracing = setup_tracing("asya-crew")

    def close(self) -> None:
        if self.reporter is not None:
            self.reporter.close()

    def finish(
        self, job_id: str, *, prefix: str, step: str, message: Message, body: dict[str, Any]
    ) -> None:
        """Persist ``message`` (with S3), then send ``body`` as the job's final report.

        ``body["metadata"]`` gains ``s3_uri`` when the message was persisted. A storage or
        reporting failure propagates, so the terminal sidecar retries the message. With
        tracing on, this is the job trace's last span (docs/reference/crew.md#logs-and-traces).
        """
        if self.tracing is None:
            self._persist_and_report(job_id, prefix, step, message, body)
            return
        with report_span(self.tracing, job_id, message, body):
            self._persist_and_report(job_id, prefix, step, message, body)

    def _persist_and_report(
        self, job_id: str, prefix: str, step: str, message: Message, body: dict[str, Any]
    ) -> None:
        metadata: dict[str, Any] = body.setdefault("metadata", {})
        if self.store is not None:
            name = object_name(job_id, body.get("branch"))
            metadata["s3_uri"] = self.store.put(prefix, step, name, message)
        if self.reporter is None:
            logger.info(
                "%s: job %s finished as %s (no gateway configured)", self.role, job_id, body
            )
            return
        self.reporter.report_final(job_id, body)
