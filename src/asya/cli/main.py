"""The ``asya`` command group.

Subcommands are imported only when invoked, so ``asya runtime`` starts without loading the
gateway's or the operator's dependencies (and works with only the core install).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from asya import __version__
from asya.errors import AsyaError

# command name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, str] = {
    "runtime": "asya.cli.runtime:runtime",
    "sidecar": "asya.cli.sidecar:sidecar",
    "actor": "asya.cli.actor:actor",
    "queues": "asya.cli.queues:queues",
    "gateway": "asya.cli.gateway:gateway",
    "up": "asya.cli.up:up",
    "call": "asya.cli.client:call",
    "jobs": "asya.cli.client:jobs",
    "tools": "asya.cli.client:tools",
    "status": "asya.cli.status:status",
    "operator": "asya.cli.k8s:operator",
    "k8s": "asya.cli.k8s:k8s",
    "bench": "asya.cli.bench:bench",
}


def _module_exists(target: str) -> bool:
    return importlib.util.find_spec(target.partition(":")[0]) is not None


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        available = {name for name, target in SUBCOMMANDS.items() if _module_exists(target)}
        return sorted({*super().list_commands(ctx), *available})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None or not _module_exists(target):
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="asya")
def cli() -> None:
    """Asya: plain Python functions as queue-driven, autoscaling actors."""


def _command_name(args: list[str]) -> str:
    """``asya gateway`` for ``asya gateway --port 1``: the words before the first option."""
    words = []
    for arg in args:
        if arg.startswith("-"):
            break
        words.append(arg)
        if arg not in ("gateway", "queues", "k8s", "jobs"):  # groups: keep their subcommand
            break
    return " ".join(["asya", *words])


def main() -> None:
    """The console script: an expected error (an AsyaError) is one line and its exit code."""
    try:
        cli()
    except AsyaError as exc:
        click.echo(f"{_command_name(sys.argv[1:])}: {exc}", err=True)
        sys.exit(exc.exit_code)
