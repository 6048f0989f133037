"""Gateway settings, read once from the environment (docs/reference/gateway-api.md#environment).

Every value is parsed and checked here so a bad deployment fails at start with the name of the
variable to fix (exit 2), instead of at the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from asya.envconfig import DEFAULT_TRANSPORT_URL, Env
from asya.errors import ConfigError
from asya.payloads.claim_check import DEFAULT_THRESHOLD
from asya.payloads.retention import DEFAULT_RETENTION
from asya.payloads.stores import store_url_from_env

DEFAULT_DATABASE_URL = "sqlite:///.asya/jobs.db"
DEFAULT_MAX_BODY = 10 * 1024 * 1024
#: The deadline of a tool that sets no ``timeout`` (the original gateway's 5 min).
DEFAULT_TOOL_TIMEOUT = 300.0
_DATABASE_SCHEMES = ("postgres://", "postgresql://", "sqlite://")


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "0.0.0.0"
    port: int = 8080
    config_path: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    transport_url: str = DEFAULT_TRANSPORT_URL
    exchange: str = "asya"
    publish_concurrency: int = 20
    database_pool_size: int = 20
    database_max_overflow: int = 0
    publish_connections: int = 4
    workers: int = 1
    api_keys: tuple[str, ...] = ()
    actor_token: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    auto_migrate: bool = True
    sse_keepalive: float = 15.0
    sweep_interval: float = 0.25
    default_timeout: float | None = DEFAULT_TOOL_TIMEOUT  # None: tools without timeout never end
    transport_variable: str = "ASYA_RABBITMQ_URL"  # where transport_url came from (errors)
    happy_end: str = "happy-end"
    error_end: str = "error-end"
    up_status_file: str | None = None  # set by `asya up`: its mesh status (the console reads it)
    #: Public names of the deployment for /mcp's Host/Origin check (loopback is always allowed).
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    #: Where results by reference are read, large tool arguments are written, and both are
    #: deleted after the retention (docs/reference/jobs.md#arguments-by-reference); None:
    #: references are refused and every first message goes inline.
    payload_store_url: str | None = None
    payload_offload_threshold: int = DEFAULT_THRESHOLD
    payload_retention: float = DEFAULT_RETENTION

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = Env(os.environ if environ is None else environ)
        port = env.get_int("ASYA_GATEWAY_PORT", 8080, minimum=0)
        if port > 65535:
            raise ConfigError("ASYA_GATEWAY_PORT", f"must be at most 65535, got {port}")
        database_url = env.get_str("ASYA_DATABASE_URL", DEFAULT_DATABASE_URL)
        if not database_url.startswith(_DATABASE_SCHEMES):
            raise ConfigError(
                "ASYA_DATABASE_URL",
                f"unsupported URL {database_url!r} (use postgresql://… or sqlite:///path)",
            )
        transport_url, transport_variable = env.transport_url()
        keys = env.get_optional_str("ASYA_GATEWAY_API_KEYS") or ""
        sse_keepalive = env.get_duration("ASYA_GATEWAY_SSE_KEEPALIVE", 15.0)
        if sse_keepalive <= 0:
            raise ConfigError("ASYA_GATEWAY_SSE_KEEPALIVE", "must be positive")
        sweep_interval = env.get_duration("ASYA_GATEWAY_SWEEP_INTERVAL", 0.25)
        if sweep_interval <= 0:
            raise ConfigError("ASYA_GATEWAY_SWEEP_INTERVAL", "must be positive")
        default_timeout = env.get_duration("ASYA_GATEWAY_DEFAULT_TIMEOUT", DEFAULT_TOOL_TIMEOUT)
        payload_store_url = store_url_from_env(env)
        return cls(
            host=env.get_str("ASYA_GATEWAY_HOST", "0.0.0.0"),
            port=port,
            config_path=env.get_optional_str("ASYA_CONFIG_PATH"),
            database_url=database_url,
            transport_url=transport_url,
            exchange=env.get_str("ASYA_RABBITMQ_EXCHANGE", "asya"),
            publish_concurrency=env.get_int("ASYA_RABBITMQ_POOL_SIZE", 20, minimum=1),
            database_pool_size=env.get_int("ASYA_DATABASE_POOL_SIZE", 20, minimum=1),
            database_max_overflow=env.get_int("ASYA_DATABASE_MAX_OVERFLOW", 0, minimum=0),
            publish_connections=env.get_int("ASYA_GATEWAY_PUBLISH_CONNECTIONS", 4, minimum=1),
            workers=env.get_int("ASYA_GATEWAY_WORKERS", 1, minimum=1),
            api_keys=_names(keys),
            actor_token=env.get_optional_str("ASYA_GATEWAY_ACTOR_TOKEN"),
            max_body=env.get_int("ASYA_GATEWAY_MAX_BODY", DEFAULT_MAX_BODY, minimum=1),
            auto_migrate=env.get_bool("ASYA_DB_AUTO_MIGRATE", True),
            sse_keepalive=sse_keepalive,
            sweep_interval=sweep_interval,
            default_timeout=default_timeout or None,
            transport_variable=transport_variable,
            happy_end=env.get_str("ASYA_STEP_HAPPY_END", "happy-end"),
            error_end=env.get_str("ASYA_STEP_ERROR_END", "error-end"),
            up_status_file=env.get_optional_str("ASYA_UP_STATUS_FILE"),
            allowed_hosts=_names(env.get_optional_str("ASYA_GATEWAY_ALLOWED_HOSTS") or ""),
            allowed_origins=_names(env.get_optional_str("ASYA_GATEWAY_ALLOWED_ORIGINS") or ""),
            payload_store_url=payload_store_url,
            payload_offload_threshold=env.get_int(
                "ASYA_PAYLOAD_OFFLOAD_THRESHOLD", DEFAULT_THRESHOLD, minimum=1
            ),
            payload_retention=env.get_duration("ASYA_PAYLOAD_RETENTION", DEFAULT_RETENTION),
        )


def _names(value: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(name.strip() for name in value.split(",") if name.strip())
