"""A document-analysis pipeline: parse → split (fan-out) → keywords → summarize.

Each function or class below is one actor with its own queue and its own runtime process(es);
``asya.yaml`` wires them and the gateway's ``analyze_document`` tool sends a document through:

* ``parse_document`` validates the input (a document without text fails here and the job
  ends in error-end) and cuts it into paragraphs.
* ``split_paragraphs`` (message mode) fans out: one message per paragraph.
* ``KeywordExtractor`` is a class handler: its stop-word list is loaded once per worker process
  in ``__init__``, not once per message.
* ``summarize`` is the slow step (it stands for a model call) that ``asya up`` scales out by
  queue depth.

There is no collecting step: the job itself is the fan-in. It ends when every paragraph's
branch has ended, and its result is the list of the paragraphs' results, in paragraph order
(docs/reference/jobs.md#fan-out).
"""

from __future__ import annotations

import collections
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
WORD = re.compile(r"[a-z][a-z'-]+")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
Message = dict[str, Any]


def parse_document(payload: dict[str, Any]) -> dict[str, Any]:
    """Check the document and cut it into paragraphs (separated by blank lines)."""
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the document has no text to analyse")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    return {
        "title": payload.get("title") or "untitled",
        "paragraphs": paragraphs,
        "words": len(text.split()),
    }


def split_paragraphs(message: Message) -> Iterator[Message]:
    """Fan out: each paragraph continues as its own message (same job, same route)."""
    document = message["payload"]
    count = len(document["paragraphs"])
    for index, text in enumerate(document["paragraphs"]):
        part = {"title": document["title"], "index": index, "count": count, "text": text}
        yield {**message, "payload": part}


class KeywordExtractor:
    """Keywords of a paragraph: its most frequent words that are not stop words."""

    def __init__(self, top: int = 5) -> None:
        lines = (HERE / "stopwords.txt").read_text(encoding="utf-8").splitlines()
        self.stop_words = {
            word for line in lines if not line.startswith("#") for word in line.split()
        }
        self.top = top
        logger.info("keyword model ready: %d stop words", len(self.stop_words))

    def extract(self, payload: dict[str, Any]) -> dict[str, Any]:
        words = [w for w in WORD.findall(payload["text"].lower()) if w not in self.stop_words]
        counts = collections.Counter(words)
        keywords = [word for word, _ in counts.most_common(self.top)]
        return {**payload, "keywords": keywords}


def summarize(payload: dict[str, Any]) -> dict[str, Any]:
    """The slow step: pretend to run a model, then keep the paragraph's first sentence."""
    time.sleep(float(os.environ.get("SUMMARY_SECONDS", "1")))
    first = SENTENCE_END.split(payload["text"], maxsplit=1)[0]
    summary = first if len(first) <= 160 else first[:157].rstrip() + "…"
    return {"paragraph": payload["index"], "keywords": payload["keywords"], "summary": summary}
