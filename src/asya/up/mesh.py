"""The composition root of ``asya up``: queues, gateway, crew and actors on one machine.

Start order follows the message flow backwards from what must exist first: the queues, then
the gateway (actors report progress to it), then the crew (it receives the outcomes), then the
actors. Stop order is the reverse, so a draining actor can still hand its last result to the
crew and the crew can still report it to the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from asya.envconfig import format_duration
from asya.errors import AsyaError
from asya.transports import open_transport, redact_url
from asya.transports.base import Transport
from asya.up.group import ActorGroup
from asya.up.model import ActorConfig, MeshConfig
from asya.up.replica import ReplicaSpec, metrics_enabled
from asya.up.status import STATUS_FILE, print_ready, read_status, write_status
from asya.up.supervisor import Child, ChildSpec, LogSink, keep_alive

HAPPY_END_HANDLER = "asya.crew.happy_end.handle"
ERROR_END_HANDLER = "asya.crew.error_end.handle"
_GATEWAY_READY_TIMEOUT = 90.0


class MeshStartError(AsyaError):
    """The mesh cannot start (broker unreachable, gateway failed, port taken)."""


class Mesh:
    """Every process of one asya.yaml; ``start()``, then ``stop()`` (always)."""

    def __init__(
        self,
        config: MeshConfig,
        sink: LogSink,
        *,
        python: str = sys.executable,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.python = python
        self.environ = dict(os.environ if environ is None else environ)
        self.mesh_id = uuid.uuid4().hex[:12]
        self.socket_dir: Path | None = None
        self.status_path = config.state_dir / STATUS_FILE
        self.transport: Transport | None = None
        self.gateway: Child | None = None
        self.groups: dict[str, ActorGroup] = {}
        self.crew: dict[str, ActorGroup] = {}
        self.ready = False
        self.stopping = False
        self.failed = asyncio.Event()  # a background loop died: the mesh must stop
        self.failure: str | None = None
        self._owns_status = False  # never touch the status file of another running mesh
        self._tasks: list[asyncio.Task[None]] = []
        self._ports: set[int] = set()
        self._serial = 0
        self.tool_names: list[str] = []
        self.tool_routes: dict[str, list[str]] = {}
        sink.width = max([len("gateway"), *(len(f"{n}#10 sidecar") for n in config.queues())])

    # -- environment -------------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = dict(self.environ)
        env.update(self.config.env)
        folder = str(self.config.folder)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env["ASYA_UP_MESH"] = self.mesh_id
        env["ASYA_TRANSPORT_URL"] = self.config.transport
        if self.config.transport.startswith("amqp"):
            env["ASYA_RABBITMQ_URL"] = self.config.transport
        env["ASYA_RABBITMQ_EXCHANGE"] = self.config.exchange
        env["ASYA_STEP_HAPPY_END"] = self.config.happy_end
        env["ASYA_STEP_ERROR_END"] = self.config.error_end
        # Large payloads by reference (docs/reference/sidecar.md#payloads-by-reference): a
        # folder of the mesh unless asya.yaml or the shell names another store.
        env.setdefault(
            "ASYA_PAYLOAD_STORE_URL", (self.config.state_dir / "payloads").resolve().as_uri()
        )
        if self.config.gateway is not None:
            env["ASYA_GATEWAY_URL"] = self.config.gateway.url
        else:
            env.pop("ASYA_GATEWAY_URL", None)
        return env

    def _free_port(self) -> int:
        """A port nothing listens on, never handed out twice by this mesh."""
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
            if port not in self._ports:
                self._ports.add(port)
                return port

    def _replica_spec(self, actor: ActorConfig, index: int, *, terminal: bool) -> ReplicaSpec:
        assert self.socket_dir is not None
        self._serial += 1
        socket_path = self.socket_dir / f"{self._serial}.sock"
        common = self._base_env()
        common.update(actor.env)
        common["ASYA_SOCKET_PATH"] = str(socket_path)
        common["ASYA_RUNTIME_TIMEOUT"] = format_duration(actor.timeout)
        runtime_env = dict(common)
        runtime_env["ASYA_HANDLER"] = actor.handler
        runtime_env["ASYA_HANDLER_MODE"] = actor.mode
        runtime_env.pop("ASYA_HANDLER_ARG_TYPE", None)
        if terminal:
            runtime_env["ASYA_ENABLE_VALIDATION"] = "false"

        def sidecar_env() -> dict[str, str]:
            env = dict(common)
            env["ASYA_QUEUE_NAME"] = actor.name
            env["ASYA_ACTOR_NAME"] = actor.name
            env["ASYA_IS_TERMINAL"] = "true" if terminal else "false"
            if metrics_enabled(env):
                env["ASYA_METRICS_ADDR"] = f"127.0.0.1:{self._free_port()}"
            return env

        return ReplicaSpec(
            actor=actor.name,
            label=f"{actor.name}#{index}",
            cwd=self.config.folder,
            socket_path=socket_path,
            runtime_argv=[self.python, "-m", "asya.runtime"],
            runtime_env=runtime_env,
            sidecar_argv=[self.python, "-m", "asya.cli", "sidecar"],
            sidecar_env=sidecar_env,
            drain_timeout=actor.timeout + 5.0,
        )

    def _group(self, actor: ActorConfig, *, terminal: bool) -> ActorGroup:
        namespace = {**self.environ, **self.config.env, **actor.env}.get(
            "ASYA_METRICS_NAMESPACE", "asya_actor"
        )
        return ActorGroup(
            actor,
            lambda index: self._replica_spec(actor, index, terminal=terminal),
            self.sink,
            self.write_status,
            metrics_namespace=namespace or "asya_actor",
        )

    # -- start -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring the mesh up; MeshStartError when an essential part cannot start."""
        self._refuse_second_mesh()
        self._owns_status = True
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        for url in (self.config.transport, self.config.database):
            if url.startswith("sqlite:///"):
                Path(url[len("sqlite:///") :].partition("?")[0]).parent.mkdir(
                    parents=True, exist_ok=True
                )
        self.socket_dir = Path(tempfile.mkdtemp(prefix=f"asya-up-{self.mesh_id}-"))
        await self._declare_queues()
        if self.config.gateway is not None:
            await self._start_gateway()
        if self.config.crew:
            crew = {
                self.config.happy_end: HAPPY_END_HANDLER,
                self.config.error_end: ERROR_END_HANDLER,
            }
            for queue, handler in crew.items():
                member = ActorConfig(name=queue, handler=handler, mode="message", timeout=60.0)
                self.crew[queue] = self._group(member, terminal=True)
            await asyncio.gather(*(group.scale_to(1) for group in self.crew.values()))
        for actor in self.config.actors:
            self.groups[actor.name] = self._group(actor, terminal=False)
        await asyncio.gather(*(g.scale_to(g.actor.initial_replicas) for g in self.groups.values()))
        assert self.transport is not None
        for group in self.groups.values():
            if group.actor.scaling is not None:
                self._guard(group.autoscale(self.transport), f"autoscaler of {group.name}")
        self.ready = True
        self.write_status()
        print_ready(self.sink.console, self.status(), self.status_path)

    def _refuse_second_mesh(self) -> None:
        """Two meshes on one folder would share (and steal from) the same SQLite queues.

        A status file left by a mesh that was killed is cleaned up instead: its children died
        with it, only its socket folder remains.
        """
        previous = read_status(self.status_path)
        if previous is None:
            return
        pid = previous.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
            raise MeshStartError(
                f"a mesh from this folder is already running (asya up, pid {pid}); "
                f"stop it first (Ctrl-C in its terminal, or kill -TERM {pid})"
            )
        stale = Path(str(previous.get("socket_dir") or ""))
        if stale.name.startswith("asya-up-") and stale.parent == Path(tempfile.gettempdir()):
            shutil.rmtree(stale, ignore_errors=True)

    async def _declare_queues(self) -> None:
        url = self.config.transport
        try:
            self.transport = open_transport(url, exchange=self.config.exchange)
            await self.transport.connect()
            for queue in self.config.queues():
                await self.transport.declare_queue(queue)
        except Exception as exc:
            raise MeshStartError(f"cannot use the transport {redact_url(url)}: {exc}") from exc

    async def _start_gateway(self) -> None:
        gateway = self.config.gateway
        assert gateway is not None
        if not _port_is_free(gateway.host, gateway.port):
            raise MeshStartError(
                f"port {gateway.port} is already in use: stop what listens there, or pick "
                "another port with --port (or gateway.port in asya.yaml)"
            )
        await self._ensure_database()
        env = self._base_env()
        env.pop("ASYA_GATEWAY_URL", None)
        env.update(
            ASYA_GATEWAY_PORT=str(gateway.port),
            ASYA_GATEWAY_HOST=gateway.host,
            ASYA_CONFIG_PATH=str(gateway.tools),
            ASYA_DATABASE_URL=self.config.database,
            ASYA_UP_STATUS_FILE=str(self.status_path),  # the console shows replicas from it
        )
        spec = ChildSpec(
            "gateway", [self.python, "-m", "asya.cli", "gateway"], env, self.config.folder
        )
        self.gateway = Child(spec, self.sink)
        await self.gateway.start()
        await self._wait_for_gateway(gateway.url)
        self._guard(
            keep_alive(self.gateway, lambda: spec, self.sink, lambda: self.stopping),
            "gateway supervisor",
        )

    async def _ensure_database(self) -> None:
        """Create the jobs database when the PostgreSQL server has none of that name."""
        from asya.gateway.preflight import create_database

        url = self.config.database
        try:
            created = await create_database(url)
        except AsyaError as exc:
            raise MeshStartError(str(exc)) from exc
        if created:
            self.sink.say(f"created the jobs database {redact_url(url)} (it did not exist)")

    async def _wait_for_gateway(self, url: str) -> None:
        assert self.gateway is not None
        deadline = time.monotonic() + _GATEWAY_READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.gateway.running:
                    code = await self.gateway.wait()
                    output = "\n    ".join(list(self.gateway.recent)[-12:])
                    raise MeshStartError(f"the gateway exited with code {code}:\n    {output}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/health")).status_code == 200:
                        await self._read_tool_names(client, url)
                        return
                await asyncio.sleep(0.2)
        raise MeshStartError(f"the gateway did not answer {url}/health within 90 s")

    async def _read_tool_names(self, client: httpx.AsyncClient, url: str) -> None:
        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError, TypeError):
            tools = (await client.get(f"{url}/tools")).json().get("tools", [])
            self.tool_names = [str(tool["name"]) for tool in tools]
            self.tool_routes = {str(tool["name"]): list(tool.get("route") or []) for tool in tools}

    def _guard(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background loop; if it dies unexpectedly, say why and stop the mesh."""

        def done(task: asyncio.Task[None]) -> None:
            if task.cancelled() or self.stopping or task.exception() is None:
                return  # cancelled at shutdown, or finished its job (a failed actor's scaler)
            error = task.exception()
            self.sink.say(f"{name} stopped unexpectedly: {error!r}; stopping", style="bold red")
            self.failure = f"{name} failed: {error!r}"
            self.failed.set()

        task = asyncio.create_task(work, name=name)
        task.add_done_callback(done)
        self._tasks.append(task)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        gateway = self.config.gateway
        return {
            "pid": os.getpid(),
            "mesh_id": self.mesh_id,
            "ready": self.ready,
            "folder": str(self.config.folder),
            "socket_dir": str(self.socket_dir),
            "transport": redact_url(self.config.transport),
            "database": redact_url(self.config.database),
            "exchange": self.config.exchange,
            "gateway": None
            if gateway is None
            else {
                "url": gateway.url,
                "tools": str(gateway.tools),
                "pid": self.gateway.pid if self.gateway else None,
                "tool_names": self.tool_names,
                "tool_routes": self.tool_routes,
            },
            "actors": {name: _group_status(g) for name, g in self.groups.items()},
            "crew": {name: _group_status(g) for name, g in self.crew.items()},
        }

    def write_status(self) -> None:
        if self._owns_status and not self.stopping:
            write_status(self.status_path, self.status())

    # -- stop --------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop everything in reverse order; safe to call after a failed start."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for groups in (self.groups, self.crew):
            await asyncio.gather(*(g.stop() for g in groups.values()), return_exceptions=True)
            await asyncio.gather(*(g.close() for g in groups.values()), return_exceptions=True)
        if self.gateway is not None:
            await self.gateway.stop(15.0)
        if self.transport is not None:
            with contextlib.suppress(Exception):
                await self.transport.close()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        if self._owns_status:
            with contextlib.suppress(FileNotFoundError):
                self.status_path.unlink()

    def kill(self) -> None:
        """Second Ctrl-C: kill every process group at once."""
        children = [self.gateway] if self.gateway else []
        for group in (*self.groups.values(), *self.crew.values()):
            children.extend(group.children())
        for child in children:
            child.kill_group()


def _group_status(group: ActorGroup) -> dict[str, Any]:
    actor = group.actor
    scaling = actor.scaling
    return {
        "queue": actor.name,
        "handler": actor.handler,
        "mode": actor.mode,
        "state": "failed" if group.failed else "running",
        "error": group.failed,
        "replicas": len(group.replicas),
        "desired": group.desired,
        "draining": len(group.draining),
        "queue_depth": group.depth,
        "scaling": None if scaling is None else asdict(scaling),
        "processes": [
            {
                "replica": index,
                "runtime_pid": replica.runtime.pid,
                "sidecar_pid": replica.sidecar.pid if replica.sidecar else None,
                "metrics": replica.metrics_addr,
            }
            for index, replica in sorted(group.replicas.items())
        ],
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host if host not in ("", "::") else "0.0.0.0", port))
        except OSError:
            return False
    return True
