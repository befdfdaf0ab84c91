"""Emitted marks: the assembly stage's only durable state, as changelog records.

Open traces are not written anywhere: their spans messages stay unacknowledged until the trace
is emitted and marked (streams.hold), so a restart re-reads them. What must survive is which trace
versions were already published, for two reasons:

- the re-read spans of a trace emitted before the crash (its messages were not all committed)
  must be dropped as duplicates, not emitted again as version 1 with part of its spans: that
  needs the span ids, but only for as long as a message can stay held (`span_ids_horizon_ns`:
  twice `trace_max_age_ms` plus the wait of a mark for its edge windows);
- a late span must start the next version, not version 1 again: that needs the version, for
  `tombstone_retention_ms` as the in-memory tombstones keep it.

So a sweep writes, per trace partition, two records (two per ~512 KiB of marks):
`<partition>/<at>/<seq>/s` (trace ids and packed span ids, deleted past the horizon) and
`<partition>/<at>/<seq>/v` (trace ids and versions, deleted past tombstone retention or when
more than `max_tombstones` traces are marked). A few records per sweep instead of several per
trace and span batch.
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

SPAN_ID_BYTES = 8

Mark = tuple[str, int, int, bytes]
"""An emitted trace version made durable: (trace id, version, emitted at ns, packed span ids)."""


def pack_span_ids(span_ids: Iterable[str]) -> bytes:
    """Hex span ids (16 digits each, as validated) packed as 8 raw bytes each."""
    return bytes.fromhex("".join(span_ids))


def unpack_span_ids(packed: bytes) -> set[str]:
    """The hex span ids of `pack_span_ids`."""
    return {packed[i : i + SPAN_ID_BYTES].hex() for i in range(0, len(packed), SPAN_ID_BYTES)}


def packed_holds(packed: bytes, span_id: str) -> bool:
    """Whether packed span ids hold `span_id` (at an id boundary, not across two ids)."""
    needle = bytes.fromhex(span_id)
    at = packed.find(needle)
    while at != -1:
        if at % SPAN_ID_BYTES == 0:
            return True
        at = packed.find(needle, at + 1)
    return False


_SPANS = "s"
_VERSIONS = "v"

MARKS_RECORD_MAX_BYTES = 512 * 1024
"""About the most bytes of marks one record carries: far under the producer's 1 MiB request
size. A drain's sweep can make tens of thousands of traces' marks due at once (their edge
windows close together): as one record (1.1 MB) it crashed the worker's producer."""


@dataclass(frozen=True, slots=True)
class _Record:
    key: bytes
    at_ns: int
    traces: int


def mark_partition(key: bytes) -> int:
    """The trace partition a mark record's key belongs to."""
    return int(key.split(b"/", 1)[0])


class EmittedMarks:
    """Which mark records are live, in the order written: turns a sweep's marks into records
    and says which records to delete as they age."""

    def __init__(self, span_ids_horizon_ns: int, retention_ns: int, max_marks: int) -> None:
        self.span_ids_horizon_ns = span_ids_horizon_ns
        self.retention_ns = retention_ns
        self.max_marks = max_marks
        self._seq = 0
        self._spans: deque[_Record] = deque()
        self._versions: deque[_Record] = deque()
        self._marked = 0

    @property
    def record_count(self) -> int:
        """Live mark records (both kinds)."""
        return len(self._spans) + len(self._versions)

    def records(self, partition: int, marks: list[Mark], at_ns: int) -> list[tuple[bytes, bytes]]:
        """The records (key, value) that make one partition's marks of a sweep durable: two per
        MARKS_RECORD_MAX_BYTES of marks."""
        out: list[tuple[bytes, bytes]] = []
        for chunk in _chunks(marks, MARKS_RECORD_MAX_BYTES):
            self._seq += 1
            stem = f"{partition}/{at_ns}/{self._seq}/"
            spans_key = (stem + _SPANS).encode()
            versions_key = (stem + _VERSIONS).encode()
            self._spans.append(_Record(spans_key, at_ns, len(chunk)))
            self._versions.append(_Record(versions_key, at_ns, len(chunk)))
            self._marked += len(chunk)
            spans = pickle.dumps([(m[0], m[3]) for m in chunk], pickle.HIGHEST_PROTOCOL)
            versions = pickle.dumps([(m[0], m[1]) for m in chunk], pickle.HIGHEST_PROTOCOL)
            out += [(spans_key, spans), (versions_key, versions)]
        return out

    def expired(self, now_ns: int) -> list[bytes]:
        """Keys of records to delete now: span ids past the horizon, versions past retention
        or beyond the cap (oldest first)."""
        gone: list[bytes] = []
        while self._spans and now_ns - self._spans[0].at_ns > self.span_ids_horizon_ns:
            gone.append(self._spans.popleft().key)
        while self._versions and (
            now_ns - self._versions[0].at_ns > self.retention_ns or self._marked > self.max_marks
        ):
            record = self._versions.popleft()
            self._marked -= record.traces
            gone.append(record.key)
        return gone

    def restore(self, entries: Iterable[tuple[bytes, bytes]]) -> list[Mark]:
        """The marks of table entries (the owned partitions' records), newest version per
        trace; the records are tracked again so they expire as if written here."""
        self._spans.clear()
        self._versions.clear()
        self._marked = 0
        packed: dict[bytes, dict[str, bytes]] = {}
        versions: list[tuple[bytes, int, list[tuple[str, int]]]] = []
        spans_records: list[_Record] = []
        for key, value in entries:
            stem, _, kind = key.rpartition(b"/")
            at_ns = int(stem.split(b"/")[1])
            content = pickle.loads(value)
            if kind == _SPANS.encode():
                packed[stem] = dict(content)
                spans_records.append(_Record(key, at_ns, len(content)))
            else:
                versions.append((stem, at_ns, content))
        marks: list[Mark] = []
        version_records: list[_Record] = []
        for stem, at_ns, content in versions:
            ids = packed.get(stem, {})
            marks.extend(
                (trace_id, version, at_ns, ids.get(trace_id, b"")) for trace_id, version in content
            )
            version_records.append(_Record(stem + b"/" + _VERSIONS.encode(), at_ns, len(content)))
        self._spans.extend(sorted(spans_records, key=lambda r: r.at_ns))
        self._versions.extend(sorted(version_records, key=lambda r: r.at_ns))
        self._marked = sum(r.traces for r in version_records)
        return marks


def _chunks(marks: list[Mark], max_bytes: int) -> Iterable[list[Mark]]:
    # Sized by the trace id and packed span ids a mark carries, plus pickle's framing.
    chunk: list[Mark] = []
    size = 0
    for mark in marks:
        weight = len(mark[0]) + len(mark[3]) + 16
        if chunk and size + weight > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(mark)
        size += weight
    if chunk:
        yield chunk
