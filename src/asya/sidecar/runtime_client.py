"""Calling the runtime over its Unix socket: one request, one response, on kept connections.

The three ways a call can fail mean different things to the sidecar, so each has its own
exception: the runtime is not there at all (``RuntimeUnavailable``: requeue the message and wait),
it did not answer in time (``RuntimeTimeout``: error-end), or it went away in the middle of the
call (``RuntimeCrashed``: a recoverable error, retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket

from asya.runtime import FRAME_HEADER, control_path, pack_frame

logger = logging.getLogger(__name__)

#: A response announcing more bytes than this is treated as a broken runtime.
MAX_RESPONSE_SIZE = 1 << 30
#: Calls in flight at once: one being served, one waiting in the runtime's backlog.
PIPELINE_DEPTH = 2
READ_SIZE = 65536
#: New connections one call may try when the runtime keeps closing them with the request
#: unread (its worker dying on other calls) before the call counts as crashed.
MAX_RESENDS = 3


class RuntimeCallError(Exception):
    """Base of the runtime call failures."""


class RuntimeUnavailable(RuntimeCallError):
    """The connection could not be opened: no runtime is listening."""


class RuntimeTimeout(RuntimeCallError):
    """The runtime did not answer within the timeout."""


class RuntimeCrashed(RuntimeCallError):
    """The connection broke before a whole response frame arrived."""

    def __init__(self, message: str, received: int = 0) -> None:
        super().__init__(message)
        self.received = received  # response bytes that did arrive


class _RequestDropped(Exception):
    """The runtime closed the connection with the request unread: the handler never saw it.

    Linux tells this apart from a runtime that read the request and died on it: writing to a
    closed connection fails with EPIPE, and a peer closing with unread data leaves the reader
    ECONNRESET instead of an orderly end of stream.
    """


def _incomplete(received: int) -> RuntimeCrashed:
    return RuntimeCrashed(
        f"the runtime closed the connection after {received} bytes without a complete response",
        received,
    )


class _Connection:
    """One kept connection to the runtime, read by a reader registered once for its life.

    (``loop.sock_recv`` per call would register and unregister the socket with the selector
    for every response: two ``epoll_ctl`` calls and their bookkeeping per message.) What the
    runtime sends is kept until a call asks for it with ``expect``; a connection the runtime
    closed or broke is no longer ``alive`` and is never reused.
    """

    __slots__ = ("_buffer", "_ended", "_loop", "alive", "sock", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._loop = loop
        self.sock = sock
        self.alive = True
        self._buffer = bytearray()
        self._ended: Exception | None = None  # why reading stopped
        self.waiter: asyncio.Future[bytes] | None = None
        loop.add_reader(sock.fileno(), self._readable)

    def expect(self) -> asyncio.Future[bytes]:
        """The future of the next response frame's body (the request is sent)."""
        self.waiter = self._loop.create_future()
        self._deliver()
        return self.waiter

    def _readable(self) -> None:
        try:
            # a large response is read in large pieces (up to 1 MiB)
            chunk = self.sock.recv(max(READ_SIZE, min(self._missing(), 1 << 20)))
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError as exc:
            if self._buffer:
                message = f"the connection to the runtime broke: {exc}"
                self._end(RuntimeCrashed(message, len(self._buffer)))
            else:  # the runtime closed it with our request unread
                self._end(_RequestDropped(str(exc)))
            return
        except OSError as exc:
            self._end(RuntimeCrashed(f"the connection to the runtime broke: {exc}"))
            return
        if not chunk:
            self._end(_incomplete(len(self._buffer)))
            return
        self._buffer += chunk
        self._deliver()

    def _missing(self) -> int:
        """Bytes of the frame being received that have not arrived yet (0: unknown)."""
        if len(self._buffer) < FRAME_HEADER.size:
            return 0
        length: int = FRAME_HEADER.unpack_from(self._buffer)[0]
        return FRAME_HEADER.size + length - len(self._buffer)

    def _deliver(self) -> None:
        """Settle the waiter with a whole frame, or with why none will come."""
        waiter = self.waiter
        if waiter is None:
            return
        buffer = self._buffer
        header_size = FRAME_HEADER.size
        if len(buffer) >= header_size:
            (length,) = FRAME_HEADER.unpack_from(buffer)
            if length > MAX_RESPONSE_SIZE:
                message = f"runtime announced a {length}-byte response"
                self._end(RuntimeCrashed(message, len(buffer)))
                return
            end = header_size + length
            if len(buffer) >= end:
                self.waiter = None
                if len(buffer) > end:  # more than one response to one request: not reused
                    self._stop_reading()
                body = bytes(buffer[header_size:end])
                del buffer[:end]
                if not waiter.done():
                    waiter.set_result(body)
                return
        if self._ended is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_exception(self._ended)

    def _end(self, error: Exception) -> None:
        self._ended = error
        self._stop_reading()
        self._deliver()

    def _stop_reading(self) -> None:
        if self.alive:
            self.alive = False
            self._loop.remove_reader(self.sock.fileno())

    def close(self) -> None:
        self._stop_reading()
        self.sock.close()


