"""Handlers of the gateway_vs_actors suite, each run by a real runtime behind a real sidecar.

``progress`` runs in message mode: it needs the job id to send heartbeats to the gateway
(``POST /jobs/{id}/heartbeat``), as a long-running handler would to show it is alive.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import httpx

logger = logging.getLogger(__name__)

STEP_SECONDS = 0.3


def echo(payload: Any) -> Any:
    """The payload unchanged; with ``bare: true`` only its ``message`` (a non-object result)."""
    if isinstance(payload, dict) and payload.get("bare"):
        return payload["message"]
    return payload


def doubler(payload: dict[str, Any]) -> dict[str, Any]:
    return {"value": payload["value"] * 2}


def incrementer(payload: dict[str, Any]) -> dict[str, Any]:
    return {"value": payload["value"] + 5}


def error(payload: dict[str, Any]) -> dict[str, Any]:
    """Raises ValueError; with ``reason: missing_key`` a KeyError, the way a handler's bug does."""
    if payload.get("reason") == "missing_key":
        return {"value": payload["missing_key"]}
    raise ValueError(f"Simulated failure: {payload.get('reason', 'no reason given')}")


def timeout(payload: dict[str, Any]) -> dict[str, Any]:
    time.sleep(float(payload.get("sleep_seconds", 60)))
    return payload


def _heartbeat(job_id: str, actor_name: str, status: str, message: str) -> None:
    """Best effort: a heartbeat that cannot be delivered never fails the work."""
    url = os.environ.get("ASYA_GATEWAY_URL")
    if not url or not job_id:
        return
    token = os.environ.get("ASYA_GATEWAY_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        httpx.post(
            f"{url.rstrip('/')}/jobs/{job_id}/heartbeat",
            json={"actor_name": actor_name, "status": status, "message": message},
            headers=headers,
            timeout=2.0,
        )
    except httpx.HTTPError as exc:
        logger.warning("heartbeat for job %s failed: %s", job_id, exc)


def progress(message: dict[str, Any]) -> dict[str, Any]:
    """Sleeps ``STEP_SECONDS`` per step, with a heartbeat after each one."""
    payload = message.get("payload") or {}
    steps = int(payload.get("steps", 5))
    route = message["route"]
    actor_name = route["steps"][route["current"]]
    job_id = str(message.get("job_id") or "")
    for step in range(1, steps + 1):
        time.sleep(STEP_SECONDS)
        _heartbeat(job_id, actor_name, "processing", f"Step {step}/{steps} done")
    return {**message, "payload": {"steps": steps, "completed": True}}


def split(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Fan out: one output per item of ``parts`` (an item may be a list: split again later)."""
    return [{"parts": part, "delay": payload.get("delay", 0)} for part in payload["parts"]]


def upper(payload: dict[str, Any]) -> dict[str, Any]:
    """One branch's work: the word in capitals after ``delay`` s; the word ``fail`` fails."""
    time.sleep(float(payload.get("delay", 0)))
    word = str(payload["parts"])
    if word == "fail":
        raise ValueError("cannot upper the word 'fail'")
    return {"word": word.upper()}
