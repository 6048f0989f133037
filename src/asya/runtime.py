"""Asya actor runtime: serves one user handler behind a Unix socket.

This file is deliberately a single module that imports only the standard library: the
Kubernetes operator mounts it into arbitrary user images (``python /opt/asya/asya_runtime.py``)
that may contain nothing but a Python interpreter. ``asya runtime``, ``python -m asya.runtime``
and ``python runtime.py`` are the same program, configured only by ``ASYA_*`` variables.

The process is a small supervisor around one serving worker. The supervisor (parent) holds the
listening socket and never imports the handler; the worker (a forked child) imports the handler,
accepts connections and answers them. When a worker dies -- abandoned after
``ASYA_RUNTIME_TIMEOUT``, killed for memory, crashed in C code -- the parent starts a fresh one
while new connections wait in the socket's backlog, so a bad message never restarts the
container and the next message always meets clean state.

Layout, top to bottom: configuration, logging, framing, validation, handler loading, request
handling, worker, supervisor, ``main``.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import mmap
import os
import re
import select
import signal
import socket
import stat
import struct
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from typing import Any, NamedTuple

logger = logging.getLogger("asya.runtime")

# ---------------------------------------------------------------------------------------------
# Configuration parsing (shared with the other Asya processes, which import these helpers)
# ---------------------------------------------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_bool(value: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` in any case; ValueError otherwise."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true/false, 1/0, yes/no or on/off, got {value!r}")


def parse_duration(value: str) -> float:
    """A Go-style duration (``300ms``, ``1m30s``, ``5m``) or a bare number of seconds."""
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    try:
        seconds = float(text)
    except ValueError:
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text):
            raise ValueError(
                f"invalid duration {value!r}: use a number of seconds or Go syntax like 5s, 1m30s"
            ) from None
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"invalid duration {value!r}: must be a non-negative number")
    return seconds


def parse_octal_mode(value: str) -> int:
    """A file mode in octal: ``660``, ``0660`` and ``0o660`` are the same."""
    text = value.strip().lower()
    if text.startswith("0o"):
        text = text[2:]
    if not text or any(ch not in "01234567" for ch in text):
        raise ValueError(f"invalid octal mode {value!r}")
    mode = int(text, 8)
    if mode > 0o7777:
        raise ValueError(f"invalid octal mode {value!r}: larger than 0o7777")
    return mode


def env_value(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value, with an empty string treated as unset."""
    value = environ.get(name)
    return value if value else None


DEFAULT_SOCKET_PATH = "/tmp/sockets/app.sock"
DEFAULT_SOCKET_CHMOD = 0o660
DEFAULT_CHUNK_SIZE = 65536
DEFAULT_MAX_MESSAGE_SIZE = 104857600
# Longest path a Unix socket address holds on Linux (sun_path is 108 bytes, NUL included).
MAX_SOCKET_PATH_BYTES = 107
_MODES = {"payload": "payload", "message": "message", "envelope": "message"}


