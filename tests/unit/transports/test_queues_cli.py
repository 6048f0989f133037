"""``asya queues apply``: file handling and error exits (the broker runs are integration tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from asya.cli.queues import queues


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(queues, ["apply", *args], env=env or {})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def no_broker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ASYA_TRANSPORT_URL", "ASYA_RABBITMQ_URL", "ASYA_RABBITMQ_EXCHANGE"):
        monkeypatch.delenv(name, raising=False)


def test_missing_file_exits_2_naming_it(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "nope.json"), "--url", "memory://cli")
    assert code == 2
    assert "nope.json" in err


def test_malformed_json_exits_2_with_the_line(tmp_path: Path) -> None:
    file = tmp_path / "defs.json"
    file.write_text('{\n  "queues": [\n')
    code, _, err = run(str(file), "--url", "memory://cli")
    assert code == 2
    assert "defs.json:3: not valid JSON" in err


def test_invalid_definitions_exit_2_listing_every_problem(tmp_path: Path) -> None:
    file = tmp_path / "defs.json"
    file.write_text(json.dumps({"queues": [{"name": ""}, {"name": "q", "durable": 1}]}))
    code, _, err = run(str(file), "--url", "memory://cli")
    assert code == 2
    assert "queues[0].name" in err
    assert "queues[1].durable" in err


def test_invalid_asya_yaml_exits_2(tmp_path: Path) -> None:
    file = tmp_path / "asya.yaml"
    file.write_text("actors: 5\n")
    code, _, err = run(str(file), "--url", "memory://cli")
    assert code == 2
    assert "actors" in err


def test_unsupported_url_exits_2(tmp_path: Path) -> None:
    file = tmp_path / "defs.json"
    file.write_text(json.dumps({"queues": [{"name": "q"}]}))
    code, _, err = run(str(file), "--url", "redis://localhost")
    assert code == 2
    assert "unsupported transport URL" in err


def test_asya_yaml_queues_are_declared_in_its_own_sqlite_file_by_default(tmp_path: Path) -> None:
    file = tmp_path / "asya.yaml"
    file.write_text("actors:\n  - name: resize\n    handler: handlers.resize\n")
    code, out, err = run(str(file))
    assert code == 0, err
    for queue in ("resize", "happy-end", "error-end", "asya-dead-letter"):
        assert f"declared queue {queue}\n" in out
    assert "0 exchange(s), 4 queue(s), 0 binding(s)" in out
    assert (tmp_path / ".asya" / "queues.db").exists()


def test_url_from_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    file = tmp_path / "asya.yaml"
    file.write_text("actors:\n  - name: resize\n    handler: handlers.resize\n")
    target = tmp_path / "elsewhere.db"
    code, out, err = run(str(file), env={"ASYA_RABBITMQ_URL": f"sqlite:///{target}"})
    assert code == 0, err
    assert f"applied {file} to sqlite:///{target}" in out
    assert target.exists()
    assert not (tmp_path / ".asya").exists()


def test_definitions_on_an_embedded_transport_declare_only_the_queues(tmp_path: Path) -> None:
    file = tmp_path / "defs.json"
    file.write_text(
        json.dumps(
            {
                "exchanges": [{"name": "asya", "type": "topic"}],
                "queues": [{"name": "a"}, {"name": "b"}],
                "bindings": [{"source": "asya", "destination": "a", "routing_key": "a"}],
            }
        )
    )
    code, out, err = run(str(file), "--url", "memory://cli-defs")
    assert code == 0, err
    assert "declared queue a\ndeclared queue b\n" in out
    assert "note: memory has no exchanges or bindings" in out
