"""Which partition a trace's spans and state live on."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from aiokafka.partitioner import murmur2

from streams.model.attribute_columns import U8
from streams.model.columns import hex_ids

_M = np.uint32(0x5BD1E995)
_SEED = 0x9747B28C


def trace_partition(trace_id: str, partitions: int) -> int:
    """The partition of a trace id's key, as Java's, librdkafka's murmur2 and Faust's
    partitioners choose it, so tables keyed by trace id stay co-partitioned with spans."""
    index: int = murmur2(trace_id.encode())
    return (index & 0x7FFFFFFF) % partitions


def trace_partitions(trace_ids: U8, partitions: int) -> npt.NDArray[np.intp]:
    """`trace_partition` of every raw trace id (n x 16 bytes) at once: the same murmur2 over
    the 32-byte hex keys, a column at a time (uint32 products wrap as the hash's do)."""
    words = np.frombuffer(hex_ids(trace_ids), dtype="<u4").reshape(len(trace_ids), 8)
    with np.errstate(over="ignore"):
        h = np.full(len(trace_ids), _SEED ^ 32, dtype=np.uint32)
        for i in range(8):
            k = words[:, i] * _M
            k ^= k >> np.uint32(24)
            k *= _M
            h *= _M
            h ^= k
        h ^= h >> np.uint32(13)
        h *= _M
        h ^= h >> np.uint32(15)
    partition: npt.NDArray[np.intp] = ((h & np.uint32(0x7FFFFFFF)) % partitions).astype(np.intp)
    return partition
