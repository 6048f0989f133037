"""Logging set-up shared by every non-runtime process (the runtime configures its own).

``ASYA_LOG_LEVEL`` picks the level (default INFO); ``ASYA_LOG_FORMAT=json`` writes one JSON
object per line, which log collectors in Kubernetes parse without extra configuration.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as a single JSON line, keeping ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """The text line, with the date and time part of ``asctime`` formatted once per second
    (``time.strftime`` was the dearest part of a sidecar's per-message line)."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
        return f"{self._stamp},{int(record.msecs):03d}"  # logging's default_msec_format


def configure_logging(
    component: str, environ: Mapping[str, str] | None = None, *, stream: object = None
) -> None:
    """Configure the root logger from ``ASYA_LOG_LEVEL`` and ``ASYA_LOG_FORMAT``.

    An unknown level falls back to INFO with a warning rather than stopping the process:
    a typo in a log setting should never take an actor down.
    """
    env = os.environ if environ is None else environ
    level_name = (env.get("ASYA_LOG_LEVEL") or "INFO").strip().upper()
    unknown_level = level_name not in LEVELS
    if unknown_level:
        level_name = "INFO"
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    if (env.get("ASYA_LOG_FORMAT") or "").strip().lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter(f"%(asctime)s %(levelname)-7s {component} %(name)s: %(message)s")
        )
    # What no Asya format shows is not gathered for every record (the logging HOWTO's
    # "Optimization"): the caller's file and line, the thread, the multiprocessing name.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name)
    # Libraries that log every request at INFO would drown the actors' own lines.
    # At DEBUG everything is shown.
    for noisy in ("httpx", "httpcore", "aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(
            logging.NOTSET if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
        )
    # aiormq logs every failed connect at ERROR; Asya's own line already says why (and what next)
    if root.level > logging.DEBUG:
        logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
    if unknown_level:
        logging.getLogger(__name__).warning(
            "ASYA_LOG_LEVEL=%r is not one of %s; using INFO", env.get("ASYA_LOG_LEVEL"), LEVELS
        )
