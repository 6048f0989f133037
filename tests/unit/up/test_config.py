"""asya.yaml validation: every documented mistake is reported with its line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from asya.up.config import MeshConfigError, ScalingConfig, load_config


def write(folder: Path, text: str, name: str = "asya.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(MeshConfigError) as caught:
        load_config(path, environ={})
    return [p.render("asya.yaml") for p in caught.value.problems]


MINIMAL = """
actors:
  - name: doubler
    handler: handlers.double
"""


def test_minimal_file_gets_the_embedded_sqlite_defaults_next_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})

    assert config.transport == f"sqlite:///{tmp_path.resolve()}/.asya/queues.db"
    assert config.database == f"sqlite:///{tmp_path.resolve()}/.asya/jobs.db"
    assert config.exchange == "asya"
    assert config.crew is True
    assert config.gateway is None
    (actor,) = config.actors
    assert (actor.name, actor.handler, actor.mode, actor.replicas) == (
        "doubler",
        "handlers.double",
        "payload",
        1,
    )
    assert config.queues() == ["doubler", "happy-end", "error-end", "asya-dead-letter"]


def test_full_file_is_read_with_durations_scaling_and_env(tmp_path: Path) -> None:
    write(tmp_path, "tools: []\n", "routes.yaml")
    path = write(
        tmp_path,
        """
        transport: amqp://guest:guest@localhost:5672/
        database: postgresql://localhost/asya
        exchange: my-exchange
        gateway: {port: 9000, tools: routes.yaml}
        crew: false
        env: {SHARED: 1}
        actors:
          - name: slow
            handler: handlers.Model.predict
            mode: message
            timeout: 1m30s
            scaling: {min: 0, max: 4, queue_length: 5, cooldown: 2s}
            env: {MODEL: small, DEBUG: true}
        """,
    )
    config = load_config(path, environ={})

    assert config.transport == "amqp://guest:guest@localhost:5672/"
    assert config.database == "postgresql://localhost/asya"
    assert config.exchange == "my-exchange"
    assert config.gateway is not None
    assert config.gateway.port == 9000
    assert config.gateway.tools == (tmp_path / "routes.yaml").resolve()
    assert config.gateway.url == "http://127.0.0.1:9000"
    assert config.crew is False
    assert config.env == {"SHARED": "1"}
    (actor,) = config.actors
    assert actor.mode == "message"
    assert actor.timeout == 90.0
    assert actor.scaling == ScalingConfig(
        min=0, max=4, queue_length=5, polling_interval=1.0, cooldown=2.0
    )
    assert actor.initial_replicas == 0
    assert actor.env == {"MODEL": "small", "DEBUG": "true"}


def test_exchange_defaults_to_the_environment_variable(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={"ASYA_RABBITMQ_EXCHANGE": "ex-1"})

    assert config.exchange == "ex-1"


def test_unknown_keys_are_named_with_their_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        transprt: amqp://x
        actors:
          - name: doubler
            handler: handlers.double
            replica: 2
        """,
    )

    found = problems(path)

    assert any(line.startswith("asya.yaml:1: transprt: unknown key") for line in found), found
    assert any(line.startswith("asya.yaml:5: actors[0].replica: unknown key") for line in found)


def test_missing_handler_is_reported_for_that_actor(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        actors:
          - name: ok
            handler: handlers.ok
          - name: broken
        """,
    )

    (line,) = problems(path)

    assert line.startswith("asya.yaml:4: actors[1]: missing key 'handler'")


def test_handler_that_is_not_a_dotted_path_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "actors:\n  - {name: a, handler: 'handlers:double'}\n")

    (line,) = problems(path)

    assert "actors[0].handler" in line
    assert "module.function" in line


def test_duplicate_actor_names_point_at_both_entries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        actors:
          - name: same
            handler: handlers.a
          - name: same
            handler: handlers.b
        """,
    )

    (line,) = problems(path)

    assert line.startswith("asya.yaml:4: actors[1].name: duplicate actor name 'same'")
    assert "actors[0]" in line


def test_gateway_tools_file_that_does_not_exist_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "gateway: {port: 8080, tools: missing.yaml}\n" + MINIMAL)

    (line,) = problems(path)

    assert line.startswith("asya.yaml:1: gateway.tools: file not found")
    assert str(tmp_path.resolve() / "missing.yaml") in line


