"""``asya runtime``: the same program as ``python -m asya.runtime``."""

from __future__ import annotations

import sys

import click


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=True,
)
def runtime() -> None:
    """Serve the handler named by ASYA_HANDLER on ASYA_SOCKET_PATH (configured by env vars)."""
    from asya import runtime as runtime_module

    sys.exit(runtime_module.main())
