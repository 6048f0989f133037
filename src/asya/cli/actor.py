"""``asya actor``: one runtime and one sidecar as supervised child processes.

The two children share a private socket path (a fresh temporary folder) and get this process's
whole environment, with the flags layered on top, so every runtime and sidecar variable
(docs/reference/runtime-protocol.md#environment, docs/reference/sidecar.md#environment) works
here too.

Supervision is deliberately simple: SIGTERM/SIGINT drains the sidecar first (it finishes its
in-flight messages), then stops the runtime, and exits 0. If either child dies on its own the
other is stopped and the command exits non-zero (the child's exit code, or 1): restarting is
the job of whatever runs ``asya actor`` (Kubernetes, systemd, or ``asya up``, which restarts
with backoff) — a half-alive actor that silently keeps a queue is worse than a visible exit.

The children are started and stopped by ``asya up``'s supervisor (:mod:`asya.up.supervisor`:
own process group, SIGTERM when this process dies, the group killed after a stop); their
output is not prefixed but goes straight to ours.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from asya.envconfig import parse_duration
from asya.logconfig import configure_logging
from asya.up.supervisor import Child, ChildSpec

logger = logging.getLogger("asya.actor")

#: Extra time the sidecar gets beyond the runtime timeout to drain, and the runtime to exit.
DRAIN_SLACK = 10.0
RUNTIME_STOP_GRACE = 10.0


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command()
@click.option("--handler", required=True, help="module.function or module.Class.method")
@click.option("--queue", required=True, help="the queue to consume (also the actor's name)")
@click.option(
    "--mode",
    type=click.Choice(["payload", "message", "envelope"]),
    help="handler mode (ASYA_HANDLER_MODE, default payload)",
)
@click.option("--timeout", callback=_duration, help="runtime timeout, e.g. 5s (default 5m)")
@click.option("--gateway-url", help="where progress is reported (ASYA_GATEWAY_URL)")
@click.option(
    "--transport-url", help="amqp://…, nats://…, sqs:// or sqlite:///path (ASYA_TRANSPORT_URL)"
)
@click.option("--exchange", help="topic exchange (ASYA_RABBITMQ_EXCHANGE, default asya)")
@click.option("--prefetch", type=click.IntRange(min=1), help="messages in flight (default 1)")
@click.option("--max-retries", type=click.IntRange(min=0), help="retries of recoverable errors")
@click.option("--retry-backoff", callback=_duration, help="first retry delay (default 1s)")
@click.option("--terminal/--no-terminal", default=None, help="terminal actor (crew)")
@click.option("--actor-name", help="name in progress reports and metrics")
@click.option("--metrics-addr", help="host:port for /metrics and /health (default :9091)")
@click.option("--metrics/--no-metrics", default=None, help="serve Prometheus metrics")
@click.option("--validation/--no-validation", default=None, help="runtime message validation")
def actor(**options: Any) -> None:
    """Run one runtime and one sidecar for HANDLER on QUEUE until SIGTERM/SIGINT.

    Every ASYA_* variable in the environment reaches both children; flags override them.
    Exits 0 after a signal, non-zero when a child died (the other one is stopped).
    """
    configure_logging("actor")
    socket_dir = tempfile.mkdtemp(prefix="asya-actor-")
    try:
        env = child_environment(os.environ, options, f"{socket_dir}/app.sock")
        code = asyncio.run(supervise(env))
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
    sys.exit(code)


_FLAG_VARIABLES = {
    "handler": "ASYA_HANDLER",
    "queue": "ASYA_QUEUE_NAME",
    "mode": "ASYA_HANDLER_MODE",
    "timeout": "ASYA_RUNTIME_TIMEOUT",
    "gateway_url": "ASYA_GATEWAY_URL",
    "transport_url": "ASYA_TRANSPORT_URL",
    "exchange": "ASYA_RABBITMQ_EXCHANGE",
    "prefetch": "ASYA_RABBITMQ_PREFETCH",
    "max_retries": "ASYA_MAX_RETRIES",
    "retry_backoff": "ASYA_RETRY_BACKOFF",
    "terminal": "ASYA_IS_TERMINAL",
    "actor_name": "ASYA_ACTOR_NAME",
    "metrics_addr": "ASYA_METRICS_ADDR",
    "metrics": "ASYA_METRICS_ENABLED",
    "validation": "ASYA_ENABLE_VALIDATION",
}


def child_environment(
    environ: Mapping[str, str], options: Mapping[str, Any], socket_path: str
) -> dict[str, str]:
    """The children's environment: ours, then the flags, then the private socket path."""
    env = dict(environ)
    for option, variable in _FLAG_VARIABLES.items():
        value = options.get(option)
        if value is None:
            continue
        env[variable] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if options.get("mode") is not None:
        env.pop("ASYA_HANDLER_ARG_TYPE", None)  # the flag wins over the alias too
    env["ASYA_SOCKET_PATH"] = socket_path
    # The children must import the same asya as this process, installed or from a checkout.
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [package_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _drain_timeout(env: Mapping[str, str]) -> float:
    try:
        return parse_duration(env.get("ASYA_RUNTIME_TIMEOUT") or "5m") + DRAIN_SLACK
    except ValueError:
        return 300.0 + DRAIN_SLACK


def _child(role: str, env: dict[str, str]) -> Child:
    """A child whose output goes straight to ours (no prefixes: the lines stay as logged)."""
    return Child(ChildSpec(role, [sys.executable, "-m", f"asya.{role}"], env, Path.cwd()))


async def _start(child: Child) -> None:
    await child.start()
    logger.info("started %s (pid %d)", child.name, child.pid)


async def _stop(child: Child, grace: float) -> None:
    """SIGTERM, then the process group is killed after ``grace`` s (or at once if it exited)."""
    code = await child.stop(grace)
    logger.info("%s stopped (exit %s)", child.name, code)


async def supervise(env: dict[str, str]) -> int:
    """Run both children until a signal (exit 0) or until one of them dies (non-zero)."""
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, signalled.set)

    runtime = _child("runtime", env)
    sidecar = _child("sidecar", env)
    await _start(runtime)
    await _start(sidecar)
    drain_timeout = _drain_timeout(env)
    waits = {asyncio.ensure_future(child.wait()): child for child in (runtime, sidecar)}
    signal_wait = asyncio.ensure_future(signalled.wait())
    done, _ = await asyncio.wait({*waits, signal_wait}, return_when=asyncio.FIRST_COMPLETED)

    if signal_wait in done:
        logger.info("stopping: draining the sidecar, then the runtime")
        drain = asyncio.ensure_future(_stop(sidecar, drain_timeout))
        while not drain.done():
            second = asyncio.ensure_future(_another_signal(signalled))
            await asyncio.wait({drain, second}, return_when=asyncio.FIRST_COMPLETED)
            if second.done() and not drain.done():
                logger.warning("second signal: killing the sidecar")
                sidecar.kill_group()
            second.cancel()
        await _stop(runtime, RUNTIME_STOP_GRACE)
        signal_wait.cancel()
        return 0

    signal_wait.cancel()
    dead = waits[next(iter(done))]
    other = sidecar if dead is runtime else runtime
    code = await dead.wait()
    logger.error("%s exited with code %s; stopping the %s", dead.name, code, other.name)
    await _stop(other, drain_timeout if other is sidecar else RUNTIME_STOP_GRACE)
    await dead.stop(0)  # its process group may still hold workers
    return code if code > 0 else 1


async def _another_signal(signalled: asyncio.Event) -> None:
    signalled.clear()
    await signalled.wait()
