"""Synthetic traces for load and for demos: `tracepipe generate`.

`topology.py` describes the services, their operations and who calls whom (YAML; the default
is deploy/generate/webshop.yaml), `incident.py` parses incidents ("payment 5x slower from
minute 2 to 4"), and `generator.py` turns both into traces of canonical spans, deterministic for
a seed, at a paced rate. Nothing here imports Kafka: the CLI hands the spans to a SpanProducer or
to the OpenTelemetry `KafkaSpanExporter`.
"""
