"""The `tracepipe` command line: run the worker, the local broker, migrations, queries, the demo."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from streams import __version__
from streams.cli import alerts, load, operate, query
from streams.cli.exit_status import EXIT_NOTHING, EXIT_STATUS_EPILOG, EXIT_USAGE
from streams.config import load_settings
from streams.errors import InputError, TracepipeError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tracepipe",
        description="tracepipe: spans from Kafka, assembled and aggregated by Faust, "
        "stored in ClickHouse. Settings come from TRACEPIPE_* variables and --config.",
        epilog=EXIT_STATUS_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"tracepipe {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", help="a TOML or YAML settings file (also TRACEPIPE_CONFIG)"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        help="level of tracepipe's own progress messages on stderr (default info)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # The order of `tracepipe --help`.
    load.add_demo(sub)
    operate.add_worker(sub)
    operate.add_kafka(sub)
    load.add_produce(sub)
    load.add_generate(sub)
    query.add_trace(sub)
    operate.add_topics(sub)
    operate.add_db(sub)
    query.add_query(sub)
    alerts.add_alerts(sub)
    operate.add_config(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tracepipe` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Other libraries stay at WARNING; tracepipe's own progress (e.g. Maven resolution) shows.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tracepipe").setLevel(args.log_level.upper())
    try:
        settings = load_settings(args.config)
        code: int = args.func(args, settings)
        return code
    except InputError as err:
        print(f"tracepipe: error: {err}", file=sys.stderr)
        return EXIT_NOTHING
    except TracepipeError as err:
        print(f"tracepipe: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
