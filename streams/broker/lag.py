"""A consumer group's lag on one topic, read from outside the group (benchmarks, tests)."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition


class GroupLag:
    """The group's lag on a topic: end offsets minus committed offsets.

    A consumer that never subscribes does not join the group; it only reads its offsets.
    """

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]

    def read(self) -> tuple[int, int]:
        """(lag in messages, sum of end offsets)."""
        offsets = self.by_partition()
        lag = sum(end - committed for committed, end in offsets.values())
        return lag, sum(end for _, end in offsets.values())

    def by_partition(self) -> dict[int, tuple[int, int]]:
        """Each partition's (committed offset, end offset); a partition with nothing
        committed yet counts from its log start, as everything there is still to be read."""
        offsets: dict[int, tuple[int, int]] = {}
        for tp in self._consumer.committed(self._partitions, timeout=10):
            low, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            offsets[tp.partition] = (tp.offset if tp.offset >= 0 else low, high)
        return offsets

    def close(self) -> None:
        """Close the consumer (it never joined the group, so nothing is rebalanced)."""
        self._consumer.close()
