"""The sidecar: consumes an actor's queue, calls its runtime and routes the results (SPEC §4)."""

from asya.sidecar.main import Sidecar, main
from asya.sidecar.settings import SidecarSettings

__all__ = ["Sidecar", "SidecarSettings", "main"]
