"""The project's topic names and their creation (here, never by broker auto-create)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streams.config import KafkaConfig
from streams.errors import BrokerError

log = logging.getLogger("tracepipe.broker")


@dataclass(frozen=True)
class TopicNames:
    """Every topic tracepipe reads or writes, with the configured prefix applied."""

    spans: str
    otlp: str
    zipkin: str
    traces: str
    latency_partials: str
    edge_partials: str
    origin_partials: str
    latency: str
    edges: str
    origins: str
    alerts: str
    dlq: str

    @classmethod
    def from_prefix(cls, prefix: str) -> TopicNames:
        """Names for a prefix such as `tracepipe.`."""
        # Kafka warns about names mixing '.' and '_' (its metric names collide): use '-'.
        return cls(**{f.name: f"{prefix}{f.name.replace('_', '-')}" for f in fields(cls)})

    def all(self) -> list[str]:
        """Every topic name, in declaration order."""
        return [getattr(self, f.name) for f in fields(self)]


def admin_client(config: KafkaConfig, quiet: bool = False) -> AdminClient:
    """An AdminClient for the configured bootstrap servers (`quiet`: no librdkafka log lines)."""
    settings: dict[str, str | int | float | bool] = {
        "bootstrap.servers": config.bootstrap,
        "socket.timeout.ms": 10_000,
    }
    if quiet:
        # Probing whether a broker answers: connection-refused lines are expected, not news.
        settings["log_level"] = 0
        return AdminClient(settings)
    # librdkafka's own lines through Python logging, not straight onto stderr.
    return AdminClient(settings, logger=log)


def ensure_topics(
    config: KafkaConfig, names: list[str] | None = None, timeout_s: float = 30.0
) -> list[str]:
    """Create the missing topics (all of the project's by default); return the names created."""
    wanted = names if names is not None else TopicNames.from_prefix(config.topic_prefix).all()
    admin = admin_client(config)
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as err:
        raise BrokerError(
            f"cannot reach Kafka at {config.bootstrap}: {err}; start one with "
            "`tracepipe kafka up` or set TRACEPIPE_KAFKA_BOOTSTRAP"
        ) from err
    for name in wanted:
        if name in existing and len(existing[name].partitions) != config.partitions:
            # Co-partitioning needs equal counts; say so rather than silently repartitioning.
            log.warning(
                "topic %s has %d partitions, kafka.partitions is %d",
                name,
                len(existing[name].partitions),
                config.partitions,
            )
    missing = [n for n in wanted if n not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                n,
                num_partitions=config.partitions,
                replication_factor=config.replication_factor,
                config={"retention.ms": str(config.topic_retention_ms)},
            )
            for n in missing
        ],
        operation_timeout=timeout_s,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as err:
            if err.args and err.args[0].code() == 36:  # TOPIC_ALREADY_EXISTS: a racing worker
                continue
            raise BrokerError(f"cannot create topic {name}: {err}") from err
    log.info("created topics %s", ", ".join(created))
    return created
