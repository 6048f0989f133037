"""The tools file: parameters → JSON Schema, routes, defaults, and errors naming the tool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from asya.gateway.tools import ArgumentsError, ToolsConfigError, load_tools, parse_tools

SPEC_EXAMPLE = """
defaults: {progress: true, timeout: 30}
routes: {image-flow: [resize, detect, tag]}
tools:
  - name: test_pipeline
    description: Double then add five
    parameters:
      value: {type: integer, description: the input, required: true}
      mode: {type: string, options: [fast, slow], default: fast}
    route: [test-doubler-queue, test-incrementer-queue]
    timeout: 10
    wait: false
  - name: images
    route: image-flow
"""


def _one(parameters: dict[str, Any], **extra: Any) -> Any:
    document = {"tools": [{"name": "t", "route": ["q"], "parameters": parameters, **extra}]}
    return parse_tools(document).get("t")


def test_the_spec_example_loads_with_schema_route_template_and_timeouts() -> None:
    registry = parse_tools(yaml.safe_load(SPEC_EXAMPLE))
    pipeline = registry.get("test_pipeline")
    assert pipeline is not None
    assert pipeline.description == "Double then add five"
    assert pipeline.route == ("test-doubler-queue", "test-incrementer-queue")
    assert pipeline.timeout == 10
    assert pipeline.wait is False
    assert pipeline.input_schema == {
        "type": "object",
        "properties": {
            "value": {"type": "integer", "description": "the input"},
            "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
        },
        "required": ["value"],
        "additionalProperties": False,
    }
    images = registry.get("images")
    assert images is not None
    assert images.route == ("resize", "detect", "tag")
    assert images.timeout == 30  # from defaults
    assert images.progress is True


def test_every_parameter_type_becomes_json_schema() -> None:
    tool = _one(
        {
            "text": {"type": "string"},
            "ratio": {"type": "number", "default": 0.5},
            "count": {"type": "integer"},
            "flag": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "box": {
                "type": "object",
                "properties": {
                    "width": {"type": "integer", "required": True},
                    "inner": {"type": "object", "properties": {"deep": {"type": "boolean"}}},
                },
            },
        }
    )
    props = tool.input_schema["properties"]
    assert [props[name]["type"] for name in props] == [
        "string",
        "number",
        "integer",
        "boolean",
        "array",
        "object",
    ]
    assert props["tags"]["items"] == {"type": "string"}
    assert props["box"]["required"] == ["width"]
    assert props["box"]["properties"]["inner"]["properties"]["deep"] == {"type": "boolean"}


def test_arguments_get_defaults_filled_including_nested_ones() -> None:
    tool = _one(
        {
            "mode": {"type": "string", "default": "fast"},
            "opts": {
                "type": "object",
                "properties": {"level": {"type": "integer", "default": 3}},
                "default": {},
            },
        }
    )
    assert tool.prepare_arguments({}) == {"mode": "fast", "opts": {"level": 3}}
    assert tool.prepare_arguments({"mode": "slow", "opts": {"level": 1}}) == {
        "mode": "slow",
        "opts": {"level": 1},
    }


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({}, "'value' is a required property"),
        ({"value": "ten"}, "'ten' is not of type 'integer'"),
        ({"value": True}, "not of type 'integer'"),
        ({"value": 1, "mode": "warp"}, "'warp' is not one of ['fast', 'slow']"),
        ({"value": 1, "colour": "red"}, "no argument 'colour'"),
        ({"value": 1, "tags": [1]}, "argument 'tags/0'"),
    ],
)
def test_bad_arguments_are_refused_with_a_message_naming_the_problem(
    arguments: dict[str, Any], fragment: str
) -> None:
    tool = _one(
        {
            "value": {"type": "integer", "required": True},
            "mode": {"type": "string", "options": ["fast", "slow"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        }
    )
    with pytest.raises(ArgumentsError) as caught:
        tool.prepare_arguments(arguments)
    assert fragment in str(caught.value)
    assert "'t'" in str(caught.value)


def test_arguments_are_not_changed_in_place() -> None:
    tool = _one({"mode": {"type": "string", "default": "fast"}})
    arguments: dict[str, Any] = {}
    tool.prepare_arguments(arguments)
    assert arguments == {}


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (
            {"tools": [{"name": "a", "route": ["q"]}, {"name": "a", "route": ["q"]}]},
            "tool 'a': duplicate name",
        ),
        ({"tools": [{"name": "a", "route": []}]}, "tool 'a': route is empty"),
        ({"tools": [{"name": "a"}]}, "tool 'a': route is empty"),
        (
            {"tools": [{"name": "a", "route": "nowhere"}]},
            "tool 'a': unknown route template 'nowhere'",
        ),
        (
            {"tools": [{"name": "a", "route": ["q"], "parameters": {"x": {"type": "text"}}}]},
            "tool 'a': parameter 'x' has bad type 'text'",
        ),
        (
            {
                "tools": [
                    {
                        "name": "a",
                        "route": ["q"],
                        "parameters": {
                            "o": {"type": "object", "properties": {"y": {"type": "date"}}}
                        },
                    }
                ]
            },
            "tool 'a': parameter 'o.y' has bad type 'date'",
        ),
        (
            {"tools": [{"name": "a", "route": ["q"], "timeout": -1}]},
            "tool 'a': timeout must not be negative",
        ),
        (
            {"tools": [{"name": "a", "route": ["q"], "timeout": "soon"}]},
            "tool 'a': timeout must be a number",
        ),
        (
            {
                "tools": [
                    {
                        "name": "a",
                        "route": ["q"],
                        "parameters": {"m": {"type": "integer", "default": "x"}},
                    }
                ]
            },
            "tool 'a': parameter 'm' default does not fit",
        ),
        (
            {
                "tools": [
                    {
                        "name": "a",
                        "route": ["q"],
                        "parameters": {"m": {"type": "integer", "requried": True}},
                    }
                ]
            },
            "tool 'a': parameter 'm' has unknown key 'requried'",
        ),
        ({"tools": [{"route": ["q"]}]}, "tool #1: every tool needs a non-empty 'name'"),
        ({"tools": "nope"}, "'tools' must be a list"),
    ],
)
def test_load_time_errors_name_the_tool(document: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ToolsConfigError) as caught:
        parse_tools(document)
    assert fragment in str(caught.value)


def test_load_tools_reads_a_file_and_names_it_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "tools.yaml"
    good.write_text(SPEC_EXAMPLE)
    assert len(load_tools(str(good))) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("tools: [{name: x, route: []}]\n")
    with pytest.raises(ToolsConfigError, match=r"bad\.yaml: tool 'x': route is empty"):
        load_tools(str(bad))
    with pytest.raises(ToolsConfigError, match="cannot read tools file"):
        load_tools(str(tmp_path / "missing.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("tools: [\n")
    with pytest.raises(ToolsConfigError, match="not valid YAML"):
        load_tools(str(broken))


def test_no_tools_file_gives_an_empty_registry() -> None:
    assert len(load_tools(None)) == 0


def test_per_tool_progress_wait_and_zero_timeout() -> None:
    registry = parse_tools(
        {
            "defaults": {"progress": False, "timeout": 5},
            "tools": [
                {"name": "a", "route": ["q"], "wait": True, "timeout": 0},
                {"name": "b", "route": ["q"], "progress": True},
            ],
        }
    )
    a, b = registry.get("a"), registry.get("b")
    assert a is not None
    assert b is not None
    assert (a.wait, a.timeout, a.progress) == (True, None, False)
    assert (b.wait, b.timeout, b.progress) == (False, 5, True)


def test_mcp_tasks_default_to_tools_without_wait_and_can_be_set_per_tool() -> None:
    registry = parse_tools(
        {
            "tools": [
                {"name": "plain", "route": ["q"]},
                {"name": "waits", "route": ["q"], "wait": True},
                {"name": "never", "route": ["q"], "task": False},
                {"name": "both", "route": ["q"], "wait": True, "task": True},
            ]
        }
    )
    tasks = {tool.name: tool.task for tool in registry}
    assert tasks == {"plain": True, "waits": False, "never": False, "both": True}


def test_tools_without_timeout_get_the_gateways_default_and_0_means_none() -> None:
    document = yaml.safe_load(
        """
tools:
  - {name: plain, route: [q]}
  - {name: quick, route: [q], timeout: 3}
  - {name: endless, route: [q], timeout: 0}
"""
    )
    registry = parse_tools(document, default_timeout=300.0)
    assert [registry.get(n).timeout for n in ("plain", "quick", "endless")] == [300.0, 3.0, None]  # type: ignore[union-attr]
    # the file's own defaults.timeout wins over the gateway's
    document["defaults"] = {"timeout": 30}
    assert parse_tools(document, default_timeout=300.0).get("plain").timeout == 30.0  # type: ignore[union-attr]
    document["defaults"] = {"timeout": 0}
    assert parse_tools(document, default_timeout=300.0).get("plain").timeout is None  # type: ignore[union-attr]
