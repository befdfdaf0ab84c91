"""The span sink's core: spans to otel_traces rows, and a batch writer that retries with backoff.

Nothing here imports Faust or Kafka; the agent in streams.sink.agent only feeds it batches.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streams.config import SpanSinkConfig
from streams.errors import WarehouseError
from streams.model.span import AttributeValue, Span
from streams.telemetry import Counters
from streams.warehouse import SPAN_KIND_VALUES, STATUS_CODE_VALUES, Warehouse

log = logging.getLogger("tracepipe.sink")

OTEL_TRACES = "otel_traces"
# otel_traces has no column for it, so the span's source format rides in its attributes.
SOURCE_FORMAT_ATTRIBUTE = "tracepipe.source_format"
OTEL_TRACES_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)


def attribute_string(value: AttributeValue) -> str:
    """An attribute value as the Collector's exporter stores it in a Map(String, String)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return json.dumps(
            [base64.b64encode(v).decode() if isinstance(v, bytes) else v for v in value],
            separators=(",", ":"),
        )
    return str(value)


def attribute_map(attributes: dict[str, AttributeValue]) -> dict[str, str]:
    """Every attribute stringified, keys unchanged."""
    return {k: attribute_string(v) for k, v in attributes.items()}


def span_row(span: Span) -> tuple[Any, ...]:
    """One otel_traces row (columns in OTEL_TRACES_COLUMNS order) for a span."""
    start = span["start_time_unix_nano"]
    events = span["events"]
    links = span["links"]
    return (
        start,
        span["trace_id"],
        span["span_id"],
        span["parent_span_id"],
        span["trace_state"],
        span["name"],
        SPAN_KIND_VALUES[span["kind"]],
        span["service_name"],
        attribute_map(span["resource_attributes"]),
        span["scope_name"],
        span["scope_version"],
        {**attribute_map(span["attributes"]), SOURCE_FORMAT_ATTRIBUTE: span["source_format"]},
        max(0, span["end_time_unix_nano"] - start),
        STATUS_CODE_VALUES[span["status_code"]],
        span["status_message"],
        [e["time_unix_nano"] for e in events],
        [e["name"] for e in events],
        [attribute_map(e["attributes"]) for e in events],
        [lk["trace_id"] for lk in links],
        [lk["span_id"] for lk in links],
        [lk["trace_state"] for lk in links],
        [attribute_map(lk["attributes"]) for lk in links],
    )


class SpanWriter:
    """Writes span batches to otel_traces on one dedicated thread, retrying until stored.

    A failed insert is retried with exponential backoff for as long as it takes: the caller does
    not get control back (and so does not acknowledge the batch's offsets) until it is stored.
    """

    def __init__(
        self,
        open_warehouse: Callable[[], Warehouse],
        config: SpanSinkConfig,
        counters: Counters,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._open_warehouse = open_warehouse
        self._warehouse: Warehouse | None = None
        self._config = config
        self._counters = counters
        self._sleep = sleep
        # chDB is single-threaded per process; one writer thread also keeps the event loop free.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracepipe-sink")
        counters.describe("tracepipe_sink_spans_written_total", "Spans stored in otel_traces.")
        counters.describe(
            "tracepipe_sink_insert_failures_total", "Failed otel_traces inserts (each retried)."
        )

    def warehouse(self) -> Warehouse:
        """The open warehouse, opening it on first use (called on the writer thread)."""
        if self._warehouse is None:
            self._warehouse = self._open_warehouse()
        return self._warehouse

    def _insert(self, rows: Sequence[tuple[Any, ...]]) -> int:
        try:
            return self.warehouse().insert(OTEL_TRACES, OTEL_TRACES_COLUMNS, rows)
        except WarehouseError:
            raise
        except Exception as err:
            raise WarehouseError(f"insert into {OTEL_TRACES} failed: {err}") from err

    async def run_on_writer(self, fn: Callable[[Warehouse], Any]) -> Any:
        """Run `fn(warehouse)` on the writer thread (queries share the engine with inserts)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self.warehouse()))

    async def write(self, spans: Sequence[Span]) -> int:
        """Store the spans; return how many were written. Retries until it succeeds."""
        if not spans:
            return 0
        rows = [span_row(s) for s in spans]
        loop = asyncio.get_running_loop()
        backoff_s = self._config.retry_initial_backoff_ms / 1000
        attempt = 0
        while True:
            attempt += 1
            try:
                written: int = await loop.run_in_executor(self._executor, self._insert, rows)
            except WarehouseError as err:
                self._counters.inc("tracepipe_sink_insert_failures_total", table=OTEL_TRACES)
                log.warning(
                    "insert of %d spans failed (attempt %d), retrying in %.1fs: %s",
                    len(rows),
                    attempt,
                    backoff_s,
                    err,
                )
                await self._sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self._config.retry_max_backoff_ms / 1000)
                continue
            self._counters.inc("tracepipe_sink_spans_written_total", written)
            return written

    def close(self) -> None:
        """Close the warehouse on the writer thread and stop the thread."""

        def _close() -> None:
            if self._warehouse is not None:
                self._warehouse.close()
                self._warehouse = None

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)
