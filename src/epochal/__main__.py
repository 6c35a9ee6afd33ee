"""``python -m epochal``: the command line, for when the console script is not on PATH."""

import sys

from epochal.cli import main

sys.exit(main())
