"""Read tracepipe's alert events with nothing but confluent-kafka and fastavro.

    python examples/alerts_consumer.py --bootstrap 127.0.0.1:9092 --topic tracepipe.alerts

Each record on tracepipe.alerts is one alert transition: the Kafka key is the alert's
fingerprint, the value is the schemaless Avro body of schemas/avro/alert.avsc (the header
`tracepipe-schema` names the writer schema's fingerprint). Any codebase that can read Avro can
subscribe the same way; copy the schema file along.
"""

from __future__ import annotations

import argparse
import io
import json
import uuid
from pathlib import Path

import fastavro
from confluent_kafka import Consumer

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "avro" / "alert.avsc"


def main(argv: list[str] | None = None) -> int:
    """Print each alert event as it arrives (Ctrl-C stops)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="tracepipe.alerts")
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)

    schema = fastavro.parse_schema(json.loads(args.schema.read_text()))
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"alerts-example-{uuid.uuid4().hex}",  # every run sees every event
            "auto.offset.reset": "latest",  # new events only; "earliest" replays the topic
        }
    )
    consumer.subscribe([args.topic])
    try:
        while True:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None:
                continue
            alert = fastavro.schemaless_reader(io.BytesIO(msg.value() or b""), schema)
            assert isinstance(alert, dict)  # a record schema reads as a dict
            # value and threshold are in the signal's unit: ns for p50..p99, 0..1 for error_rate
            print(
                f"{alert['state']:9} {alert['severity']:8} {alert['rule']} "
                f"{alert['service']}/{alert['operation']} {alert['signal']}="
                f"{alert['value']} {alert['condition']} {alert['threshold']} "
                f"slowest trace: {(alert['exemplar_trace_ids'] or ['-'])[0]}"
            )
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()


if __name__ == "__main__":
    raise SystemExit(main())
