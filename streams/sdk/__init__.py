"""The producing side: what services use to publish spans to tracepipe."""

from streams.sdk.producer import ProducerQueueFullError, SpanProducer

__all__ = ["ProducerQueueFullError", "SpanProducer"]
