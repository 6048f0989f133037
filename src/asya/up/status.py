"""What ``asya up`` tells the world about the running mesh.

The ready table goes to the terminal once everything is up. The status file
(``.asya/up.json`` beside asya.yaml) is rewritten atomically whenever replicas change, so
scripts and tests can read replica counts, queue depths and process ids without parsing logs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

STATUS_FILE = "up.json"


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Replace ``path`` atomically so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_status(path: Path) -> dict[str, Any] | None:
    """The status of the mesh whose file is ``path`` (None when it is not running)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def short_reason(error: str) -> str:
    """The telling line of a start failure: the last line the runtime printed (its exception)."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return lines[-1] if lines else "failed to start"


def failed_actors(status: dict[str, Any]) -> dict[str, str]:
    """Actor name -> why it is not running, for the actors whose handler could not load."""
    return {
        name: str(actor.get("error") or "failed to start")
        for name, actor in status["actors"].items()
        if actor["state"] == "failed"
    }


def working_tools(status: dict[str, Any]) -> list[str]:
    """The tools whose every route step is a running actor of this mesh, in file order."""
    gateway = status.get("gateway") or {}
    routes: dict[str, list[str]] = gateway.get("tool_routes") or {}
    running = {name for name, actor in status["actors"].items() if actor["state"] != "failed"}
    names: list[str] = gateway.get("tool_names") or []
    return [name for name in names if all(step in running for step in routes.get(name, []))]


def headline(status: dict[str, Any]) -> str:
    """``mesh ready``, or ``mesh started with N of M actors`` when some could not start."""
    total = len(status["actors"])
    failed = len(failed_actors(status))
    return "mesh ready" if not failed else f"mesh started with {total - failed} of {total} actors"


def ready_table(status: dict[str, Any]) -> Table:
    """Actors, replicas, queues and URLs, as printed once the mesh is ready."""
    table = Table(title=f"asya up: {headline(status)}", title_justify="left", show_lines=False)
    table.add_column("actor")
    table.add_column("handler")
    table.add_column("replicas", justify="right")
    table.add_column("queue")
    table.add_column("state")
    for name, actor in status["actors"].items():
        scaling = actor.get("scaling")
        replicas = str(actor["replicas"])
        if scaling:
            replicas += f" (min {scaling['min']}, max {scaling['max']})"
        state = "[red]failed[/red]" if actor["state"] == "failed" else "[green]running[/green]"
        table.add_row(name, actor["handler"], replicas, actor["queue"], state)
    for name, member in status.get("crew", {}).items():
        table.add_row(name, member["handler"], "1", member["queue"], "[green]crew[/green]")
    return table


def print_ready(console: Console, status: dict[str, Any], status_path: Path) -> None:
    console.print(ready_table(status))
    for name, reason in failed_actors(status).items():
        console.print(
            f"  [red]not running[/red] {name}: {short_reason(reason)}", highlight=False, markup=True
        )
    gateway = status.get("gateway")
    if gateway:
        console.print(f"  gateway   [bold]{gateway['url']}[/bold]  (tools file {gateway['tools']})")
        console.print(f"  console   {gateway['url']}/ui")
        names = gateway.get("tool_names") or ["<tool>"]
        option = "" if gateway["url"].endswith(":8080") else f" --gateway {gateway['url']}"
        console.print(f"  tools     {', '.join(names)}")
        working = working_tools(status)
        if working or not gateway.get("tool_names"):
            example = (working or names)[0]
            console.print(f"  try       asya call{option} {example} key=value …   (or: asya tools)")
        else:
            console.print("  try       no tool has its whole route running: fix the actors above")
    console.print(f"  transport {status['transport']}")
    console.print(f"  database  {status['database']}")
    console.print(f"  status    {status_path}")
    console.print("  Press Ctrl-C to stop.")
