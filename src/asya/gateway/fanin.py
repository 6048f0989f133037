"""Fan-in at the job level, as pure functions (docs/reference/jobs.md#fan-out).

A fan-out branch is identified by its path: one ``(index, count)`` pair per fan-out level,
outermost first (the message's ``branch`` field). The gateway stores each branch's final report
as a *leaf*; from the stored leaves alone it decides whether the whole tree has ended, the
job's result (leaf results in branch order, nested fan-outs flattened depth-first) and how
far along the job is. Nothing here does I/O, so every shape is unit-tested with plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

Path = tuple[tuple[int, int], ...]

#: A job with branches stays below this until it is terminal.
MAX_OPEN_PERCENT = 99.0


class BadBranch(ValueError):
    """A ``branch`` field that is not a list of ``{"index": i, "count": n}`` with 0 <= i < n."""


def parse_branch(value: Any) -> Path:
    """The path of a ``branch`` field; ``()`` (the trunk) for null or ``[]``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadBranch("field 'branch' must be a list")
    path: list[tuple[int, int]] = []
    for level in value:
        index = level.get("index") if isinstance(level, dict) else None
        count = level.get("count") if isinstance(level, dict) else None
        if not (_is_int(index) and _is_int(count)) or not 0 <= index < count:
            raise BadBranch('each \'branch\' level must be {"index": i, "count": n}, 0 <= i < n')
        path.append((index, count))
    return tuple(path)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def path_key(path: Path) -> str:
    """The canonical text key, ``"2/5.0/4"``."""
    return ".".join(f"{index}/{count}" for index, count in path)


def branch_json(path: Path) -> list[dict[str, int]]:
    return [{"index": index, "count": count} for index, count in path]


@dataclass(frozen=True)
class Leaf:
    """One ended branch: its final report."""

    path: Path
    succeeded: bool
    result: Any = None
    error: str | None = None
    error_details: Mapping[str, Any] | None = None

    @property
    def step(self) -> str:
        step = (self.error_details or {}).get("failed_step")
        return str(step) if step else "unknown"


@dataclass(frozen=True)
class Outcome:
    """The job's end, once every branch has ended."""

    succeeded: bool
    result: list[Any]
    error: str | None = None
    error_details: dict[str, Any] | None = None
    leaves: int = 0


@dataclass
class _Node:
    count: int | None = None
    children: dict[int, _Node] = field(default_factory=dict)
    ended: bool = False
    percent: float | None = None


def _tree(ended: Iterable[Path], running: Mapping[Path, float] | None = None) -> _Node:
    root = _Node()
    for path in ended:
        _node(root, path).ended = True
    for path, percent in (running or {}).items():
        _node(root, path).percent = percent
    return root


def _node(root: _Node, path: Path) -> _Node:
    node = root
    for index, count in path:
        if node.count is None:
            node.count = count
        node = node.children.setdefault(index, _Node())
    return node


def _complete(node: _Node) -> bool:
    if node.ended:
        return True
    if node.count is None:
        return False
    return all(
        index in node.children and _complete(node.children[index]) for index in range(node.count)
    )


def tree_complete(ended: Iterable[Path]) -> bool:
    """True when every branch of the tree has ended.

    A node is complete when it is an ended leaf, or when all ``count`` children (known from
    any ended leaf below it) are complete. The trunk alone (no leaf) is not complete.
    """
    root = _tree(ended)
    return root.count is not None and _complete(root)


def known_leaf_count(ended: Iterable[Path]) -> int:
    """How many branches the tree has as far as known: a branch not heard from counts one."""

    def count(node: _Node) -> int:
        if node.ended or node.count is None:
            return 1
        return sum(
            count(node.children[index]) if index in node.children else 1
            for index in range(node.count)
        )

    return count(_tree(ended))


def in_order(leaves: Iterable[Leaf]) -> list[Leaf]:
    """Leaves in branch order (depth-first by index), one per path."""
    unique = {leaf.path: leaf for leaf in leaves}
    return [unique[path] for path in sorted(unique, key=lambda path: [i for i, _ in path])]


def branch_label(path: Path) -> str:
    return path_key(path)


def outcome(leaves: Sequence[Leaf]) -> Outcome | None:
    """The job's outcome when the tree is complete, else None."""
    if not tree_complete(leaf.path for leaf in leaves):
        return None
    ordered = in_order(leaves)
    results = [leaf.result if leaf.succeeded else None for leaf in ordered]
    failed = [leaf for leaf in ordered if not leaf.succeeded]
    if not failed:
        return Outcome(True, results, leaves=len(ordered))
    first = failed[0]
    error = (
        f"{len(failed)} of {len(ordered)} branches failed; first: branch "
        f"{branch_label(first.path)} at step '{first.step}': {first.error or 'unknown error'}"
    )
    details: dict[str, Any] = dict(first.error_details or {})
    details.setdefault("branch", branch_json(first.path))
    details["failed_branches"] = [
        {"branch": branch_json(leaf.path), "step": leaf.step, "error": leaf.error}
        for leaf in failed
    ]
    return Outcome(False, results, error, details, leaves=len(ordered))


def tree_percent(
    ended: Iterable[Path], running: Mapping[Path, float], trunk_percent: float = 0.0
) -> float:
    """How far the job is: each branch weighs ``1 / (n1 · … · nk)``.

    An ended branch counts 100 %, a running one its last reported percent; a sibling not heard
    from yet counts at the percent of its fan-out point (``trunk_percent`` at the top level).
    Capped at :data:`MAX_OPEN_PERCENT`: only the terminal decision sets 100.
    """

    def percent(node: _Node, fallback: float) -> float:
        if node.ended:
            return 100.0
        own = fallback if node.percent is None else node.percent
        if node.count is None:
            return own
        children = node.children
        total = sum(
            percent(children[index], own) if index in children else own
            for index in range(node.count)
        )
        return total / node.count

    return min(MAX_OPEN_PERCENT, percent(_tree(ended, running), trunk_percent))