class RuntimeConfigError(ValueError):
    """A bad ``ASYA_*`` value: the runtime exits 1 naming ``variable``."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class RuntimeConfig(NamedTuple):
    """Everything the runtime reads from its environment, parsed once at start."""

    handler: str
    mode: str = "payload"
    socket_path: str = DEFAULT_SOCKET_PATH
    socket_chmod: int | None = DEFAULT_SOCKET_CHMOD
    validation: bool = True
    timeout: float | None = None
    oom_detection: bool = True
    cuda_cleanup: bool = True
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RuntimeConfig:
        """Parse the variables (docs/reference/runtime-protocol.md#environment); RuntimeConfigError
        names the first bad one."""
        handler = env_value(environ, "ASYA_HANDLER")
        if handler is None:
            raise RuntimeConfigError(
                "ASYA_HANDLER",
                "is required: name the handler as module.function or module.Class.method",
            )
        problem = handler_spec_problem(handler)
        if problem:
            raise RuntimeConfigError("ASYA_HANDLER", problem)
        timeout = _parsed(environ, "ASYA_RUNTIME_TIMEOUT", parse_duration, None)
        return cls(
            handler=handler,
            mode=_handler_mode(environ),
            socket_path=_socket_path(environ),
            socket_chmod=_socket_chmod(environ),
            validation=_parsed(environ, "ASYA_ENABLE_VALIDATION", parse_bool, True),
            timeout=timeout or None,  # 0 means "no limit", like an unset variable
            oom_detection=_parsed(environ, "ASYA_ENABLE_OOM_DETECTION", parse_bool, True),
            cuda_cleanup=_parsed(environ, "ASYA_CUDA_CLEANUP_ON_OOM", parse_bool, True),
            chunk_size=_parsed(environ, "ASYA_CHUNK_SIZE", _positive_int, DEFAULT_CHUNK_SIZE),
            max_message_size=_parsed(
                environ, "ASYA_MAX_MESSAGE_SIZE", _positive_int, DEFAULT_MAX_MESSAGE_SIZE
            ),
        )


def handler_spec_problem(spec: str) -> str | None:
    """Why ``spec`` is not ``module.function`` / ``module.Class.method`` (None when it is).

    Only dotted Python identifiers pass, so nothing but an import path ever reaches importlib.
    """
    parts = spec.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        return (
            f"{spec!r} is not a dotted Python path: use module.function or"
            " module.Class.method (letters, digits, underscores and dots only)"
        )
    return None


def _parsed(
    environ: Mapping[str, str], name: str, parse: Callable[[str], Any], default: Any
) -> Any:
    raw = env_value(environ, name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise RuntimeConfigError(name, str(exc)) from None


def _positive_int(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError(f"expected a positive integer, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number


def _handler_mode(environ: Mapping[str, str]) -> str:
    """``ASYA_HANDLER_MODE`` wins over its alias ``ASYA_HANDLER_ARG_TYPE``; both must be valid."""
    chosen: dict[str, str] = {}
    for name in ("ASYA_HANDLER_MODE", "ASYA_HANDLER_ARG_TYPE"):
        raw = env_value(environ, name)
        if raw is None:
            continue
        mode = _MODES.get(raw.strip().lower())
        if mode is None:
            raise RuntimeConfigError(
                name, f"expected payload or message (or envelope), got {raw!r}"
            )
        chosen[name] = mode
    if len(set(chosen.values())) > 1:
        logger.warning(
            "ASYA_HANDLER_MODE=%s and ASYA_HANDLER_ARG_TYPE=%s disagree; using ASYA_HANDLER_MODE",
            environ["ASYA_HANDLER_MODE"],
            environ["ASYA_HANDLER_ARG_TYPE"],
        )
    return chosen.get("ASYA_HANDLER_MODE") or chosen.get("ASYA_HANDLER_ARG_TYPE") or "payload"


def _socket_chmod(environ: Mapping[str, str]) -> int | None:
    """An empty ``ASYA_SOCKET_CHMOD`` means "leave the mode as is" (unlike other variables)."""
    if environ.get("ASYA_SOCKET_CHMOD") == "":
        return None
    return int(_parsed(environ, "ASYA_SOCKET_CHMOD", parse_octal_mode, DEFAULT_SOCKET_CHMOD))


def _socket_path(environ: Mapping[str, str]) -> str:
    path = env_value(environ, "ASYA_SOCKET_PATH") or DEFAULT_SOCKET_PATH
    absolute = os.path.abspath(path)
    if len(os.fsencode(absolute)) > MAX_SOCKET_PATH_BYTES:
        raise RuntimeConfigError(
            "ASYA_SOCKET_PATH", f"{absolute!r} is longer than {MAX_SOCKET_PATH_BYTES} bytes"
        )
    return absolute


# ---------------------------------------------------------------------------------------------
# Logging: the runtime configures its own (it cannot import asya.logconfig)
# ---------------------------------------------------------------------------------------------

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


_STANDARD_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with the same keys as the other Asya processes."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}+00:00",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():  # ``extra=`` fields become keys
            if key not in _STANDARD_RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(environ: Mapping[str, str]) -> None:
    """Honour ``ASYA_LOG_LEVEL`` (default INFO) and ``ASYA_LOG_FORMAT=json`` on stderr."""
    level = (environ.get("ASYA_LOG_LEVEL") or "INFO").strip().upper()
    handler = logging.StreamHandler(sys.stderr)
    if (environ.get("ASYA_LOG_FORMAT") or "").strip().lower() == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s runtime[%(process)d] %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level in _LEVELS else "INFO")
    if level not in _LEVELS:
        logger.warning("ASYA_LOG_LEVEL=%r is not one of %s; using INFO", level, _LEVELS)


# ---------------------------------------------------------------------------------------------
# Framing: a 4-byte big-endian length, then that many bytes of UTF-8 JSON
# ---------------------------------------------------------------------------------------------

FRAME_HEADER = struct.Struct(">I")
# A client that stops sending in the middle of a frame is dropped after this many seconds.
CLIENT_READ_TIMEOUT = 60.0


def pack_frame(body: bytes) -> bytes:
    """Prefix ``body`` with its length."""
    return FRAME_HEADER.pack(len(body)) + body


class FrameTooLargeError(ValueError):
    """The frame announces more bytes than ``ASYA_MAX_MESSAGE_SIZE`` (its body is never read)."""


class IncompleteFrameError(ConnectionError):
    """The client went away or went silent in the middle of a frame."""


def read_frame(
    conn: socket.socket,
    max_size: int,
    chunk_size: int,
    timeout: float = CLIENT_READ_TIMEOUT,
    unread: bytearray | None = None,
) -> bytes | bytearray | None:
    """One frame's body; None when the peer closed before sending anything (a probe).

    The first read does not wait (a sidecar sends its request as soon as it connects) and takes
    up to ``chunk_size`` bytes, which holds a whole small request: the common case costs one
    system call. A larger body goes straight into one preallocated buffer, ``chunk_size`` bytes
    per read. Once the socket has to wait, each read waits at most ``timeout`` seconds.

    ``unread`` is the connection's buffer of bytes received past the previous frame (a client
    that sends its next request before reading the answer): they are read first, and bytes
    received past this frame are left there. Without it, such bytes are dropped.
    """
    try:
        if unread:
            first = bytes(unread)
            unread.clear()
        else:
            try:
                first = conn.recv(chunk_size, socket.MSG_DONTWAIT)
            except BlockingIOError:
                first = _waiting(conn, timeout).recv(chunk_size)
            except ConnectionResetError:  # gone, our last response unread: nothing was sent
                return None
            if not first:
                return None
        while len(first) < FRAME_HEADER.size:
            more = _waiting(conn, timeout).recv(chunk_size)
            if not more:
                raise IncompleteFrameError(
                    f"client closed the connection after {len(first)} of 4 header bytes"
                )
            first += more
        (length,) = FRAME_HEADER.unpack_from(first)
        if length > max_size:
            raise FrameTooLargeError(
                f"frame of {length} bytes is larger than ASYA_MAX_MESSAGE_SIZE ({max_size})"
            )
        have = len(first) - FRAME_HEADER.size
        if have >= length:
            end = FRAME_HEADER.size + length
            if unread is not None:
                unread += first[end:]
            return first[FRAME_HEADER.size : end]
        body = bytearray(length)
        view = memoryview(body)
        view[:have] = first[FRAME_HEADER.size :]
        _waiting(conn, timeout)
        while have < length:
            received = conn.recv_into(view[have:], min(chunk_size, length - have))
            if not received:
                raise IncompleteFrameError(
                    f"client closed the connection after {have} of {length} body bytes"
                )
            have += received
        return body
    except TimeoutError:
        raise IncompleteFrameError(
            f"client sent nothing for {conn.gettimeout():g} s in the middle of a frame"
        ) from None


def send_frame(conn: socket.socket, body: bytes, timeout: float = CLIENT_READ_TIMEOUT) -> None:
    """Send ``body`` as one frame: without waiting when it fits the socket buffer (the common
    case, one system call), else waiting at most ``timeout`` seconds per write."""
    if len(body) > _COPY_LIMIT:  # large: no copy of the body just to prefix its length
        sock = _waiting(conn, timeout)
        sock.sendall(FRAME_HEADER.pack(len(body)))
        sock.sendall(body)
        return
    frame = pack_frame(body)
    try:
        sent = conn.send(frame, socket.MSG_DONTWAIT)
    except BlockingIOError:
        sent = 0
    if sent < len(frame):
        _waiting(conn, timeout).sendall(memoryview(frame)[sent:])


_COPY_LIMIT = 1 << 18


def _waiting(conn: socket.socket, timeout: float) -> socket.socket:
    """``conn``, switched to waiting at most ``timeout`` per operation unless it already has a
    timeout of its own."""
    if conn.gettimeout() is None:
        conn.settimeout(timeout)
    return conn


# ---------------------------------------------------------------------------------------------
# Validation (docs/reference/runtime-protocol.md#validation); the sidecar imports
# validate_request to judge messages the same way
# ---------------------------------------------------------------------------------------------

ROUTE_REWRITE_MESSAGE = "an actor cannot rewrite the route behind it"


def validate_request(message: object) -> str | None:
    """None when ``message`` is a valid request, else what is wrong with it."""
    if not isinstance(message, dict):
        return f"message must be a JSON object, got {_json_type(message)}"
    if "payload" not in message:
        return "message has no 'payload' field"
    return route_problem(message.get("route"))


def route_problem(route: object) -> str | None:
    """None when ``route`` has a list of non-empty string steps and an in-range ``current``."""
    if not isinstance(route, dict):
        return "message has no 'route' object" if route is None else "'route' must be an object"
    steps = route.get("steps")
    if not isinstance(steps, list):
        return f"route.steps must be a list, got {_json_type(steps)}"
    for index, step in enumerate(steps):
        if not isinstance(step, str) or not step:
            return f"route.steps[{index}] must be a non-empty string, got {step!r}"
    current = route.get("current")
    if type(current) is not int:
        return f"route.current must be an integer, got {_json_type(current)}"
    if not 0 <= current <= len(steps):
        return f"route.current {current} is out of range: the route has {len(steps)} steps"
    return None


def route_rewrite_problem(before: Mapping[str, Any], after: object) -> str | None:
    """Why an output's route changed what an actor may not change (None when it did not).

    ``route.current`` and ``route.steps[:current + 1]`` (the steps done and this one) are fixed;
    the steps after ``current`` may be replaced, added or removed.
    """
    problem = route_problem(after)
    if problem:
        return problem
    assert isinstance(after, dict)
    current = before["current"]
    if after["current"] != current:
        return f"route.current changed from {current} to {after['current']}"
    if after["steps"][: current + 1] != before["steps"][: current + 1]:
        return (
            f"route.steps[:{current + 1}] changed from {before['steps'][: current + 1]}"
            f" to {after['steps'][: current + 1]}"
        )
    return None


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


# ---------------------------------------------------------------------------------------------
# Responses and error classification
# ---------------------------------------------------------------------------------------------

PROCESSING_ERROR = "processing_error"
OOM_ERROR = "oom_error"
CUDA_OOM_ERROR = "cuda_oom_error"
MSG_PARSING_ERROR = "msg_parsing_error"
CONNECTION_ERROR = "connection_error"
RETRY_AFTER = {OOM_ERROR: 30, CUDA_OOM_ERROR: 60}
CUDA_OOM_TEXT = "CUDA out of memory"


def error_response(
    code: str, message: str, type_name: str, trace: str = ""
) -> list[dict[str, Any]]:
    """The one-element error array; recoverable codes carry ``retry_after``."""
    details: dict[str, Any] = {
        "message": message,
        "type": type_name,
        "traceback": trace,
        "severity": "recoverable" if code in RETRY_AFTER else "fatal",
    }
    if code in RETRY_AFTER:
        details["retry_after"] = RETRY_AFTER[code]
    return [{"error": code, "details": details}]


def exception_response(code: str, exc: BaseException) -> list[dict[str, Any]]:
    message = exception_text(exc) or type(exc).__name__
    return error_response(code, message, type(exc).__name__, user_trace(exc))


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, even for an exception whose ``__str__`` itself fails."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"


_INTERNAL_FILES = (os.path.abspath(__file__), os.path.dirname(importlib.__file__ or ""))


def user_trace(exc: BaseException) -> str:
    """The traceback without its leading runtime and importlib frames: where the user's code
    (or the request) went wrong is what the reader needs."""
    tb = exc.__traceback__
    while tb is not None and _is_internal(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def _is_internal(filename: str) -> bool:
    return filename.startswith("<frozen importlib") or filename.startswith(_INTERNAL_FILES)


def classify_exception(exc: BaseException, oom_detection: bool = True) -> str:
    """The error code for an exception the handler raised."""
    if oom_detection:
        if is_cuda_oom(exc):
            return CUDA_OOM_ERROR
        if isinstance(exc, MemoryError):
            return OOM_ERROR
    return PROCESSING_ERROR


def is_cuda_oom(exc: BaseException) -> bool:
    """torch's OutOfMemoryError, or any exception (or its cause) saying "CUDA out of memory".

    torch is looked up in ``sys.modules`` only: the runtime never imports it.
    """
    torch = sys.modules.get("torch")
    oom_types = tuple(
        candidate
        for candidate in (
            getattr(torch, "OutOfMemoryError", None),
            getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None),
        )
        if isinstance(candidate, type)
    )
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if oom_types and isinstance(current, oom_types):
            return True
        if CUDA_OOM_TEXT in exception_text(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def release_memory(code: str, cuda_cleanup: bool) -> None:
    """Give memory back before answering an OOM, so the worker stays usable."""
    if code == OOM_ERROR:
        gc.collect()
    elif code == CUDA_OOM_ERROR and cuda_cleanup:
        torch = sys.modules.get("torch")
        if torch is None:
            return
        gc.collect()  # tensors held only by reference cycles, before the cache is emptied
        try:
            torch.cuda.empty_cache()
            logger.info("CUDA out of memory: emptied torch's CUDA cache")
        except Exception as exc:
            logger.warning("torch.cuda.empty_cache() failed: %s: %s", type(exc).__name__, exc)


def shape_outputs(
    message: Any, outputs: list[Any], mode: str, validation: bool
) -> list[dict[str, Any]]:
    """Turn handler results into response objects
    (docs/reference/runtime-protocol.md#output-fields).

    Payload mode: the input's top-level fields with ``payload`` replaced. Message mode: the
    returned object, with any input field it left out copied over; with validation on, the
    route behind the actor must come back unchanged. Raises OutputError.
    """
    if mode == "payload":
        base = message if isinstance(message, dict) else {}
        return [{**base, "payload": output} for output in outputs]
    shaped = []
    for index, output in enumerate(outputs):
        if not isinstance(output, dict):
            raise OutputError(
                f"in message mode the handler must return message objects (dicts);"
                f" output {index} is {_json_type(output)}"
            )
        merged = {**message, **output} if isinstance(message, dict) else output
        if validation:
            problem = route_rewrite_problem(message["route"], merged.get("route"))
            if problem:
                raise OutputError(f"{ROUTE_REWRITE_MESSAGE} ({problem})")
        shaped.append(merged)
    return shaped


class OutputError(ValueError):
    """A handler result that cannot become a response (answered with ``processing_error``)."""


class ValidationError(ValueError):
    """A request that fails validation (docs/reference/runtime-protocol.md#validation) (answered
    with ``msg_parsing_error``)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Strict JSON both ways: NaN and Infinity are refused, as other JSON parsers (the sidecar's) do.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def encode_response(response: list[dict[str, Any]]) -> bytes:
    """The response body; a result JSON cannot express becomes a ``processing_error``."""
    try:
        return _ENCODER.encode(response).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        failure = OutputError(f"the handler's result cannot be encoded as JSON: {exc}")
        return _ENCODER.encode(exception_response(PROCESSING_ERROR, failure)).encode()


# ---------------------------------------------------------------------------------------------
# Handler loading and calling
# ---------------------------------------------------------------------------------------------


class HandlerLoadError(Exception):
    """The handler could not be imported, found, built or called; ``trace`` has the details."""

    def __init__(self, message: str, trace: str = "") -> None:
        super().__init__(message)
        self.trace = trace


def load_handler(spec: str) -> Callable[[Any], Any]:
    """Import ``module.function`` or build ``module.Class`` once and return its method."""
    parts = spec.split(".")
    module, attributes = _import_module_prefix(parts)
    owner: Any = module
    path = module.__name__
    for name in attributes[:-1]:
        owner = _attribute(owner, name, path)
        path = f"{path}.{name}"
    if isinstance(owner, type):
        owner = _instantiate(owner, path)
    target = _attribute(owner, attributes[-1], path)
    if isinstance(target, type):
        if "__call__" not in dir(target):
            raise HandlerLoadError(f"{spec} is a class: name its method (module.Class.method)")
        target = _instantiate(target, spec)
    if not callable(target):
        raise HandlerLoadError(f"{spec} is not callable (it is {type(target).__name__})")
    return target  # type: ignore[no-any-return]


def _import_module_prefix(parts: list[str]) -> tuple[Any, list[str]]:
    """Import the longest dotted prefix of ``parts`` that is a module (at least one attribute)."""
    for split in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:split])
        try:
            return importlib.import_module(name), parts[split:]
        except BaseException as exc:
            missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
            if missing and (name == missing or name.startswith(missing + ".")):
                continue  # this prefix is not a module: try a shorter one
            raise HandlerLoadError(
                f"importing {name} failed: {type(exc).__name__}: {exception_text(exc)}",
                user_trace(exc),
            ) from None
    raise HandlerLoadError(f"no module named {parts[0]!r} (sys.path: {sys.path})")


