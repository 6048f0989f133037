"""The ``asya`` command line: one click group, one module per command group."""
