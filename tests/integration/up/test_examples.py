"""The examples in ``examples/`` run as their READMEs say (in a copy: the checkout stays clean)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT
from tests.integration.up.conftest import start_mesh, stop_mesh

EXAMPLES = REPO_ROOT / "examples"


def copy_example(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns(".asya", "__pycache__"))
    return folder


@pytest.mark.slow
def test_quickstart_doubles_then_adds_five(tmp_path: Path) -> None:
    mesh = start_mesh(copy_example("quickstart", tmp_path))
    try:
        result = mesh.call("test_pipeline", "value=10")
    finally:
        assert stop_mesh(mesh) == 0

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"value": 25}


@pytest.mark.slow
def test_document_pipeline_answers_every_paragraph_in_order_and_fails_an_empty_document(
    tmp_path: Path,
) -> None:
    folder = copy_example("document-pipeline", tmp_path)
    text = (folder / "sample.txt").read_text()
    mesh = start_mesh(folder)
    try:
        report = mesh.call("analyze_document", "title=Notes", f"text={text}")
        empty = mesh.call("analyze_document", "text=")
        log = mesh.log()
    finally:
        assert stop_mesh(mesh) == 0

    assert report.returncode == 0, report.stderr + log[-3000:]
    result = json.loads(report.stdout)
    assert [part["paragraph"] for part in result] == [0, 1, 2, 3, 4]
    assert result[0]["summary"] == "Asya runs plain Python functions as actors."
    assert "asya" in result[0]["keywords"]
    assert "dropping a message" not in log
    assert empty.returncode == 1
    assert "the document has no text to analyse" in empty.stderr
    assert "doc-summarize: scaling out 0 →" in log
