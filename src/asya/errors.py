"""One error tree for every Asya process.

Each class says what the caller should do with the failure: retry later, give up on the
message, fix the configuration, or treat the broker/database as unavailable. Library errors are
translated into these at the edge (``raise TransportError(...) from exc``).
"""

from __future__ import annotations


def describe(exc: BaseException) -> str:
    """``"Type: text"`` for an exception, or just its type when it has no text (log lines)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class AsyaError(Exception):
    """Root of every error raised on purpose by Asya.

    ``exit_code`` is what a command exits with when it stops on this error: the ``asya`` entry
    point prints ``asya <command>: <message>`` (one line, no traceback) and exits with it.
    """

    exit_code = 1


class ConfigError(AsyaError):
    """A setting is missing or malformed; the process should exit naming ``variable``."""

    exit_code = 2

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


class StartupError(AsyaError):
    """A process cannot start (its port is taken, its database does not exist): exit 1."""


class TransientError(AsyaError):
    """Worth retrying after ``retry_after`` seconds (None: use the caller's backoff)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(AsyaError):
    """Retrying cannot help: the message goes to error-end."""


class JobNotFound(AsyaError):
    """No job with that id (the gateway answers 404 ``job not found``)."""


class TransportError(AsyaError):
    """The broker could not be reached or refused an operation."""


class BrokerRefused(TransportError):
    """The broker rejected the login: waiting cannot help, the URL's credentials must change."""


class MessageTooLargeError(TransportError):
    """The broker caps message size and this message is over it (SQS: 256 KiB by default).

    Retrying cannot help; the payload has to travel by reference instead.
    """

    def __init__(self, queue: str, size: int, limit: int) -> None:
        super().__init__(
            f"message for {queue!r} is {size} bytes, over the transport's limit of {limit} bytes"
        )
        self.queue = queue
        self.size = size
        self.limit = limit


class UnroutableError(TransportError):
    """A publish was returned by the broker because no queue is bound to its routing key."""

    def __init__(self, queue: str) -> None:
        super().__init__(f"no queue named {queue!r}: the message could not be routed")
        self.queue = queue
