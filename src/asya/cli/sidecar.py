"""``asya sidecar``: consume one queue, call the runtime, route results (SPEC §4)."""

from __future__ import annotations

import sys

import click


@click.command()
def sidecar() -> None:
    """Run the sidecar, configured only by ASYA_* environment variables (SPEC §4).

    Required: ASYA_QUEUE_NAME. A missing or malformed variable exits with code 2 naming it.
    """
    from asya.sidecar.main import main

    sys.exit(main())
