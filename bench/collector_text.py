"""otel_traces attribute text of spans sent by a real OpenTelemetry Collector, against pdata's
`Value.AsString` (what the Collector's own ClickHouse exporter stores for every attribute).
Not part of CI.

bench.attribute_text compares tracepipe's formatter with pdata in process; this sends the same
values the whole way: OTLP/HTTP protobuf to the peer Collector (../shared/peers/otelcol:
otlp receiver -> kafka exporter, `otlp_proto`, config written here) -> tracepipe's `otlp` topic
of a fresh prefix -> one worker (the bridge, then the span sink) -> otel_traces. Every value (the
golden cases and `--random` generated ones, bench.attribute_text's) is one attribute of a span
and one of its resource, keyed by its index; once every span is stored, each SpanAttributes
and ResourceAttributes text is compared with bench/pdata_oracle's AsString of the value.
Exits 2 with one line when the Collector binary or Go is missing, 1 when any text differs.

    python -m bench.collector_text --random 2000
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.attribute_text import (
    build_oracle,
    missing_go_line,
    pdata_texts,
    random_doubles,
    random_value,
)
from bench.broker import bench_broker
from bench.collector import collector_binary, missing_collector_line, stop_collector
from bench.otlp import set_attributes
from bench.record import record_result
from streams.broker.probe import free_port
from streams.broker.topics import TopicNames, ensure_topics
from streams.errors import TracepipeError
from streams.worker_process import WorkerProcess, isolated_env
from tests.unit.model.test_attribute_text import GOLDEN

KEY_PREFIX = "tp.value."
VALUES_PER_SPAN = 100
"""Under ingest.max_attributes (128): every value is kept."""
SPANS_PER_REQUEST = 4
"""One request is one Kafka message: kept well under ingest.max_record_bytes (1 MiB)."""
SERVICE = "collector-text"


def value_key(index: int) -> str:
    """The attribute key of value `index`, which the comparison reads back."""
    return f"{KEY_PREFIX}{index:06d}"


def value_index(key: str) -> int | None:
    """The index a key names, None for a key this bench did not send."""
    if not key.startswith(KEY_PREFIX):
        return None
    return int(key[len(KEY_PREFIX) :])


def collector_config(http_port: int, bootstrap: str, topic: str) -> str:
    """The Collector's config: OTLP/HTTP on loopback in, kafka (otlp_proto) out, no telemetry
    port (another Collector may hold the default one)."""
    return f"""receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{http_port}
exporters:
  kafka:
    brokers: ["{bootstrap}"]
    traces:
      topic: "{topic}"
      encoding: otlp_proto
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [kafka]
"""


def requests_of(values: Sequence[Any], trace_id: bytes) -> Iterator[tuple[int, bytes]]:
    """(spans, ExportTraceServiceRequest bytes): every value an attribute of one span and of
    its resource, VALUES_PER_SPAN a span, SPANS_PER_REQUEST spans a request."""
    now = time.time_ns()
    chunks = [
        range(start, min(start + VALUES_PER_SPAN, len(values)))
        for start in range(0, len(values), VALUES_PER_SPAN)
    ]
    for first in range(0, len(chunks), SPANS_PER_REQUEST):
        request = ExportTraceServiceRequest()
        for number, chunk in enumerate(chunks[first : first + SPANS_PER_REQUEST], start=first):
            attributes = {value_key(i): values[i] for i in chunk}
            resource_spans = request.resource_spans.add()
            set_attributes(
                resource_spans.resource.attributes, {"service.name": SERVICE, **attributes}
            )
            span = resource_spans.scope_spans.add().spans.add()
            span.trace_id = trace_id
            span.span_id = (number + 1).to_bytes(8, "big")
            span.name = f"values {chunk.start}..{chunk.stop - 1}"
            span.kind = 1  # INTERNAL
            span.start_time_unix_nano = now
            span.end_time_unix_nano = now + 1000
            set_attributes(span.attributes, attributes)
        count = len(chunks[first : first + SPANS_PER_REQUEST])
        yield count, request.SerializeToString()


def post(url: str, body: bytes) -> None:
    """POST one OTLP/HTTP protobuf request; raise unless the Collector accepted it."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/x-protobuf"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            raise TracepipeError(f"the Collector answered {response.status} to {url}")


