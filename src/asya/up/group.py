"""The replicas of one actor: scaling them up and down, and the autoscaling loop.

Scale-out starts replicas at once. Scale-in picks idle replicas first (newest first) and drains
them in the background: they stop counting as replicas immediately, but their in-flight message
is finished and routed before their processes go. In-flight work is read from each sidecar's
``active_messages`` gauge, because queue depth counts only messages nobody holds yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from asya.transports.base import Transport
from asya.up.autoscale import Autoscaler
from asya.up.model import ActorConfig
from asya.up.replica import Replica, ReplicaSpec, RuntimeStartError
from asya.up.supervisor import Child, LogSink

logger = logging.getLogger("asya.up")


class ActorGroup:
    """Runs ``actor``'s replicas; ``make_spec(index)`` describes replica number ``index``."""

    def __init__(
        self,
        actor: ActorConfig,
        make_spec: Callable[[int], ReplicaSpec],
        sink: LogSink,
        on_change: Callable[[], None],
        metrics_namespace: str = "asya_actor",
    ) -> None:
        self.actor = actor
        self.make_spec = make_spec
        self.sink = sink
        self.on_change = on_change
        self.metrics_metric = f"{metrics_namespace}_active_messages"
        self.replicas: dict[int, Replica] = {}
        self.draining: dict[int, asyncio.Task[None]] = {}
        self.retiring: dict[int, Replica] = {}
        self.failed: str | None = None
        self.desired = actor.initial_replicas
        self.depth: int | None = None
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient(timeout=1.0)

    @property
    def name(self) -> str:
        return self.actor.name

    async def scale_to(self, count: int) -> None:
        """Run ``count`` replicas (not counting those still draining)."""
        async with self._lock:
            if self.failed is not None:
                return
            before = len(self.replicas)
            if count > before:
                await self._add(count - before)
            elif count < before:
                await self._remove(before - count)
            if len(self.replicas) != before:
                self.on_change()

    async def _add(self, how_many: int) -> None:
        taken = {*self.replicas, *self.draining}
        indexes = [i for i in range(1, len(taken) + how_many + 1) if i not in taken][:how_many]
        new = [(i, Replica(self.make_spec(i), self.sink, self.on_change)) for i in indexes]
        if not self.replicas and len(new) > 1:
            # Start one first: if the handler cannot load, say so once, not once per replica.
            if await self._start(*new[0]):
                await asyncio.gather(*(self._start(i, r) for i, r in new[1:]))
        else:
            await asyncio.gather(*(self._start(i, r) for i, r in new))
        if self.failed is not None:
            await self.stop()

    async def _start(self, index: int, replica: Replica) -> bool:
        self.replicas[index] = replica
        try:
            await replica.start()
            return True
        except RuntimeStartError as exc:
            self.replicas.pop(index, None)
            replica.runtime.kill_group()
            if self.failed is None:
                self.failed = str(exc)
                self.sink.say(
                    f"actor {self.name} is not running: handler {self.actor.handler!r} could "
                    f"not be loaded; {exc}\n  The other actors keep running. Fix the handler "
                    "and restart asya up.",
                    style="bold red",
                )
            return False

    async def _remove(self, how_many: int) -> None:
        busy = await self.in_flight()
        # Idle first (0), then unknown, then busy; newest first within each kind.
        order = sorted(
            self.replicas,
            key=lambda i: (0 if busy.get(i) == 0 else 2 if busy.get(i) else 1, -i),
        )
        for index in order[:how_many]:
            count = busy.get(index)
            in_flight = "unknown" if count is None else str(count)
            self.sink.say(
                f"{self.replicas[index].label}: draining ({in_flight} in flight), then stopping",
                style="cyan",
            )
            self._retire(index)

    def _retire(self, index: int) -> None:
        replica = self.replicas.pop(index)
        self.retiring[index] = replica
        self.draining[index] = asyncio.create_task(self._drain(index, replica))

    def children(self) -> list[Child]:
        """Every process of this actor, draining ones included."""
        found: list[Child] = []
        for replica in (*self.replicas.values(), *self.retiring.values()):
            found.append(replica.runtime)
            if replica.sidecar is not None:
                found.append(replica.sidecar)
        return found

    async def _drain(self, index: int, replica: Replica) -> None:
        try:
            await replica.stop()
        finally:
            self.draining.pop(index, None)
            self.retiring.pop(index, None)
            self.on_change()

    async def in_flight(self) -> dict[int, int | None]:
        """Messages each running replica is processing now (None: could not be read)."""
        indexes = list(self.replicas)
        counts = await asyncio.gather(*(self._active(self.replicas[i]) for i in indexes))
        return dict(zip(indexes, counts, strict=True))

    async def _active(self, replica: Replica) -> int | None:
        addr = replica.metrics_addr
        if not addr:
            return None
        host, _, port = addr.rpartition(":")
        try:
            response = await self._http.get(f"http://{host or '127.0.0.1'}:{port}/metrics")
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        total = 0.0
        for family in text_string_to_metric_families(response.text):
            if family.name == self.metrics_metric:
                total += sum(sample.value for sample in family.samples)
        return int(total)

    async def autoscale(self, transport: Transport) -> None:
        """Poll the queue depth and follow the scaling rule until cancelled."""
        rule = self.actor.scaling
        assert rule is not None
        scaler = Autoscaler(rule)
        while self.failed is None:
            try:
                depth = await transport.depth(self.name)
                busy = sum(n or 0 for n in (await self.in_flight()).values())
            except Exception as exc:  # a broker hiccup must not stop scaling for good
                logger.warning("autoscaler %s: cannot read queue depth: %s", self.name, exc)
                await asyncio.sleep(rule.polling_interval)
                continue
            current = len(self.replicas)
            target = scaler.target(time.monotonic(), current, depth, busy)
            changed = depth != self.depth or target != self.desired
            self.depth, self.desired = depth, target
            if target != current:
                verb = "scaling out" if target > current else "scaling in"
                self.sink.say(
                    f"{self.name}: {verb} {current} → {target} replicas "
                    f"(queue depth {depth}, in flight {busy})",
                    style="cyan",
                )
                await self.scale_to(target)
            elif changed:
                self.on_change()
            await asyncio.sleep(rule.polling_interval)

    async def stop(self) -> None:
        """Drain every replica (in parallel) and wait for all of them to be gone."""
        for index in list(self.replicas):
            self._retire(index)
        tasks = list(self.draining.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._http.aclose()