class RuntimeClient:
    """Speaks the framing of docs/reference/runtime-protocol.md#framing to the runtime listening on
    ``socket_path``.

    The runtime serves one request after another. Calls made inside ``slot()`` are pipelined
    ``PIPELINE_DEPTH`` deep: the next request is already sent (it waits in the runtime) while
    the current one runs, so the runtime never idles between messages. A call's timeout starts
    only when the call ahead of it has ended, so it measures the message's own time in the
    runtime, never the wait behind another one; after a call ahead timed out or crashed, the
    next one is also given the runtime's recovery time.

    Connections are kept: a call takes an idle one (one per pipelined call is all it takes) and
    gives it back after a whole response. A connection whose call timed out or broke is closed,
    never reused. A request the runtime dropped unread -- an idle connection it closed (the
    original runtime closes each after one request; a replaced worker takes its connections
    with it), or one left waiting behind a call whose worker died -- is sent again on a new
    connection, so it meets the fresh worker exactly as a request waiting in the backlog does.
    """

    def __init__(self, socket_path: str, timeout: float, recovery: float = 2.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.recovery = recovery
        self._slots = asyncio.Semaphore(PIPELINE_DEPTH)
        self._last: asyncio.Future[bool] | None = None  # the latest call; result: it failed
        self._idle: list[_Connection] = []  # open connections with no call on them

    def slot(self) -> asyncio.Semaphore:
        """``async with client.slot():`` waits for room in the pipeline (the caller may still
        decide not to call)."""
        return self._slots

    async def call(self, body: bytes) -> bytes:
        """Send ``body`` as one frame and return the response frame's bytes."""
        loop = asyncio.get_running_loop()
        ahead, self._last = self._last, loop.create_future()
        mine = self._last
        failed = True
        frame = pack_frame(body)
        connection: _Connection | None = None
        try:
            connection = await self._send_request(loop, frame)
            response = connection.expect()
            try:
                budget = self.timeout
                if ahead is not None:
                    if not ahead.done():
                        await asyncio.shield(ahead)  # the runtime is still busy with that one
                    if ahead.result():
                        budget += self.recovery
                deadline = loop.time() + budget
                resends = 0
                while True:
                    try:
                        answer = await _within(loop, response, deadline)
                        break
                    except _RequestDropped as exc:
                        connection.close()
                        connection = None
                        resends += 1
                        if resends > MAX_RESENDS:
                            raise RuntimeCrashed(f"the runtime dropped the request: {exc}") from exc
                        connection = await self._send_request(loop, frame, reuse=False)
                        response = connection.expect()
            except RuntimeCrashed as exc:
                if exc.received == 0 and not await self.probe():
                    # Closed unanswered and nobody listens any more: the runtime stopped (its
                    # backlog is dropped on shutdown), it did not fail on this message.
                    raise RuntimeUnavailable(f"the runtime went away: {exc}") from exc
                raise
            failed = False
            self._release(connection)
            connection = None
            return answer
        except TimeoutError as exc:
            raise RuntimeTimeout(f"no response within {self.timeout} s") from exc
        finally:
            if connection is not None:
                connection.close()
            if not mine.done():
                mine.set_result(failed)

    async def _send_request(
        self, loop: asyncio.AbstractEventLoop, frame: bytes, reuse: bool = True
    ) -> _Connection:
        """A connection with ``frame`` sent on it: an idle one the runtime still holds open,
        else a new one."""
        while reuse and self._idle:
            connection = self._idle.pop()
            if not connection.alive:
                continue  # the runtime closed it while it was idle
            try:
                await self._send(loop, connection.sock, frame)
            except _RequestDropped:
                connection.close()  # closed by the runtime, and we had not read that yet
                continue
            except BaseException:
                connection.close()
                raise
            return connection
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await self._connect(loop, sock)
            await self._send(loop, sock, frame)
        except _RequestDropped as exc:
            sock.close()
            raise RuntimeCrashed(f"the connection to the runtime broke: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return _Connection(loop, sock)

    def _release(self, connection: _Connection) -> None:
        if connection.alive and len(self._idle) < PIPELINE_DEPTH:
            self._idle.append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        """Close the idle connections (a call in flight closes its own when it ends)."""
        while self._idle:
            self._idle.pop().close()

    async def _connect(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        # A local socket accepts at once unless its backlog is full: try that first, without
        # the future and timer of loop.sock_connect.
        try:
            try:
                sock.connect(self.socket_path)
            except BlockingIOError:
                async with asyncio.timeout(self.timeout):
                    await loop.sock_connect(sock, self.socket_path)
        except OSError as exc:
            raise RuntimeUnavailable(
                f"cannot connect to the runtime at {self.socket_path}: {exc}"
            ) from exc

    @staticmethod
    async def _send(loop: asyncio.AbstractEventLoop, sock: socket.socket, frame: bytes) -> None:
        try:
            try:
                sent = sock.send(frame)  # a small frame usually fits the socket buffer at once
            except BlockingIOError:
                sent = 0
            if sent < len(frame):
                await loop.sock_sendall(sock, memoryview(frame)[sent:])
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _RequestDropped(str(exc)) from exc
        except OSError as exc:
            raise RuntimeCrashed(f"the connection to the runtime broke: {exc}") from exc

    async def probe(self) -> bool:
        """True when the socket accepts a connection (closed at once: a readiness probe)."""
        try:
            # Not wait_for: on Python 3.11 it swallows a cancel that arrives as the connection
            # fails, and a sidecar stopped while its runtime is gone would keep waiting for it.
            async with asyncio.timeout(2.0):
                _, writer = await asyncio.open_unix_connection(self.socket_path)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True

    async def wait_ready(self, interval: float = 0.1, log_every: float = 10.0) -> None:
        """Return once the runtime accepts connections; logs while it keeps waiting."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        next_log = started + 1.0
        while not await self.probe():
            now = loop.time()
            if now >= next_log:
                logger.info(
                    "waiting for the runtime socket %s (%.0f s so far)",
                    self.socket_path,
                    now - started,
                )
                next_log = now + log_every
            await asyncio.sleep(interval)


async def _within(
    loop: asyncio.AbstractEventLoop, response: asyncio.Future[bytes], deadline: float
) -> bytes:
    """``await response``, failing with TimeoutError at ``deadline`` (loop time). A plain
    timer on the future: cheaper per call than ``asyncio.timeout``, and none at all for a
    response that arrived while its call waited for the one ahead."""
    if response.done():
        return response.result()
    timer = loop.call_at(deadline, _expire, response)
    try:
        return await response
    finally:
        timer.cancel()


def _expire(response: asyncio.Future[bytes]) -> None:
    if not response.done():
        response.set_exception(TimeoutError())


def runtime_control_path(socket_path: str) -> str | None:
    """The runtime's control socket beside ``socket_path`` (None where the path is too long)."""
    return control_path(socket_path)


async def interrupt_call(control: str, job_id: str) -> bool:
    """Ask the runtime on control socket ``control`` to stop its handler call of ``job_id``
    (docs/reference/runtime-protocol.md#control-socket): True when it did, False when no call of
    that job was in its handler. Raises OSError, ValueError or asyncio.IncompleteReadError."""
    reader, writer = await asyncio.open_unix_connection(control)
    try:
        writer.write(pack_frame(json.dumps({"interrupt": job_id}).encode()))
        await writer.drain()
        (length,) = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
        answer = json.loads(await reader.readexactly(length))
    finally:
        writer.close()
    return isinstance(answer, dict) and answer.get("interrupted") is True
