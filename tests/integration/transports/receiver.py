"""Reading a subscription with deadlines, without ever cancelling a pending ``__anext__``."""

from __future__ import annotations

import asyncio

from asya.transports import IncomingMessage, Subscription


class Receiver:
    """Waits for deliveries with a timeout; a wait that times out keeps listening."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self._iterator = aiter(subscription)
        self._pending: asyncio.Future[IncomingMessage] | None = None

    def _next(self) -> asyncio.Future[IncomingMessage]:
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._iterator))
            # a wait left pending when the test ends must not log "never retrieved"
            self._pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        return self._pending

    async def get(self, within: float = 10.0) -> IncomingMessage:
        pending = self._next()
        done, _ = await asyncio.wait({pending}, timeout=within)
        if not done:
            raise AssertionError(f"no delivery within {within} s")
        self._pending = None
        return pending.result()

    async def get_many(self, count: int, within: float = 10.0) -> list[IncomingMessage]:
        return [await self.get(within) for _ in range(count)]

    async def assert_nothing_within(self, seconds: float) -> None:
        pending = self._next()
        done, _ = await asyncio.wait({pending}, timeout=seconds)
        if done:
            self._pending = None
            raise AssertionError(f"unexpected delivery: {pending.result().body!r}")

    async def ended(self, within: float = 10.0) -> bool:
        """True when iteration stops (StopAsyncIteration) within ``within`` seconds."""
        pending = self._next()
        done, _ = await asyncio.wait({pending}, timeout=within)
        if not done:
            return False
        self._pending = None
        return isinstance(pending.exception(), StopAsyncIteration)

    async def close(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
