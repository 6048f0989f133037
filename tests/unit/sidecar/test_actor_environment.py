"""``asya actor``: what its two children are given."""

from __future__ import annotations

from asya.cli.actor import child_environment


def test_flags_override_the_environment_and_everything_else_is_passed_on() -> None:
    environ = {
        "ASYA_RUNTIME_TIMEOUT": "1m",
        "ASYA_HANDLER_ARG_TYPE": "envelope",
        "ASYA_GATEWAY_TOKEN": "tok",
        "OTHER": "x",
        "PYTHONPATH": "/extra",
    }
    options = {
        "handler": "h.f",
        "queue": "q",
        "mode": "payload",
        "timeout": "5s",
        "prefetch": 10,
        "terminal": True,
        "metrics": False,
        "gateway_url": None,
    }
    env = child_environment(environ, options, "/tmp/x/app.sock")
    assert env["ASYA_HANDLER"] == "h.f"
    assert env["ASYA_QUEUE_NAME"] == "q"
    assert env["ASYA_HANDLER_MODE"] == "payload"
    assert "ASYA_HANDLER_ARG_TYPE" not in env  # the flag wins over the alias as well
    assert env["ASYA_RUNTIME_TIMEOUT"] == "5s"
    assert env["ASYA_RABBITMQ_PREFETCH"] == "10"
    assert env["ASYA_IS_TERMINAL"] == "true"
    assert env["ASYA_METRICS_ENABLED"] == "false"
    assert "ASYA_GATEWAY_URL" not in env
    assert env["ASYA_GATEWAY_TOKEN"] == "tok"
    assert env["OTHER"] == "x"
    assert env["ASYA_SOCKET_PATH"] == "/tmp/x/app.sock"
    assert env["PYTHONPATH"].split(":")[-1] == "/extra"


def test_without_flags_the_environment_decides() -> None:
    env = child_environment(
        {"ASYA_RUNTIME_TIMEOUT": "1m", "ASYA_SOCKET_PATH": "/elsewhere.sock"},
        {"handler": "h.f", "queue": "q"},
        "/tmp/private/app.sock",
    )
    assert env["ASYA_RUNTIME_TIMEOUT"] == "1m"
    assert env["ASYA_SOCKET_PATH"] == "/tmp/private/app.sock"  # always the private socket
