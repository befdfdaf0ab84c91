"""tracepipe: a distributed tracing pipeline (Kafka in, Faust stream processing, ClickHouse out)."""

__version__ = "0.1.0"
