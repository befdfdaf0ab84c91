"""Durable stage state: the one module that touches Faust tables, changelog sends and rebalance
generations.

Every stateful stage keeps its state in plain objects (the trace buffer, the window merger, the
alert evaluator) and makes only what must survive a crash durable, through a `StateTable`: raw
keys and values on a changelog-backed Faust table, each record on the changelog partition the
stage chooses (the partition of the input it belongs to). After every rebalance (a new consumer
group generation, Faust's recovery done) `rebalanced()` hands the stage the entries of exactly
the partitions it owns now, once, so it restores from them; Faust's memory store forgets only
keys it recovered itself, so keys of partitions owned elsewhere now are dropped here. Sends
return futures: a stage awaits them before it acknowledges any input they cover, because Faust
flushes its producer before a commit only while each record goes out within 0.1 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust

from streams.worker.batch import current_generation

Entries = list[tuple[bytes, bytes]]


class StateTable:
    """A stage's durable records: a changelog-backed table of raw keys and values, with the
    partition each key belongs to and the rebalance generation its owned entries were read in."""

    def __init__(
        self,
        app: faust.App,
        name: str,
        partitions: int,
        owner_topic: str,
        partition_of: Callable[[bytes], int | None],
    ) -> None:
        self.app = app
        self.name = name
        self.owner_topic = owner_topic
        """The topic whose assigned partitions this worker owns the records of."""
        self.partition_of = partition_of
        """The partition of a key (None: a key of an older layout, owned by every worker)."""
        self._table = app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes)
        self._generation: int | None = None

    @property
    def generation(self) -> int | None:
        """The generation the owned entries were last handed out in (None: never yet)."""
        return self._generation

    def rebalanced(self) -> Entries | None:
        """The owned partitions' entries if this is the first call since a rebalance finished
        (or since the start), else None; also None while a rebalance or recovery is under way."""
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]
        generation = current_generation(self.app)
        if generation is None or not recovery.completed.is_set():
            return None
        if generation == self._generation:
            return None
        owned = self.owned_partitions()
        entries: Entries = []
        data = self._table.data
        for key in list(data):
            partition = self.partition_of(key)
            if partition is None or partition in owned:
                entries.append((key, data[key]))
            else:
                del data[key]
        self._generation = generation
        return entries

    def current(self) -> bool:
        """True if no rebalance began since the owned entries were last handed out."""
        generation = current_generation(self.app)
        return generation is not None and generation == self._generation

    def owned_partitions(self) -> set[int]:
        """The partitions of the owner topic assigned to this worker now."""
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.owner_topic
        }

    def get(self, key: bytes) -> bytes | None:
        """A record's value, if present."""
        value: bytes | None = self._table.data.get(key)
        return value

    def write(self, partition: int, key: bytes, value: bytes | None) -> asyncio.Future[Any]:
        """Set (None: delete) a record and send it to its changelog partition; the future is
        done once the broker has it."""
        if value is None:
            self._table.data.pop(key, None)
        else:
            self._table.data[key] = value
        future: asyncio.Future[Any] = self._table.send_changelog(
            partition, key, value, key_serializer="raw", value_serializer="raw"
        )
        return future
