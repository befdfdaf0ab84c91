"""Counters count per label set and render as Prometheus text."""

from __future__ import annotations

from streams.telemetry import Counters


def test_counts_per_label_set() -> None:
    c = Counters()
    c.inc("dlq_total", reason="empty")
    c.inc("dlq_total", 2, reason="avro-decode")
    c.inc("dlq_total", reason="empty")
    assert c.value("dlq_total", reason="empty") == 2
    assert c.total("dlq_total") == 4
    assert c.snapshot() == {"dlq_total": {"reason=avro-decode": 2, "reason=empty": 2}}


def test_prometheus_text_escapes_labels() -> None:
    c = Counters()
    c.describe("x_total", "Things.")
    c.inc("x_total", reason='a"b')
    text = c.render_prometheus()
    assert "# HELP x_total Things.\n# TYPE x_total counter\n" in text
    assert 'x_total{reason="a\\"b"} 1' in text
