"""`python -m streams.cli`: the `tracepipe` command."""

import sys

from streams.cli import main

sys.exit(main())
