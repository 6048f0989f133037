"""Starting the runtime: its three commands, bad configuration, handlers that cannot load."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import RUNTIME_FILE, asya_command
from tests.integration.runtime.rtclient import RuntimeProcess, StartRuntime, message, run_to_exit

COMMANDS = {
    "file": [sys.executable, str(RUNTIME_FILE)],
    "module": [sys.executable, "-m", "asya.runtime"],
    "cli": asya_command("runtime"),
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_every_command_serves_the_same_way(start_runtime: StartRuntime, command: list[str]) -> None:
    runtime = start_runtime("rt_handlers.fan_out", command=command)

    response = runtime.call(message({"count": 2}, job_id="j"))

    assert response == [
        {**message({"index": 0}, job_id="j")},
        {**message({"index": 1}, job_id="j")},
    ]


HANDLER_REPORTING_SYS_PATH = """
import sys

def handle(payload):
    return {"got": payload, "sys_path": sys.path}
"""


@pytest.mark.parametrize("flags", [["-I", "-S"], []], ids=["isolated", "plain"])
def test_runtime_file_imports_the_handler_from_its_cwd(tmp_path: Path, flags: list[str]) -> None:
    (tmp_path / "my_actor.py").write_text(HANDLER_REPORTING_SYS_PATH)
    command = [sys.executable, *flags, str(RUNTIME_FILE)]
    runtime = RuntimeProcess("my_actor.handle", command=command, cwd=tmp_path)
    try:
        runtime.wait_ready()

        (output,) = runtime.call(message(3))
    finally:
        runtime.stop()
    assert output["payload"]["got"] == 3
    assert output["payload"]["sys_path"][0] == str(tmp_path)
    assert str(RUNTIME_FILE.parent) not in output["payload"]["sys_path"], (
        "Asya's own folder must not shadow the handler's imports"
    )


BAD_HANDLERS = {
    "os;rm -rf /": "not a dotted Python path",
    "rt_handlers:echo": "not a dotted Python path",
    "rt_handlers": "not a dotted Python path",
    "rt_handlers..echo": "not a dotted Python path",
    "no_such_module_xyz.handle": "no module named 'no_such_module_xyz'",
    "rt_handlers.no_such_function": "rt_handlers has no attribute 'no_such_function'",
    "rt_handlers.NOT_CALLABLE": "rt_handlers.NOT_CALLABLE is not callable",
    "rt_handlers.BrokenInit.process": "model file /models/missing.bin not found",
    "rt_handlers.Counter": "is a class: name its method",
    "rt_broken_import.handle": "No module named 'asya_not_installed_dependency'",
}


@pytest.mark.parametrize(("handler", "reason"), BAD_HANDLERS.items(), ids=BAD_HANDLERS.keys())
@pytest.mark.parametrize("command", [COMMANDS["file"], COMMANDS["cli"]], ids=["file", "cli"])
def test_handler_that_cannot_load_exits_1_and_leaves_no_socket(
    handler: str, reason: str, command: list[str]
) -> None:
    code, logs, left_behind = run_to_exit(handler, command=command)

    assert code == 1
    assert reason in logs
    assert left_behind == [], "no socket file (nor its temporary name) may be left"


BAD_SETTINGS = [
    {"ASYA_ENABLE_VALIDATION": "maybe"},
    {"ASYA_ENABLE_OOM_DETECTION": "2"},
    {"ASYA_CUDA_CLEANUP_ON_OOM": "enabled"},
    {"ASYA_SOCKET_CHMOD": "0o999"},
    {"ASYA_RUNTIME_TIMEOUT": "soon"},
    {"ASYA_HANDLER_MODE": "json"},
    {"ASYA_HANDLER_ARG_TYPE": "dict"},
    {"ASYA_CHUNK_SIZE": "0"},
    {"ASYA_MAX_MESSAGE_SIZE": "lots"},
    {"ASYA_SOCKET_PATH": "/tmp/" + "s" * 120 + ".sock"},
]


@pytest.mark.parametrize("env", BAD_SETTINGS, ids=[next(iter(e)) for e in BAD_SETTINGS])
def test_bad_setting_exits_1_naming_the_variable(env: dict[str, str]) -> None:
    code, logs, left_behind = run_to_exit("rt_handlers.echo", env)

    assert code == 1
    assert f"invalid configuration: {next(iter(env))}:" in logs
    assert left_behind == []


def test_missing_handler_variable_exits_1_naming_it() -> None:
    code, logs, _ = run_to_exit("", {})

    assert code == 1
    assert "ASYA_HANDLER: is required" in logs


@pytest.mark.parametrize("spelling", ["TRUE", "1", "yes", "On"])
def test_booleans_accept_every_spelling(start_runtime: StartRuntime, spelling: str) -> None:
    runtime = start_runtime("rt_handlers.echo", {"ASYA_ENABLE_VALIDATION": spelling})

    assert runtime.call({"payload": 1})[0]["error"] == "msg_parsing_error"


def test_json_log_format_writes_one_json_object_per_line(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.echo", {"ASYA_LOG_FORMAT": "json"})
    runtime.call(message(1))

    lines = runtime.logs().splitlines()

    assert lines, "the runtime logs its start"
    entries = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any("serving rt_handlers.echo" in entry["message"] for entry in entries)


def test_log_level_warning_hides_info_lines(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.echo", {"ASYA_LOG_LEVEL": "WARNING"})
    runtime.call(message(1))

    assert "INFO" not in runtime.logs()
