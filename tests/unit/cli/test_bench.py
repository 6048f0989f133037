"""``asya bench``: choosing benchmarks and passing them their options
(docs/reference/cli.md#asya-bench)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from asya.cli.bench import bench

RECORDER = """
import json, pathlib


def main(argv):
    with open(pathlib.Path(__file__).with_name("calls.jsonl"), "a") as out:
        out.write(json.dumps([__name__.rsplit(".", 1)[-1], argv]) + "\\n")
    return 0
"""


@pytest.fixture
def benchmarks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A checkout whose benchmarks only record how they were called."""
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "common.py").write_text("")
    for name in ("pipeline", "relay"):
        (folder / f"{name}.py").write_text(RECORDER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    saved = {
        name: sys.modules.pop(name, None) for name in ("benchmarks.pipeline", "benchmarks.relay")
    }
    yield folder
    for name, module in saved.items():  # never leave the recorders where real imports look
        sys.modules.pop(name, None)
        if module is not None:
            sys.modules[name] = module


def calls(folder: Path) -> list[list[object]]:
    lines = (folder / "calls.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_vs_celery_runs_the_pipeline_benchmark_with_the_comparison(benchmarks: Path) -> None:
    result = CliRunner().invoke(bench, ["--vs", "celery"])

    assert result.exit_code == 0, result.output
    assert calls(benchmarks) == [["pipeline", ["--vs", "celery"]]]


def test_options_after_the_name_go_to_that_benchmark(benchmarks: Path) -> None:
    result = CliRunner().invoke(bench, ["relay", "--messages", "10"])

    assert result.exit_code == 0, result.output
    assert calls(benchmarks) == [["relay", ["--messages", "10"]]]


def test_without_a_name_every_benchmark_runs(benchmarks: Path) -> None:
    result = CliRunner().invoke(bench, [])

    assert result.exit_code == 0, result.output
    assert calls(benchmarks) == [["pipeline", []], ["relay", []]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["relay", "--vs", "celery"], "compares the pipeline benchmark"),
        (["--messages", "10"], "go after its name"),
        (["nope"], "unknown benchmark 'nope'"),
    ],
)
def test_misplaced_options_and_unknown_names_are_usage_errors(
    benchmarks: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(bench, args)

    assert result.exit_code == 2
    assert message in result.output
    assert not (benchmarks / "calls.jsonl").exists()
