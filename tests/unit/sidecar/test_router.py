"""Pure routing decisions: outputs, error-end shape, retries."""

from __future__ import annotations

import orjson
import pytest

from asya.sidecar import router
from asya.sidecar.router import Failure


def output(steps: list[str], current: int, **extra: object) -> dict[str, object]:
    return {"payload": {"v": 1}, "route": {"steps": steps, "current": current}, **extra}


def test_an_output_advances_to_the_next_step() -> None:
    [publish] = router.route_outputs([output(["a", "b", "c"], 0, job_id="j")], "happy-end")
    assert publish.queue == "b"
    assert publish.kind == router.ROUTING
    assert publish.message["route"] == {"steps": ["a", "b", "c"], "current": 1}
    assert publish.message["job_id"] == "j"


def test_the_last_step_goes_to_happy_end() -> None:
    [publish] = router.route_outputs([output(["a", "b"], 1)], "done")
    assert (publish.queue, publish.kind) == ("done", router.HAPPY_END)
    assert publish.message["route"]["current"] == 2


def test_fan_out_routes_each_output_by_its_own_route() -> None:
    publishes = router.route_outputs(
        [output(["a", "b"], 0), output(["a", "x", "y"], 0), output(["a"], 0)], "happy-end"
    )
    assert [p.queue for p in publishes] == ["b", "x", "happy-end"]


def test_fan_out_gives_each_output_its_branch_in_handler_order() -> None:
    publishes = router.route_outputs([output(["a", "b"], 0) for _ in range(3)], "happy-end")
    assert [p.message["branch"] for p in publishes] == [
        [{"index": i, "count": 3}] for i in range(3)
    ]


def test_nested_fan_out_appends_a_level_to_the_input_branch() -> None:
    outer = [{"index": 2, "count": 3}]
    publishes = router.route_outputs([output(["a", "b"], 0) for _ in range(4)], "h", outer)
    assert publishes[1].message["branch"] == [*outer, {"index": 1, "count": 4}]


def test_a_single_output_keeps_the_input_branch_whatever_the_handler_did() -> None:
    outer = [{"index": 0, "count": 2}]
    changed = output(["a", "b"], 0, branch=[{"index": 9, "count": 10}])
    [publish] = router.route_outputs([changed], "happy-end", outer)
    assert publish.message["branch"] == outer


def test_a_single_output_of_a_trunk_message_has_no_branch() -> None:
    [publish] = router.route_outputs([output(["a", "b"], 0, branch=[])], "happy-end", None)
    assert "branch" not in publish.message


def test_the_error_end_message_keeps_the_branch_of_the_failed_message() -> None:
    branch = [{"index": 1, "count": 2}]
    message = output(["a"], 0, job_id="j", branch=branch)
    failure = Failure("processing_error", "boom", "ValueError")
    result = router.error_end_message(
        failure, failed_step="a", original_body=b"{}", message=message
    )
    assert result["branch"] == branch
    trunk = router.error_end_message(
        failure, failed_step="a", original_body=b"{}", message=output(["a"], 0)
    )
    assert "branch" not in trunk


def test_routing_drops_the_retry_counter_and_keeps_other_metadata() -> None:
    message = output(["a", "b"], 0)
    message["route"] = {"steps": ["a", "b"], "current": 0, "metadata": {"attempt": 2, "k": "v"}}
    [publish] = router.route_outputs([message], "happy-end")
    assert publish.message["route"]["metadata"] == {"k": "v"}
    assert message["route"]["metadata"] == {"attempt": 2, "k": "v"}  # input untouched


@pytest.mark.parametrize(
    ("attempt", "backoff", "retry_after", "expected"),
    [
        (0, 1.0, None, 1.0),
        (1, 1.0, None, 2.0),
        (3, 1.0, None, 8.0),
        (9, 1.0, None, 300.0),
        (100, 1.0, None, 300.0),
        (0, 0.5, 30.0, 30.0),
        (6, 10.0, 30.0, 300.0),
        (2, 1.0, 1.0, 4.0),
        (0, 1.0, 600.0, 600.0),
    ],
)
def test_retry_delay_doubles_is_capped_and_yields_to_a_larger_retry_after(
    attempt: int, backoff: float, retry_after: float | None, expected: float
) -> None:
    assert router.retry_delay(attempt, backoff, retry_after) == expected


