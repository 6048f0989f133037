"""Takes RT_IMPORT_DELAY seconds to import, like a handler loading a model."""

from __future__ import annotations

import os
import time
from typing import Any

time.sleep(float(os.environ.get("RT_IMPORT_DELAY", "1")))


def handle(payload: Any) -> Any:
    return payload
