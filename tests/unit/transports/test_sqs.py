"""The SQS transport's URL, settings and wire encoding (no network)."""

from __future__ import annotations

import pytest

from asya.transports import open_transport
from asya.transports._sqs_api import decode_body, encode_body, message_size
from asya.transports.sqs import SqsSubscription, SqsTransport, delay_seconds


def test_bare_sqs_url_leaves_region_and_endpoint_to_the_aws_variables() -> None:
    transport = open_transport("sqs://")
    assert isinstance(transport, SqsTransport)
    assert transport.name == "sqs"
    assert transport.settings.region is None
    assert transport.settings.endpoint is None
    assert transport.settings.prefix == ""
    assert transport.settings.max_message_size == 256 * 1024


def test_sqs_options_come_from_the_query_and_keywords_override_them() -> None:
    transport = open_transport(
        "sqs://?prefix=prod-&region=eu-west-1&wait=20s&visibility=2m&max_message_size=1048576",
        wait="10s",
    )
    assert isinstance(transport, SqsTransport)
    settings = transport.settings
    assert (settings.prefix, settings.region) == ("prod-", "eu-west-1")
    assert (settings.wait, settings.visibility) == (10.0, 120.0)
    assert settings.max_message_size == 1_048_576
    assert transport.api.name_of("orders") == "prod-orders"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("sqs://eu-west-1", "names a host or path"),
        ("sqs://?colour=blue", "unknown sqs transport option"),
        ("sqs://?wait=30s", "wait must be between 0 and 20"),
        ("sqs://?visibility=0s", "visibility must be between"),
        ("sqs://?max_message_size=lots", "not a whole number"),
    ],
)
def test_malformed_sqs_urls_are_refused_naming_the_problem(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        open_transport(url)


def test_delays_round_up_to_whole_seconds_and_stop_at_fifteen_minutes() -> None:
    assert [delay_seconds(d) for d in (0, 0.2, 1.0, 1.5, 900, 3600)] == [0, 1, 1, 2, 900, 900]


def test_text_bodies_travel_as_text_and_others_as_base64() -> None:
    text, attributes = encode_body('{"id": "j-1", "payload": "héllo"}'.encode())
    assert text == '{"id": "j-1", "payload": "héllo"}'
    assert attributes == {}

    binary = bytes(range(256))
    encoded, attributes = encode_body(binary)
    assert decode_body({"Body": encoded, "MessageAttributes": attributes}) == binary
    # a NUL byte is valid UTF-8 but not a character SQS accepts
    encoded, attributes = encode_body(b"a\x00b")
    assert attributes
    assert decode_body({"Body": encoded, "MessageAttributes": attributes}) == b"a\x00b"


def test_message_size_counts_body_and_attributes_in_bytes() -> None:
    attributes = {"asya-body-encoding": {"DataType": "String", "StringValue": "base64"}}
    assert message_size("é", {}) == 2
    assert message_size("ab", attributes) == 2 + len("asya-body-encoding") + len("String") + 6


def test_a_short_poll_waits_between_empty_receives_and_a_long_poll_does_not() -> None:
    def pause(url: str) -> float:
        transport = open_transport(url)
        assert isinstance(transport, SqsTransport)
        return SqsSubscription(transport, "q", 1).idle_timeout(3)

    assert pause("sqs://?wait=5s") == 0.0
    assert pause("sqs://?wait=0s") > 0
    assert pause("sqs://?wait=500ms") > 0  # SQS counts whole seconds: that is a short poll