def wait_for_port(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the Collector's OTLP/HTTP receiver answers (any HTTP status will do)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TracepipeError(f"the Collector exited with code {process.returncode}; see {log}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # a GET on /v1/traces is refused: the receiver is up
        except OSError:
            time.sleep(0.2)
    raise TracepipeError(f"the Collector's OTLP/HTTP receiver did not answer; see {log}")


def stored_texts(worker: WorkerProcess, spans: int, timeout_s: float) -> list[dict[str, Any]]:
    """The SpanAttributes and ResourceAttributes of the bench's spans, once all are stored."""
    reader = worker.reader()
    where = f"ServiceName = '{SERVICE}'"  # a constant of this bench, not user input
    deadline = time.monotonic() + timeout_s
    while True:
        count = int(
            reader.query_dicts(f"SELECT count() AS n FROM otel_traces WHERE {where}")[0]["n"]
        )
        if count >= spans:
            break
        if time.monotonic() > deadline:
            raise TracepipeError(
                f"{count} of {spans} spans in otel_traces after {timeout_s:.0f} s; see "
                f"{worker.log_path}"
            )
        time.sleep(1.0)
    return reader.query_dicts(
        f"SELECT SpanName, SpanAttributes, ResourceAttributes FROM otel_traces WHERE {where}"
    )


def compare(
    rows: Sequence[dict[str, Any]], values: Sequence[Any], expected: Sequence[str]
) -> tuple[int, list[tuple[str, int, str, str]]]:
    """(texts compared, differences as (column, index, pdata's text, stored text)); a value
    missing from a column counts as a difference with text '<missing>'."""
    compared = 0
    differing: list[tuple[str, int, str, str]] = []
    for column in ("SpanAttributes", "ResourceAttributes"):
        seen: dict[int, str] = {}
        for row in rows:
            for key, text in row[column].items():
                index = value_index(key)
                if index is not None:
                    seen[index] = text
        for index, want in enumerate(expected):
            got = seen.get(index)
            compared += got is not None
            if got != want:
                differing.append((column, index, want, "<missing>" if got is None else got))
    return compared, differing


def main() -> None:
    """Send, wait, compare, record."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--random", type=int, default=2_000, help="random values besides golden")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--otelcol", help="the Collector binary (default .peers/otelcol)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="longest wait for spans")
    args = parser.parse_args()
    binary = collector_binary(args.otelcol)
    if not os.access(binary, os.X_OK):
        print(missing_collector_line(binary), file=sys.stderr)
        raise SystemExit(2)
    rng = random.Random(args.seed)
    doubles = random_doubles(rng, args.random // 2)
    values = [value for _, value, _ in GOLDEN] + doubles
    values += [random_value(rng, doubles) for _ in range(args.random // 2)]
    root = Path(tempfile.mkdtemp(prefix="tracepipe-collector-text-"))
    binary_dir = root / "oracle"
    binary_dir.mkdir()
    oracle = build_oracle(binary_dir)
    if oracle is None:
        print(missing_go_line(), file=sys.stderr)
        raise SystemExit(2)
    expected = pdata_texts(oracle, values)
    print(f"{len(values):,} values; logs under {root}")
    with bench_broker(root) as bootstrap:
        worker = WorkerProcess(
            isolated_env(
                bootstrap, root / "worker", "coltext", TRACEPIPE_WORKER_LOG_LEVEL="warning"
            ),
            root / "worker.log",
        )
        ensure_topics(worker.settings.kafka)
        topic = TopicNames.from_prefix(worker.settings.kafka.topic_prefix).otlp
        http_port = free_port()
        config = root / "otelcol.yaml"
        config.write_text(collector_config(http_port, bootstrap, topic))
        log = root / "otelcol.log"
        with open(log, "ab") as out:
            collector = subprocess.Popen(
                [str(binary), "--config", str(config)],
                env={**os.environ, "GOMAXPROCS": "1"},
                stdout=out,
                stderr=out,
            )
        try:
            worker.start(120.0)
            url = f"http://127.0.0.1:{http_port}/v1/traces"
            wait_for_port(url, collector, log)
            spans = 0
            for count, body in requests_of(values, random.Random(args.seed).randbytes(16)):
                post(url, body)
                spans += count
            rows = stored_texts(worker, spans, args.timeout_s)
        finally:
            stop_collector(collector)
            if worker.process is not None:
                worker.stop()
    compared, differing = compare(rows, values, expected)
    total = 2 * len(values)
    print(
        f"{total:,} attribute texts ({len(values):,} values, span and resource) in {spans} "
        f"spans through the Collector: {compared:,} compared, {len(differing):,} differ from "
        "pdata's AsString"
    )
    for column, index, want, got in differing[:20]:
        print(f"  {column} {values[index]!r:.50}: pdata {want!r:.50}, stored {got!r:.50}")
    summary = {
        "command": "python -m bench.collector_text " + " ".join(sys.argv[1:]),
        "collector": str(binary),
        "values": len(values),
        "spans": spans,
        "texts": total,
        "compared": compared,
        "differing": len(differing),
        "first_differences": [
            {"column": c, "value": repr(values[i]), "pdata": w, "stored": g}
            for c, i, w, g in differing[:20]
        ],
    }
    record_result("collector_text", summary)
    if differing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
