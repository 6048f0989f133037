"""Progress reports to the gateway (``POST /jobs/{id}/progress``).

Reports are causal: a step's ``received`` → ``processing`` → ``completed`` reach the gateway in
that order and before the step's results are published, so the next step's reports can never
overtake them. Each report is given up after two seconds and a failed report never fails the
message: progress is informative, the message is what matters.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from asya.gateway_http import GatewayEndpoint, job_path

logger = logging.getLogger(__name__)

REPORT_BUDGET = 2.0


class ProgressReporter:
    """Sends progress reports with one shared HTTP client."""

    def __init__(
        self,
        gateway_url: str,
        actor_name: str,
        token: str | None = None,
        budget: float | None = None,
    ) -> None:
        self._actor = actor_name
        self._budget = REPORT_BUDGET if budget is None else budget
        self._client = GatewayEndpoint(gateway_url, token, self._budget).async_client()

    async def report(
        self,
        job_id: str,
        *,
        step: str,
        step_index: int,
        total_steps: int,
        status: str,
        message: str,
        **extra: Any,
    ) -> bool:
        """POST one report; True when the gateway answered 2xx within the budget."""
        body = {
            "step": step,
            "step_index": step_index,
            "total_steps": total_steps,
            "status": status,
            "actor_name": self._actor,
            "message": message,
            **extra,
        }
        try:
            async with asyncio.timeout(self._budget):
                response = await self._client.post(job_path(job_id, "progress"), json=body)
        except TimeoutError:
            logger.warning(
                "progress %s for job %s given up after %.1f s", status, job_id, self._budget
            )
            return False
        except httpx.HTTPError as exc:
            logger.warning("progress %s for job %s failed: %s", status, job_id, exc)
            return False
        if response.is_success:
            return True
        logger.warning(
            "progress %s for job %s answered %s: %s",
            status,
            job_id,
            response.status_code,
            response.text[:200],
        )
        return False

    async def aclose(self) -> None:
        await self._client.aclose()


def received_text(size_bytes: int) -> str:
    return f"Received message ({size_bytes / 1024:.2f} KB)"


def processing_text(actor_name: str) -> str:
    return f"Processing in {actor_name}"


def completed_text(duration_ms: float) -> str:
    return f"Completed processing in {duration_ms:.0f} ms"