def _attribute(owner: Any, name: str, path: str) -> Any:
    try:
        return getattr(owner, name)
    except AttributeError:
        raise HandlerLoadError(f"{path} has no attribute {name!r}") from None


def _instantiate(cls: type, path: str) -> Any:
    try:
        return cls()
    except BaseException as exc:
        raise HandlerLoadError(
            f"{path}() raised {type(exc).__name__}: {exception_text(exc)}", user_trace(exc)
        ) from None


class HandlerCaller:
    """Calls the handler and turns what it returns into a list of outputs.

    ``async def`` results are awaited on one event loop kept for the worker's life (asyncio is
    imported only when a handler needs it); generators fan out one output per item.
    """

    def __init__(self, target: Callable[[Any], Any]) -> None:
        self.target = target
        self._loop: Any = None

    def __call__(self, argument: Any) -> list[Any]:
        return self._outputs(self.target(argument))

    def _outputs(self, result: Any) -> list[Any]:
        if type(result) is dict:  # the common case first: one output
            return [result]
        if result is None:
            return []
        if isinstance(result, list | tuple):
            return list(result)
        if isinstance(result, Generator):
            return list(result)
        if isinstance(result, Awaitable):
            return self._outputs(self._run(result))
        if isinstance(result, AsyncIterator):
            return self._run(_collect_async(result))  # type: ignore[no-any-return]
        return [result]

    def close(self) -> None:
        """Close the event loop, if one was made (a worker just exits; tests call this)."""
        if self._loop is not None:
            import asyncio

            asyncio.set_event_loop(None)
            self._loop.close()
            self._loop = None

    def _run(self, awaitable: Awaitable[Any]) -> Any:
        if self._loop is None:
            import asyncio

            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop.run_until_complete(awaitable)


