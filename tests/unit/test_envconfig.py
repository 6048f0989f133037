"""The settings layer: transport URL fallback, shared defaults, booleans and durations."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asya.envconfig import (
    DEFAULT_SOCKET_PATH,
    DEFAULT_TRANSPORT_URL,
    Env,
    TransportURL,
    format_duration,
    parse_duration,
    to_seconds,
)
from asya.errors import ConfigError


def test_the_defaults_are_the_documented_ones() -> None:
    assert DEFAULT_TRANSPORT_URL == "amqp://guest:guest@localhost:5672/"
    assert DEFAULT_SOCKET_PATH == "/tmp/sockets/app.sock"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"ASYA_TRANSPORT_URL": "sqlite:///q.db", "ASYA_RABBITMQ_URL": "amqp://r/"},
            TransportURL("sqlite:///q.db", "ASYA_TRANSPORT_URL"),
        ),
        ({"ASYA_RABBITMQ_URL": "amqp://r/"}, TransportURL("amqp://r/", "ASYA_RABBITMQ_URL")),
        (
            {"ASYA_TRANSPORT_URL": "", "ASYA_RABBITMQ_URL": "amqp://r/"},
            TransportURL("amqp://r/", "ASYA_RABBITMQ_URL"),
        ),
        ({}, TransportURL(DEFAULT_TRANSPORT_URL, "ASYA_RABBITMQ_URL")),
    ],
)
def test_transport_url_prefers_asya_transport_url_then_rabbitmq_url_then_the_default(
    environ: dict[str, str], expected: TransportURL
) -> None:
    assert Env(environ).transport_url() == expected


def test_transport_url_without_a_default_says_nothing_was_set() -> None:
    assert Env({"ASYA_RABBITMQ_URL": ""}).transport_url(default=None) is None
    assert Env({"ASYA_RABBITMQ_URL": "amqp://r/"}).transport_url(default=None) == TransportURL(
        "amqp://r/", "ASYA_RABBITMQ_URL"
    )


def test_unset_and_empty_values_give_the_defaults() -> None:
    env = Env({"ASYA_FLAG": ""})
    assert env.get_bool("ASYA_FLAG", True) is True
    assert env.get_duration("ASYA_WAIT", 2.5) == 2.5
    assert env.get_int("ASYA_COUNT", 3) == 3
    assert env.get_str("ASYA_NAME", "x") == "x"
    assert env.get_optional_str("ASYA_FLAG") is None


@pytest.mark.parametrize(("text", "value"), [("yes", True), ("OFF", False), (" 1 ", True)])
def test_booleans_accept_the_usual_spellings(text: str, value: bool) -> None:
    assert Env({"ASYA_FLAG": text}).get_bool("ASYA_FLAG", not value) is value


@pytest.mark.parametrize(
    ("read", "value"),
    [
        (lambda env: env.get_bool("ASYA_X", False), "maybe"),
        (lambda env: env.get_duration("ASYA_X", 1.0), "soon"),
        (lambda env: env.get_duration("ASYA_X", 1.0), "-1s"),
        (lambda env: env.get_int("ASYA_X", 1), "many"),
        (lambda env: env.get_int("ASYA_X", 1, minimum=1), "0"),
        (lambda env: env.required("ASYA_Y"), "unused"),
    ],
)
def test_bad_or_missing_values_name_the_variable(read: Callable[[Env], object], value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read(Env({"ASYA_X": value}))
    assert caught.value.variable in ("ASYA_X", "ASYA_Y")
    assert str(caught.value).startswith(caught.value.variable + ": ")


@pytest.mark.parametrize(
    ("value", "seconds"), [(5, 5.0), (0.25, 0.25), ("300ms", 0.3), ("1m30s", 90.0), ("2", 2.0)]
)
def test_to_seconds_takes_numbers_and_duration_strings(value: object, seconds: float) -> None:
    assert to_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [-1, float("nan"), True, None, [], "5 minutes", "-2s"])
def test_to_seconds_refuses_anything_else(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        to_seconds(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (0.3, "300ms"),
        (90, "1m30s"),
        (300, "5m0s"),
        (3600, "1h0m0s"),
        (1.5, "1.5s"),
        (0, "0s"),
        (0.000002, "2µs"),
    ],
)
def test_durations_are_written_as_go_writes_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "seconds", [0.001, 0.3, 1, 1.5, 59.999, 60, 90, 299.5, 300, 3600, 3661.25, 1e6]
)
def test_a_formatted_duration_parses_back_to_the_same_seconds(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
