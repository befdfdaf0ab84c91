"""Which partition a trace's spans and state live on."""

from __future__ import annotations

from collections.abc import Sequence

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
    return _key_partitions(hex_ids(trace_ids), len(trace_ids), partitions)


def hex_trace_partitions(trace_ids: Sequence[str], partitions: int) -> list[int]:
    """`trace_partition` of many hex trace ids at once (a sweep's traces); ids that are not
    32 ASCII characters each make it go one by one."""
    joined = "".join(trace_ids)
    if len(joined) != 32 * len(trace_ids) or not joined.isascii():
        return [trace_partition(t, partitions) for t in trace_ids]
    found: list[int] = _key_partitions(joined.encode(), len(trace_ids), partitions).tolist()
    return found


def _key_partitions(keys: bytes, count: int, partitions: int) -> npt.NDArray[np.intp]:
    # murmur2 of `count` 32-byte keys, concatenated in `keys`.
    words = np.frombuffer(keys, dtype="<u4").reshape(count, 8)
    with np.errstate(over="ignore"):
        h = np.full(count, _SEED ^ 32, dtype=np.uint32)
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
