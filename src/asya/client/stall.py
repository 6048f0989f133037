"""Noticing a job that does not start, while ``asya call`` keeps waiting for it.

The client cannot see the broker, so after a few quiet seconds it asks the gateway
(``GET /jobs/{id}/diagnosis``) whether anything consumes the queue the job waits on. When
nothing does it says so once; if a local ``asya up`` mesh (its status file in ``./.asya``)
reports that actor as failed to start, it also says why. The job is left alone: its deadline
still ends it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asya.client.gateway import GatewayClient
from asya.errors import AsyaError
from asya.up.status import STATUS_FILE, read_status, short_reason

#: Quiet seconds before the first question, and between questions.
FIRST_CHECK = 3.0
RECHECK = 5.0


def stall_notice(diagnosis: dict[str, Any], folder: Path | None = None) -> str | None:
    """What to tell the user about a diagnosis, or None when nothing is wrong.

    A local mesh's word counts even where the broker cannot count consumers (SQLite).
    """
    consumers = diagnosis.get("consumers")
    queue = str(diagnosis.get("queue"))
    mesh = read_status((folder or Path.cwd()) / ".asya" / STATUS_FILE)
    actor = (mesh or {}).get("actors", {}).get(queue)
    if not consumers and isinstance(actor, dict) and actor.get("state") == "failed":
        reason = short_reason(str(actor.get("error") or ""))
        text = f"actor '{queue}' failed to start under asya up: {reason}"
    elif consumers == 0:
        text = f"no actor is consuming queue '{queue}' — is the actor running?"
    else:
        return None
    return f"{text}\n(still waiting for the job; its deadline ends it)"


class StallWatch:
    """A background thread that asks about the job until it moves or one notice is given."""

    def __init__(
        self,
        make_client: Callable[[], GatewayClient],
        job_id: str,
        say: Callable[[str], None],
        *,
        first_check: float = FIRST_CHECK,
        recheck: float = RECHECK,
    ) -> None:
        self._make_client = make_client
        self._job_id = job_id
        self._say = say
        self._first_check = first_check
        self._recheck = recheck
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="asya-stall-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def moved(self) -> None:
        """The job made progress: no notice is needed any more."""
        self._done.set()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        if self._done.wait(self._first_check):
            return
        try:
            with self._make_client() as client:
                while not self._done.is_set():
                    notice = stall_notice(client.diagnosis(self._job_id))
                    if notice is not None and not self._done.is_set():
                        self._say(notice)
                        return
                    if self._done.wait(self._recheck):
                        return
        except AsyaError:
            return  # an old gateway without /diagnosis, or it went away: the stream will tell
