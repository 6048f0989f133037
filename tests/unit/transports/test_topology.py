"""Reading RabbitMQ definitions exports into what ``asya queues apply`` declares."""

from __future__ import annotations

import pytest

from asya.transports.topology import (
    BindingSpec,
    ExchangeSpec,
    QueueSpec,
    Topology,
    TopologyError,
    parse_definitions,
)

EXPORT = {
    "rabbit_version": "3.10.8",
    "users": [],
    "vhosts": [{"name": "/"}],
    "exchanges": [
        {"name": "asya", "vhost": "/", "type": "topic", "durable": True, "auto_delete": False,
         "internal": False, "arguments": {}},
    ],
    "queues": [
        {"name": "happy-end", "vhost": "/", "durable": True, "auto_delete": False,
         "arguments": {}},
        {"name": "slow", "vhost": "/", "durable": True, "auto_delete": False,
         "arguments": {"x-message-ttl": 60000}},
    ],
    "bindings": [
        {"source": "asya", "vhost": "/", "destination": "happy-end",
         "destination_type": "queue", "routing_key": "happy-end", "arguments": {}},
    ],
}  # fmt: skip


def test_an_export_becomes_exchanges_queues_and_bindings() -> None:
    topology, skipped = parse_definitions(EXPORT)

    assert skipped == []
    assert topology.exchanges == (ExchangeSpec("asya", "topic"),)
    assert topology.queues == (
        QueueSpec("happy-end"),
        QueueSpec("slow", arguments={"x-message-ttl": 60000}),
    )
    assert topology.bindings == (BindingSpec("asya", "happy-end", "queue", "happy-end"),)


def test_entries_for_another_vhost_and_builtin_exchanges_are_skipped_with_a_note() -> None:
    data = {
        "exchanges": [{"name": "amq.topic", "type": "topic"}],
        "queues": [{"name": "mine", "vhost": "prod"}, {"name": "theirs", "vhost": "/"}],
    }
    topology, skipped = parse_definitions(data, vhost="prod")
    assert [q.name for q in topology.queues] == ["mine"]
    assert topology.exchanges == ()
    assert any("amq.topic" in note for note in skipped)
    assert any("queues[1]" in note and "'/'" in note for note in skipped)


def test_missing_optional_fields_take_rabbitmq_export_defaults() -> None:
    topology, _ = parse_definitions(
        {"queues": [{"name": "q"}], "bindings": [{"source": "x", "destination": "q"}]}
    )
    assert topology.queues == (QueueSpec("q", durable=True, auto_delete=False),)
    assert topology.bindings == (BindingSpec("x", "q", "queue", ""),)


def test_every_mistake_is_reported_with_its_place() -> None:
    data = {
        "exchanges": [{"name": "e", "type": "sideways"}, {"type": "topic"}],
        "queues": [{"name": "q", "durable": "yes"}, "q2", {"name": "q3", "arguments": []}],
        "bindings": [{"source": "e", "destination": "q", "destination_type": "topic"}],
    }
    with pytest.raises(TopologyError) as raised:
        parse_definitions(data)
    assert raised.value.problems == [
        "exchanges[0].type: 'sideways' is not one of direct, fanout, headers, topic",
        "exchanges[1].name: must be a non-empty string",
        "queues[0].durable: must be true or false",
        "queues[1]: must be an object",
        "queues[2].arguments: must be an object",
        "bindings[0].destination_type: must be 'queue' or 'exchange'",
    ]


@pytest.mark.parametrize("data", [[], "text", {"users": []}, {"queues": {"name": "q"}}], ids=repr)
def test_documents_that_are_not_definitions_are_refused(data: object) -> None:
    with pytest.raises(TopologyError):
        parse_definitions(data)


def test_asya_layout_binds_each_queue_by_its_name_once() -> None:
    topology = Topology.for_queues("asya", ["a", "b", "a"])
    assert topology.exchanges == (ExchangeSpec("asya", "topic", durable=True),)
    assert [q.name for q in topology.queues] == ["a", "b"]
    assert [(b.source, b.destination, b.routing_key) for b in topology.bindings] == [
        ("asya", "a", "a"),
        ("asya", "b", "b"),
    ]