async def _collect_async(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


# ---------------------------------------------------------------------------------------------
# Request handling: frame body in, response array out
# ---------------------------------------------------------------------------------------------


def _export_trace_context(message: Any) -> bool:
    """Set ``TRACEPARENT``/``TRACESTATE`` from the message's ``trace`` for the handler's call.

    The context stays data here (docs/reference/message.md#trace): a payload-mode handler that
    uses OpenTelemetry reads it from the environment. True when something was set.
    """
    trace = message.get("trace") if type(message) is dict else None
    if type(trace) is not dict or type(trace.get("traceparent")) is not str:
        return False
    os.environ["TRACEPARENT"] = trace["traceparent"]
    state = trace.get("tracestate")
    if type(state) is str and state:
        os.environ["TRACESTATE"] = state
    else:
        os.environ.pop("TRACESTATE", None)
    return True


def process_request(
    body: bytes | bytearray,
    call: Callable[[Any], list[Any]],
    config: RuntimeConfig,
    on_message: Callable[[Any], None] | None = None,
) -> list[dict[str, Any]]:
    """Parse, validate, call the handler and shape its outputs; every failure is a response.

    ``on_message`` sees the decoded message before the handler runs (the worker notes its job).
    """
    try:
        message = _DECODER.decode(body.decode())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return exception_response(MSG_PARSING_ERROR, exc)
    if on_message is not None:
        on_message(message)
    if config.validation:
        problem = validate_request(message)
        if problem:
            return error_response(MSG_PARSING_ERROR, problem, ValidationError.__name__)
    elif config.mode == "payload" and not isinstance(message, dict):
        problem = f"message must be a JSON object, got {_json_type(message)}"
        return error_response(MSG_PARSING_ERROR, problem, ValidationError.__name__)
    if config.mode == "message":
        argument = message
        if config.validation:  # the handler may edit the message in place: keep the original
            route = message["route"]
            message = {**message, "route": {**route, "steps": list(route["steps"])}}
    else:
        argument = message.get("payload")
    traced = _export_trace_context(message)
    try:
        outputs = call(argument)
    except BaseException as exc:  # the handler's failure is an answer, never a crash
        code = classify_exception(exc, config.oom_detection)
        logger.error("handler raised %s: %s (%s)", type(exc).__name__, exception_text(exc), code)
        logger.debug("handler traceback", exc_info=exc)
        response = exception_response(code, exc)
    else:
        try:
            return shape_outputs(message, outputs, config.mode, config.validation)
        except OutputError as exc:
            logger.error("handler output refused: %s", exc)
            return exception_response(PROCESSING_ERROR, exc)
    finally:
        if traced:
            os.environ.pop("TRACEPARENT", None)
            os.environ.pop("TRACESTATE", None)
    # Only now: the exception's traceback kept the failed call's frames alive, and with them
    # whatever they held (the tensors of a step that ran out of CUDA memory).
    release_memory(code, config.cuda_cleanup)
    return response


# ---------------------------------------------------------------------------------------------
# Worker: loads the handler, then answers requests, one at a time, on every open connection
# ---------------------------------------------------------------------------------------------

_BUSY_SINCE = struct.Struct("d")
#: After the busy timestamp: the job id of the message in the handler (length byte, then UTF-8).
_JOB_OFFSET = _BUSY_SINCE.size
_JOB_MAX = 255
_SHARED_SIZE = _JOB_OFFSET + 1 + _JOB_MAX
EXIT_LOAD_FAILED = 3


def job_id_of_message(message: Any) -> str:
    """The job id a message carries (top-level ``job_id``, else ``route.metadata.job_id``)."""
    if not isinstance(message, dict):
        return ""
    job_id = message.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        route = message.get("route")
        metadata = route.get("metadata") if isinstance(route, dict) else None
        job_id = metadata.get("job_id") if isinstance(metadata, dict) else None
    return job_id if isinstance(job_id, str) else ""


def shared_memory() -> mmap.mmap:
    """What the supervisor and its workers share: when the handler call began, and its job."""
    return mmap.mmap(-1, _SHARED_SIZE)


def _job_field(job_id: str) -> bytes:
    """How ``job_id`` is stored after the busy timestamp: its length byte, then its bytes."""
    raw = job_id.encode()[:_JOB_MAX]
    return bytes([len(raw)]) + raw


def _read_job(shared: mmap.mmap) -> str:
    length = shared[_JOB_OFFSET]
    return shared[_JOB_OFFSET + 1 : _JOB_OFFSET + 1 + length].decode(errors="replace")


# epoll where the platform has it: a poll() call re-registers every watched file in the kernel,
# an epoll_wait() call does not (~0.3 us less per request on a kept connection, 4 files). The
# worker only polls with a timeout of 0 or None, which both read alike.
_EPOLL = getattr(select, "epoll", None)
_READABLE = select.EPOLLIN if _EPOLL is not None else select.POLLIN


def _readiness_poller() -> Any:
    return _EPOLL() if _EPOLL is not None else select.poll()


class _Client(NamedTuple):
    """An open connection and the bytes received on it past the last request read."""

    conn: socket.socket
    unread: bytearray


class Worker:
    """The serving child process. ``busy`` is shared memory where it writes, as a monotonic
    timestamp, when the current handler call began (0 when idle), so the parent can abandon it.
    """

    def __init__(
        self,
        config: RuntimeConfig,
        listener: socket.socket,
        busy: mmap.mmap,
        status_fd: int,
        lifeline_fd: int,
    ) -> None:
        self.config = config
        self.listener = listener
        self.busy = busy
        self.status_fd = status_fd
        self.lifeline_fd = lifeline_fd
        self.stopping = False
        self.call: Callable[[Any], list[Any]] = lambda argument: []
        self._poller = _readiness_poller()
        # The job id last written to ``busy`` and its length byte: further messages of that job
        # (a kept connection's) rewrite only the length byte, which is all a clear zeroes.
        self._job_id = ""
        self._job_length = 0
        # Open connections by file descriptor, least recently served first.
        self._connections: dict[int, _Client] = {}

    def run(self) -> int:
        with contextlib.suppress(AttributeError, ValueError):  # a handler's print() shows at once
            sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        try:
            self.call = HandlerCaller(load_handler(self.config.handler))
        except HandlerLoadError as exc:
            self._report({"error": str(exc), "traceback": exc.trace})
            return EXIT_LOAD_FAILED
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        logger.info("worker ready: handler %s in %s mode", self.config.handler, self.config.mode)
        self._report({"ready": True})
        os.close(self.status_fd)  # so processes the handler starts never hold the parent's pipe
        self._serve(wake_r)
        return 0

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _report(self, status: dict[str, Any]) -> None:
        os.write(self.status_fd, json.dumps(status).encode() + b"\n")

    def _serve(self, wake_r: int) -> None:
        """Answer requests until a stop signal or the supervisor's death.

        A connection stays open for further requests until its client closes it (the original
        sidecar and readiness probes close after one). One poll covers the listener and every
        open connection; connections with a request waiting are served least recently served
        first, so clients take turns in the order they sent (the sidecar's pipelined calls).
        """
        listen_fd = self.listener.fileno()
        for fd in (listen_fd, wake_r, self.lifeline_fd):
            self._poller.register(fd, _READABLE)
        # A request already received (behind the previous one on its connection) must not wait.
        buffered = False
        while not self.stopping:
            events = dict(self._poller.poll(0 if buffered else None))
            if self.lifeline_fd in events:
                logger.error("the supervisor is gone; worker exiting")
                return
            if wake_r in events:
                os.read(wake_r, 512)
            if listen_fd in events:
                self._accept_waiting()
            ready = [
                fd for fd, client in self._connections.items() if fd in events or client.unread
            ]
            buffered = False  # every connection with unread bytes is in ready
            for fd in ready:
                if self.stopping:
                    break
                buffered |= self._serve_next_request(fd, keep_open=True)
        self._finish_sent_requests()
        logger.info("worker stopped")

    def _finish_sent_requests(self) -> None:
        """After a stop signal: answer the requests already sent, on connections made before the
        socket path was removed and on open ones, then close every connection (a request sent
        after that meets a closed connection, and its client no socket to reconnect to)."""
        while True:
            accepted = self._accept_waiting()
            events = dict(self._poller.poll(0))
            ready = [
                fd for fd, client in self._connections.items() if fd in events or client.unread
            ]
            if not ready and not accepted:
                break
            for fd in ready:
                self._serve_next_request(fd, keep_open=False)
        for fd in list(self._connections):
            self._close_connection(fd)

    def _accept_waiting(self) -> int:
        """Accept every queued connection and watch it for requests; how many were taken."""
        accepted = 0
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return accepted
            except OSError as exc:  # e.g. out of file descriptors: wait a little, never spin
                logger.warning("accept failed: %s", exc)
                time.sleep(0.1)
                return accepted
            self._connections[conn.fileno()] = _Client(conn, bytearray())
            self._poller.register(conn, _READABLE)
            accepted += 1

    def _serve_next_request(self, fd: int, keep_open: bool) -> bool:
        """Serve one request on ``fd``; True when it stays open with bytes of another received."""
        client = self._connections.pop(fd)
        if self.serve_request(client.conn, unread=client.unread) and keep_open:
            self._connections[fd] = client  # to the back of the line
            return bool(client.unread)
        self._poller.unregister(fd)
        client.conn.close()
        return False

    def _close_connection(self, fd: int) -> None:
        self._poller.unregister(fd)
        self._connections.pop(fd).conn.close()

    def serve_connection(
        self, conn: socket.socket, read_timeout: float = CLIENT_READ_TIMEOUT
    ) -> None:
        """Answer requests on ``conn`` one after another until the client closes it."""
        unread = bytearray()
        while self.serve_request(conn, read_timeout, unread):
            pass

    def serve_request(
        self,
        conn: socket.socket,
        read_timeout: float = CLIENT_READ_TIMEOUT,
        unread: bytearray | None = None,
    ) -> bool:
        """Read one request and answer it; True when the connection can carry another.

        A client that closes before sending anything (a readiness probe, or a client done with
        its connection) is let go quietly. After a frame that could not be read whole the rest
        of the stream cannot be trusted: that answer is the connection's last. ``unread`` is
        the connection's buffer of bytes received past the previous request (see read_frame).
        """
        config = self.config
        try:
            body = read_frame(
                conn, config.max_message_size, config.chunk_size, read_timeout, unread
            )
        except FrameTooLargeError as exc:
            logger.warning("refused a frame: %s", exc)
            _send_quietly(conn, exception_response(MSG_PARSING_ERROR, exc), read_timeout)
            return False
        except (IncompleteFrameError, OSError) as exc:
            logger.warning("dropped a client: %s", exc)
            failure = exc if isinstance(exc, IncompleteFrameError) else IncompleteFrameError(exc)
            _send_quietly(conn, exception_response(CONNECTION_ERROR, failure), read_timeout)
            return False
        if body is None:
            logger.debug("client closed its connection (a readiness probe if it sent nothing)")
            return False
        response = encode_response(
            process_request(body, self._timed_call, config, self._note_message)
        )
        try:
            send_frame(conn, response, read_timeout)
        except OSError as exc:
            logger.warning("could not send the response (%d bytes): %s", len(response), exc)
            return False
        return True

    def _note_message(self, message: Any) -> None:
        job_id = job_id_of_message(message)
        if job_id != self._job_id:
            field = _job_field(job_id)
            self.busy[_JOB_OFFSET : _JOB_OFFSET + len(field)] = field
            self._job_id, self._job_length = job_id, field[0]
        else:
            self.busy[_JOB_OFFSET] = self._job_length

    def _timed_call(self, argument: Any) -> list[Any]:
        _BUSY_SINCE.pack_into(self.busy, 0, time.monotonic())
        try:
            return self.call(argument)
        finally:
            _BUSY_SINCE.pack_into(self.busy, 0, 0.0)
            self.busy[_JOB_OFFSET] = 0  # no job (the bytes after the length byte stay)


def _send_quietly(conn: socket.socket, response: list[dict[str, Any]], timeout: float) -> None:
    """Best effort: the client may already be gone."""
    with contextlib.suppress(OSError):
        send_frame(conn, encode_response(response), timeout)


# ---------------------------------------------------------------------------------------------
# Supervisor: holds the socket, starts and replaces workers, handles signals
# ---------------------------------------------------------------------------------------------

LISTEN_BACKLOG = 65535  # the kernel caps it at net.core.somaxconn; waiting beats refusing
#: Appended to ASYA_SOCKET_PATH: the supervisor's control socket (interrupting a handler call).
CONTROL_SUFFIX = ".ctl"
CONTROL_READ_TIMEOUT = 0.5
TIMEOUT_GRACE = 1.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
_SUPERVISOR_TICK = 0.1


class WorkerProcess:
    """The parent's view of one worker."""

    def __init__(self, pid: int, status_fd: int) -> None:
        self.pid = pid
        self.status_fd: int | None = status_fd
        self.buffer = b""
        self.ready = False
        self.load_error: dict[str, Any] | None = None
        self.abandoned = False


class Supervisor:
    """The runtime command's main process (see the module docstring)."""

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.socket_path = config.socket_path
        self.temp_path = _temporary_path(config.socket_path)
        self.listener: socket.socket | None = None
        self.published_inode: int | None = None
        self.busy = shared_memory()
        self.control_path = control_path(config.socket_path)
        self.control: socket.socket | None = None
        self.lifeline_r, self.lifeline_w = os.pipe()
        self.wake_r, self.wake_w = os.pipe()
        self.poller = select.poll()
        self.worker: WorkerProcess | None = None
        self.ever_ready = False
        self.failures = 0
        self.next_start = 0.0
        self.stop_signals = 0
        self.stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (0) or until the first worker cannot load the handler (1)."""
        try:
            self._bind()
            self._install_signal_handlers()
            self._spawn()
            return self._loop()
        except OSError as exc:
            logger.critical("cannot serve on %s: %s", self.socket_path, exc)
            return 1
        finally:
            self._cleanup()

    def _bind(self) -> None:
        """Listen on a temporary name beside the real path; it is renamed once a handler loads."""
        directory = os.path.dirname(self.socket_path)
        os.makedirs(directory, exist_ok=True)
        for path in (self.socket_path, self.temp_path):
            _remove_stale(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.temp_path)
        listener.listen(LISTEN_BACKLOG)
        listener.setblocking(False)
        self.listener = listener
        if self.config.socket_chmod is not None:
            os.chmod(self.temp_path, self.config.socket_chmod)
        self._bind_control()

    def _bind_control(self) -> None:
        """The control socket beside the socket path (see docs/reference/runtime-protocol.md
        #control-socket); without it the runtime still serves, only uninterruptibly."""
        if self.control_path is None:
            logger.warning("socket path too long for a control socket: calls cannot be interrupted")
            return
        _remove_stale(self.control_path)
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        control.bind(self.control_path)
        control.listen(16)
        control.setblocking(False)
        if self.config.socket_chmod is not None:
            os.chmod(self.control_path, self.config.socket_chmod)
        self.control = control

    def _publish(self) -> None:
        os.replace(self.temp_path, self.socket_path)
        self.published_inode = os.stat(self.socket_path).st_ino
        logger.info(
            "serving %s (%s mode) on %s",
            self.config.handler,
            self.config.mode,
            self.socket_path,
        )

    def _unpublish(self) -> None:
        """Remove our socket path (only if it is still ours), so no new client can connect."""
        if self.published_inode is None:
            _remove_stale(self.temp_path)
            return
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.socket_path).st_ino == self.published_inode:
                os.unlink(self.socket_path)
        self.published_inode = None

    def _cleanup(self) -> None:
        if self.worker is not None:  # never leave an orphan behind
            _kill(self.worker.pid, signal.SIGKILL)
            _wait(self.worker.pid)
            self.worker = None
        self._unpublish()
        if self.listener is not None:
            self.listener.close()
        if self.control is not None:
            self.control.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.control_path or "")
        signal.set_wakeup_fd(-1)

    def _install_signal_handlers(self) -> None:
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the poll via the fd
        self.poller.register(self.wake_r, select.POLLIN)
        if self.control is not None:
            self.poller.register(self.control.fileno(), select.POLLIN)

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self.stop_signals += 1

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self) -> int:
        while True:
            for fd, _ in self.poller.poll(self._poll_timeout_ms()):
                if fd == self.wake_r:
                    _drain(self.wake_r)
                elif self.control is not None and fd == self.control.fileno():
                    self._serve_control()
                elif self.worker is not None and fd == self.worker.status_fd:
                    self._read_status(self.worker)
            self._reap()
            if self.stop_signals and not self.stopping:
                self._begin_stop()
            if self.stop_signals > 1 and self.worker is not None and not self.worker.abandoned:
                logger.warning("second stop signal: killing the worker without waiting")
                self.worker.abandoned = True
                _kill(self.worker.pid, signal.SIGKILL)
            if self.worker is None:
                if self.stopping:
                    logger.info("runtime stopped")
                    return 0
                if not self.ever_ready:
                    return 1
                if time.monotonic() >= self.next_start:
                    self._spawn()
            else:
                self._enforce_timeout(self.worker)

    def _poll_timeout_ms(self) -> int:
        if self.worker is None:
            if self.stopping or not self.ever_ready:
                return 0
            return max(0, int((self.next_start - time.monotonic()) * 1000) + 1)
        if self.config.timeout is None:
            return -1
        started = self._busy_since()
        if not started:
            return int(_SUPERVISOR_TICK * 1000)
        deadline = started + self.config.timeout + TIMEOUT_GRACE
        return max(0, int((deadline - time.monotonic()) * 1000) + 1)

    def _busy_since(self) -> float:
        return float(_BUSY_SINCE.unpack_from(self.busy)[0])

    def _enforce_timeout(self, worker: WorkerProcess) -> None:
        started = self._busy_since()
        if self.config.timeout is None or not started or worker.abandoned:
            return
        elapsed = time.monotonic() - started
        if elapsed > self.config.timeout + TIMEOUT_GRACE:
            logger.warning(
                "handler call has run %.1f s, longer than ASYA_RUNTIME_TIMEOUT (%gs) + %gs grace:"
                " abandoning it and replacing worker %d",
                elapsed,
                self.config.timeout,
                TIMEOUT_GRACE,
                worker.pid,
            )
            worker.abandoned = True
            _kill(worker.pid, signal.SIGKILL)

    # -- control requests --------------------------------------------------------------------

    def _serve_control(self) -> None:
        """Answer each waiting control connection: one request frame, one response frame."""
        assert self.control is not None
        while True:
            try:
                conn, _ = self.control.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("control accept failed: %s", exc)
                return
            with conn:
                try:
                    conn.settimeout(CONTROL_READ_TIMEOUT)
                    body = read_frame(conn, 65536, 65536, CONTROL_READ_TIMEOUT)
                    request = json.loads(body) if body else None
                except (ValueError, OSError) as exc:
                    logger.warning("unreadable control request: %s", exc)
                    continue
                answer = self._control(request)
                with contextlib.suppress(OSError):
                    send_frame(conn, json.dumps(answer).encode(), CONTROL_READ_TIMEOUT)

    def _control(self, request: Any) -> dict[str, Any]:
        """``{"interrupt": job_id}``: kill the worker if it is running a message of that job."""
        job_id = request.get("interrupt") if isinstance(request, dict) else None
        if not isinstance(job_id, str) or not job_id:
            return {"error": 'expected {"interrupt": "<job id>"}'}
        worker = self.worker
        if worker is None or worker.abandoned or not self._busy_since():
            return {"interrupted": False}
        if _read_job(self.busy) != job_id:
            return {"interrupted": False}
        logger.warning(
            "interrupting the handler call of job %s: replacing worker %d", job_id, worker.pid
        )
        worker.abandoned = True
        _kill(worker.pid, signal.SIGKILL)
        return {"interrupted": True}

    # -- workers -----------------------------------------------------------------------------

    def _spawn(self) -> None:
        assert self.listener is not None
        status_r, status_w = os.pipe()
        _BUSY_SINCE.pack_into(self.busy, 0, 0.0)
        sys.stdout.flush()
        sys.stderr.flush()
        # Signals stay blocked across fork so the child never runs the parent's handlers.
        blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                signal.set_wakeup_fd(-1)
                for signum in blocked:
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
                for fd in (status_r, self.wake_r, self.wake_w, self.lifeline_w):
                    os.close(fd)
                if self.control is not None:
                    self.control.close()  # the supervisor's alone
                worker = Worker(self.config, self.listener, self.busy, status_w, self.lifeline_r)
                code = worker.run()
            except BaseException:
                logger.exception("worker failed")
            finally:
                logging.shutdown()
                with contextlib.suppress(Exception):  # what the handler printed is not lost
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        os.close(status_w)
        os.set_blocking(status_r, False)
        self.worker = WorkerProcess(pid, status_r)
        self.poller.register(status_r, select.POLLIN)
        logger.debug("started worker %d", pid)

    def _read_status(self, worker: WorkerProcess) -> bool:
        """Take what the worker reported ("ready" or why it cannot load); False once nothing
        more is waiting in the pipe."""
        assert worker.status_fd is not None
        try:
            data = os.read(worker.status_fd, 65536)
        except BlockingIOError:
            return False
        if not data:
            self._close_status(worker)
            return False
        worker.buffer += data
        while b"\n" in worker.buffer:
            line, worker.buffer = worker.buffer.split(b"\n", 1)
            try:
                status = json.loads(line)
            except ValueError:
                logger.warning("unreadable status from worker %d: %r", worker.pid, line[:200])
                continue
            if status.get("ready"):
                self._worker_ready(worker)
            elif "error" in status:
                worker.load_error = status
        return True

    def _close_status(self, worker: WorkerProcess) -> None:
        if worker.status_fd is not None:
            self.poller.unregister(worker.status_fd)
            os.close(worker.status_fd)
            worker.status_fd = None

    def _worker_ready(self, worker: WorkerProcess) -> None:
        worker.ready = True
        self.failures = 0
        if self.ever_ready:
            logger.info("replacement worker %d is serving", worker.pid)
            return
        self.ever_ready = True
        if not self.stopping:
            self._publish()

    def _reap(self) -> None:
        """Collect every exited child (the worker, or orphans when we run as PID 1)."""
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.worker
            if worker is None or pid != worker.pid:
                continue
            while worker.status_fd is not None and self._read_status(worker):
                pass
            self._close_status(worker)
            self.worker = None
            _BUSY_SINCE.pack_into(self.busy, 0, 0.0)
            self._worker_exited(worker, wait_status)

    def _worker_exited(self, worker: WorkerProcess, wait_status: int) -> None:
        how = _describe_exit(wait_status)
        if self.stopping:
            logger.debug("worker %d %s", worker.pid, how)
            return
        if not worker.ready:
            reason = worker.load_error["error"] if worker.load_error else f"the worker {how}"
            trace = worker.load_error.get("traceback", "") if worker.load_error else ""
            if not self.ever_ready:
                logger.critical("cannot load handler %s: %s", self.config.handler, reason)
                if trace:
                    logger.error("%s", trace.rstrip())
                return
            self.failures += 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.failures - 1))
            logger.error(
                "replacement worker could not load handler %s (%s); try %d again in %.1f s",
                self.config.handler,
                reason,
                self.failures + 1,
                delay,
            )
            self.next_start = time.monotonic() + delay
            return
        if worker.abandoned:
            logger.warning("abandoned worker %d is gone; starting a fresh one", worker.pid)
        else:
            logger.error("worker %d %s; starting a fresh one", worker.pid, how)
        self.next_start = time.monotonic()

    def _begin_stop(self) -> None:
        self.stopping = True
        self._unpublish()
        logger.info("stop signal: socket removed, finishing the request in progress")
        if self.worker is not None:
            _kill(self.worker.pid, signal.SIGTERM)


