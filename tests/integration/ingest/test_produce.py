"""`tracepipe produce` on the real broker: file spans reach otel_traces, directly or bridged."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from streams.ingest.produce import produce_payloads
from streams.query import count_spans
from streams.sink.spans import DEDUPLICATED_SPANS
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

TESTDATA = Path(__file__).parents[2] / "testdata" / "ingest"


def test_produce_file_directly_and_raw(worker: WorkerProcess) -> None:
    otlp = (TESTDATA / "otlp_trace.json").read_bytes()
    zipkin = (TESTDATA / "zipkin_spans.json").read_bytes()
    # JSON lines: the OTLP document and a Zipkin list, plus one line that is not a payload.
    data = otlp.replace(b"\n", b"") + b"\n" + zipkin.replace(b"\n", b"") + b"\n{oops\n"
    report = produce_payloads(data, worker.settings, progress=io.StringIO())
    assert report.payloads == 3
    assert report.spans_sent == 9
    assert sum(report.rejected.values()) == 1

    raw = produce_payloads(zipkin, worker.settings, raw=True, progress=None)
    assert raw.payloads == 1

    reader = worker.reader()
    # Zipkin spans arrive twice: converted here, and raw through the worker's bridge. They are
    # the same spans (same ids), so users see each once; the bridge counts what it converted.
    worker.wait_for(lambda: count_spans(reader) >= 9, 90, "produced spans in otel_traces")
    worker.wait_for(
        lambda: worker.stats()["counters"].get("tracepipe_bridge_spans_total", {}).get(
            "source=zipkin", 0
        )
        >= 6,
        90,
        "the raw Zipkin payload converted by the bridge",
    )
    rows = reader.query_dicts(
        "SELECT SpanAttributes['tracepipe.source_format'] AS f, count() AS n "
        f"FROM {DEDUPLICATED_SPANS} GROUP BY f ORDER BY f"
    )
    assert rows == [{"f": "otlp_json", "n": 3}, {"f": "zipkin_json", "n": 6}]
    assert count_spans(reader) == 9
