"""Span chunks: the trace buffer's per-span state keys packed into one table key per trace and
write, so the changelog carries one record per trace and batch instead of one per span.

The buffer (streams.assemble.buffer) speaks in keys `<trace id>/<index>` (a held span) and
`<trace id>/h` (the trace's header). A trace's spans arrive together, and every Kafka message
costs Faust's producer and the broker far more than its bytes, so the spans a persist adds to a
trace become one chunk `<trace id>/c<first index>` holding `[(index, span), ...]`. Held spans
are append-only and a trace forgets all of them at once, so a chunk is written once and deleted
once; a partial delete rewrites the chunk with what remains. Headers pass through unchanged and
stay after the chunks they count (a write cut short loses spans, which Kafka redelivers, never
the header's consistency). Keys of the per-span layout (state written before chunks) are read
as one-span chunks, so an upgraded worker restores its old state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streams.assemble.buffer import HEADER_INDEX, parse_state_key, state_key

Change = tuple[str, str, Any]
"""(trace id, table key, value or None to delete the key)."""

_CHUNK_MARK = "c"
CHUNK_MAX_SPANS = 500
"""Most spans in one chunk. A trace can add thousands of spans in one write (up to
assembly.max_spans_per_trace); as one changelog record they would pass Kafka's 1 MiB message
limit and crash the span agent on every redelivery. Web-shop spans pickle to ~90 B each in a
chunk, so 500 stay far below it."""


def chunk_key(trace_id: str, first_index: int) -> str:
    """The table key of a trace's chunk starting at `first_index`."""
    return f"{trace_id}/{_CHUNK_MARK}{first_index}"


class SpanChunks:
    """Which held spans each live chunk key holds, per trace; packs buffer changes into table
    writes and unpacks table entries into buffer entries."""

    def __init__(self) -> None:
        # trace id -> chunk key -> the span indexes it holds (a range until a partial delete).
        self._chunks: dict[str, dict[str, range | frozenset[int]]] = {}

    @property
    def trace_count(self) -> int:
        """Traces with at least one live chunk."""
        return len(self._chunks)

    def pack(self, changes: Iterable[Change], current: Callable[[str], Any]) -> list[Change]:
        """Buffer changes -> table writes: per trace, deletes first (chunks emptied are deleted,
        chunks partly emptied rewritten from `current(key)`), then the added spans in chunks of
        at most CHUNK_MAX_SPANS; headers last."""
        added: dict[str, list[tuple[int, Any]]] = {}
        deleted: dict[str, set[int]] = {}
        headers: list[Change] = []
        for trace_id, key, value in changes:
            index = parse_state_key(key)[1]
            if index == HEADER_INDEX:
                headers.append((trace_id, key, value))
            elif value is None:
                deleted.setdefault(trace_id, set()).add(index)
            else:
                added.setdefault(trace_id, []).append((index, value))
        writes: list[Change] = []
        for trace_id, indexes in deleted.items():
            writes.extend(self._delete(trace_id, indexes, current))
        for trace_id, members in added.items():
            # A re-added index (never done by the buffer today) must not live in two chunks.
            writes.extend(self._delete(trace_id, {i for i, _ in members}, current))
            members.sort(key=lambda member: member[0])
            for start in range(0, len(members), CHUNK_MAX_SPANS):
                part = members[start : start + CHUNK_MAX_SPANS]
                first, last = part[0][0], part[-1][0]
                key = chunk_key(trace_id, first)
                contiguous = last - first + 1 == len(part)
                held = range(first, last + 1) if contiguous else frozenset(i for i, _ in part)
                self._chunks.setdefault(trace_id, {})[key] = held
                writes.append((trace_id, key, part))
        writes.extend(headers)
        return writes

    def _delete(
        self, trace_id: str, indexes: set[int], current: Callable[[str], Any]
    ) -> list[Change]:
        chunks = self._chunks.get(trace_id)
        if not chunks:
            return []
        writes: list[Change] = []
        for key, held in list(chunks.items()):
            gone = indexes.intersection(held)
            if not gone:
                continue
            remaining = frozenset(held).difference(gone)
            if not remaining:
                del chunks[key]
                writes.append((trace_id, key, None))
                continue
            chunks[key] = remaining
            kept = [(i, span) for i, span in self._members(key, current(key)) if i in remaining]
            writes.append((trace_id, key, kept))
        if not chunks:
            del self._chunks[trace_id]
        return writes

    @staticmethod
    def _members(key: str, value: Any) -> list[tuple[int, Any]]:
        rest = key.rpartition("/")[2]
        if rest.startswith(_CHUNK_MARK):
            return list(value)
        return [(int(rest), value)]  # a key of the per-span layout

    def unpack(self, entries: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """Table entries -> buffer entries (`<trace id>/<index>` and headers), remembering the
        chunks they came from; replaces what this object knew."""
        self._chunks = {}
        out: list[tuple[str, Any]] = []
        for key, value in entries:
            if value is None:
                continue
            trace_id, _, rest = key.rpartition("/")
            if rest == "h":
                out.append((key, value))
                continue
            members = self._members(key, value)
            indexes = [i for i, _ in members]
            self._chunks.setdefault(trace_id, {})[key] = frozenset(indexes)
            out.extend((state_key(trace_id, i), span) for i, span in members)
        return out
