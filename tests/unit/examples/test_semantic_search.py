"""examples/semantic-search without its model: chunking, scoring, the client's top-k step, and
the script that installs the model for `make test`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "semantic-search"
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-example-models.sh"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"semantic_search_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


handlers = load("handlers")
top = load("top_passages")


def test_each_paragraph_is_a_passage_and_a_long_one_is_cut_at_sentence_ends() -> None:
    long = " ".join(f"Sentence {i} has five words." for i in range(5))  # 25 words
    text = f"First   paragraph\nstill first.\n\n{long}\n\n\n"

    found = handlers.passages(text, max_words=10)

    assert found[0] == "First paragraph still first."
    assert found[1:] == [
        "Sentence 0 has five words. Sentence 1 has five words.",
        "Sentence 2 has five words. Sentence 3 has five words.",
        "Sentence 4 has five words.",
    ]


def test_the_chunk_step_fans_out_one_message_per_passage_with_the_query() -> None:
    message = {
        "id": "m1",
        "route": {"steps": ["a", "b"], "current": 0},
        "payload": {"query": "q", "text": "One.\n\nTwo."},
    }

    parts = list(handlers.split_chunks(message))

    assert [part["payload"]["text"] for part in parts] == ["One.", "Two."]
    assert parts[1]["payload"] == {"query": "q", "passage": 1, "count": 2, "text": "Two."}
    assert all(part["route"] == message["route"] for part in parts)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"query": " ", "text": "t"}, "the query is empty"),
        ({"query": "q", "text": ""}, "the document has no text"),
    ],
)
def test_the_chunk_step_refuses_an_empty_query_or_document(
    payload: dict[str, str], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        list(handlers.split_chunks({"payload": payload}))


def test_score_is_the_cosine_similarity_and_drops_the_vectors() -> None:
    payload = {"passage": 3, "text": "t", "query_vector": [1.0, 0.0], "vector": [1.0, 1.0]}

    assert handlers.score_passage(payload) == {"passage": 3, "score": 0.7071, "text": "t"}


def test_top_passages_are_the_best_scores_first_and_skip_failed_branches() -> None:
    results = [
        {"passage": 0, "score": 0.1, "text": "a"},
        None,
        {"passage": 2, "score": 0.9, "text": "c"},
        {"passage": 3, "score": 0.5, "text": "d"},
    ]

    assert [r["passage"] for r in top.top_passages(results, 2)] == [2, 3]


FAKE_PYTHON = """#!/bin/sh
# stands in for a venv's python: the model's modules are {present}; pip {pip}
case "$1" in
  -c) case "$2" in *sys.prefix*) echo "$FAKE_PREFIX" ;; *) {import_exit} ;; esac ;;
  -m) echo "pip was called" >> "$FAKE_PREFIX/calls"; {pip_command} ;;
esac
"""


def fake_python(tmp_path: Path, *, present: bool, pip_fails: bool) -> Path:
    python = tmp_path / "python"
    python.write_text(
        FAKE_PYTHON.format(
            present="present" if present else "missing",
            pip="fails" if pip_fails else "works",
            import_exit="exit 0" if present else "exit 1",
            pip_command=(
                "echo 'ERROR: No matching distribution found for torch==2.13.0' >&2; exit 1"
                if pip_fails
                else "exit 0"
            ),
        )
    )
    python.chmod(0o755)
    return python


def run_install(python: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "FAKE_PREFIX": str(tmp_path), "CI": "", **env}
    return subprocess.run(
        ["bash", str(INSTALL_SCRIPT), str(python)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_install_does_nothing_when_the_model_already_imports(tmp_path: Path) -> None:
    result = run_install(fake_python(tmp_path, present=True, pip_fails=False), tmp_path)

    assert result.returncode == 0
    assert result.stdout == result.stderr == ""
    assert not (tmp_path / "calls").exists()


def test_a_failed_install_goes_on_and_leaves_the_reason_for_the_test_to_show(
    tmp_path: Path,
) -> None:
    result = run_install(fake_python(tmp_path, present=False, pip_fails=True), tmp_path)

    assert result.returncode == 0
    reason = (tmp_path / "asya-example-models.log").read_text()
    assert "pip install -r examples/semantic-search/requirements.txt failed" in reason
    assert "No matching distribution found for torch==2.13.0" in reason
    assert "the semantic-search test will skip" in result.stderr


@pytest.mark.parametrize(("ci", "pip_called"), [("", False), ("true", True)])
def test_the_opt_out_holds_on_a_developer_machine_but_ci_always_tries(
    tmp_path: Path, ci: str, pip_called: bool
) -> None:
    python = fake_python(tmp_path, present=False, pip_fails=False)

    result = run_install(python, tmp_path, ASYA_SKIP_EXAMPLE_MODELS="1", CI=ci)

    assert result.returncode == 0
    assert (tmp_path / "calls").exists() is pip_called


class CountingModel:
    """Stands in for the sentence-transformer: counts what it embeds."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def encode(self, text: str, **options: object) -> list[float]:
        self.texts.append(text)
        return [1.0, 0.0]


def test_the_embed_step_embeds_a_search_query_once_however_many_passages() -> None:
    embedder = handlers.Embedder.__new__(handlers.Embedder)  # no model load: a counting stand-in
    embedder.model = CountingModel()
    embedder.queries = {}
    message = {"payload": {"query": "bees?", "text": "One.\n\nTwo.\n\nThree."}}

    embedded = [embedder.embed(part["payload"]) for part in handlers.split_chunks(message)]

    assert embedder.model.texts == ["One.", "bees?", "Two.", "Three."]
    assert all(part["query_vector"] == [1.0, 0.0] for part in embedded)
