"""Exchanges, queues and bindings to declare, read from a RabbitMQ definitions export.

``asya queues apply`` turns a definitions JSON (the shape ``rabbitmqadmin export`` and the
management UI write) or an asya.yaml into a :class:`Topology` and applies it. Parsing collects
every mistake with its place (``queues[2].name``) so a broken file is fixed in one go; applying
is idempotent because every declaration is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from asya.transports.base import Transport

EXCHANGE_TYPES = frozenset({"direct", "topic", "fanout", "headers"})


class TopologyError(ValueError):
    """The definitions are malformed; ``problems`` lists every mistake found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid definitions:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str = "topic"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSpec:
    name: str
    durable: bool = True
    auto_delete: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BindingSpec:
    source: str
    destination: str
    destination_type: str = "queue"
    routing_key: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[ExchangeSpec, ...] = ()
    queues: tuple[QueueSpec, ...] = ()
    bindings: tuple[BindingSpec, ...] = ()

    @classmethod
    def for_queues(cls, exchange: str, queues: Iterable[str]) -> Topology:
        """Asya's own layout: one durable topic exchange, each queue bound by its name."""
        names = list(dict.fromkeys(queues))
        return cls(
            exchanges=(ExchangeSpec(exchange),),
            queues=tuple(QueueSpec(name) for name in names),
            bindings=tuple(BindingSpec(exchange, name, routing_key=name) for name in names),
        )


def parse_definitions(data: object, vhost: str = "/") -> tuple[Topology, list[str]]:
    """The topology for ``vhost`` in a definitions document, and notes on what was skipped.

    Raises TopologyError listing every malformed entry.
    """
    if not isinstance(data, dict):
        raise TopologyError(["the document must be a JSON object"])
    if not any(key in data for key in ("exchanges", "queues", "bindings")):
        raise TopologyError(["no 'exchanges', 'queues' or 'bindings': not a definitions file"])
    reader = _Reader(vhost)
    exchanges = reader.entries(data, "exchanges", reader.exchange)
    queues = reader.entries(data, "queues", reader.queue)
    bindings = reader.entries(data, "bindings", reader.binding)
    if reader.problems:
        raise TopologyError(reader.problems)
    return Topology(tuple(exchanges), tuple(queues), tuple(bindings)), reader.skipped


class _Reader:
    def __init__(self, vhost: str) -> None:
        self.vhost = vhost
        self.problems: list[str] = []
        self.skipped: list[str] = []

    def entries(
        self, data: dict[str, Any], key: str, parse: Callable[[dict[str, Any], str], Any]
    ) -> list[Any]:
        items = data.get(key, [])
        if not isinstance(items, list):
            self.problems.append(f"{key}: must be a list")
            return []
        parsed = []
        for index, item in enumerate(items):
            where = f"{key}[{index}]"
            if not isinstance(item, dict):
                self.problems.append(f"{where}: must be an object")
                continue
            item_vhost = item.get("vhost", self.vhost)
            if item_vhost != self.vhost:
                self.skipped.append(f"{where} is for vhost {item_vhost!r}, not {self.vhost!r}")
                continue
            spec = parse(item, where)
            if spec is not None:
                parsed.append(spec)
        return parsed

    def _text(self, item: dict[str, Any], key: str, where: str, default: str | None) -> str:
        value = item.get(key, default)
        if not isinstance(value, str) or (default is None and not value):
            self.problems.append(f"{where}.{key}: must be a non-empty string")
            return ""
        return value

    def _flag(self, item: dict[str, Any], key: str, where: str, default: bool) -> bool:
        value = item.get(key, default)
        if not isinstance(value, bool):
            self.problems.append(f"{where}.{key}: must be true or false")
            return default
        return value

    def _arguments(self, item: dict[str, Any], where: str) -> dict[str, Any]:
        value = item.get("arguments")
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problems.append(f"{where}.arguments: must be an object")
            return {}
        return value

    def exchange(self, item: dict[str, Any], where: str) -> ExchangeSpec | None:
        name = self._text(item, "name", where, None)
        kind = self._text(item, "type", where, "topic")
        if kind and kind not in EXCHANGE_TYPES and not kind.startswith("x-"):
            self.problems.append(
                f"{where}.type: {kind!r} is not one of {', '.join(sorted(EXCHANGE_TYPES))}"
            )
        if name.startswith("amq."):
            self.skipped.append(f"{where}: {name!r} is predeclared by RabbitMQ")
            return None
        return ExchangeSpec(
            name,
            kind,
            durable=self._flag(item, "durable", where, True),
            auto_delete=self._flag(item, "auto_delete", where, False),
            internal=self._flag(item, "internal", where, False),
            arguments=self._arguments(item, where),
        )

    def queue(self, item: dict[str, Any], where: str) -> QueueSpec:
        return QueueSpec(
            self._text(item, "name", where, None),
            durable=self._flag(item, "durable", where, True),
            auto_delete=self._flag(item, "auto_delete", where, False),
            arguments=self._arguments(item, where),
        )

    def binding(self, item: dict[str, Any], where: str) -> BindingSpec:
        kind = self._text(item, "destination_type", where, "queue")
        if kind not in ("queue", "exchange"):
            self.problems.append(f"{where}.destination_type: must be 'queue' or 'exchange'")
        return BindingSpec(
            self._text(item, "source", where, None),
            self._text(item, "destination", where, None),
            kind,
            self._text(item, "routing_key", where, ""),
            self._arguments(item, where),
        )


@runtime_checkable
class ExplicitTopology(Protocol):
    """A RabbitMQ transport (either client) declaring exactly what a topology says."""

    async def declare_exchange(self, spec: ExchangeSpec) -> None: ...
    async def declare_queue_spec(self, spec: QueueSpec) -> None: ...
    async def bind(self, spec: BindingSpec) -> None: ...


async def apply_topology(
    transport: Transport, topology: Topology, report: Callable[[str, str], None]
) -> None:
    """Declare everything in ``topology`` on ``transport``, calling ``report(kind, text)``
    after each declaration (kind: ``exchange``, ``queue`` or ``binding``).

    RabbitMQ gets exactly what the topology says. The embedded transports have no exchanges
    or bindings (a queue receives what is published to its name), so there only the queues
    are declared.
    """
    if transport.name != "rabbitmq":
        for queue in topology.queues:
            await transport.declare_queue(queue.name)
            report("queue", queue.name)
        return
    if not isinstance(transport, ExplicitTopology):
        raise TypeError(f"{type(transport).__name__} cannot declare exchanges and bindings")
    for exchange in topology.exchanges:
        await transport.declare_exchange(exchange)
        report("exchange", f"{exchange.name} ({exchange.type}, {_traits(exchange.durable)})")
    for queue in topology.queues:
        await transport.declare_queue_spec(queue)
        report("queue", f"{queue.name} ({_traits(queue.durable, queue.arguments)})")
    for binding in topology.bindings:
        await transport.bind(binding)
        report(
            "binding",
            f"{binding.source} -> {binding.destination_type} {binding.destination} "
            f"(routing key {binding.routing_key!r})",
        )


def _traits(durable: bool, arguments: Mapping[str, Any] | None = None) -> str:
    traits = ["durable" if durable else "transient"]
    traits += [f"{key}={value}" for key, value in (arguments or {}).items()]
    return ", ".join(traits)
