"""A small synchronous client of the gateway's REST API and job stream
(docs/reference/gateway-api.md#rest-endpoints).

Failures are sorted by what the user should do: ``GatewayUnreachable`` (start the gateway or
fix the URL: exit 3), ``GatewayRefused`` (fix the request: the gateway's own error text), and
``asya.errors.JobNotFound``. The stream reconnects with ``Last-Event-ID`` when a connection
drops midway, so a gateway restart does not lose the job's remaining updates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent

from asya.backoff import Backoff
from asya.client.arguments import ToolInfo, tool_from_json
from asya.errors import AsyaError, JobNotFound
from asya.gateway_http import GatewayEndpoint, job_path

DEFAULT_GATEWAY_URL = "http://localhost:8080"
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})


class GatewayUnreachable(AsyaError):
    """No answer from the gateway (connection refused, DNS, timeout)."""


class GatewayRefused(AsyaError):
    """The gateway answered with an error status; ``message`` is its ``error`` text."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"gateway answered {status}: {message}")
        self.status = status
        self.message = message
        self.body = body


@dataclass(frozen=True)
class JobEvent:
    """One event of a job stream: the initial ``status`` or an ``update``."""

    kind: str
    status: str | None
    data: dict[str, Any]
    id: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def to_job_event(sse: ServerSentEvent) -> JobEvent | None:
    """Turn one SSE event into a JobEvent; unknown kinds and broken data are skipped."""
    if sse.event == "status":
        return JobEvent("status", sse.data.strip() or None, {}, sse.id or None)
    if sse.event in ("update", "message", ""):
        try:
            data = json.loads(sse.data)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        status = data.get("status")
        return JobEvent("update", status if isinstance(status, str) else None, data, sse.id or None)
    return None


class GatewayClient:
    """Talks to one gateway; use as a context manager."""

    def __init__(
        self,
        url: str = DEFAULT_GATEWAY_URL,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        endpoint = GatewayEndpoint(url, api_key, timeout)
        self.url = endpoint.base_url
        self._http = endpoint.client(transport)

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise GatewayUnreachable(f"cannot reach the gateway at {self.url}: {exc}") from exc
        return _json_or_raise(response)

    def tools(self) -> list[ToolInfo]:
        data = self._request("GET", "/tools")
        items = data.get("tools", []) if isinstance(data, Mapping) else data
        return [tool_from_json(item) for item in items if isinstance(item, Mapping)]

    def call(self, tool: str, arguments: Mapping[str, Any]) -> str:
        """Create a job; returns its id."""
        body = self._request("POST", "/tools/call", json={"name": tool, "arguments": arguments})
        job_id = (body.get("structuredContent") or {}).get("job_id") or body.get("job_id")
        if not job_id:
            raise GatewayRefused(200, f"no job id in the answer: {body}", body)
        return str(job_id)

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", job_path(job_id))
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job that has not ended; the job, now Cancelled (409 when it had ended)."""
        result: dict[str, Any] = self._request("POST", job_path(job_id, "cancel"))
        return result

    def jobs(
        self, status: str | None = None, limit: int | None = None, tool: str | None = None
    ) -> list[dict[str, Any]]:
        wanted = {"status": status, "limit": limit, "tool": tool}
        params = {k: v for k, v in wanted.items() if v is not None}
        data = self._request("GET", "/jobs", params=params)
        return list(data.get("jobs", [])) if isinstance(data, Mapping) else []

    def diagnosis(self, job_id: str) -> dict[str, Any]:
        """Whether the queue the job waits on has consumers (gateway-api.md#diagnosis)."""
        result: dict[str, Any] = self._request("GET", job_path(job_id, "diagnosis"))
        return result

    def actors(self) -> dict[str, Any]:
        """Queues, depths, consumers and replicas (gateway-api.md#actors)."""
        result: dict[str, Any] = self._request("GET", "/actors")
        return result

    def jobs_summary(self, since: str = "1h") -> dict[str, Any]:
        """Jobs created in the last ``since``, per status (gateway-api.md#jobs-summary)."""
        result: dict[str, Any] = self._request("GET", "/jobs/summary", params={"since": since})
        return result

    def stream(self, job_id: str, *, reconnects: int = 5) -> Iterator[JobEvent]:
        """The job's events until a terminal update; reconnects after a dropped connection."""
        last_id: str | None = None
        backoff = Backoff(0.5, cap=5.0)
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            finished = False
            try:
                with self._http.stream(
                    "GET",
                    job_path(job_id, "stream"),
                    headers=headers,
                    timeout=httpx.Timeout(10.0, read=60.0),
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        _json_or_raise(response)
                    for sse in EventSource(response).iter_sse():
                        event = to_job_event(sse)
                        if event is None:
                            continue
                        if event.id is not None:
                            last_id = event.id
                        backoff.reset()
                        yield event
                        if event.kind == "update" and event.terminal:
                            return
                        # A job that is already terminal is replayed, then its stream closes.
                        finished = finished or (event.kind == "status" and event.terminal)
                if finished:
                    return
                problem = "the stream closed before the job finished"
            except httpx.TransportError as exc:
                problem = str(exc) or type(exc).__name__
            delay = backoff.next()
            if backoff.failures > reconnects:
                raise GatewayUnreachable(f"lost the job stream from {self.url}: {problem}")
            time.sleep(delay)


def _json_or_raise(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code < 400:
        return body
    message = body.get("error") if isinstance(body, Mapping) else None
    message = str(message or response.text.strip() or response.reason_phrase)
    if response.status_code == 404 and "job not found" in message:
        raise JobNotFound(message)
    raise GatewayRefused(response.status_code, message, body)
