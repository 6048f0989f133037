"""Every citation of the docs points at a page and heading that exist.

Code comments, docstrings and docs cite the living contract as ``docs/<page>.md#<anchor>``;
a renamed heading or a removed page would leave them pointing nowhere. The old citations of
files outside the repository (``SPEC §n``, ``STYLE.md §n``) are refused outright.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

SCANNED = ("src", "tests", "benchmarks", "examples", "deploy", "scripts", "docs")
SCANNED_FILES = ("README.md", "pyproject.toml", "Makefile")
CITATION = re.compile(r"(?<![\w/.-])(docs/[\w./-]+?\.md)(?:#([\w-]+))?")
RETIRED = re.compile(r"\b(?:SPEC|STYLE\.md) §")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
THIS_FILE = Path(__file__).resolve()


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    """Every heading anchor of a Markdown page (duplicates get GitHub's -1, -2 suffixes)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match is None:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def tracked_text_files(root: Path) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *SCANNED, *SCANNED_FILES],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    files = []
    for name in filter(None, listed.split("\0")):
        path = root / name
        if path.is_file() and path.resolve() != THIS_FILE:
            files.append(path)
    return files


def broken_references(root: Path, files: list[Path]) -> list[str]:
    """``file:line: problem`` for every citation that points nowhere or is retired."""
    anchor_cache: dict[Path, set[str]] = {}
    problems: list[str] = []
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            continue  # a binary file cites nothing
        where = path.relative_to(root)
        for number, line in enumerate(lines, start=1):
            if RETIRED.search(line):
                problems.append(f"{where}:{number}: retired citation, cite docs/reference instead")
            for target, anchor in CITATION.findall(line):
                page = root / target
                if not page.is_file():
                    problems.append(f"{where}:{number}: {target} does not exist")
                    continue
                if anchor and anchor not in anchor_cache.setdefault(page, anchors_of(page)):
                    problems.append(f"{where}:{number}: {target} has no heading #{anchor}")
    return problems


def test_every_docs_citation_names_an_existing_page_and_heading() -> None:
    problems = broken_references(REPO_ROOT, tracked_text_files(REPO_ROOT))
    assert not problems, "broken documentation references:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("see docs/reference/missing.md", "docs/reference/missing.md does not exist"),
        ("see docs/reference/jobs.md#no-such-heading", "has no heading #no-such-heading"),
        ("# the nine steps of SPEC §4", "retired citation"),
        ("# Layers (STYLE.md §12)", "retired citation"),
    ],
)
def test_a_broken_citation_is_reported_with_file_and_line(
    tmp_path: Path, line: str, expected: str
) -> None:
    (tmp_path / "docs" / "reference").mkdir(parents=True)
    (tmp_path / "docs" / "reference" / "jobs.md").write_text("# Jobs\n\n## Statuses\n")
    source = tmp_path / "module.py"
    source.write_text(f"x = 1\n{line}\n")
    (problem,) = broken_references(tmp_path, [source])
    assert problem.startswith("module.py:2: ")
    assert expected in problem


def test_a_valid_citation_passes(tmp_path: Path) -> None:
    (tmp_path / "docs" / "reference").mkdir(parents=True)
    (tmp_path / "docs" / "reference" / "jobs.md").write_text("# Jobs\n\n## Statuses\n")
    source = tmp_path / "module.py"
    source.write_text('"""Statuses (docs/reference/jobs.md#statuses)."""\n')
    assert broken_references(tmp_path, [source]) == []


def test_headings_get_github_anchors() -> None:
    assert github_slug("Request and response") == "request-and-response"
    assert github_slug("`asya call`") == "asya-call"
    assert github_slug("job_id") == "job_id"
    assert github_slug("Error-end message") == "error-end-message"
