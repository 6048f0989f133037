"""RabbitMQ pieces that need no broker: reconnect pacing and delay queue names."""

from __future__ import annotations

import time

from yarl import URL

from asya.transports._amqp import BackoffConnection
from asya.transports._rabbitmq_common import delay_queue_name


async def test_reconnect_pause_grows_with_the_outage_and_is_capped() -> None:
    connection = BackoffConnection(URL("amqp://guest:guest@127.0.0.1:1/"), reconnect_interval=0.5)
    assert not connection.connected.is_set()  # never connected: an outage from now on

    assert connection.reconnect_interval == 0.5
    connection._down_since = time.monotonic() - 20
    assert 4.9 < connection.reconnect_interval < 5.5
    connection._down_since = time.monotonic() - 3600
    assert connection.reconnect_interval == BackoffConnection.MAX_INTERVAL


async def test_reconnect_pause_resets_once_connected() -> None:
    connection = BackoffConnection(URL("amqp://127.0.0.1:1/"), reconnect_interval=1)
    connection._down_since = time.monotonic() - 3600
    connection.connected.set()
    assert connection.reconnect_interval == 1.0
    connection.connected.clear()
    assert connection.reconnect_interval == 1.0  # a new outage starts short again


def test_delay_queue_names_stay_within_the_amqp_limit() -> None:
    assert delay_queue_name("asya", "resize", 1.5) == "asya-delay.asya.resize.1500"
    assert delay_queue_name("asya", "resize", 0.0001) == "asya-delay.asya.resize.1"
    long_one = delay_queue_name("asya", "q" * 250, 2)
    other = delay_queue_name("asya", "q" * 249, 2)
    assert len(long_one) <= 255
    assert long_one.endswith(".2000")
    assert long_one != other
