"""Cancelled jobs, as this sidecar knows them (docs/reference/sidecar.md#cancellation).

``CancelledJobs`` is a set of job ids, checked for every message before the runtime is called
(a dictionary lookup: the hot path makes no request). ``CancellationFollower`` fills it from the
gateway's one ``GET /cancellations`` stream: the jobs cancelled within the gateway's retention
window when it connects, then each new cancel. When a cancel arrives while a message of that job
is in the runtime, the runtime's control socket interrupts the call (the worker is replaced).

Best effort by design: while the gateway cannot be reached, the sidecar keeps processing (and
says so in its log); it catches up with every cancel when the stream connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator

import httpx

from asya.backoff import Backoff
from asya.gateway_http import GatewayEndpoint
from asya.sidecar.runtime_client import interrupt_call, runtime_control_path

logger = logging.getLogger(__name__)

#: How long an id is kept (the gateway sends those of the last 24 h to each new connection).
RETENTION_SECONDS = 24 * 3600.0
#: The gateway sends a keep-alive every 15 s by default; silence this long means a dead stream.
READ_TIMEOUT = 60.0
CONTROL_TIMEOUT = 2.0
#: While a call of a cancelled job waits in the runtime: how often to try to interrupt it.
INTERRUPT_RETRY = 0.1


class CancelledJobs:
    """The ids of cancelled jobs, and the jobs whose message is in the runtime right now."""

    def __init__(
        self,
        socket_path: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        retention: float = RETENTION_SECONDS,
    ) -> None:
        self._control_path = runtime_control_path(socket_path) if socket_path else None
        self._clock = clock
        self._retention = retention
        self._ids: dict[str, float] = {}
        self._in_runtime: dict[str, int] = {}
        self._interrupts: set[asyncio.Task[None]] = set()
        self.synced = asyncio.Event()  # the first list from the gateway has arrived

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, job_ids: Iterable[str]) -> None:
        """Learn of cancels; interrupt the runtime call of any of these jobs."""
        now = self._clock()
        for job_id in job_ids:
            if job_id in self._ids:
                continue
            self._ids[job_id] = now
            if self._in_runtime.get(job_id):
                task = asyncio.create_task(self._stop_calls(job_id), name=f"interrupt-{job_id}")
                self._interrupts.add(task)
                task.add_done_callback(self._interrupts.discard)
        horizon = now - self._retention
        if self._ids and next(iter(self._ids.values())) < horizon:
            self._ids = {key: at for key, at in self._ids.items() if at >= horizon}

    @contextlib.contextmanager
    def in_runtime(self, job_id: str | None) -> Iterator[None]:
        """Held around a runtime call, so a cancel arriving meanwhile interrupts it."""
        if job_id is None:
            yield
            return
        self._in_runtime[job_id] = self._in_runtime.get(job_id, 0) + 1
        try:
            yield
        finally:
            left = self._in_runtime[job_id] - 1
            if left:
                self._in_runtime[job_id] = left
            else:
                del self._in_runtime[job_id]

    async def _stop_calls(self, job_id: str) -> None:
        """Interrupt until no call of ``job_id`` is left in the runtime: a pipelined call that
        still waits behind another one is stopped as soon as its handler starts."""
        while job_id in self._in_runtime:
            interrupted = await self.interrupt(job_id)
            if interrupted is None:
                return  # no control socket: the call runs to its end, its results are dropped
            await asyncio.sleep(0 if interrupted else INTERRUPT_RETRY)

    async def interrupt(self, job_id: str) -> bool | None:
        """Ask the runtime to stop its call of ``job_id``: True when it did, False when no call
        of that job was in its handler, None when the runtime could not be asked."""
        if self._control_path is None:
            return None
        try:
            async with asyncio.timeout(CONTROL_TIMEOUT):
                interrupted = await interrupt_call(self._control_path, job_id)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            logger.warning("could not interrupt the runtime call of job %s: %s", job_id, exc)
            return None
        if interrupted:
            logger.info("job %s cancelled: its runtime call was interrupted", job_id)
        return interrupted


class CancellationFollower:
    """Follows ``GET /cancellations`` for as long as the sidecar runs, reconnecting forever."""

    def __init__(
        self,
        gateway_url: str,
        token: str | None,
        cancelled: CancelledJobs,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        endpoint = GatewayEndpoint(gateway_url, token, timeout=10.0)
        self._client = endpoint.async_client(transport)
        self._url = endpoint.base_url
        self._cancelled = cancelled
        self._lost = False  # the stream broke and has not come back yet
        #: Set once the first connection gave the list of recent cancels, or failed.
        self.first_try = asyncio.Event()

    async def run(self) -> None:
        """Forever (cancel to stop); never raises for the gateway being away."""
        backoff = Backoff(0.5, cap=10.0)
        try:
            while True:
                try:
                    await self._follow(backoff)
                    problem = "the gateway ended the stream"
                except (httpx.HTTPError, ValueError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if not self._lost:
                    logger.warning(
                        "cannot follow cancellations from %s (%s): processing goes on, but "
                        "messages of jobs cancelled meanwhile may still be processed; retrying",
                        self._url,
                        problem,
                    )
                self._lost = True
                self.first_try.set()
                await asyncio.sleep(backoff.next())
        finally:
            await self._client.aclose()

    async def _follow(self, backoff: Backoff) -> None:
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT)
        async with self._client.stream("GET", "/cancellations", timeout=timeout) as response:
            if response.status_code != 200:
                await response.aread()
                raise ValueError(f"HTTP {response.status_code}: {response.text[:200]}")
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "cancelled":
                    job_ids = json.loads(line[5:])["job_ids"]
                    self._cancelled.add(job_ids)
                    if self._lost or not self._cancelled.synced.is_set():
                        logger.info(
                            "following cancellations from %s (%d recent)", self._url, len(job_ids)
                        )
                    self._lost = False
                    self._cancelled.synced.set()
                    self.first_try.set()
                    backoff.reset()
                elif not line:
                    event = ""
