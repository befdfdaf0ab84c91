"""``/ui/services``: RED metrics (rate, errors, duration) per service and per operation.

Both tables add up the final latency windows (``tracepipe_latency``) that start in the range,
as `tracepipe query latency` does (streams/query/windows.py): counts and sums add, percentiles
come from the merged sketches, rates are over the time the windows cover (said in the note). A
service's row counts the calls it serves (its SERVER and CONSUMER spans); the operations table
has every operation and span kind, status classes merged, with the slowest exemplar trace linked.
A service's row also says where most of its errors originate, from the error-origin windows
(tracepipe_error_origin_windows) starting in the range, in one query for the page
(streams.query.errors.service_origins).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streams.config import Settings
from streams.query import Reader
from streams.query.errors import ServiceErrors, service_origins
from streams.query.table import format_ms, format_quantity
from streams.query.timestamps import format_time
from streams.query.web import Page
from streams.query.web.markup import (
    ERROR_RATE_WARN,
    link,
    ranged_page,
    service_chip,
    service_colours,
    table,
    text,
    trace_url,
    ui_url,
)
from streams.query.windows import LatencySummary, arrival_lag, latency_summary, service_summary


def _red_cells(s: LatencySummary) -> tuple[str, ...]:
    """Calls, rate, error %, p50, p90, p99 and max of a summary, as table cells."""
    return (
        text(s.calls),
        text(format_quantity(s.throughput_per_s)),
        text(format_quantity(s.error_rate * 100)),
        text(format_ms(s.p50_ns)),
        text(format_ms(s.p90_ns)),
        text(format_ms(s.p99_ns)),
        text(format_ms(s.max_ns)),
    )


_RED_HEADERS = ("Calls", "Rate/s", "Error %", "p50 ms", "p90 ms", "p99 ms", "Max ms")


def _warn(summaries: Sequence[LatencySummary], column: int) -> dict[tuple[int, int], str]:
    return {(i, column): "bad" for i, s in enumerate(summaries) if s.error_rate >= ERROR_RATE_WARN}


def origin_cell(errors: ServiceErrors | None, search_range: Mapping[str, str]) -> str:
    """Where most of a service's errors originate ("82% from inventory/Reserve"), linking to a
    search of the origin service's traces with errors; empty without errors or origins."""
    if errors is None or not errors.origin_traces:
        return ""
    label = f"{errors.share * 100:.0f}% from {errors.origin_service}/{errors.origin_operation}"
    search = {**search_range, "service": errors.origin_service, "errors": "1"}
    return link(ui_url("", search), text(label), "origin")


def services_table(
    summaries: Sequence[LatencySummary],
    colours: Mapping[str, str],
    origins: Mapping[str, ServiceErrors],
    search_range: Mapping[str, str],
) -> str:
    """One row per service: the calls it served, each name linking to a search of its traces,
    and where its errors originate."""
    rows = [
        (
            service_chip(s.service, colours[s.service], ui_url("", {"service": s.service})),
            *_red_cells(s),
            origin_cell(origins.get(s.service), search_range),
        )
        for s in summaries
    ]
    return table(
        ("Service", *_RED_HEADERS, "Errors originate"),
        rows,
        numeric=range(1, 8),
        cells=_warn(summaries, 3),
    )


def operations_table(summaries: Sequence[LatencySummary], colours: Mapping[str, str]) -> str:
    """One row per service, operation and span kind, with its slowest trace linked."""
    rows = []
    for s in summaries:
        slowest = (
            link(trace_url(s.slowest[0].trace_id), text(s.slowest[0].trace_id[:16]), "mono")
            if s.slowest
            else ""
        )
        operation = link(
            ui_url("", {"service": s.service, "operation": s.operation}), text(s.operation)
        )
        rows.append(
            (
                service_chip(s.service, colours[s.service]),
                operation,
                text(s.kind),
                *_red_cells(s),
                slowest,
            )
        )
    return table(
        ("Service", "Operation", "Kind", *_RED_HEADERS, "Slowest trace"),
        rows,
        numeric=range(3, 10),
        cells=_warn(summaries, 5),
    )


def services_page(
    reader: Reader, params: Mapping[str, str], now_ns: int, settings: Settings
) -> Page:
    """The services page for the range in `params` (``since``, ``until``)."""
    # The origin links search the page's range, as the user typed it.
    search_range = {k: params.get(k, "").strip() for k in ("since", "until")}

    def content(since_ns: int, until_ns: int) -> str:
        between = f"between {format_time(since_ns)} and {format_time(until_ns)}"
        lag = arrival_lag(settings, "latency")
        operations = latency_summary(reader, None, None, since_ns, until_ns)
        if not operations:
            return (
                f'<p class="note" id="no-windows">No final latency windows start '
                f"{text(between)}. {text(lag)}: widen the range, or check that a worker is "
                "consuming spans.</p>"
            )
        services = service_summary(reader, since_ns, until_ns)
        origins = service_origins(reader, since_ns, until_ns)
        colours = service_colours(s.service for s in [*operations, *services])
        accuracy = operations[0].relative_accuracy * 100
        return (
            f'<p class="note">Final latency windows {text(between)}; '
            f'<span id="coverage">{text(operations[0].coverage.describe())}</span>; '
            f"percentiles from merged sketches (within {accuracy:g}%); {text(lag)}.</p>"
            "<h2>Services (the calls each serves: SERVER and CONSUMER spans)</h2>"
            + services_table(services, colours, origins, search_range)
            + "<h2>Operations</h2>"
            + operations_table(operations, colours)
        )

    return ranged_page("Services", "services", params, now_ns, content)
