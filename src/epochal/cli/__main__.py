"""``python -m epochal.cli``: the command line, as the ``epochal`` console script runs it."""

from epochal.cli.parser import main

raise SystemExit(main())
