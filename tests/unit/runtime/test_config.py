"""Configuration parsing: variables, defaults and value rules
(docs/reference/runtime-protocol.md#environment)."""

from __future__ import annotations

import logging

import pytest

from asya.runtime import (
    DEFAULT_SOCKET_PATH,
    RuntimeConfig,
    RuntimeConfigError,
    handler_spec_problem,
    parse_bool,
    parse_duration,
    parse_octal_mode,
)


def config(**env: str) -> RuntimeConfig:
    return RuntimeConfig.from_env({"ASYA_HANDLER": "handlers.process", **env})


def test_defaults_follow_the_spec() -> None:
    cfg = config()

    assert cfg == RuntimeConfig(
        handler="handlers.process",
        mode="payload",
        socket_path=DEFAULT_SOCKET_PATH,
        socket_chmod=0o660,
        validation=True,
        timeout=None,
        oom_detection=True,
        cuda_cleanup=True,
        chunk_size=65536,
        max_message_size=104857600,
    )


def test_every_variable_is_read() -> None:
    cfg = config(
        ASYA_HANDLER_MODE="message",
        ASYA_SOCKET_PATH="/tmp/x/actor.sock",
        ASYA_SOCKET_CHMOD="0o600",
        ASYA_ENABLE_VALIDATION="off",
        ASYA_RUNTIME_TIMEOUT="1m30s",
        ASYA_ENABLE_OOM_DETECTION="no",
        ASYA_CUDA_CLEANUP_ON_OOM="0",
        ASYA_CHUNK_SIZE="4096",
        ASYA_MAX_MESSAGE_SIZE="1000",
    )

    assert cfg == RuntimeConfig(
        "handlers.process", "message", "/tmp/x/actor.sock", 0o600, False, 90.0, False, False,
        4096, 1000,
    )  # fmt: skip


def test_empty_values_mean_unset_except_socket_chmod_which_means_leave_it() -> None:
    cfg = config(ASYA_SOCKET_PATH="", ASYA_RUNTIME_TIMEOUT="", ASYA_SOCKET_CHMOD="")

    assert cfg.socket_path == DEFAULT_SOCKET_PATH
    assert cfg.timeout is None
    assert cfg.socket_chmod is None


def test_zero_timeout_means_no_limit() -> None:
    assert config(ASYA_RUNTIME_TIMEOUT="0").timeout is None


def test_relative_socket_path_is_made_absolute() -> None:
    assert config(ASYA_SOCKET_PATH="rel/app.sock").socket_path.endswith("/rel/app.sock")


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "payload"),
        ({"ASYA_HANDLER_MODE": "Message"}, "message"),
        ({"ASYA_HANDLER_MODE": "envelope"}, "message"),
        ({"ASYA_HANDLER_ARG_TYPE": "envelope"}, "message"),
        ({"ASYA_HANDLER_MODE": "payload", "ASYA_HANDLER_ARG_TYPE": "envelope"}, "payload"),
        ({"ASYA_HANDLER_MODE": "message", "ASYA_HANDLER_ARG_TYPE": "payload"}, "message"),
    ],
)
def test_handler_mode_and_its_alias(env: dict[str, str], mode: str) -> None:
    assert config(**env).mode == mode


def test_disagreeing_mode_variables_log_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asya.runtime"):
        config(ASYA_HANDLER_MODE="payload", ASYA_HANDLER_ARG_TYPE="envelope")

    assert "disagree; using ASYA_HANDLER_MODE" in caplog.text


def test_agreeing_mode_variables_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asya.runtime"):
        config(ASYA_HANDLER_MODE="message", ASYA_HANDLER_ARG_TYPE="envelope")

    assert caplog.text == ""


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ASYA_HANDLER_MODE", "json"),
        ("ASYA_HANDLER_ARG_TYPE", "dict"),
        ("ASYA_SOCKET_CHMOD", "rw-rw----"),
        ("ASYA_SOCKET_CHMOD", "0o99"),
        ("ASYA_ENABLE_VALIDATION", "maybe"),
        ("ASYA_ENABLE_OOM_DETECTION", "2"),
        ("ASYA_CUDA_CLEANUP_ON_OOM", "y"),
        ("ASYA_RUNTIME_TIMEOUT", "5 minutes"),
        ("ASYA_RUNTIME_TIMEOUT", "-1"),
        ("ASYA_CHUNK_SIZE", "0"),
        ("ASYA_CHUNK_SIZE", "64k"),
        ("ASYA_MAX_MESSAGE_SIZE", "-5"),
        ("ASYA_SOCKET_PATH", "/tmp/" + "x" * 110),
    ],
)
def test_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(RuntimeConfigError) as caught:
        config(**{variable: value})

    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_missing_handler_is_an_error() -> None:
    with pytest.raises(RuntimeConfigError, match="ASYA_HANDLER: is required"):
        RuntimeConfig.from_env({"ASYA_HANDLER": ""})


@pytest.mark.parametrize(
    "spec",
    ["os;rm -rf /", "module:function", "module", "a..b", ".a.b", "a.b.", "a.1b", "a.b c", ""],
)
def test_handler_must_be_dotted_identifiers(spec: str) -> None:
    assert handler_spec_problem(spec) is not None
    with pytest.raises(RuntimeConfigError) as caught:
        config(ASYA_HANDLER=spec or "x")  # "" means unset, covered above
    if spec:
        assert caught.value.variable == "ASYA_HANDLER"


@pytest.mark.parametrize("spec", ["m.f", "pkg.mod.Class.method", "_private.handle", "ünï.cödé"])
def test_dotted_identifiers_are_accepted(spec: str) -> None:
    assert handler_spec_problem(spec) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("Yes", True), ("on", True),
     ("false", False), ("0", False), ("NO", False), ("Off", False)],
)  # fmt: skip
def test_booleans(text: str, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300ms", 0.3), ("5s", 5.0), ("1m30s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("2.5", 2.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["660", "0660", "0o660", "0O660"])
def test_octal_modes_with_or_without_prefix(text: str) -> None:
    assert parse_octal_mode(text) == 0o660
