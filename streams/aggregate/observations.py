"""What the aggregated signals observe: every span (latency), every service-graph call (edges)
and where every error seen in an assembled trace originated (origins), as window observations."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from streams.aggregate.window import Observation, ObservationBatch
from streams.assemble.record import TraceRecord, service_graph_calls
from streams.model.columns import SpanColumns, hex_strings
from streams.model.span import SPAN_KINDS, STATUS_CODES

LATENCY_DIMENSIONS = ("service", "operation", "kind", "status_class")
"""The dimensions of a latency window, as named in schemas/avro/latency.avsc."""

EDGE_DIMENSIONS = ("client", "server", "connection_type")
"""The dimensions of a service-graph edge window, as named in schemas/avro/edge.avsc."""

ORIGIN_DIMENSIONS = ("service", "operation", "origin_service", "origin_operation")
"""The dimensions of an error-origin window, as named in schemas/avro/origin.avsc: where errors
were seen, and where they originated."""

ALL_ORIGINS = ("", "")
"""The origin of the row counting every error trace of a service/operation, whatever the origin
(a trace with two origins counts once there, in each origin's row too)."""

_ERROR = STATUS_CODES.index("ERROR")
# Odd 64-bit multipliers (splitmix64's and golden-ratio constants) that spread each part of a
# span's identity over every bit before the parts are combined.
_MIX = np.array(
    [0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93,
     0xA0761D6478BD642F],
    dtype=np.uint64,
)  # fmt: skip


def latency_batch(columns: SpanColumns) -> ObservationBatch:
    """One observation per span: its duration, keyed by service, operation, kind and status
    class (`error` for ERROR, `ok` for OK and UNSET, as the spanmetrics connector splits); its
    identity from its trace and span ids and times, so a redelivered span counts once."""
    ends = columns.end_time_unix_nano
    durations = ends - columns.start_time_unix_nano
    errors = columns.status_code == _ERROR
    # Each distinct key is built once (a batch holds a few hundred spans of a few dozen keys).
    kinds, strings = len(SPAN_KINDS), max(len(columns.strings), 1)
    code = (
        columns.text["service_name"].astype(np.int64) * strings
        + columns.text["name"]
    ) * (2 * kinds) + columns.kind.astype(np.int64) * 2 + errors
    distinct, inverse = np.unique(code, return_inverse=True)
    keys = [
        (
            columns.strings[c // (2 * kinds) // strings],
            columns.strings[c // (2 * kinds) % strings],
            SPAN_KINDS[c % (2 * kinds) // 2],
            "error" if c % 2 else "ok",
        )
        for c in distinct.tolist()
    ]
    trace = np.ascontiguousarray(columns.trace_id).view("<u8")
    span = np.ascontiguousarray(columns.span_id).view("<u8").reshape(-1)
    with np.errstate(over="ignore"):
        identity = (
            trace[:, 0] * _MIX[0]
            ^ trace[:, 1] * _MIX[1]
            ^ span * _MIX[2]
            ^ ends.astype(np.uint64) * _MIX[3]
            ^ durations.astype(np.uint64) * _MIX[4]
        )

    def ids(rows: npt.NDArray[np.intp]) -> list[tuple[str, str]]:
        trace_ids = hex_strings(columns.trace_id[rows])
        return list(zip(trace_ids, hex_strings(columns.span_id[rows]), strict=True))

    return ObservationBatch(
        ends, durations, inverse.reshape(-1), keys, errors, identity.view(np.int64), ids
    )


def edge_observations(records: Iterable[TraceRecord]) -> list[Observation]:
    """The service-graph calls completed in each trace version, as its record carries them
    (paired at emission; earlier versions' calls are not repeated)."""
    observations = []
    for record in records:
        trace_id = record["trace_id"]
        calls = record["calls"]
        if not calls and record["spans"]:
            # Written before trace.v3 (by a worker not yet upgraded), it has no calls but its
            # spans: pair them as that worker's edge stage did. (A newer record with spans and
            # no calls pairs to none again.)
            calls = service_graph_calls(record["spans"], record["previous_span_count"])
        for call in calls:
            observations.append(
                Observation(
                    call["end_time_unix_nano"],
                    call["duration_ns"],
                    (call["client"], call["server"], call["connection_type"]),
                    call["error"],
                    trace_id,
                    call["span_id"],
                )
            )
    return observations


def origin_observations(records: Iterable[TraceRecord]) -> list[Observation]:
    """Per trace version, one observation for each (service/operation where an error was seen,
    origin service/operation) and one for each such service/operation with ALL_ORIGINS: the
    origin span itself and every error ancestor its error propagated through are where it was
    seen. Its time is the latest end of the trace's error spans at that service/operation (as
    reported, so the windows are the latency windows of those spans), the same for all its rows
    so that one window holds a trace's total and origins; a version re-emitted with the same
    origins is the same observation (folded once per window)."""
    observations = []
    for record in records:
        origins = record["error_origins"]
        if not origins:
            continue
        seen_at: dict[tuple[str, str], int] = {}
        sources: dict[tuple[str, str], dict[tuple[str, str], None]] = {}
        for origin in origins:
            source = (origin["service"], origin["operation"])
            hops = [(origin["service"], origin["operation"], origin["end_time_unix_nano"])]
            hops.extend(
                (h["service"], h["operation"], h["end_time_unix_nano"])
                for h in origin["propagated_through"]
            )
            for service, operation, end in hops:
                where = (service, operation)
                if end > seen_at.get(where, -1):
                    seen_at[where] = end
                sources.setdefault(where, {})[source] = None
        trace_id = record["trace_id"]
        for where, end in seen_at.items():
            for source in (ALL_ORIGINS, *sources[where]):
                observations.append(Observation(end, 0, (*where, *source), True, trace_id, ""))
    return observations
