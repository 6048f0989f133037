"""``asya sidecar``: consume one queue, call the runtime, route results
(docs/reference/sidecar.md)."""

from __future__ import annotations

import sys

import click


@click.command()
def sidecar() -> None:
    """Run the sidecar, configured only by ASYA_* environment variables
    (docs/reference/sidecar.md#environment).

    Required: ASYA_QUEUE_NAME. A missing or malformed variable exits with code 2 naming it.
    """
    from asya.sidecar.main import main

    sys.exit(main())
