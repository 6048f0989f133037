"""``asya call``, ``asya jobs`` and ``asya tools``: the terminal client of the gateway
(docs/reference/cli.md#asya-call).

Exit codes: 0 the job Succeeded (or the query worked), 1 the job Failed (error on stderr),
2 a usage error (unknown tool, missing or mistyped argument: the tool's parameters are listed),
3 the gateway cannot be reached. ``ASYA_GATEWAY_URL`` (default http://localhost:8080) and
``ASYA_GATEWAY_API_KEY`` (sent as a bearer token) configure every command.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click

from asya.client.arguments import (
    UsageError,
    check_arguments,
    parse_assignments,
    parse_json_object,
)
from asya.client.gateway import (
    DEFAULT_GATEWAY_URL,
    TERMINAL,
    GatewayClient,
    GatewayRefused,
    GatewayUnreachable,
    JobEvent,
)
from asya.client.job_view import job_lines
from asya.client.jobs_table import jobs_table
from asya.client.progress_view import choose_view, print_outcome
from asya.client.stall import StallWatch
from asya.errors import JobNotFound

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

_gateway_option = click.option(
    "--gateway",
    "gateway_url",
    envvar="ASYA_GATEWAY_URL",
    default=DEFAULT_GATEWAY_URL,
    show_default=True,
    help="Gateway URL (env ASYA_GATEWAY_URL).",
)


def _fail(code: int, message: str) -> NoReturn:
    click.secho(message, fg="red", err=True)
    sys.exit(code)


def _new_client(url: str) -> GatewayClient:
    return GatewayClient(url, os.environ.get("ASYA_GATEWAY_API_KEY") or None)


@contextmanager
def _client(url: str) -> Iterator[GatewayClient]:
    """A client whose errors become the documented exit codes."""
    try:
        with _new_client(url) as client:
            yield client
    except GatewayUnreachable as exc:
        _fail(EXIT_UNREACHABLE, f"error: {exc}")
    except JobNotFound as exc:
        _fail(EXIT_FAILED, f"error: {exc}")
    except GatewayRefused as exc:
        if exc.status == 401:
            _fail(EXIT_USAGE, "error: unauthorized: set ASYA_GATEWAY_API_KEY to a valid key")
        if 400 <= exc.status < 500:
            _fail(EXIT_USAGE, f"error: {exc.message}")
        _fail(EXIT_FAILED, f"error: {exc}")
    except UsageError as exc:
        _fail(EXIT_USAGE, f"error: {exc}")


_traceback_option = click.option(
    "-v",
    "--traceback",
    "verbose",
    is_flag=True,
    help="On failure, print the whole traceback (not only the handler's line).",
)


def _moved(event: JobEvent) -> bool:
    """Whether an event shows the job past its first queue (an actor reported, or it ended)."""
    percent = event.data.get("progress_percent")
    return event.terminal or bool(event.data.get("step")) or bool(percent)


def _follow(
    client: GatewayClient, job_id: str, interactive: bool | None = None, verbose: bool = False
) -> int:
    """Show the job until it ends; Ctrl-C leaves it running and says how to follow it again."""
    view = choose_view(interactive)
    view.start(job_id)
    watch = StallWatch(lambda: _new_client(client.url), job_id, view.note)
    watch.start()
    try:
        for event in client.stream(job_id):
            view.update(event)
            if _moved(event):
                watch.moved()
    except KeyboardInterrupt:
        watch.stop()
        view.stop()
        click.echo(
            f"job {job_id} goes on — `asya jobs cancel {job_id}` to stop it, "
            f"`asya jobs watch {job_id}` to follow it",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    finally:
        watch.stop()
        view.stop()
    job = client.job(job_id)
    if job.get("status") not in TERMINAL:
        _fail(EXIT_FAILED, f"error: the stream ended but job {job_id} is {job.get('status')}")
    return print_outcome(job, verbose=verbose)


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("tool")
@click.argument("assignments", nargs=-1)
@click.option("--json", "json_text", help="Arguments as a JSON object (key=value pairs win).")
@_gateway_option
@click.option("--no-wait", is_flag=True, help="Print the job id and return at once.")
@_traceback_option
def call(
    tool: str,
    assignments: tuple[str, ...],
    json_text: str | None,
    gateway_url: str,
    no_wait: bool,
    verbose: bool,
) -> None:
    """Call TOOL with key=value arguments and follow the job to its result.

    A value that parses as JSON is JSON (value=10 is the integer 10); anything else is a
    string. Example: asya call test_pipeline value=10
    """
    with _client(gateway_url) as client:
        base = parse_json_object(json_text) if json_text else {}
        tools = {t.name: t for t in client.tools()}
        info = tools.get(tool)
        if info is None:
            names = ", ".join(sorted(tools)) or "none"
            raise UsageError(f"unknown tool {tool!r} (available: {names})")
        arguments = parse_assignments(assignments, base, info)
        check_arguments(info, arguments)
        try:
            job_id = client.call(tool, arguments)
        except GatewayRefused as exc:
            if exc.status == 400:
                raise UsageError(f"{exc.message}\n{info.usage()}") from None
            raise
        if no_wait:
            click.echo(job_id)
            return
        sys.exit(_follow(client, job_id, verbose=verbose))


@click.group()
def jobs() -> None:
    """Inspect jobs: get, watch, list, cancel."""


@jobs.command("get")
@click.argument("job_id")
@_gateway_option
@click.option("--json", "as_json", is_flag=True, help="Print the job as the API returns it.")
@_traceback_option
def jobs_get(job_id: str, gateway_url: str, as_json: bool, verbose: bool) -> None:
    """Show job JOB_ID: status, progress, and its result or why it failed."""
    with _client(gateway_url) as client:
        job = client.job(job_id)
    if as_json:
        click.echo(json.dumps(job, indent=2, ensure_ascii=False))
        return
    click.echo("\n".join(job_lines(job, verbose=verbose)))


@jobs.command("watch")
@click.argument("job_id")
@_gateway_option
@_traceback_option
def jobs_watch(job_id: str, gateway_url: str, verbose: bool) -> None:
    """Follow job JOB_ID's progress; print its result (exit 0) or error (exit 1)."""
    with _client(gateway_url) as client:
        sys.exit(_follow(client, job_id, verbose=verbose))


