"""``asya call`` / ``jobs`` / ``tools`` against a fake gateway: output and exit codes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from asya.cli import client as client_cli
from asya.client.gateway import GatewayClient

TRACEBACK = """Traceback (most recent call last):
  File "/home/me/project/handlers.py", line 12, in parse
    return {"word": p["missing_key"]}
                    ~^^^^^^^^^^^^^^^
KeyError: 'missing_key'
"""

TOOLS = {
    "tools": [
        {
            "name": "test_pipeline",
            "description": "Double then add five",
            "inputSchema": {
                "type": "object",
                "properties": {"value": {"type": "integer", "description": "the input"}},
                "required": ["value"],
            },
        }
    ]
}


def sse(*events: tuple[str, Any]) -> str:
    chunks = []
    for seq, (kind, data) in enumerate(events):
        if kind == "status":
            chunks.append(f"event: status\ndata: {data}\n\n")
        else:
            chunks.append(f"id: {seq}\nevent: update\ndata: {json.dumps(data)}\n\n")
    return "".join(chunks)


class FakeGateway:
    """Answers like the gateway for one job whose outcome the test chooses."""

    def __init__(self, outcome: str = "Succeeded") -> None:
        self.outcome = outcome
        self.error_details: dict[str, Any] | None = None
        self.calls: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.listed: list[dict[str, str]] = []

    def job(self) -> dict[str, Any]:
        if self.outcome == "Succeeded":
            return {"id": "j1", "status": "Succeeded", "result": {"value": 25}, "error": None}
        return {
            "id": "j1",
            "status": "Failed",
            "result": None,
            "error": "processing_error: boom",
            "error_details": self.error_details,
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.auth.append(request.headers.get("authorization"))
        path = request.url.path
        if path == "/tools":
            return httpx.Response(200, json=TOOLS)
        if path == "/tools/call":
            self.calls.append(json.loads(request.content))
            return httpx.Response(200, json={"structuredContent": {"job_id": "j1"}})
        if path == "/jobs/j1/stream":
            body = sse(
                ("status", "Running"),
                (
                    "update",
                    {
                        "status": "Running",
                        "progress_percent": 5,
                        "step": "doubler",
                        "step_status": "received",
                        "message": "Received message (0.05 KB)",
                    },
                ),
                (
                    "update",
                    {
                        "status": "Running",
                        "progress_percent": 50,
                        "step": "doubler",
                        "step_status": "completed",
                        "message": "Completed processing in 3 ms",
                    },
                ),
                (
                    "update",
                    {
                        "status": self.outcome,
                        "progress_percent": 100 if self.outcome == "Succeeded" else 50,
                        "message": "done",
                        "error": self.job()["error"],
                    },
                ),
            )
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=body)
        if path == "/jobs/j1":
            return httpx.Response(200, json=self.job())
        if path == "/jobs":
            self.listed.append(dict(request.url.params))
            return httpx.Response(200, json={"jobs": [{**self.job(), "tool": "test_pipeline"}]})
        return httpx.Response(404, json={"error": "job not found"})


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    fake = FakeGateway()

    def factory(url: str, api_key: str | None = None) -> GatewayClient:
        return GatewayClient(url, api_key, transport=httpx.MockTransport(fake))

    monkeypatch.setattr(client_cli, "GatewayClient", factory)
    return fake


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(client_cli.call, list(args), env=env)


def test_call_prints_plain_progress_on_stderr_and_the_result_on_stdout(
    gateway: FakeGateway,
) -> None:
    result = run("test_pipeline", "value=10")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"value": 25}
    assert gateway.calls == [{"name": "test_pipeline", "arguments": {"value": 10}}]
    lines = result.stderr.splitlines()
    assert lines[0] == "job j1 created"
    assert "[  5%] Running doubler (received) Received message (0.05 KB)" in lines
    assert "[ 50%] Running doubler (completed) Completed processing in 3 ms" in lines
    assert lines[-1] == "job j1 Succeeded"


def test_failed_job_exits_1_with_the_error_on_stderr(gateway: FakeGateway) -> None:
    gateway.outcome = "Failed"

    result = run("test_pipeline", "value=10")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "job j1 Failed: processing_error: boom" in result.stderr


def with_key_error(gateway: FakeGateway) -> None:
    gateway.outcome = "Failed"
    gateway.error_details = {
        "code": "processing_error",
        "message": "'missing_key'",
        "type": "KeyError",
        "traceback": TRACEBACK,
        "failed_step": "parse",
        "branch": None,
        "attempts": 1,
        "severity": "fatal",
    }


def test_failed_job_shows_the_step_the_exception_and_the_handlers_line(
    gateway: FakeGateway,
) -> None:
    with_key_error(gateway)

    result = run("test_pipeline", "value=10")

    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    at = lines.index("job j1 Failed at step 'parse': KeyError: 'missing_key'")
    assert lines[at + 1] == "  at /home/me/project/handlers.py:12, in parse"
    assert lines[at + 2] == '    return {"word": p["missing_key"]}'
    assert "Traceback (most recent call last):" not in result.stderr


@pytest.mark.parametrize("flag", ["-v", "--traceback"])
def test_traceback_flag_prints_the_whole_traceback(gateway: FakeGateway, flag: str) -> None:
    with_key_error(gateway)

    result = run("test_pipeline", "value=10", flag)

    assert result.exit_code == 1
    assert "job j1 Failed at step 'parse': KeyError: 'missing_key'" in result.stderr
    for line in TRACEBACK.splitlines():
        assert f"  {line}" in result.stderr


def test_unknown_tool_is_a_usage_error_listing_the_tools(gateway: FakeGateway) -> None:
    result = run("nope", "value=1")

    assert result.exit_code == 2
    assert "unknown tool 'nope' (available: test_pipeline)" in result.stderr
    assert gateway.calls == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [((), "missing required argument 'value'"), (("value=ten",), "must be integer")],
)
def test_missing_or_mistyped_argument_is_a_usage_error_listing_parameters(
    gateway: FakeGateway, args: tuple[str, ...], expected: str
) -> None:
    result = run("test_pipeline", *args)

    assert result.exit_code == 2
    assert expected in result.stderr
    assert "value: integer (required) — the input" in result.stderr
    assert gateway.calls == []


def test_no_wait_prints_the_job_id_only(gateway: FakeGateway) -> None:
    result = run("test_pipeline", "--json", '{"value": 3}', "--no-wait")

    assert result.exit_code == 0
    assert result.stdout.strip() == "j1"
    assert gateway.calls == [{"name": "test_pipeline", "arguments": {"value": 3}}]


def test_api_key_is_sent_as_a_bearer_token(gateway: FakeGateway) -> None:
    run("test_pipeline", "value=1", "--no-wait", env={"ASYA_GATEWAY_API_KEY": "k1"})

    assert set(gateway.auth) == {"Bearer k1"}


def test_unreachable_gateway_exits_3() -> None:
    from tests.helpers import free_port

    result = run("test_pipeline", "value=1", "--gateway", f"http://127.0.0.1:{free_port()}")

    assert result.exit_code == 3
    assert "cannot reach the gateway" in result.stderr


def test_jobs_get_shows_the_job_and_unknown_jobs_exit_1(gateway: FakeGateway) -> None:
    found = CliRunner().invoke(client_cli.jobs, ["get", "j1"])
    as_json = CliRunner().invoke(client_cli.jobs, ["get", "j1", "--json"])
    missing = CliRunner().invoke(client_cli.jobs, ["get", "other"])

    assert found.exit_code == 0
    assert "  status   Succeeded" in found.stdout.splitlines()
    assert '      "value": 25' in found.stdout.splitlines()
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["result"] == {"value": 25}
    assert missing.exit_code == 1
    assert "job not found" in missing.stderr


def test_jobs_get_of_a_failed_job_shows_its_cause_and_json_keeps_the_details(
    gateway: FakeGateway,
) -> None:
    with_key_error(gateway)

    shown = CliRunner().invoke(client_cli.jobs, ["get", "j1"])
    verbose = CliRunner().invoke(client_cli.jobs, ["get", "j1", "-v"])
    as_json = CliRunner().invoke(client_cli.jobs, ["get", "j1", "--json"])

    assert shown.exit_code == 0
    assert "job j1 Failed at step 'parse': KeyError: 'missing_key'" in shown.stdout
    assert "  at /home/me/project/handlers.py:12, in parse" in shown.stdout
    assert "  Traceback (most recent call last):" in verbose.stdout
    assert json.loads(as_json.stdout)["error_details"] == gateway.error_details


def test_jobs_watch_follows_like_call(gateway: FakeGateway) -> None:
    result = CliRunner().invoke(client_cli.jobs, ["watch", "j1"])

    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"value": 25}


def test_jobs_list_and_tools_print_tables(gateway: FakeGateway) -> None:
    listed = CliRunner().invoke(client_cli.jobs, ["list", "--limit", "5"])
    tools = CliRunner().invoke(client_cli.tools, [])

    filtered = CliRunner().invoke(
        client_cli.jobs, ["list", "--status", "Failed", "--tool", "test_pipeline", "--json"]
    )

    assert listed.exit_code == 0
    assert "j1" in listed.stdout
    assert "Succeeded" in listed.stdout
    assert "test_pipeline" in listed.stdout
    assert filtered.exit_code == 0
    assert json.loads(filtered.stdout)[0]["tool"] == "test_pipeline"
    assert gateway.listed[-1] == {"status": "Failed", "tool": "test_pipeline", "limit": "20"}
    assert tools.exit_code == 0
    assert "test_pipeline" in tools.stdout
    assert "value: integer (required)" in tools.stdout
