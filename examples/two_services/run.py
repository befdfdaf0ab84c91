"""Run the two services, send N requests through the frontend, flush, print the trace ids.

    python examples/two_services/run.py --requests 5

Kafka and the topic prefix come from tracepipe's settings (TRACEPIPE_KAFKA_BOOTSTRAP,
TRACEPIPE_KAFKA_TOPIC_PREFIX, or a config file); flags override them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from services import (
    TRACE_ID_HEADER,
    BackendHandler,
    FrontendHandler,
    make_provider,
    serve,
)

from streams.config import load_settings

ITEMS = ("apple", "pear", "melon", "durian")  # durian is unknown: an error trace


def main(argv: list[str] | None = None) -> int:
    """Run the example; print one trace id per request on stdout."""
    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--bootstrap", default=settings.kafka.bootstrap)
    parser.add_argument("--topic", default=f"{settings.kafka.topic_prefix}spans")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    backend_provider = make_provider("backend", args.bootstrap, args.topic)
    frontend_provider = make_provider("frontend", args.bootstrap, args.topic)
    backend = serve(BackendHandler, backend_provider.get_tracer("two_services.backend", "1.0.0"))
    backend_url = f"http://127.0.0.1:{backend.server_port}"
    frontend = serve(FrontendHandler, frontend_provider.get_tracer("two_services.frontend",
                                                                   "1.0.0"),
                     backend_url=backend_url)
    frontend_url = f"http://127.0.0.1:{frontend.server_port}"

    trace_ids: list[str] = []
    try:
        for i in range(args.requests):
            url = f"{frontend_url}/checkout?item={ITEMS[i % len(ITEMS)]}&qty={i + 1}"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    trace_ids.append(response.headers[TRACE_ID_HEADER])
            except urllib.error.HTTPError as err:
                trace_ids.append(err.headers[TRACE_ID_HEADER])
    finally:
        frontend.shutdown()
        backend.shutdown()
        # shutdown() exports what is batched and flushes the Kafka producers.
        frontend_provider.shutdown()
        backend_provider.shutdown()
    for trace_id in trace_ids:
        print(trace_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
