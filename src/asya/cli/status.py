"""``asya status``: one terminal view of a gateway and the mesh behind it
(docs/reference/cli.md#asya-status).

Actors (queue depth, consumers, replicas under ``asya up``), jobs per status over a recent
window and the dead-letter count, from ``GET /actors`` and ``GET /jobs/summary``. Inside a
folder whose ``asya up`` is running, its gateway is the default. Exit codes as the other client
commands: 3 when the gateway cannot be reached.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from asya.cli.client import _client
from asya.client.gateway import DEFAULT_GATEWAY_URL, GatewayClient
from asya.up.status import STATUS_FILE, read_status

_STATUS_STYLES = {"Pending": "dim", "Running": "blue", "Succeeded": "green", "Failed": "red"}


def default_gateway(folder: Path) -> str | None:
    """The gateway of the ``asya up`` running from ``folder`` (None when there is none)."""
    mesh = read_status(folder / ".asya" / STATUS_FILE)
    gateway = (mesh or {}).get("gateway") or {}
    url = gateway.get("url")
    return str(url) if url else None


def collect(client: GatewayClient, since: str) -> dict[str, Any]:
    actors = client.actors()
    summary = client.jobs_summary(since)
    dead = [row for row in actors["actors"] if row["role"] == "dead-letter"]
    return {
        "gateway": client.url,
        "mesh": actors.get("mesh", False),
        "actors": actors["actors"],
        "jobs": summary,
        "dead_letters": dead[0]["depth"] if dead else None,
    }


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)


def render(view: dict[str, Any], since: str) -> Group:
    table = Table(title=f"asya status: {view['gateway']}", title_justify="left")
    for column in ("queue", "role", "depth", "consumers", "Δ depth/s", "replicas", "state"):
        numeric = column in ("depth", "consumers", "Δ depth/s", "replicas")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=column != "state")
    for row in view["actors"]:
        stalled = row["role"] == "step" and row["consumers"] == 0 and (row["depth"] or 0) > 0
        state = row["error"] or row["state"] or ("no consumer" if stalled else "")
        style = "red" if row["error"] or row["state"] == "failed" else "yellow" if stalled else ""
        rate = row["depth_per_second"]
        table.add_row(
            row["queue"],
            row["role"],
            _cell(row["depth"]),
            _cell(row["consumers"]),
            "—" if rate is None else f"{rate:+.1f}",
            _cell(row["replicas"]),
            Text(str(state), style=style),
        )
    counts = view["jobs"]["counts"]
    jobs = Text(f"jobs in the last {since}: ")
    parts = [
        (f"{count} {status}", _STATUS_STYLES.get(status, "")) for status, count in counts.items()
    ]
    for index, (label, style) in enumerate(parts):
        jobs.append(("  " if index else "") + label, style=style)
    jobs.append(f"   (total {view['jobs']['total']})")
    dead = view["dead_letters"]
    dead_line = Text(f"dead letters: {_cell(dead)}", style="red" if dead else "")
    return Group(table, jobs, dead_line)


@click.command()
@click.option(
    "--gateway",
    "gateway_url",
    envvar="ASYA_GATEWAY_URL",
    default=None,
    help="Gateway URL (env ASYA_GATEWAY_URL; default: the gateway of the asya up running "
    f"here, else {DEFAULT_GATEWAY_URL}).",
)
@click.option("--since", default="1h", show_default=True, help="Window of the job counts.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
def status(
    gateway_url: str | None, since: str, watch: bool, interval: float, as_json: bool
) -> None:
    """Actors, queue depths, recent jobs by status and dead letters of a gateway's mesh."""
    url = gateway_url or default_gateway(Path.cwd()) or DEFAULT_GATEWAY_URL
    with _client(url) as client:
        view = collect(client, since)
        if as_json and not watch:
            click.echo(json.dumps(view, indent=2))
            return
        console = Console()
        if not watch:
            console.print(render(view, since))
            return
        try:
            with Live(render(view, since), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    view = collect(client, since)
                    if as_json:
                        click.echo(json.dumps(view))
                    else:
                        live.update(render(view, since), refresh=True)
        except KeyboardInterrupt:
            return
