"""The sidecar's settings, read once from ``ASYA_*`` variables into a frozen dataclass.

Every value is checked here, at start, so that a typo stops the process with exit code 2 and
the variable's name instead of surfacing later as a lost message
(docs/reference/sidecar.md#environment).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from asya.envconfig import DEFAULT_SOCKET_PATH, DEFAULT_TRANSPORT_URL, Env
from asya.errors import ConfigError
from asya.payloads.claim_check import DEFAULT_THRESHOLD
from asya.payloads.retention import DEFAULT_RETENTION
from asya.payloads.stores import store_url_from_env
from asya.sidecar.router import DEAD_LETTER_QUEUE

TERMINAL_DEFAULT_MAX_RETRIES = 5
_METRIC_TYPES = ("counter", "gauge", "histogram")
_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class CustomMetric:
    """One entry of ``ASYA_CUSTOM_METRICS``."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None


@dataclass(frozen=True)
class SidecarSettings:
    queue_name: str
    transport_url: str = DEFAULT_TRANSPORT_URL
    exchange: str = "asya"
    prefetch: int = 1
    socket_path: str = DEFAULT_SOCKET_PATH
    runtime_timeout: float = 300.0
    happy_end_queue: str = "happy-end"
    error_end_queue: str = "error-end"
    is_terminal: bool = False
    gateway_url: str | None = None
    gateway_token: str | None = None
    actor_name: str = ""
    max_retries: int = 0
    retry_backoff: float = 1.0
    max_deliveries: int = 5
    metrics_enabled: bool = True
    metrics_host: str = ""
    metrics_port: int = 9091
    metrics_namespace: str = "asya_actor"
    custom_metrics: tuple[CustomMetric, ...] = ()
    payload_store_url: str | None = None
    payload_offload_threshold: int = DEFAULT_THRESHOLD
    payload_retention: float = DEFAULT_RETENTION

    @property
    def name(self) -> str:
        """The actor's name in progress reports and logs (defaults to the queue name)."""
        return self.actor_name or self.queue_name

    @property
    def own_queues(self) -> tuple[str, ...]:
        """The queues this sidecar declares at start-up and may declare again if they vanish:
        its own (retries), happy-end, error-end and, for a terminal actor, the dead letters."""
        queues = [self.queue_name, self.happy_end_queue, self.error_end_queue]
        if self.is_terminal:
            queues.append(DEAD_LETTER_QUEUE)
        return tuple(dict.fromkeys(queues))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SidecarSettings:
        """Build settings from ``environ``; raises ``ConfigError`` naming a bad variable."""
        env = Env(environ)
        queue_name = env.required("ASYA_QUEUE_NAME")
        is_terminal = env.get_bool("ASYA_IS_TERMINAL", False)
        transport_url, transport_variable = env.transport_url()
        _check_transport_url(transport_variable, transport_url)
        runtime_timeout = env.get_duration("ASYA_RUNTIME_TIMEOUT", 300.0)
        if runtime_timeout <= 0:
            raise ConfigError("ASYA_RUNTIME_TIMEOUT", "must be greater than zero")
        metrics_host, metrics_port = parse_listen_address(
            "ASYA_METRICS_ADDR", env.get_str("ASYA_METRICS_ADDR", ":9091")
        )
        gateway_url = env.get_optional_str("ASYA_GATEWAY_URL")
        if gateway_url is not None:
            _check_http_url("ASYA_GATEWAY_URL", gateway_url)
        namespace = env.get_str("ASYA_METRICS_NAMESPACE", "asya_actor")
        if not _is_metric_name(namespace):
            raise ConfigError("ASYA_METRICS_NAMESPACE", f"invalid metric namespace {namespace!r}")
        for variable in ("ASYA_QUEUE_NAME", "ASYA_STEP_HAPPY_END", "ASYA_STEP_ERROR_END"):
            name = env.raw(variable)
            if name is not None and len(name.encode()) > 255:
                raise ConfigError(variable, "queue names are at most 255 bytes")
        payload_store_url = store_url_from_env(env)
        return cls(
            queue_name=queue_name,
            transport_url=transport_url,
            exchange=env.get_str("ASYA_RABBITMQ_EXCHANGE", "asya"),
            prefetch=env.get_int("ASYA_RABBITMQ_PREFETCH", 1, minimum=1),
            socket_path=env.get_str("ASYA_SOCKET_PATH", DEFAULT_SOCKET_PATH),
            runtime_timeout=runtime_timeout,
            happy_end_queue=env.get_str("ASYA_STEP_HAPPY_END", "happy-end"),
            error_end_queue=env.get_str("ASYA_STEP_ERROR_END", "error-end"),
            is_terminal=is_terminal,
            gateway_url=gateway_url.rstrip("/") if gateway_url else None,
            gateway_token=env.get_optional_str("ASYA_GATEWAY_TOKEN"),
            actor_name=env.get_str("ASYA_ACTOR_NAME", queue_name),
            max_retries=env.get_int(
                "ASYA_MAX_RETRIES",
                TERMINAL_DEFAULT_MAX_RETRIES if is_terminal else 0,
                minimum=0,
            ),
            retry_backoff=env.get_duration("ASYA_RETRY_BACKOFF", 1.0),
            max_deliveries=env.get_int("ASYA_MAX_DELIVERIES", 5, minimum=1),
            metrics_enabled=env.get_bool("ASYA_METRICS_ENABLED", True),
            metrics_host=metrics_host,
            metrics_port=metrics_port,
            metrics_namespace=namespace,
            custom_metrics=parse_custom_metrics(env.get_optional_str("ASYA_CUSTOM_METRICS")),
            payload_store_url=payload_store_url,
            payload_offload_threshold=env.get_int(
                "ASYA_PAYLOAD_OFFLOAD_THRESHOLD", DEFAULT_THRESHOLD, minimum=1
            ),
            payload_retention=env.get_duration("ASYA_PAYLOAD_RETENTION", DEFAULT_RETENTION),
        )


