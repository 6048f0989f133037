"""``python -m asya.cli`` is the ``asya`` command."""

from asya.cli.main import main

main()
