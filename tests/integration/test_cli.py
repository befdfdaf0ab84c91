"""The CLI on the real broker and a real worker: what `produce` says about input without spans or
that does not parse, and the window hint quoting the running worker's settings."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.broker.topics import TopicNames, ensure_topics
from streams.cli import main
from streams.config import load_settings
from streams.model.codec import AvroCodec
from tests.integration.isolated import read_topic, running_worker

pytestmark = pytest.mark.integration

OTLP = Path(__file__).parents[1] / "testdata" / "ingest" / "otlp_trace.json"


@pytest.fixture
def spans_topic(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The spans topic of topics of this test's own, created; the CLI's settings point at it."""
    prefix = f"cli-{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("TRACEPIPE_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("TRACEPIPE_KAFKA_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("TRACEPIPE_KAFKA_PARTITIONS", "1")
    topic = TopicNames.from_prefix(prefix).spans
    ensure_topics(load_settings().kafka, [topic])
    return topic


@pytest.mark.usefixtures("spans_topic")
def test_produce_of_a_payload_without_spans_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "none.json"
    path.write_text('{"resourceSpans": []}\n')
    assert main(["produce", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "sent 0 spans from 1 payloads\n"
    assert err.endswith(f"tracepipe: no spans in {path}\n")


@pytest.mark.usefixtures("spans_topic")
def test_produce_of_truncated_json_gives_the_parse_error_and_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = OTLP.read_text().splitlines(keepends=True)
    path = tmp_path / "truncated.json"
    path.write_text("".join(lines[:40]))  # a pretty-printed document cut off mid-way
    assert main(["produce", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "sent 0 spans from 1 payloads; rejected 1 (unknown-format=1)\n"
    chars = len("".join(lines[:40]))
    assert err.endswith(
        "tracepipe: rejected unknown-format (the input): looks like JSON but does not parse: "
        f"Expecting value: line 41 column 1 (char {chars})\n"
    )


def test_produce_names_the_line_of_a_bad_json_line(
    spans_topic: str, kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one_line = OTLP.read_text().replace("\n", "")
    path = tmp_path / "lines.jsonl"
    path.write_text(f"{one_line}\n{one_line[:70]}\n")
    assert main(["produce", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "sent 3 spans from 2 payloads; rejected 1 (unknown-format=1)\n"
    assert "tracepipe: rejected unknown-format (line 2): looks like JSON but does not " in err
    assert "line 1 column 71 (char 70)" in err
    spans = read_topic(kafka_bootstrap, spans_topic, AvroCodec("span"), lambda r: len(r) >= 3, 60)
    assert len(spans) == 3


def test_the_window_hint_quotes_the_running_worker_s_settings(
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The worker runs with other windows than this command would read from its environment.
    with running_worker(
        kafka_bootstrap,
        tmp_path,
        TRACEPIPE_AGGREGATION_WINDOW_MS="4000",
        TRACEPIPE_AGGREGATION_ALLOWED_LATENESS_MS="7000",
        TRACEPIPE_ASSEMBLY_TRACE_IDLE_MS="2500",
    ) as worker:
        published = worker.stats()["settings"]
        assert set(published) == {
            "aggregation.window_ms",
            "aggregation.allowed_lateness_ms",
            "assembly.trace_idle_ms",
        }
        assert published["aggregation.window_ms"] == 4000
        monkeypatch.setenv("TRACEPIPE_WORKER_WEB_PORT", str(worker.settings.worker.web_port))
        assert main(["query", "deps", "--since", "10m"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("no service-graph edges between ")
    assert out.rstrip().endswith(
        "edges appear after trace idle (2.5 s) + window + allowed lateness (4 s + 7 s), from the "
        f"settings of the worker at http://127.0.0.1:{worker.settings.worker.web_port}"
    )