def parse_listen_address(variable: str, value: str) -> tuple[str, int]:
    """``host:port`` or ``:port`` (all interfaces) into ``(host, port)``."""
    host, sep, port_text = value.strip().rpartition(":")
    if not sep:
        raise ConfigError(variable, f"invalid address {value!r}: expected host:port or :port")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(variable, f"invalid port in {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(variable, f"port out of range in {value!r}")
    return host.strip("[]"), port


def parse_custom_metrics(value: str | None) -> tuple[CustomMetric, ...]:
    """Parse the ``ASYA_CUSTOM_METRICS`` JSON list, naming the variable on any mistake."""
    if value is None:
        return ()
    variable = "ASYA_CUSTOM_METRICS"
    try:
        entries = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(variable, f"not valid JSON ({exc})") from exc
    if not isinstance(entries, list):
        raise ConfigError(variable, "must be a JSON list of metric definitions")
    metrics: list[CustomMetric] = []
    for index, entry in enumerate(entries):
        where = f"entry {index}"
        if not isinstance(entry, dict):
            raise ConfigError(variable, f"{where} is not an object")
        name, kind = entry.get("name"), entry.get("type")
        if not isinstance(name, str) or not _is_metric_name(name):
            raise ConfigError(variable, f"{where} has an invalid name {name!r}")
        if kind not in _METRIC_TYPES:
            raise ConfigError(variable, f"{where} ({name}) type must be one of {_METRIC_TYPES}")
        labels = entry.get("labels") or []
        if not isinstance(labels, list) or not all(
            isinstance(label, str) and _is_metric_name(label) for label in labels
        ):
            raise ConfigError(variable, f"{where} ({name}) labels must be a list of names")
        buckets = entry.get("buckets")
        if buckets is not None and (
            kind != "histogram"
            or not isinstance(buckets, list)
            or not buckets
            or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in buckets)
        ):
            raise ConfigError(
                variable, f"{where} ({name}) buckets must be a non-empty list of numbers"
            )
        metrics.append(
            CustomMetric(
                name=name,
                type=str(kind),
                help=str(entry.get("help") or name),
                labels=tuple(labels),
                buckets=tuple(float(b) for b in buckets) if buckets else None,
            )
        )
    return tuple(metrics)


def _is_metric_name(name: str) -> bool:
    return _METRIC_NAME.fullmatch(name) is not None


def _check_transport_url(variable: str, url: str) -> None:
    from asya.transports import open_transport

    try:
        open_transport(url)  # unconnected: checks the scheme, the URL and its options
    except ValueError as exc:
        raise ConfigError(variable, str(exc)) from exc


def _check_http_url(variable: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(variable, f"invalid URL {url!r}: expected http(s)://host[:port]")
