"""Start marker of the system under test: its first step appends ``time.time()`` once.

Standard library only: the bare relays import it from their own folder, and the benchmark
copies it beside the Asya handlers and the Celery tasks, so every system marks the same way.
"""

import time

_marked: set[str] = set()


def mark_first_start(path: str) -> None:
    """Append the time of this process's first message to ``path`` (once per process)."""
    if path not in _marked:
        _marked.add(path)
        with open(path, "a") as out:
            out.write(f"{time.time()!r}\n")