def control_path(socket_path: str) -> str | None:
    """Where the control socket of the runtime serving ``socket_path`` listens (None when that
    path would be too long for a Unix socket)."""
    path = socket_path + CONTROL_SUFFIX
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH_BYTES else None


def _temporary_path(path: str) -> str:
    directory, name = os.path.split(path)
    candidate = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    if len(os.fsencode(candidate)) <= MAX_SOCKET_PATH_BYTES:
        return candidate
    return os.path.join(directory, f".{os.getpid()}")


def _remove_stale(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a directory")
    os.unlink(path)


def _describe_exit(wait_status: int) -> str:
    if os.WIFSIGNALED(wait_status):
        signum = os.WTERMSIG(wait_status)
        name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
        hint = " (out of memory, or killed by hand?)" if signum == signal.SIGKILL else ""
        hint = " (crashed in C code)" if signum in (signal.SIGSEGV, signal.SIGBUS) else hint
        return f"was killed by {name}{hint}"
    return f"exited with code {os.waitstatus_to_exitcode(wait_status)}"


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def main() -> int:
    """Run the runtime: 0 after SIGTERM/SIGINT, 1 on a startup error."""
    setup_logging(os.environ)
    try:
        config = RuntimeConfig.from_env(os.environ)
    except RuntimeConfigError as exc:
        logger.critical("invalid configuration: %s", exc)
        return 1
    prepare_sys_path()
    return Supervisor(config).run()


def prepare_sys_path() -> None:
    """Put the working directory first, so a handler module beside where the runtime starts
    imports even under ``python -I -S``. Run as a script, Python also put this file's folder
    first: drop it, so a handler's ``import transports`` never finds Asya's internals."""
    own_folder = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] == own_folder:
        del sys.path[0]
    cwd = os.getcwd()
    if cwd in sys.path:
        sys.path.remove(cwd)
    sys.path.insert(0, cwd)


if __name__ == "__main__":
    sys.exit(main())