@jobs.command("cancel")
@click.argument("job_id")
@_gateway_option
def jobs_cancel(job_id: str, gateway_url: str) -> None:
    """Cancel job JOB_ID: its messages are dropped along the route, a running step stopped."""
    with _client(gateway_url) as client:
        try:
            job = client.cancel(job_id)
        except GatewayRefused as exc:
            if exc.status == 409:  # it ended first: not a usage error
                _fail(EXIT_FAILED, f"error: job {job_id}: {exc.message}")
            raise
    click.echo(f"job {job_id} {job.get('status')}")


@jobs.command("list")
@click.option(
    "--status",
    type=click.Choice(["Pending", "Running", "Succeeded", "Failed", "Cancelled", "Unknown"]),
    help="Only jobs with this status.",
)
@click.option("--tool", help="Only jobs of this tool.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@_gateway_option
def jobs_list(
    status: str | None, tool: str | None, limit: int, as_json: bool, gateway_url: str
) -> None:
    """List recent jobs, newest first: tool, status, progress, duration, error."""
    with _client(gateway_url) as client:
        found = client.jobs(status=status, limit=limit, tool=tool)
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    console = Console(highlight=False)
    console.print(jobs_table(found, console.width))


@click.command()
@_gateway_option
@click.option("--json", "as_json", is_flag=True, help="Print the tools as JSON.")
def tools(gateway_url: str, as_json: bool) -> None:
    """List the gateway's tools and their parameters."""
    with _client(gateway_url) as client:
        found = client.tools()
    if as_json:
        plain = [
            {
                "name": t.name,
                "description": t.description,
                "parameters": [p.describe() for p in t.parameters],
            }
            for t in found
        ]
        click.echo(json.dumps(plain, indent=2, ensure_ascii=False))
        return
    _print_table(
        ["tool", "description", "parameters"],
        [
            [t.name, t.description, "\n".join(p.describe() for p in t.parameters) or "(none)"]
            for t in found
        ],
    )


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    # The first column is what users copy (a job id, a tool name): never cut it.
    widest = max([len(headers[0]), *(len(row[0]) for row in rows)])
    table.add_column(headers[0], no_wrap=True, min_width=widest)
    for header in headers[1:]:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    Console(highlight=False).print(table)
