"""Every handler kind and both modes, through a real runtime process and its socket."""

from __future__ import annotations

import pytest

from tests.integration.runtime.rtclient import StartRuntime, message, wait_for_log


def test_function_handler_keeps_the_messages_other_fields_and_route(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.echo")
    request = message({"text": "hi"}, steps=["a", "b"], current=0, job_id="j-1", trace="t-9")

    response = runtime.call(request)

    assert response == [
        {
            "route": {"steps": ["a", "b"], "current": 0, "metadata": {}},
            "payload": {"text": "hi"},
            "job_id": "j-1",
            "trace": "t-9",
        }
    ]


def test_class_handler_is_built_once_per_worker(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.Counter.count")

    counts = [runtime.call(message({}))[0]["payload"]["calls"] for _ in range(3)]

    assert counts == [1, 2, 3]


def test_callable_class_instance_is_built_once_and_called(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.CallableHandler")

    assert runtime.call(message(5))[0]["payload"] == {"called": 5}


def test_async_handler_is_awaited(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.async_double")

    assert [out["payload"] for out in runtime.call(message({"value": 21}))] == [{"value": 42}]
    assert [out["payload"] for out in runtime.call(message({"value": 4}))] == [{"value": 8}]


@pytest.mark.parametrize("handler", ["rt_handlers.fan_out", "rt_handlers.async_fan_out"])
def test_generator_handler_fans_out_one_output_per_item_in_order(
    start_runtime: StartRuntime, handler: str
) -> None:
    runtime = start_runtime(handler)

    response = runtime.call(message({"count": 4}, job_id="j-2"))

    assert [out["payload"] for out in response] == [{"index": i} for i in range(4)]
    assert all(out["job_id"] == "j-2" and out["route"]["current"] == 0 for out in response)


@pytest.mark.parametrize(
    ("handler", "payload", "expected"),
    [
        ("rt_handlers.returns_list", {"items": [3, 1, 2]}, [{"item": 3}, {"item": 1}, {"item": 2}]),
        ("rt_handlers.returns_tuple", {}, ["first", "second"]),
        ("rt_handlers.returns_one_list", {"items": [1, 2]}, [[1, 2]]),
        ("rt_handlers.returns_none", {}, []),
        ("rt_handlers.returns_empty", {}, []),
    ],
)
def test_lists_and_tuples_fan_out_and_none_gives_no_outputs(
    start_runtime: StartRuntime, handler: str, payload: object, expected: list[object]
) -> None:
    runtime = start_runtime(handler)

    assert [out["payload"] for out in runtime.call(message(payload))] == expected


def test_message_mode_passes_the_whole_message_and_copies_fields_left_out(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.message_partial", {"ASYA_HANDLER_MODE": "message"})
    request = message({"x": 1}, job_id="j-3", extra={"kept": True})

    response = runtime.call(request)

    assert response == [{**request, "payload": {"done": True}}]


def test_message_mode_handler_sees_job_id_and_unknown_fields(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.message_echo", {"ASYA_HANDLER_MODE": "message"})
    request = message({"x": 1}, job_id="j-4", custom="c")

    (output,) = runtime.call(request)

    assert output["payload"] == {"received": request}
    assert output["note"] == "handled"
    assert output["job_id"] == "j-4"
    assert output["custom"] == "c"


def test_message_mode_fields_set_by_the_handler_win(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.message_override", {"ASYA_HANDLER_MODE": "message"})

    (output,) = runtime.call(message({}, job_id="from-input"))

    assert output["job_id"] == "set-by-handler"
    assert output["payload"] == 1


@pytest.mark.parametrize(
    "env",
    [
        {"ASYA_HANDLER_MODE": "envelope"},
        {"ASYA_HANDLER_ARG_TYPE": "envelope"},
        {"ASYA_HANDLER_ARG_TYPE": "message"},
        {"ASYA_HANDLER_MODE": "message", "ASYA_HANDLER_ARG_TYPE": "payload"},
    ],
)
def test_message_mode_aliases_are_accepted(
    start_runtime: StartRuntime, env: dict[str, str]
) -> None:
    runtime = start_runtime("rt_handlers.message_partial", env)

    (output,) = runtime.call(message({"x": 1}, job_id="j"))

    assert output["payload"] == {"done": True}, "the handler must run in message mode"


def test_handler_mode_wins_over_its_alias_with_a_warning(start_runtime: StartRuntime) -> None:
    runtime = start_runtime(
        "rt_handlers.echo", {"ASYA_HANDLER_MODE": "payload", "ASYA_HANDLER_ARG_TYPE": "envelope"}
    )

    assert runtime.call(message({"p": 1}))[0]["payload"] == {"p": 1}
    assert "ASYA_HANDLER_MODE=payload and ASYA_HANDLER_ARG_TYPE=envelope disagree" in (
        runtime.logs()
    )


@pytest.mark.parametrize(
    ("edit", "expected_steps"),
    [("replace_future", ["a", "b", "x", "y"]), ("drop_future", ["a", "b"])],
)
def test_message_mode_may_change_the_steps_after_current(
    start_runtime: StartRuntime, edit: str, expected_steps: list[str]
) -> None:
    runtime = start_runtime("rt_handlers.message_reroute", {"ASYA_HANDLER_MODE": "message"})

    (output,) = runtime.call(message({"edit": edit}, steps=["a", "b", "c"], current=1))

    assert output["route"]["steps"] == expected_steps
    assert output["route"]["current"] == 1


@pytest.mark.parametrize("edit", ["advance_current", "rewrite_past", "rewrite_current"])
def test_message_mode_cannot_rewrite_the_route_behind_it(
    start_runtime: StartRuntime, edit: str
) -> None:
    runtime = start_runtime("rt_handlers.message_reroute", {"ASYA_HANDLER_MODE": "message"})

    (error,) = runtime.call(message({"edit": edit}, steps=["a", "b", "c"], current=1))

    assert error["error"] == "processing_error"
    assert "an actor cannot rewrite the route behind it" in error["details"]["message"]
    assert error["details"]["severity"] == "fatal"


def test_message_mode_route_edited_in_place_is_still_refused(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.message_edit_in_place", {"ASYA_HANDLER_MODE": "message"})

    (error,) = runtime.call(message({}, steps=["a", "b", "c"], current=0))

    assert error["error"] == "processing_error"
    assert "an actor cannot rewrite the route behind it" in error["details"]["message"]


def test_message_mode_without_validation_does_not_check_the_route(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime(
        "rt_handlers.message_reroute",
        {"ASYA_HANDLER_MODE": "message", "ASYA_ENABLE_VALIDATION": "false"},
    )

    (output,) = runtime.call(message({"edit": "rewrite_past"}, steps=["a", "b"], current=1))

    assert output["route"]["steps"] == ["someone-else", "b"]


def test_message_mode_output_that_is_not_an_object_is_a_processing_error(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.message_not_dict", {"ASYA_HANDLER_MODE": "message"})

    (error,) = runtime.call(message({}))

    assert error["error"] == "processing_error"
    assert "message objects" in error["details"]["message"]


def test_what_a_handler_prints_shows_in_the_runtime_output_at_once(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.prints", {"PYTHONUNBUFFERED": ""})  # as in most images

    runtime.call(message("ping"))

    wait_for_log(runtime, "handler saw ping", timeout=5)
