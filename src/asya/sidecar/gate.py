"""The runtime gate: whether messages may be handed to the runtime right now.

It closes when the runtime is found missing (connect failed) or is recovering from an abandoned
call (timeout), and also when the sidecar is stopping. The consumer pauses while it is closed
and reopens it once the runtime socket accepts connections again.
"""

from __future__ import annotations

import asyncio


class RuntimeGate:
    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._changed = asyncio.Event()
        self.stopping = False
        self.lost = False
        self.unreachable = False
        self.pause = 0.0

    @property
    def is_open(self) -> bool:
        return self._open.is_set() and not self.stopping

    def open(self) -> None:
        self.lost = False
        self.unreachable = False
        self.pause = 0.0
        self._open.set()
        self._wake()

    def lose(self, pause: float = 0.0, *, unreachable: bool = False) -> None:
        """The runtime is gone (``unreachable``) or recovering: close, and wait ``pause`` s
        before probing it again."""
        self._open.clear()
        self.lost = True
        self.unreachable = self.unreachable or unreachable
        self.pause = max(self.pause, pause)
        self._wake()

    def stop(self) -> None:
        self.stopping = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        """Wait for the next lose/open/stop."""
        await self._changed.wait()

    async def wait_open(self) -> bool:
        """Wait until the gate opens (True); False when the sidecar stops or the runtime is
        unreachable (a message should not be held while nobody can process it)."""
        while not self.is_open:
            if self.stopping or self.unreachable:
                return False
            await self.changed()
        return True
