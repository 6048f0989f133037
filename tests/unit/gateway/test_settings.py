"""Gateway settings from the environment (docs/reference/gateway-api.md#environment)."""

from __future__ import annotations

import pytest

from asya.errors import ConfigError
from asya.gateway.database import sqlalchemy_url
from asya.gateway.settings import GatewaySettings


def test_defaults_match_the_spec() -> None:
    settings = GatewaySettings.from_env({})
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.database_url == "sqlite:///.asya/jobs.db"
    assert settings.transport_url == "amqp://guest:guest@localhost:5672/"
    assert (settings.exchange, settings.publish_concurrency) == ("asya", 20)
    assert settings.api_keys == ()
    assert settings.actor_token is None
    assert settings.max_body == 10 * 1024 * 1024
    assert settings.payload_offload_threshold == 256 * 1024
    assert settings.auto_migrate is True
    assert settings.sse_keepalive == 15
    assert (settings.database_pool_size, settings.database_max_overflow) == (20, 0)
    assert settings.publish_connections == 4
    assert settings.workers == 1
    assert settings.default_timeout == 300  # the original gateway's 5 min


@pytest.mark.parametrize(
    ("value", "seconds"), [("2s", 2.0), ("1m30s", 90.0), ("45", 45.0), ("0", None), ("0s", None)]
)
def test_default_timeout_takes_go_durations_or_seconds_and_0_means_none(
    value: str, seconds: float | None
) -> None:
    settings = GatewaySettings.from_env({"ASYA_GATEWAY_DEFAULT_TIMEOUT": value})
    assert settings.default_timeout == seconds


def test_throughput_settings_are_read() -> None:
    settings = GatewaySettings.from_env(
        {
            "ASYA_DATABASE_POOL_SIZE": "8",
            "ASYA_DATABASE_MAX_OVERFLOW": "2",
            "ASYA_GATEWAY_PUBLISH_CONNECTIONS": "1",
            "ASYA_GATEWAY_WORKERS": "3",
        }
    )
    assert (settings.database_pool_size, settings.database_max_overflow) == (8, 2)
    assert settings.publish_connections == 1
    assert settings.workers == 3


def test_every_variable_is_read() -> None:
    settings = GatewaySettings.from_env(
        {
            "ASYA_GATEWAY_PORT": "9000",
            "ASYA_GATEWAY_HOST": "127.0.0.1",
            "ASYA_CONFIG_PATH": "/etc/tools.yaml",
            "ASYA_DATABASE_URL": "postgres://db/asya",
            "ASYA_RABBITMQ_URL": "amqp://r/",
            "ASYA_TRANSPORT_URL": "sqlite:///q.db",
            "ASYA_RABBITMQ_EXCHANGE": "mine",
            "ASYA_RABBITMQ_POOL_SIZE": "5",
            "ASYA_GATEWAY_API_KEYS": "a, b ,,c",
            "ASYA_GATEWAY_ACTOR_TOKEN": "tok",
            "ASYA_GATEWAY_MAX_BODY": "1024",
            "ASYA_DB_AUTO_MIGRATE": "false",
            "ASYA_GATEWAY_ALLOWED_HOSTS": "gw.example.com, gw.example.com:8443",
            "ASYA_GATEWAY_ALLOWED_ORIGINS": "https://console.example.com",
            "ASYA_PAYLOAD_OFFLOAD_THRESHOLD": "4096",
        }
    )
    assert settings.port == 9000
    assert settings.host == "127.0.0.1"
    assert settings.config_path == "/etc/tools.yaml"
    assert settings.database_url == "postgres://db/asya"
    assert settings.transport_url == "sqlite:///q.db"  # ASYA_TRANSPORT_URL wins
    assert settings.transport_variable == "ASYA_TRANSPORT_URL"
    assert (settings.exchange, settings.publish_concurrency) == ("mine", 5)
    assert settings.api_keys == ("a", "b", "c")
    assert settings.actor_token == "tok"
    assert settings.max_body == 1024
    assert settings.auto_migrate is False
    assert settings.allowed_hosts == ("gw.example.com", "gw.example.com:8443")
    assert settings.allowed_origins == ("https://console.example.com",)
    assert settings.payload_offload_threshold == 4096


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ASYA_GATEWAY_PORT", "http"),
        ("ASYA_GATEWAY_PORT", "70000"),
        ("ASYA_DATABASE_URL", "mysql://x/y"),
        ("ASYA_RABBITMQ_POOL_SIZE", "0"),
        ("ASYA_GATEWAY_MAX_BODY", "big"),
        ("ASYA_DB_AUTO_MIGRATE", "maybe"),
        ("ASYA_DATABASE_POOL_SIZE", "0"),
        ("ASYA_DATABASE_MAX_OVERFLOW", "-1"),
        ("ASYA_GATEWAY_PUBLISH_CONNECTIONS", "0"),
        ("ASYA_GATEWAY_WORKERS", "none"),
        ("ASYA_GATEWAY_DEFAULT_TIMEOUT", "soon"),
        ("ASYA_GATEWAY_DEFAULT_TIMEOUT", "-5"),
        ("ASYA_PAYLOAD_OFFLOAD_THRESHOLD", "0"),
    ],
)
def test_bad_values_raise_config_errors_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GatewaySettings.from_env({variable: value})
    assert caught.value.variable == variable


def test_database_urls_map_to_async_drivers(tmp_path: object) -> None:
    assert sqlalchemy_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert sqlalchemy_url("postgresql://u@h:5433/db") == "postgresql+asyncpg://u@h:5433/db"
    assert (
        sqlalchemy_url(f"sqlite:///{tmp_path}/a/b.db") == f"sqlite+aiosqlite:///{tmp_path}/a/b.db"
    )
