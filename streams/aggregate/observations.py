"""What the two aggregated signals observe: every span (latency) and every service-graph call
(edges) of an assembled trace, as window observations."""

from __future__ import annotations

from collections.abc import Iterable

from streams.aggregate.graph import edges_from_trace
from streams.aggregate.window import Observation
from streams.assemble.record import TraceRecord
from streams.model.span import Span

LATENCY_DIMENSIONS = ("service", "operation", "kind", "status_class")
"""The dimensions of a latency window, as named in schemas/avro/latency.avsc."""

EDGE_DIMENSIONS = ("client", "server", "connection_type")
"""The dimensions of a service-graph edge window, as named in schemas/avro/edge.avsc."""


def latency_observations(spans: Iterable[Span]) -> list[Observation]:
    """One observation per span: its duration, keyed by service, operation, kind, status."""
    return [
        Observation(
            s["end_time_unix_nano"],
            s["end_time_unix_nano"] - s["start_time_unix_nano"],
            (
                s["service_name"],
                s["name"],
                s["kind"],
                # The status class: `error` for ERROR, `ok` for OK and UNSET, as the
                # spanmetrics connector splits by status (inline: this runs on every span).
                "error" if s["status_code"] == "ERROR" else "ok",
            ),
            s["status_code"] == "ERROR",
            s["trace_id"],
            s["span_id"],
        )
        for s in spans
    ]


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
