"""The last step of a search, on the client: the best passages of a ``search_document`` result.

The job's result is every passage with its score, in document order (each passage was a branch
of the fan-out; the job collects them). Sorting them needs all of them at once, which only the
job has, so this small step runs where the result arrives:

    asya call search_document query="How do bees make honey?" text="$(cat corpus.txt)" \\
        | python top_passages.py -k 3

Standard library only: any Python runs it. ``--json`` prints the top passages as JSON instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any


def top_passages(results: list[dict[str, Any] | None], k: int) -> list[dict[str, Any]]:
    """The ``k`` best-scored passages, best first (a failed passage's null is left out)."""
    scored = [result for result in results if result is not None]
    return sorted(scored, key=lambda result: (-result["score"], result["passage"]))[:k]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, default=3, help="how many passages (default 3)")
    parser.add_argument("--json", action="store_true", help="print them as JSON")
    args = parser.parse_args(argv)
    results = json.load(sys.stdin)
    if not isinstance(results, list):
        print("top_passages: expected the list that search_document returns", file=sys.stderr)
        return 2
    best = top_passages(results, args.k)
    if args.json:
        print(json.dumps(best, indent=2, ensure_ascii=False))
        return 0
    for rank, result in enumerate(best, 1):
        head = f"{rank}. score {result['score']:.3f}  passage {result['passage']}: "
        print(
            textwrap.fill(result["text"], width=100, initial_indent=head, subsequent_indent="   ")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
