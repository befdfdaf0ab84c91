"""Settings of Kafka: the cluster tracepipe uses, and the local broker it can run."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config.setting import path_setting, positive, setting
from streams.errors import ConfigError
from streams.paths import IN_HOME


@dataclass(frozen=True)
class KafkaConfig:
    """How to reach Kafka and how the project's topics are named and sized."""

    bootstrap: str = setting("127.0.0.1:9092", "Kafka bootstrap servers, host:port[,host:port]")
    topic_prefix: str = setting("tracepipe.", "prefix of every tracepipe topic name")
    partitions: int = setting(
        6, "partitions of topics tracepipe creates (keep equal: co-partitioning)"
    )
    replication_factor: int = setting(1, "replication factor of topics tracepipe creates")
    topic_retention_ms: int = setting(
        7 * 24 * 3600 * 1000, "retention.ms of topics tracepipe creates"
    )

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        if not self.bootstrap.strip():
            raise ConfigError(
                "invalid kafka.bootstrap: empty; should be host:port[,host:port] "
                "(set TRACEPIPE_KAFKA_BOOTSTRAP)"
            )
        positive("kafka", "partitions", self.partitions)
        positive("kafka", "replication_factor", self.replication_factor)
        positive("kafka", "topic_retention_ms", self.topic_retention_ms)


@dataclass(frozen=True)
class LocalKafkaConfig:
    """The single-node KRaft broker `tracepipe kafka up` resolves from Maven Central and runs."""

    version: str = setting("3.9.1", "Apache Kafka version resolved from Maven Central")
    scala_version: str = setting("2.13", "Scala build of the kafka artifact (kafka_<scala>)")
    host: str = setting("127.0.0.1", "address the local broker listens on")
    port: int = setting(9092, "port of the local broker's client listener")
    controller_port: int = setting(0, "KRaft controller port (0: port + 1)")
    cache_dir: str = path_setting(
        "~/.cache/tracepipe/kafka", "where the resolved classpath is cached"
    )
    data_dir: str = path_setting(f"{IN_HOME}/kafka", "local broker log dirs, pid and log file")
    heap_mb: int = setting(512, "JVM heap of the local broker, MiB")
    start_timeout_s: float = setting(120.0, "how long `kafka up` waits for the broker to answer")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key."""
        if not 0 < self.port < 65536:
            raise ConfigError(
                f"invalid local_kafka.port: {self.port}; should be 1-65535 "
                "(set TRACEPIPE_LOCAL_KAFKA_PORT)"
            )
        positive("local_kafka", "heap_mb", self.heap_mb)
        positive("local_kafka", "start_timeout_s", self.start_timeout_s)
