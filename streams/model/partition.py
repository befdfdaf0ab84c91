"""Which partition a trace's spans and state live on."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def trace_partition(trace_id: str, partitions: int) -> int:
    """The partition of a trace id's key, as Java's, librdkafka's murmur2 and Faust's
    partitioners choose it, so tables keyed by trace id stay co-partitioned with spans."""
    index: int = murmur2(trace_id.encode())
    return (index & 0x7FFFFFFF) % partitions
