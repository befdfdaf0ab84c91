"""Source records held uncommitted until everything they fed has been published.

Window and trace state live in memory. Instead of writing it to a changelog, each stage keeps
the Kafka records it folded into open windows (streams.aggregate) or open traces
(streams.assemble) unacknowledged until those windows or traces are on the next topic: a
record's offset is committed only once nothing it contributed can be lost. After a crash or a
rebalance the new owner of a partition re-reads from the committed offset and rebuilds every
open window and trace exactly; what it re-reads for ones already published is dropped as a
duplicate (same source, window and key; a span id in an emitted trace's mark) or as late.

Records are released in offset order per partition (a prefix at a time): Kafka commits a
partition's offsets as one number, and faust-streaming's commit bookkeeping mishandles a single
unacknowledged offset ahead of acknowledged ones, so acks must never overtake each other.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

Held = TypeVar("Held")
Until = TypeVar("Until")


class SourceHold(Generic[Held, Until]):
    """Per source partition, records in arrival order, each with what it waits for (a window
    end; a batch's count of unemitted traces)."""

    def __init__(self) -> None:
        self._partitions: dict[int, deque[tuple[Until, Held]]] = {}

    def hold(self, partition: int, records: Iterable[Held], until: Until) -> None:
        """Hold records (in offset order) until `done(until)` is true for them in `release`."""
        queue = self._partitions.get(partition)
        if queue is None:
            queue = self._partitions[partition] = deque()
        queue.extend((until, record) for record in records)

    def release(self, partition: int, done: Callable[[Until], bool]) -> list[Held]:
        """The records of `partition`, oldest first, whose wait is `done`; stops at the first
        still needed."""
        queue = self._partitions.get(partition)
        released: list[Held] = []
        while queue and done(queue[0][0]):
            released.append(queue.popleft()[1])
        return released

    def drop(self) -> int:
        """Forget every held record without releasing it (a rebalance: the consumer re-reads
        them from the committed offset); returns how many."""
        dropped = self.held_count()
        self._partitions.clear()
        return dropped

    def held_by_partition(self) -> dict[int, tuple[int, Until]]:
        """Per partition, (records held, what the oldest waits for): why a partition's commit
        does not move."""
        return {p: (len(q), q[0][0]) for p, q in sorted(self._partitions.items()) if q}

    def held_count(self) -> int:
        """Records held now, across partitions."""
        return sum(len(q) for q in self._partitions.values())


def published_through(through_ns: int) -> Callable[[int], bool]:
    """The release test for records waiting for window ends (0: nothing to wait for): every
    window ending at or before `through_ns` is published."""
    return lambda until_ns: until_ns <= through_ns
