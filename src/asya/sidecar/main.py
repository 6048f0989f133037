"""The sidecar process: composition root, consume loop and graceful shutdown.

``Sidecar(settings)`` builds the transport, runtime client, hooks and metrics server explicitly;
``run()`` declares the queues, waits for the runtime, consumes (pausing while the runtime is
away), and on ``stop()`` drains in-flight messages before closing. ``main()`` is ``asya sidecar``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from asya.backoff import Backoff
from asya.errors import BrokerRefused, ConfigError, StartupError, TransportError
from asya.logconfig import configure_logging
from asya.payloads import ClaimCheck, open_store
from asya.payloads.retention import sweep_forever
from asya.sidecar.cancellations import CancellationFollower, CancelledJobs
from asya.sidecar.gate import RuntimeGate
from asya.sidecar.hooks import Hook, Hooks, MetricsHook, ProgressHook
from asya.sidecar.message_log import MessageLogHook
from asya.sidecar.metrics import SidecarMetrics
from asya.sidecar.metrics_server import MetricsServer
from asya.sidecar.processor import TIMEOUT_RECOVERY_PAUSE, Processor
from asya.sidecar.progress_reporter import ProgressReporter
from asya.sidecar.runtime_client import RuntimeClient
from asya.sidecar.settings import SidecarSettings
from asya.sidecar.step_spans import StepSpanHook
from asya.tracing import setup_tracing
from asya.transports import Transport, open_transport, redact_url
from asya.transports.base import IncomingMessage, Subscription

logger = logging.getLogger("asya.sidecar")

STARTUP_ATTEMPTS_SECONDS = 60.0
#: How long the first consume waits for the gateway's list of cancelled jobs.
CANCELLATIONS_FIRST_WAIT = 3.0
EXIT_CONFIG = 2


class Sidecar:
    """One sidecar: consumes ``settings.queue_name`` and drives the runtime behind the socket."""

    def __init__(
        self,
        settings: SidecarSettings,
        transport: Transport | None = None,
        extra_hooks: tuple[Hook, ...] = (),
    ) -> None:
        self.settings = settings
        self.transport = transport or open_transport(
            settings.transport_url, exchange=settings.exchange
        )
        self.runtime = RuntimeClient(
            settings.socket_path, settings.runtime_timeout, recovery=TIMEOUT_RECOVERY_PAUSE
        )
        self.gate = RuntimeGate()
        try:
            self.metrics = SidecarMetrics(
                settings.metrics_namespace,
                queue=settings.queue_name,
                transport=self.transport.name,
                custom=settings.custom_metrics,
            )
        except ValueError as exc:  # a custom metric clashing with a built-in one
            raise ConfigError("ASYA_CUSTOM_METRICS", str(exc)) from exc
        self.reporter: ProgressReporter | None = None
        hooks: list[Hook] = [MetricsHook(self.metrics, time.monotonic)]
        tracing = setup_tracing("asya-sidecar")
        if tracing is not None:  # first, so that the other hooks see the step's trace
            hooks.insert(0, StepSpanHook(tracing, settings.queue_name, time.monotonic))
        hooks.append(MessageLogHook(settings.queue_name, time.monotonic))
        if settings.gateway_url and not settings.is_terminal:
            self.reporter = ProgressReporter(
                settings.gateway_url, settings.name, token=settings.gateway_token
            )
            hooks.append(ProgressHook(self.reporter, settings.name, time.monotonic))
        hooks.extend(extra_hooks)
        self.cancelled = CancelledJobs(settings.socket_path)
        self.follower: CancellationFollower | None = None
        if settings.gateway_url:
            self.follower = CancellationFollower(
                settings.gateway_url, settings.gateway_token, self.cancelled
            )
        self.processor = Processor(
            settings,
            self.transport,
            self.runtime,
            self.gate,
            Hooks(hooks),
            cancelled=self.cancelled,
            claim_check=(
                ClaimCheck(
                    open_store(settings.payload_store_url), settings.payload_offload_threshold
                )
                if settings.payload_store_url
                else None
            ),
        )
        self.metrics_server: MetricsServer | None = None
        if settings.metrics_enabled:
            self.metrics_server = MetricsServer(
                settings.metrics_host, settings.metrics_port, self.metrics.exposition
            )
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._stopped = asyncio.Event()
        self.ready = asyncio.Event()  # set once consuming for the first time (tests, probes)

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Begin a graceful shutdown (safe to call from a signal handler, more than once)."""
        if not self.gate.stopping:
            logger.info("stopping: no new messages, draining %d in flight", len(self._in_flight))
        self.gate.stop()
        self._stopped.set()

    async def run(self) -> None:
        if self.metrics_server is not None:
            try:
                await self.metrics_server.start()
            except OSError as exc:
                where = f"{self.settings.metrics_host or '*'}:{self.settings.metrics_port}"
                raise StartupError(
                    f"cannot serve metrics on {where}: {exc.strerror or exc} "
                    "(set ASYA_METRICS_ADDR to a free address, or ASYA_METRICS_ENABLED=false)"
                ) from exc
        follower = self._start_follower()
        payload_sweeper = self._start_payload_sweeper()
        try:
            await self._start_transport()
            await self._await_cancellations()
            await self._consume_loop()
            await self._drain()
        finally:
            if follower is not None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)
            if payload_sweeper is not None:
                payload_sweeper.cancel()
                await asyncio.gather(payload_sweeper, return_exceptions=True)
            await self._close()

    def _start_payload_sweeper(self) -> asyncio.Task[None] | None:
        """Terminal actors of a mesh without a gateway delete expired offloaded payloads; with
        a gateway, the gateway does, knowing when each job ended (asya.payloads.retention)."""
        claim_check = self.processor.claim_check
        if claim_check is None or not self.settings.is_terminal or self.settings.gateway_url:
            return None
        return asyncio.create_task(
            sweep_forever(claim_check.store, self.settings.payload_retention),
            name="payload-retention",
        )

    def _start_follower(self) -> asyncio.Task[None] | None:
        """The guarded task following the gateway's cancellations (none without a gateway)."""
        if self.follower is None:
            return None
        task = asyncio.create_task(self.follower.run(), name="cancellation-follower")

        def done(finished: asyncio.Task[None]) -> None:
            if finished.cancelled():
                return
            logger.critical("cancellation follower stopped unexpectedly: %r", finished.exception())
            self.stop()

        task.add_done_callback(done)
        return task

    async def _await_cancellations(self) -> None:
        """A sidecar starting after a cancel must know it before its first message: wait a
        little for the gateway's list (and go on without it: best effort)."""
        if self.follower is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.follower.first_try.wait(), CANCELLATIONS_FIRST_WAIT)

    async def _start_transport(self) -> None:
        """Connect and declare every queue, retrying while the broker is starting."""
        queues = self.settings.own_queues
        deadline = time.monotonic() + STARTUP_ATTEMPTS_SECONDS
        backoff = Backoff(0.5, cap=5.0)
        while True:
            try:
                await self.transport.connect()
                for queue in queues:
                    await self.transport.declare_queue(queue)
                break
            except BrokerRefused:
                raise
            except TransportError as exc:
                delay = backoff.next()
                if time.monotonic() + delay > deadline or self.gate.stopping:
                    raise
                logger.warning("broker not ready (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
        logger.info(
            "declared %s on %s (exchange %s)",
            ", ".join(queues),
            redact_url(self.settings.transport_url),
            self.settings.exchange,
        )

    async def _wait(self, coro: Coroutine[Any, Any, None]) -> bool:
        """Run ``coro`` unless stop() comes first; True when it completed."""
        awaitable: asyncio.Future[Any] = asyncio.ensure_future(coro)
        stop: asyncio.Future[Any] = asyncio.ensure_future(self._stopped.wait())
        try:
            done, _ = await asyncio.wait({awaitable, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not awaitable.done():
                awaitable.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await awaitable
        return awaitable in done and not awaitable.cancelled()

    async def _consume_loop(self) -> None:
        while not self.gate.stopping:
            pause = self.gate.pause
            if pause > 0:
                logger.info("pausing %.1f s for the runtime to recover", pause)
                if not await self._wait(asyncio.sleep(pause)):
                    break
            if not await self.runtime.probe():
                logger.info("runtime socket %s not accepting; waiting", self.settings.socket_path)
                if not await self._wait(self.runtime.wait_ready()):
                    break
                logger.info("runtime is ready")
            self.gate.open()
            try:
                subscription = await self.transport.consume(
                    self.settings.queue_name, prefetch=self.settings.prefetch
                )
            except TransportError as exc:
                logger.warning("cannot consume %s (%s); retrying", self.settings.queue_name, exc)
                await self._wait(asyncio.sleep(1.0))
                continue
            logger.info(
                "consuming %s (prefetch %d)", self.settings.queue_name, self.settings.prefetch
            )
            self.ready.set()
            await self._consume(subscription)

    async def _consume(self, subscription: Subscription) -> None:
        """Process deliveries until the runtime is lost or we stop."""
        watcher = asyncio.create_task(self._cancel_when_closed(subscription), name="gate-watcher")
        try:
            await subscription.serve(self._handle)
        except TransportError as exc:
            logger.warning("consumer of %s ended: %s", self.settings.queue_name, exc)
            await self._wait(asyncio.sleep(1.0))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            with contextlib.suppress(Exception):
                await subscription.cancel()

    async def _handle(self, delivery: IncomingMessage) -> None:
        """One delivery, in the task the transport runs it in (tracked for the drain)."""
        if not self.gate.is_open:
            await _requeue(delivery)
            return
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            await self.processor.handle(delivery)
        except Exception:
            logger.exception("message task failed")
        finally:
            self._in_flight.discard(task)

    async def _cancel_when_closed(self, subscription: Subscription) -> None:
        """Guarded background task: cancel the consumer as soon as the gate closes."""
        while self.gate.is_open:
            await self.gate.changed()
        if self.gate.unreachable and not self.gate.stopping:
            logger.warning("runtime unavailable: consuming paused")
        elif self.gate.lost and not self.gate.stopping:
            logger.warning("runtime recovering from an abandoned call: consuming paused")
        try:
            await subscription.cancel()
        except TransportError as exc:  # the broker connection is gone: nothing left to cancel
            logger.warning("could not cancel the consumer: %s", exc)
        except Exception:  # never let it end the consume loop: _consume cancels again anyway
            logger.exception("could not cancel the consumer")

    async def _drain(self) -> None:
        if not self._in_flight:
            return
        grace = self.settings.runtime_timeout + 1.0
        logger.info("waiting up to %.0f s for %d message(s)", grace, len(self._in_flight))
        _, pending = await asyncio.wait(set(self._in_flight), timeout=grace)
        for task in pending:
            task.cancel()  # settling() nacks them with requeue
        if pending:
            await asyncio.wait(pending, timeout=5.0)

    async def _close(self) -> None:
        for closer in (
            self.transport.close,
            self.runtime.aclose,
            self.reporter.aclose if self.reporter else None,
            self.metrics_server.close if self.metrics_server else None,
        ):
            if closer is None:
                continue
            try:
                await closer()
            except Exception:
                logger.exception("error while closing")


async def _requeue(delivery: IncomingMessage) -> None:
    try:
        await delivery.nack(requeue=True)
    except Exception:
        logger.exception("could not requeue a delivery")


async def serve(settings: SidecarSettings) -> int:
    """Run a sidecar until SIGTERM/SIGINT; the process exit code."""
    sidecar = Sidecar(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, sidecar.stop)
    runner = asyncio.create_task(sidecar.run(), name="sidecar")
    try:
        await runner
    except TransportError as exc:
        print(f"asya sidecar: broker unavailable: {exc}", file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"asya sidecar: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:
        logger.exception("the sidecar stopped unexpectedly")
        return 1
    logger.info("sidecar stopped")
    return 0


def main(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    configure_logging("sidecar", env)
    try:
        settings = SidecarSettings.from_env(env)
    except ConfigError as exc:
        print(f"asya sidecar: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logger.info(
        "sidecar for %s: runtime %s, timeout %.1f s, prefetch %d%s",
        settings.queue_name,
        settings.socket_path,
        settings.runtime_timeout,
        settings.prefetch,
        ", terminal" if settings.is_terminal else "",
    )
    try:
        return asyncio.run(serve(settings))
    except ConfigError as exc:
        print(f"asya sidecar: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:  # e.g. the metrics port is taken
        print(f"asya sidecar: {exc}", file=sys.stderr)
        return 1
