"""Sidecar settings: defaults of docs/reference/sidecar.md#environment, and exit 2 naming any bad
variable."""

from __future__ import annotations

import pytest

from asya.errors import ConfigError
from asya.sidecar.main import main
from asya.sidecar.settings import CustomMetric, SidecarSettings


def test_defaults_follow_the_spec() -> None:
    settings = SidecarSettings.from_env({"ASYA_QUEUE_NAME": "q"})
    assert settings.queue_name == "q"
    assert settings.transport_url == "amqp://guest:guest@localhost:5672/"
    assert settings.exchange == "asya"
    assert settings.prefetch == 1
    assert settings.socket_path == "/tmp/sockets/app.sock"
    assert settings.runtime_timeout == 300.0
    assert settings.happy_end_queue == "happy-end"
    assert settings.error_end_queue == "error-end"
    assert settings.is_terminal is False
    assert settings.gateway_url is None
    assert settings.name == "q"
    assert settings.max_retries == 0
    assert settings.retry_backoff == 1.0
    assert settings.max_deliveries == 5
    assert settings.metrics_enabled is True
    assert (settings.metrics_host, settings.metrics_port) == ("", 9091)
    assert settings.metrics_namespace == "asya_actor"
    assert settings.custom_metrics == ()


def test_every_variable_is_read() -> None:
    settings = SidecarSettings.from_env(
        {
            "ASYA_QUEUE_NAME": "q",
            "ASYA_RABBITMQ_URL": "amqp://u:p@rabbit:5672/",
            "ASYA_RABBITMQ_EXCHANGE": "ex",
            "ASYA_RABBITMQ_PREFETCH": "10",
            "ASYA_SOCKET_PATH": "/run/a.sock",
            "ASYA_RUNTIME_TIMEOUT": "1m30s",
            "ASYA_STEP_HAPPY_END": "ok",
            "ASYA_STEP_ERROR_END": "ko",
            "ASYA_GATEWAY_URL": "http://gw:8080/",
            "ASYA_GATEWAY_TOKEN": "secret",
            "ASYA_ACTOR_NAME": "doubler",
            "ASYA_MAX_RETRIES": "3",
            "ASYA_RETRY_BACKOFF": "250ms",
            "ASYA_MAX_DELIVERIES": "2",
            "ASYA_METRICS_ENABLED": "off",
            "ASYA_METRICS_ADDR": "127.0.0.1:9100",
            "ASYA_METRICS_NAMESPACE": "custom",
        }
    )
    assert settings.transport_url == "amqp://u:p@rabbit:5672/"
    assert settings.exchange == "ex"
    assert settings.prefetch == 10
    assert settings.socket_path == "/run/a.sock"
    assert settings.runtime_timeout == 90.0
    assert (settings.happy_end_queue, settings.error_end_queue) == ("ok", "ko")
    assert settings.gateway_url == "http://gw:8080"
    assert settings.gateway_token == "secret"
    assert settings.name == "doubler"
    assert settings.max_retries == 3
    assert settings.retry_backoff == 0.25
    assert settings.max_deliveries == 2
    assert settings.metrics_enabled is False
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 9100)
    assert settings.metrics_namespace == "custom"


def test_transport_url_wins_over_the_rabbitmq_url() -> None:
    settings = SidecarSettings.from_env(
        {
            "ASYA_QUEUE_NAME": "q",
            "ASYA_RABBITMQ_URL": "amqp://other/",
            "ASYA_TRANSPORT_URL": "sqlite:///queues.db",
        }
    )
    assert settings.transport_url == "sqlite:///queues.db"


def test_a_terminal_actor_retries_five_times_by_default() -> None:
    settings = SidecarSettings.from_env({"ASYA_QUEUE_NAME": "q", "ASYA_IS_TERMINAL": "true"})
    assert settings.is_terminal is True
    assert settings.max_retries == 5
    explicit = SidecarSettings.from_env(
        {"ASYA_QUEUE_NAME": "q", "ASYA_IS_TERMINAL": "yes", "ASYA_MAX_RETRIES": "0"}
    )
    assert explicit.max_retries == 0


