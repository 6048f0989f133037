"""The handler of the cancellation tests: records each call, then sleeps."""

from __future__ import annotations

import os
import time
from typing import Any


def sleeper(payload: dict[str, Any]) -> dict[str, Any]:
    """Appends ``<tag> <pid>`` to $CANCEL_TEST_CALLS, then sleeps ``seconds``."""
    with open(os.environ["CANCEL_TEST_CALLS"], "a") as calls:
        calls.write(f"{payload.get('tag')} {os.getpid()}\n")
    time.sleep(float(payload.get("seconds", 0)))
    return payload
