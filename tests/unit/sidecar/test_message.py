"""Message helpers: parsing, route validation, job id, attempt and deadline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from asya.message import (
    MessageError,
    attempt_of,
    deadline_passed,
    decode_json,
    encode_json,
    job_id_of,
    message_problem,
    parse_deadline,
    parse_message,
)


def test_parsing_accepts_only_json_objects() -> None:
    assert parse_message(b'{"a": 1}') == {"a": 1}
    with pytest.raises(MessageError, match="not valid JSON"):
        parse_message(b"{")
    with pytest.raises(MessageError, match="JSON object"):
        parse_message(b"[1]")


def test_integers_beyond_64_bits_pass_through_exactly() -> None:
    body = b'{"payload": {"big": 18446744073709551616, "neg": -100000000000000000000000}}'
    message = parse_message(body)
    assert message["payload"] == {"big": 2**64, "neg": -(10**23)}
    assert decode_json(encode_json(message)) == message


def test_the_exact_path_still_refuses_what_json_does_not_allow() -> None:
    with pytest.raises(MessageError, match="not valid JSON"):
        parse_message(b'{"payload": NaN, "n": 123456789012345678901}')
    with pytest.raises(MessageError, match="not valid JSON"):
        parse_message(b'{"payload": 123456789012345678901')


def test_digits_inside_strings_keep_their_text() -> None:
    message = parse_message(b'{"payload": "12345678901234567890123", "f": 1.5}')
    assert message == {"payload": "12345678901234567890123", "f": 1.5}


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"route": {"steps": ["a"], "current": 0}}, "payload"),
        ({"payload": 1}, "route"),
        ({"payload": 1, "route": {"steps": None, "current": 0}}, "steps"),
        ({"payload": 1, "route": {"steps": [1], "current": 0}}, "must be a non-empty string"),
        ({"payload": 1, "route": {"steps": ["a"], "current": "0"}}, "integer"),
        ({"payload": 1, "route": {"steps": ["a"], "current": False}}, "integer"),
        ({"payload": 1, "route": {"steps": ["a"], "current": -1}}, "out of range"),
        ({"payload": 1, "route": {"steps": ["a"], "current": 1}}, "out of range"),
        ({"payload": 1, "route": {"steps": ["a"], "current": 0, "metadata": []}}, "metadata"),
    ],
)
def test_an_unusable_route_is_explained(message: dict[str, object], problem: str) -> None:
    found = message_problem(message)
    assert found is not None
    assert problem in found


def test_a_finished_route_is_valid_only_where_allowed() -> None:
    message = {"payload": None, "route": {"steps": ["a"], "current": 1}}
    assert message_problem(message) is not None
    assert message_problem(message, finished_allowed=True) is None
    assert message_problem({"payload": None, "route": {"steps": [], "current": 0}}) is not None


def test_job_id_and_attempt_are_read_where_the_spec_puts_them() -> None:
    message = {"job_id": "top", "route": {"metadata": {"job_id": "meta", "attempt": 3}}}
    assert job_id_of(message) == "top"
    assert job_id_of({"route": {"metadata": {"job_id": "meta"}}}) == "meta"
    assert job_id_of({"route": {}}) is None
    assert attempt_of(message) == 3
    assert attempt_of({"route": {"metadata": {"attempt": "x"}}}) == 0


@pytest.mark.parametrize(
    "text",
    ["2030-01-02T03:04:05Z", "2030-01-02T03:04:05.123456789Z", "2030-01-02T05:04:05+02:00"],
)
def test_rfc3339_deadlines_are_understood(text: str) -> None:
    parsed = parse_deadline(text)
    assert parsed is not None
    assert parsed.replace(microsecond=0) == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_deadline_passed_compares_with_now() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    route = {"metadata": {"deadline": "2029-12-31T23:59:59Z"}}
    assert deadline_passed({"route": route}, now)
    assert not deadline_passed({"route": {"metadata": {"deadline": "2030-01-01T00:00:01Z"}}}, now)
    assert not deadline_passed({"route": {"metadata": {"deadline": "garbage"}}}, now)
    assert not deadline_passed({"route": {}}, now)
