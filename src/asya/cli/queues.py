"""``asya queues apply FILE``: declare exchanges, queues and bindings before anything runs.

FILE is a RabbitMQ definitions export (``{"exchanges": […], "queues": […], "bindings": […]}``)
or an asya.yaml (every actor's queue plus happy-end, error-end and asya-dead-letter, bound to
the exchange by name). Applying twice changes nothing.

The broker: ``--url``, else ``ASYA_TRANSPORT_URL``, else ``ASYA_RABBITMQ_URL``, else the
``transport`` an asya.yaml names (docs/reference/asya-yaml.md#keys: default
``sqlite:///.asya/queues.db`` beside it), else ``amqp://guest:guest@localhost:5672/``
(docs/reference/sidecar.md#environment).

Exit codes: 0 declared, 1 the broker refused or could not be reached, 2 the file is unreadable
or invalid.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote, urlsplit

import click

from asya.envconfig import DEFAULT_TRANSPORT_URL, Env
from asya.errors import TransportError
from asya.logconfig import configure_logging
from asya.transports import open_transport, redact_url
from asya.transports.topology import Topology, TopologyError, apply_topology, parse_definitions


@click.group()
def queues() -> None:
    """Manage the broker's queues."""


@queues.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--url",
    help="Broker URL [env: ASYA_TRANSPORT_URL, then ASYA_RABBITMQ_URL; default: an asya.yaml's "
    "transport, else amqp://guest:guest@localhost:5672/].",
)
@click.option(
    "--exchange",
    help="Exchange for an asya.yaml's queues [env: ASYA_RABBITMQ_EXCHANGE; default: asya].",
)
def apply(file: Path, url: str | None, exchange: str | None) -> None:
    """Declare the exchanges, queues and bindings described in FILE (idempotent)."""
    configure_logging("queues")
    env = Env(os.environ)
    from_env = env.transport_url(default=None)
    url = url or (from_env.url if from_env else None)
    topology, notes, file_url = _load(file, url or DEFAULT_TRANSPORT_URL, exchange)
    url = url or file_url or DEFAULT_TRANSPORT_URL
    for note in notes:
        click.echo(f"skipped {note}")
    try:
        transport = open_transport(
            url, exchange=exchange or env.get_str("ASYA_RABBITMQ_EXCHANGE", "asya")
        )
    except ValueError as exc:
        _fail(f"--url: {exc}", code=2)

    declared: Counter[str] = Counter()

    def report(kind: str, text: str) -> None:
        declared[kind] += 1
        click.echo(f"declared {kind} {text}")

    async def run() -> None:
        async with transport:
            await apply_topology(transport, topology, report)

    try:
        asyncio.run(run())
    except TransportError as exc:
        _fail(f"could not apply {file} to {redact_url(url)}: {exc}", code=1)
    if transport.name != "rabbitmq" and (topology.exchanges or topology.bindings):
        click.echo(f"note: {transport.name} has no exchanges or bindings; declared the queues only")
    click.echo(
        f"applied {file} to {redact_url(url)}: {declared['exchange']} exchange(s), "
        f"{declared['queue']} queue(s), {declared['binding']} binding(s)"
    )


def _fail(message: str, *, code: int) -> NoReturn:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def _vhost(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def _load(file: Path, url: str, exchange: str | None) -> tuple[Topology, list[str], str | None]:
    """Read FILE as definitions JSON or as asya.yaml; exit 2 with every problem found.

    Returns the topology, notes on skipped entries, and the transport an asya.yaml names.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}", code=2)
    if file.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            _fail(f"{file}:{exc.lineno}: not valid JSON: {exc.msg}", code=2)
        try:
            topology, notes = parse_definitions(data, _vhost(url))
            return topology, notes, None
        except TopologyError as exc:
            _fail(f"{file}: " + str(exc), code=2)

    from asya.up.config import MeshConfigError, load_config

    try:
        config = load_config(file)
    except MeshConfigError as exc:
        _fail(str(exc), code=2)
    topology = Topology.for_queues(exchange or config.exchange, config.queues())
    return topology, [], config.transport
