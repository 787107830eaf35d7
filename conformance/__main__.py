"""``python -m conformance``: the ``adam-conformance`` command line."""

import sys

from conformance.front.cli import main

sys.exit(main())
