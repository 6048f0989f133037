"""``asya up [-f asya.yaml]``: run a whole pipeline on this machine (docs/reference/asya-yaml.md).

Exit codes: 0 after a graceful stop (Ctrl-C / SIGTERM), 1 when the mesh cannot start (broker
unreachable, gateway failed, port in use), 2 when asya.yaml is invalid.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TYPE_CHECKING

import click

from asya.logconfig import configure_logging

if TYPE_CHECKING:
    from asya.up.model import MeshConfig


@click.command()
@click.option(
    "-f",
    "--file",
    "path",
    default="asya.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The mesh file; its folder is the children's working directory and on PYTHONPATH.",
)
@click.option(
    "--transport", help="Override the transport: sqlite:///…, amqp://…, nats://… or sqs://"
)
@click.option("--database", help="Override the jobs database: sqlite:///… or postgresql://…")
@click.option("--port", type=int, help="Override the gateway's port.")
def up(path: str, transport: str | None, database: str | None, port: int | None) -> None:
    """Run every process of asya.yaml on this machine; Ctrl-C stops them."""
    from asya.up.config import MeshConfigError, load_config

    configure_logging("up")
    try:
        config = load_config(path).with_overrides(transport=transport, database=database, port=port)
    except MeshConfigError as exc:
        click.secho(str(exc), fg="red", err=True)
        sys.exit(2)
    sys.exit(asyncio.run(_serve(config)))


async def _serve(config: MeshConfig) -> int:
    from asya.up.mesh import Mesh, MeshStartError
    from asya.up.supervisor import LogSink

    sink = LogSink()
    mesh = Mesh(config, sink)
    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            sink.say("stopping: draining in-flight messages (Ctrl-C again to kill)")
            stop.set()
        else:
            sink.say("killing every process now", style="bold red")
            mesh.kill()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    code = 0
    starting = asyncio.create_task(mesh.start(), name="mesh:start")
    stopping = asyncio.create_task(stop.wait(), name="mesh:wait-for-signal")
    failing = asyncio.create_task(mesh.failed.wait(), name="mesh:wait-for-failure")
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            error = starting.exception()
            if isinstance(error, MeshStartError):
                sink.say(f"cannot start: {error}", style="bold red")
                code = 1
            elif error is not None:
                raise error
            else:
                await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
                code = 1 if mesh.failure else 0
        else:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
    finally:
        stopping.cancel()
        failing.cancel()
        await mesh.stop()
        sink.say("stopped")
    return code
