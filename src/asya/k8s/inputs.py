"""What a file given to ``asya k8s render`` holds: AsyncActors, an asya.yaml, or neither.

An asya.yaml is one mapping without ``apiVersion``/``kind`` that has asya.yaml's ``actors`` or
``gateway`` key (its own parser then reports every mistake in it). Anything else that holds no
AsyncActor is refused with a description of what was found, so a wrong file never passes
through silently.
"""

from __future__ import annotations

from typing import Any

from asya.k8s.crd import API_VERSION, KIND

ASYA_GROUP_PREFIX = "asya.io/"
_MESH_KEYS = ("actors", "gateway")


def is_kubernetes_object(doc: Any) -> bool:
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def is_async_actor(doc: Any) -> bool:
    return isinstance(doc, dict) and (
        str(doc.get("apiVersion", "")).startswith(ASYA_GROUP_PREFIX) or doc.get("kind") == KIND
    )


def is_mesh_file(documents: list[Any]) -> bool:
    """True for one asya.yaml document (valid or not)."""
    if len(documents) != 1 or not isinstance(documents[0], dict):
        return False
    doc = documents[0]
    return "kind" not in doc and "apiVersion" not in doc and any(k in doc for k in _MESH_KEYS)


def describe(doc: Any) -> str:
    """A short phrase naming one YAML document, e.g. ``Secret 'db' (v1)``."""
    if is_kubernetes_object(doc):
        metadata = doc.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        named = f" {name!r}" if name else ""
        return f"{doc['kind']}{named} ({doc['apiVersion']})"
    if isinstance(doc, dict):
        keys = ", ".join(str(key) for key in list(doc)[:6])
        more = ", …" if len(doc) > 6 else ""
        return (
            f"a mapping with keys {keys}{more} (no apiVersion/kind)" if doc else "an empty mapping"
        )
    if isinstance(doc, list):
        return f"a list of {len(doc)} items"
    return f"a {type(doc).__name__} ({str(doc)[:40]!r})"


def found(documents: list[Any]) -> str:
    """What the documents are, e.g. ``Secret 'db' (v1); a list of 3 items``."""
    if not documents:
        return "nothing (the file is empty)"
    shown = [describe(doc) for doc in documents[:5]]
    more = f" and {len(documents) - 5} more" if len(documents) > 5 else ""
    return "; ".join(shown) + more


def neither_message(documents: list[Any]) -> str:
    """Why the documents are neither AsyncActors nor an asya.yaml, naming what they are."""
    return (
        f"neither AsyncActors (apiVersion {API_VERSION}, kind {KIND}) nor an asya.yaml "
        f"(a mapping with actors:); found {found(documents)}"
    )


def not_mesh_message(documents: list[Any]) -> str:
    return f"not an asya.yaml (a mapping with actors:); found {found(documents)}"
