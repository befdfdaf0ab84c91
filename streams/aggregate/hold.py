"""Source records held uncommitted until every window they feed has been published.

Window state lives in memory. Instead of writing it to a changelog, each stage keeps the Kafka
records it folded into open windows unacknowledged until those windows are on the next topic:
a record's offset is committed only once nothing it contributed can be lost. After a crash or a
rebalance the new owner of a partition re-reads from the committed offset and rebuilds every
open window exactly; what it re-reads for windows already published is dropped downstream as a
duplicate (same source, window and key) or as late.

Records are released in offset order per partition (a prefix at a time): Kafka commits a
partition's offsets as one number, and faust-streaming's commit bookkeeping mishandles a single
unacknowledged offset ahead of acknowledged ones, so acks must never overtake each other.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

Held = TypeVar("Held")


class SourceHold(Generic[Held]):
    """Per source partition, records in arrival order, each with the window end it waits for."""

    def __init__(self) -> None:
        self._partitions: dict[int, deque[tuple[int, Held]]] = {}

    def hold(self, partition: int, records: Iterable[Held], until_ns: int) -> None:
        """Hold records (in offset order) until their partition has published every window
        ending at or before `until_ns` (0: nothing to wait for, released in turn)."""
        queue = self._partitions.get(partition)
        if queue is None:
            queue = self._partitions[partition] = deque()
        queue.extend((until_ns, record) for record in records)

    def release(self, partition: int, through_ns: int) -> list[Held]:
        """The records, oldest first, that nothing holds any more now that every window of
        `partition` ending at or before `through_ns` is published; stops at the first still
        needed."""
        queue = self._partitions.get(partition)
        released: list[Held] = []
        while queue and queue[0][0] <= through_ns:
            released.append(queue.popleft()[1])
        return released

    def drop(self) -> int:
        """Forget every held record without releasing it (a rebalance: the consumer re-reads
        them from the committed offset); returns how many."""
        dropped = self.held_count()
        self._partitions.clear()
        return dropped

    def held_by_partition(self) -> dict[int, tuple[int, int]]:
        """Per partition, (records held, the window end the oldest waits for): why a
        partition's commit does not move."""
        return {p: (len(q), q[0][0]) for p, q in sorted(self._partitions.items()) if q}

    def held_count(self) -> int:
        """Records held now, across partitions."""
        return sum(len(q) for q in self._partitions.values())