def test_only_recoverable_errors_are_retried_except_in_terminal_actors() -> None:
    fatal = Failure("processing_error", "m", "ValueError")
    recoverable = Failure("oom_error", "m", "MemoryError", router.RECOVERABLE)
    assert router.should_retry(recoverable, 0, 2, terminal=False)
    assert router.should_retry(recoverable, 1, 2, terminal=False)
    assert not router.should_retry(recoverable, 2, 2, terminal=False)
    assert not router.should_retry(recoverable, 0, 0, terminal=False)
    assert not router.should_retry(fatal, 0, 5, terminal=False)
    assert router.should_retry(fatal, 0, 5, terminal=True)


def test_a_retried_message_counts_its_attempt() -> None:
    message = output(["a"], 0)
    first = router.retry_message(message)
    second = router.retry_message(first)
    assert first["route"]["metadata"] == {"attempt": 1}
    assert second["route"]["metadata"] == {"attempt": 2}
    assert "metadata" not in message["route"]


def test_the_error_end_message_has_the_spec_shape() -> None:
    message = output(["a", "b"], 0, job_id="j1")
    message["route"]["metadata"] = {"attempt": 2}
    body = orjson.dumps(message)
    failure = Failure("oom_error", "out of memory", "MemoryError", router.RECOVERABLE, "tb", 30)
    result = router.error_end_message(failure, failed_step="a", original_body=body, message=message)
    assert result == {
        "job_id": "j1",
        "error": "oom_error",
        "error_details": {
            "message": "out of memory",
            "type": "MemoryError",
            "traceback": "tb",
            "severity": "recoverable",
            "retry_after": 30,
        },
        "original_message": body.decode(),
        "route": {"steps": ["a", "b"], "current": 0, "metadata": {"attempt": 2}},
        "payload": {"v": 1},
        "failed_step": "a",
        "attempts": 3,
    }


def test_the_error_end_message_of_an_unparsable_body_keeps_the_text() -> None:
    failure = Failure("msg_parsing_error", "not JSON", "MessageParsingError")
    result = router.error_end_message(
        failure, failed_step="a", original_body=b"\xffoops", message=None
    )
    assert result["original_message"] == "\ufffdoops"
    assert result["route"] is None
    assert result["payload"] is None
    assert result["job_id"] is None
    assert result["attempts"] == 1


def test_the_job_id_falls_back_to_the_route_metadata() -> None:
    message = output(["a"], 0)
    message["route"]["metadata"] = {"job_id": "from-meta"}
    result = router.error_end_message(
        Failure("x", "m", "T"), failed_step="a", original_body=b"{}", message=message
    )
    assert result["job_id"] == "from-meta"


def test_runtime_error_responses_are_recognised() -> None:
    details = {"message": "m", "severity": "recoverable", "retry_after": 30, "type": "MemoryError"}
    response = [{"error": "oom_error", "details": details}]
    failure = router.error_in_response(response)
    assert failure is not None
    assert (failure.code, failure.recoverable, failure.retry_after) == ("oom_error", True, 30.0)
    assert router.error_in_response([{"payload": 1, "route": {}}]) is None
    assert router.error_in_response([]) is None


def test_outputs_get_the_input_fields_they_lack_and_keep_their_own() -> None:
    message = {"job_id": "j-1", "headers": {"trace": "t"}, "payload": 1, "route": {"current": 0}}
    outputs = [
        {"payload": 2, "route": {"current": 0, "steps": ["a"]}},
        {"payload": 3, "job_id": "own"},
        "text",
    ]

    completed = router.with_input_fields(outputs, message)

    assert completed[0] == {**message, "payload": 2, "route": {"current": 0, "steps": ["a"]}}
    assert completed[1]["job_id"] == "own"
    assert completed[2] == "text"  # refused later as an output that is not an object
