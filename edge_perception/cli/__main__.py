"""``python -m edge_perception.cli``: the same as ``edge-perception``."""

import sys

from edge_perception.cli import main

sys.exit(main())
