"""The `tracepipe` command's exit statuses, one rule for every command."""

from __future__ import annotations

import argparse
from typing import TypeAlias

EXIT_FOUND = 0
"""Done: what was asked for was found, or sent."""
EXIT_NOTHING = 1
"""Nothing found (no rows, windows, alerts, spans of the trace), or input that cannot be used."""
EXIT_USAGE = 2
"""The command could not run: bad arguments or settings, or Kafka/ClickHouse/the worker failed."""

EXIT_STATUS_EPILOG = (
    "exit status, the same for every command: 0 found (or sent); 1 nothing found (no rows, "
    "windows, alerts or spans of the trace), or input that cannot be used (a missing or empty "
    "file, rejected spans, not a trace id, an unknown service); 2 the command could not run "
    "(bad arguments or settings, Kafka or ClickHouse or the worker failed); 130 interrupted"
)

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What a command group adds its commands to (`tracepipe COMMAND`)."""
