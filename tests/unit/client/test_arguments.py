"""key=value parsing and the local argument check against a tool's schema."""

from __future__ import annotations

import pytest

from asya.client.arguments import (
    UsageError,
    check_arguments,
    parse_assignments,
    parse_json_object,
    tool_from_json,
)

PIPELINE = tool_from_json(
    {
        "name": "test_pipeline",
        "description": "Double then add five",
        "inputSchema": {
            "type": "object",
            "properties": {
                "value": {"type": "integer", "description": "the input"},
                "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                "label": {"type": "string"},
            },
            "required": ["value"],
        },
    }
)


def test_values_that_parse_as_json_are_json() -> None:
    parsed = parse_assignments(["value=10", "ratio=0.5", "on=true", "tags=[1,2]", 'o={"a":1}'])

    assert parsed == {"value": 10, "ratio": 0.5, "on": True, "tags": [1, 2], "o": {"a": 1}}


def test_other_values_are_strings_and_may_contain_equals_signs() -> None:
    assert parse_assignments(["name=Ada Lovelace", "expr=a=b", "empty="]) == {
        "name": "Ada Lovelace",
        "expr": "a=b",
        "empty": "",
    }


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_python_only_number_constants_stay_strings(text: str) -> None:
    # JSON has no NaN/Infinity: taking them as floats would make the request unsendable
    assert parse_assignments([f"x={text}"]) == {"x": text}


def test_a_declared_string_parameter_keeps_the_text_as_typed() -> None:
    assert parse_assignments(["label=007", "value=7"], tool=PIPELINE) == {
        "label": "007",
        "value": 7,
    }


def test_pairs_override_the_json_option() -> None:
    base = parse_json_object('{"value": 1, "mode": "slow"}')

    assert parse_assignments(["value=2"], base) == {"value": 2, "mode": "slow"}


@pytest.mark.parametrize("pair", ["value", "=10"])
def test_a_pair_without_a_key_or_equals_sign_is_a_usage_error(pair: str) -> None:
    with pytest.raises(UsageError, match="expected key=value"):
        parse_assignments([pair])


@pytest.mark.parametrize("text", ["[1]", "not json", '{"value": NaN}'])
def test_json_option_must_be_an_object(text: str) -> None:
    with pytest.raises(UsageError, match="--json"):
        parse_json_object(text)


def test_tool_parameters_are_read_from_the_json_schema() -> None:
    value, mode, _label = PIPELINE.parameters

    assert (value.name, value.type, value.required) == ("value", "integer", True)
    assert (mode.options, mode.default, mode.has_default) == (("fast", "slow"), "fast", True)
    assert value.describe() == "value: integer (required) — the input"


def test_tool_parameters_are_read_from_a_tools_file_shape_too() -> None:
    tool = tool_from_json({"name": "t", "parameters": {"n": {"type": "number", "required": True}}})

    assert tool.parameters[0].required is True
    assert tool.parameters[0].type == "number"


def test_valid_arguments_pass() -> None:
    check_arguments(PIPELINE, {"value": 10, "mode": "slow"})


def test_missing_required_argument_lists_the_parameters() -> None:
    with pytest.raises(UsageError) as caught:
        check_arguments(PIPELINE, {})

    text = str(caught.value)
    assert "missing required argument 'value'" in text
    assert "value: integer (required)" in text
    assert 'mode: string one of "fast"|"slow" (default "fast")' in text


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"value": "ten"}, "argument 'value' must be integer, got \"ten\""),
        ({"value": True}, "argument 'value' must be integer"),
        ({"value": 1.5}, "argument 'value' must be integer"),
        ({"value": 1, "mode": "medium"}, 'argument \'mode\' must be one of "fast", "slow"'),
        ({"value": 1, "colour": "red"}, "unknown argument 'colour'"),
    ],
)
def test_mistyped_or_unknown_arguments_are_usage_errors(
    arguments: dict[str, object], expected: str
) -> None:
    with pytest.raises(UsageError, match=expected.replace("(", r"\(")):
        check_arguments(PIPELINE, arguments)


def test_integral_floats_count_as_integers() -> None:
    check_arguments(PIPELINE, {"value": 10.0})
