"""The crew: terminal actors that record how each job ended (docs/reference/crew.md).

``asya.crew.happy_end.handle`` and ``asya.crew.error_end.handle`` are runtime handlers (message
mode, validation off, behind a terminal sidecar); see ``docs/crew.md``.
"""

from asya.crew.error_end import ErrorEnd
from asya.crew.happy_end import HappyEnd
from asya.crew.reporting import GatewayReporter, ReportError, ReportRejected
from asya.crew.settings import CrewSettings, S3Settings
from asya.crew.storage import S3Store, object_key

__all__ = [
    "CrewSettings",
    "ErrorEnd",
    "GatewayReporter",
    "HappyEnd",
    "ReportError",
    "ReportRejected",
    "S3Settings",
    "S3Store",
    "object_key",
]
