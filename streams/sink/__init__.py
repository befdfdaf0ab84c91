"""Sinks: stage outputs into ClickHouse, batched, retried, never committing past unstored data."""
