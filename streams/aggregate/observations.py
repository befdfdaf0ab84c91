"""What the two aggregated signals observe: every span (latency) and every service-graph call
(edges) of an assembled trace, as window observations."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from streams.aggregate.window import Observation
from streams.assemble.record import TraceRecord, service_graph_calls
from streams.model.columns import SpanColumns, hex_strings
from streams.model.span import SPAN_KINDS, STATUS_CODES

LATENCY_DIMENSIONS = ("service", "operation", "kind", "status_class")
"""The dimensions of a latency window, as named in schemas/avro/latency.avsc."""

EDGE_DIMENSIONS = ("client", "server", "connection_type")

_ERROR = STATUS_CODES.index("ERROR")
"""The dimensions of a service-graph edge window, as named in schemas/avro/edge.avsc."""


def latency_observations(columns: SpanColumns) -> list[Observation]:
    """One observation per span: its duration, keyed by service, operation, kind and status
    class (`error` for ERROR, `ok` for OK and UNSET, as the spanmetrics connector splits)."""
    if not len(columns):
        return []
    ends = columns.end_time_unix_nano
    errors = columns.status_code == _ERROR
    # Each distinct key is built once (a batch holds a few hundred spans of a few dozen keys).
    codes = np.stack(
        [columns.text["service_name"], columns.text["name"], columns.kind, errors]
    ).T.astype(np.int64)
    distinct, inverse = np.unique(codes, axis=0, return_inverse=True)
    strings = columns.strings
    keys = [
        (strings[service], strings[name], SPAN_KINDS[kind], "error" if error else "ok")
        for service, name, kind, error in distinct.tolist()
    ]
    return list(
        map(
            Observation,
            ends.tolist(),
            (ends - columns.start_time_unix_nano).tolist(),
            [keys[i] for i in inverse.reshape(-1).tolist()],
            errors.tolist(),
            hex_strings(columns.trace_id),
            hex_strings(columns.span_id),
        )
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
