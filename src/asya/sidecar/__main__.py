"""``python -m asya.sidecar``: the same program as ``asya sidecar``."""

import sys

from asya.sidecar.main import main

sys.exit(main())
