"""The sidecar: consumes an actor's queue, calls its runtime and routes the results
(docs/reference/sidecar.md)."""

from asya.sidecar.main import Sidecar, main
from asya.sidecar.settings import SidecarSettings

__all__ = ["Sidecar", "SidecarSettings", "main"]