def test_empty_values_count_as_unset() -> None:
    settings = SidecarSettings.from_env(
        {"ASYA_QUEUE_NAME": "q", "ASYA_RABBITMQ_PREFETCH": "", "ASYA_GATEWAY_URL": ""}
    )
    assert settings.prefetch == 1
    assert settings.gateway_url is None


def test_custom_metrics_are_parsed() -> None:
    settings = SidecarSettings.from_env(
        {
            "ASYA_QUEUE_NAME": "q",
            "ASYA_CUSTOM_METRICS": '[{"name": "tokens", "type": "counter", "help": "h", '
            '"labels": ["model"]}, {"name": "lat", "type": "histogram", "buckets": [0.1, 1]}]',
        }
    )
    assert settings.custom_metrics == (
        CustomMetric("tokens", "counter", "h", ("model",)),
        CustomMetric("lat", "histogram", "lat", (), (0.1, 1.0)),
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ASYA_RABBITMQ_PREFETCH", "0"),
        ("ASYA_RABBITMQ_PREFETCH", "many"),
        ("ASYA_RUNTIME_TIMEOUT", "soon"),
        ("ASYA_RUNTIME_TIMEOUT", "0s"),
        ("ASYA_IS_TERMINAL", "maybe"),
        ("ASYA_MAX_RETRIES", "-1"),
        ("ASYA_MAX_DELIVERIES", "0"),
        ("ASYA_RETRY_BACKOFF", "1 minute"),
        ("ASYA_METRICS_ENABLED", "sometimes"),
        ("ASYA_METRICS_ADDR", "9091"),
        ("ASYA_METRICS_ADDR", ":http"),
        ("ASYA_METRICS_NAMESPACE", "has-dash"),
        ("ASYA_CUSTOM_METRICS", "{not json"),
        ("ASYA_CUSTOM_METRICS", '[{"name": "x", "type": "summary"}]'),
        ("ASYA_CUSTOM_METRICS", '[{"name": "bad name", "type": "counter"}]'),
        ("ASYA_TRANSPORT_URL", "http://broker"),
        ("ASYA_TRANSPORT_URL", "sqlite://host/queues.db"),
        ("ASYA_RABBITMQ_URL", "redis://localhost"),
        ("ASYA_GATEWAY_URL", "gateway:8080"),
        ("ASYA_STEP_HAPPY_END", "h" * 256),
    ],
)
def test_a_bad_value_exits_2_naming_the_variable(
    variable: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        SidecarSettings.from_env({"ASYA_QUEUE_NAME": "q", variable: value})
    assert info.value.variable == variable
    assert main({"ASYA_QUEUE_NAME": "q", variable: value}) == 2
    assert variable in capsys.readouterr().err


def test_a_missing_queue_name_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main({}) == 2
    assert "ASYA_QUEUE_NAME" in capsys.readouterr().err


def test_a_custom_metric_clashing_with_a_built_in_one_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {
        "ASYA_QUEUE_NAME": "q",
        "ASYA_TRANSPORT_URL": "memory://clash",
        "ASYA_CUSTOM_METRICS": '[{"name": "active_messages", "type": "gauge"}]',
    }
    assert main(environ) == 2
    assert "ASYA_CUSTOM_METRICS" in capsys.readouterr().err


def test_payload_offload_settings() -> None:
    from asya.sidecar.settings import SidecarSettings as Settings

    base = {"ASYA_QUEUE_NAME": "q"}
    default = Settings.from_env(base)
    assert default.payload_store_url is None
    assert default.payload_offload_threshold == 256 * 1024
    assert default.payload_retention == 86400.0
    custom = Settings.from_env(
        base
        | {
            "ASYA_PAYLOAD_STORE_URL": "s3://bucket/prefix",
            "ASYA_PAYLOAD_OFFLOAD_THRESHOLD": "1000",
            "ASYA_PAYLOAD_RETENTION": "2h",
        }
    )
    assert custom.payload_store_url == "s3://bucket/prefix"
    assert (custom.payload_offload_threshold, custom.payload_retention) == (1000, 7200.0)
    with pytest.raises(ConfigError, match="ASYA_PAYLOAD_STORE_URL"):
        Settings.from_env(base | {"ASYA_PAYLOAD_STORE_URL": "ftp://x"})
