"""`tracepipe worker`, `kafka`, `topics`, `db` and `config`: run and set up the pipeline's parts."""

from __future__ import annotations

import argparse

from streams.cli.exit_status import Subcommands
from streams.config import HOME_KEY, Settings, settings_table
from streams.paths import data_home
from streams.query.table import markdown_table


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.app import run_worker

    return run_worker(settings)


def _cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    from streams.broker.local import run_kafka_command

    return run_kafka_command(args.action, settings)


def _cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.broker.topics import TopicNames, ensure_topics

    created = ensure_topics(settings.kafka)
    for name in TopicNames.from_prefix(settings.kafka.topic_prefix).all():
        state = "created" if name in created else "exists"
        print(f"{name}  {state}  partitions={settings.kafka.partitions}")
    return 0


def _cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from streams.warehouse.migrate import run_db_command

    return run_db_command(args.action, settings)


def _cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        rows = [
            {
                "key": f"`{key}`",
                "variable": f"`{env}`",
                "default": f"`{default}`",
                "what it sets": doc,
            }
            for key, env, default, doc in settings_table()
        ]
        print(markdown_table(rows))
        return 0
    for key, env, default, _doc in settings_table():
        if key == HOME_KEY:
            current: object = str(data_home())
        else:
            section, name = key.split(".", 1)
            current = getattr(getattr(settings, section), name)
        print(f"{key:36} {current!r:40} ({env}, default {default})")
    return 0


def add_worker(sub: Subcommands) -> None:
    """`tracepipe worker`."""
    p = sub.add_parser(
        "worker",
        help="run the stream-processing worker",
        description="Run the Faust worker: creates topics if missing, then "
        "consumes until SIGINT/SIGTERM. Its web server (worker.web_host:worker.web_port, "
        "default 127.0.0.1:6066) serves the trace web view at /ui/, plus /metrics and /api/.",
    )
    p.set_defaults(func=_cmd_worker)


def add_kafka(sub: Subcommands) -> None:
    """`tracepipe kafka up|down|status`."""
    p = sub.add_parser(
        "kafka",
        help="run a local single-node Kafka (KRaft) from Maven Central",
        description="Resolve Apache Kafka with Maven, format KRaft storage and "
        "run one broker+controller on loopback (settings: local_kafka.*).",
    )
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=_cmd_kafka)


def add_topics(sub: Subcommands) -> None:
    """`tracepipe topics create`."""
    p = sub.add_parser(
        "topics",
        help="create the project's Kafka topics",
        description="Create every tracepipe topic that is missing, with "
        "kafka.partitions and kafka.replication_factor.",
    )
    p.add_argument("action", choices=["create"])
    p.set_defaults(func=_cmd_topics)


def add_db(sub: Subcommands) -> None:
    """`tracepipe db migrate|status`."""
    p = sub.add_parser(
        "db",
        help="apply or show ClickHouse schema migrations",
        description="Apply schemas/clickhouse/*.sql in order, idempotently, to "
        "clickhouse.url; `status` lists what is applied.",
    )
    p.add_argument("action", choices=["migrate", "status"])
    p.set_defaults(func=_cmd_db)


def add_config(sub: Subcommands) -> None:
    """`tracepipe config`."""
    p = sub.add_parser(
        "config",
        help="print every setting, its value and its variable",
        description="Print the effective settings and the TRACEPIPE_* variable that sets each.",
    )
    p.add_argument(
        "--markdown", action="store_true", help="print the defaults as README's configuration table"
    )
    p.set_defaults(func=_cmd_config)
