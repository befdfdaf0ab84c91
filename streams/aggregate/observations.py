"""What the two aggregated signals observe: every span (latency) and every service-graph call
(edges) of an assembled trace, as window observations."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from streams.aggregate.graph import edges_from_trace
from streams.aggregate.window import Observation
from streams.assemble.record import TraceRecord
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
    """The service-graph calls completed in each trace version (earlier versions' calls are
    not repeated); records without spans (assembly.include_spans off) contribute nothing."""
    observations = []
    for record in records:
        for edge in edges_from_trace(record["spans"], record["previous_span_count"]):
            observations.append(
                Observation(
                    edge.end_time_unix_nano,
                    edge.duration_ns,
                    (edge.client, edge.server, edge.connection_type),
                    edge.error,
                    edge.trace_id,
                    edge.span_id,
                )
            )
    return observations
