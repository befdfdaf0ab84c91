"""What the two aggregated signals observe: every span (latency) and every service-graph call
(edges) of an assembled trace, as window observations."""

from __future__ import annotations

from collections.abc import Iterable

from streams.aggregate.window import Observation
from streams.assemble.record import TraceRecord, service_graph_calls
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
