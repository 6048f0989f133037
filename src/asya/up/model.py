"""The validated shape of asya.yaml: what ``asya up`` runs (docs/reference/asya-yaml.md#keys).

``config`` turns a file into these objects; everything else in ``asya.up`` reads only these.
Every path and SQLite URL in them is absolute (resolved against the file's folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from asya.errors import AsyaError

DEFAULT_TRANSPORT = "sqlite:///.asya/queues.db"
DEFAULT_DATABASE = "sqlite:///.asya/jobs.db"
DEFAULT_EXCHANGE = "asya"
DEFAULT_GATEWAY_PORT = 8080
DEFAULT_TIMEOUT = 300.0
HAPPY_END = "happy-end"
ERROR_END = "error-end"
DEAD_LETTER = "asya-dead-letter"

TRANSPORT_SCHEMES = ("sqlite://", "amqp://", "amqps://", "nats://", "sqs://")
DATABASE_SCHEMES = ("sqlite://", "postgres://", "postgresql://")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file: where it is and what to do about it."""

    field: str
    message: str
    line: int | None = None

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        label = f"{self.field}: " if self.field else ""
        return f"{where}: {label}{self.message}"


class MeshConfigError(AsyaError):
    """asya.yaml is invalid; ``problems`` lists every mistake found."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems
        lines = [p.render(filename) for p in problems]
        super().__init__("invalid asya.yaml:\n  " + "\n  ".join(lines))


@dataclass(frozen=True)
class ScalingConfig:
    """The KEDA-style rule for one actor: replicas follow queue depth."""

    min: int
    max: int
    queue_length: int
    polling_interval: float = 1.0
    cooldown: float = 10.0


@dataclass(frozen=True)
class ActorConfig:
    name: str
    handler: str
    mode: str = "payload"
    timeout: float = DEFAULT_TIMEOUT
    replicas: int = 1
    scaling: ScalingConfig | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None  # only for Kubernetes (asya k8s render/export)

    @property
    def initial_replicas(self) -> int:
        return self.scaling.min if self.scaling else self.replicas


@dataclass(frozen=True)
class GatewayConfig:
    port: int
    tools: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class MeshConfig:
    """A validated asya.yaml with every path and URL made absolute."""

    path: Path
    transport: str
    database: str
    exchange: str
    gateway: GatewayConfig | None
    crew: bool
    actors: tuple[ActorConfig, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    happy_end: str = HAPPY_END
    error_end: str = ERROR_END

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def state_dir(self) -> Path:
        """``.asya/`` beside asya.yaml: embedded databases and the status file live here."""
        return self.folder / ".asya"

    def queues(self) -> list[str]:
        """Every queue the mesh needs: the actors', the crew's and the dead-letter queue."""
        return [*(a.name for a in self.actors), self.happy_end, self.error_end, DEAD_LETTER]

    def with_overrides(
        self,
        *,
        transport: str | None = None,
        database: str | None = None,
        port: int | None = None,
    ) -> MeshConfig:
        """Apply the command line's ``--transport`` / ``--database`` / ``--port``."""
        problems: list[Problem] = []
        config = self
        if transport is not None:
            checked = check_url(transport, TRANSPORT_SCHEMES, "--transport", None, problems)
            config = replace(config, transport=absolute_sqlite_url(checked, self.folder))
        if database is not None:
            checked = check_url(database, DATABASE_SCHEMES, "--database", None, problems)
            config = replace(config, database=absolute_sqlite_url(checked, self.folder))
        if port is not None:
            if not 0 < port < 65536:
                problems.append(Problem("--port", f"must be between 1 and 65535, got {port}"))
            elif config.gateway is None:
                problems.append(Problem("--port", "the file configures no gateway"))
            else:
                config = replace(config, gateway=replace(config.gateway, port=port))
        if problems:
            raise MeshConfigError(str(self.path), problems)
        return config


def check_url(
    url: str, schemes: tuple[str, ...], where: str, line: int | None, problems: list[Problem]
) -> str:
    if not url.startswith(schemes):
        allowed = ", ".join(s.rstrip("/") + "//…" for s in schemes)
        problems.append(Problem(where, f"unsupported URL {url!r}; use one of {allowed}", line))
    return url


def absolute_sqlite_url(url: str, folder: Path) -> str:
    """``sqlite:///rel/path`` → ``sqlite:////abs/folder/rel/path``; other URLs unchanged."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    raw, question, query = url[len(prefix) :].partition("?")
    path = Path(raw)
    absolute = path if path.is_absolute() else (folder / path).resolve()
    return f"{prefix}{absolute}{question}{query}"
