"""The vectorised trace partitioner picks the partition the per-id one (Faust's murmur2) picks."""

from __future__ import annotations

import numpy as np

from streams.model.partition import hex_trace_partitions, trace_partition, trace_partitions


def test_trace_partitions_agree_with_trace_partition() -> None:
    rng = np.random.default_rng(15)
    raw = rng.integers(0, 256, size=(3000, 16), dtype=np.uint8)
    raw[0] = 0
    raw[1] = 255
    ids = [bytes(row).hex() for row in raw]
    for partitions in (1, 2, 6, 7, 64):
        expected = [trace_partition(trace_id, partitions) for trace_id in ids]
        assert trace_partitions(raw, partitions).tolist() == expected


def test_no_trace_ids_no_partitions() -> None:
    assert trace_partitions(np.zeros((0, 16), dtype=np.uint8), 6).tolist() == []


def test_hex_trace_partitions_agree_with_trace_partition_whatever_the_ids() -> None:
    rng = np.random.default_rng(16)
    ids = [bytes(row).hex() for row in rng.integers(0, 256, size=(2000, 16), dtype=np.uint8)]
    for partitions in (1, 6, 64):
        expected = [trace_partition(trace_id, partitions) for trace_id in ids]
        assert hex_trace_partitions(ids, partitions) == expected
    # Upper case hashes as written; ids of other lengths or characters go one by one.
    odd = [ids[0].upper(), "abc", "é" * 32, ids[1]]
    assert hex_trace_partitions(odd, 64) == [trace_partition(t, 64) for t in odd]
    assert hex_trace_partitions([], 6) == []
