"""`python -m streams ...` is the `tracepipe` command."""

import sys

from streams.cli import main

sys.exit(main())