def test_gateway_without_a_tools_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "gateway: {port: 8080}\n" + MINIMAL)

    (line,) = problems(path)

    assert "gateway: missing key 'tools'" in line


@pytest.mark.parametrize("value", ["5 seconds", "-1s", "fast", "[1]"])
def test_bad_durations_are_refused(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"actors:\n  - {{name: a, handler: h.f, timeout: {value}}}\n")

    (line,) = problems(path)

    assert line.startswith("asya.yaml:2: actors[0].timeout: invalid duration")


def test_zero_timeout_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "actors:\n  - {name: a, handler: h.f, timeout: 0s}\n")

    (line,) = problems(path)

    assert "actors[0].timeout: must be greater than zero" in line


def test_replicas_and_scaling_together_conflict(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        actors:
          - name: a
            handler: h.f
            replicas: 2
            scaling: {min: 0, max: 3, queue_length: 1}
        """,
    )

    (line,) = problems(path)

    assert line.startswith("asya.yaml:4: actors[0].replicas: set either replicas")


def test_scaling_with_max_below_min_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "actors:\n  - name: a\n    handler: h.f\n    scaling: {min: 3, max: 2, queue_length: 1}\n",
    )

    (line,) = problems(path)

    assert "actors[0].scaling.max: must be at least min (3), got 2" in line


def test_scaling_needs_min_max_and_queue_length(tmp_path: Path) -> None:
    path = write(tmp_path, "actors:\n  - name: a\n    handler: h.f\n    scaling: {max: 2}\n")

    found = problems(path)

    assert any("actors[0].scaling: missing key 'min'" in line for line in found)
    assert any("actors[0].scaling: missing key 'queue_length'" in line for line in found)


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [("-1", "must be at least 0"), ("two", "must be an integer"), ("true", "must be an integer")],
)
def test_bad_replica_counts_are_refused(tmp_path: Path, yaml_value: str, expected: str) -> None:
    path = write(tmp_path, f"actors:\n  - {{name: a, handler: h.f, replicas: {yaml_value}}}\n")

    (line,) = problems(path)

    assert f"actors[0].replicas: {expected}" in line


def test_reserved_crew_queue_names_cannot_be_actors(tmp_path: Path) -> None:
    path = write(tmp_path, "actors:\n  - {name: happy-end, handler: h.f}\n")

    (line,) = problems(path)

    assert "'happy-end' is reserved for the crew" in line


def test_unsupported_transport_url_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "transport: redis://localhost\n" + MINIMAL)

    (line,) = problems(path)

    assert line.startswith("asya.yaml:1: transport: unsupported URL 'redis://localhost'")


def test_file_without_actors_is_refused(tmp_path: Path) -> None:
    (line,) = problems(write(tmp_path, "crew: true\n"))

    assert "actors: at least one actor is required" in line


def test_yaml_syntax_error_gives_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "actors:\n  - name: a\n    handler: [unclosed\n")

    (line,) = problems(path)

    assert "not valid YAML" in line
    assert line.startswith("asya.yaml:")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        crew: maybe
        actors:
          - name: a
          - handler: h.f
        """,
    )

    found = problems(path)

    assert len(found) == 3, found


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(MeshConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_command_line_overrides_replace_transport_database_and_port(tmp_path: Path) -> None:
    write(tmp_path, "tools: []\n", "routes.yaml")
    path = write(tmp_path, "gateway: {tools: routes.yaml}\n" + MINIMAL)
    config = load_config(path, environ={}).with_overrides(
        transport="sqlite:///other/q.db", database="postgresql://db/x", port=9999
    )

    assert config.transport == f"sqlite:///{tmp_path.resolve()}/other/q.db"
    assert config.database == "postgresql://db/x"
    assert config.gateway is not None
    assert config.gateway.port == 9999


def test_an_sqs_transport_is_accepted_in_the_file_and_on_the_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, "transport: sqs://?prefix=dev-\n" + MINIMAL)
    config = load_config(path, environ={})
    assert config.transport == "sqs://?prefix=dev-"
    assert config.with_overrides(transport="sqs://").transport == "sqs://"


def test_port_override_without_a_gateway_is_refused(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})

    with pytest.raises(MeshConfigError, match="--port: the file configures no gateway"):
        config.with_overrides(port=9000)
