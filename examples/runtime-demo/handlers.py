"""A real handler for the runtime demo: plain Python, no Asya import needed."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

WORD = re.compile(r"[\w']+")


class TextStats:
    """Built once per runtime worker (a model would be loaded here), then called per message."""

    def __init__(self, top: int = 3) -> None:
        self.top = top
        self.calls = 0

    def analyze(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        words = [word.lower() for word in WORD.findall(payload["text"])]
        return {
            "words": len(words),
            "unique_words": len(set(words)),
            "top_words": Counter(words).most_common(self.top),
            "calls_served_by_this_worker": self.calls,
        }
