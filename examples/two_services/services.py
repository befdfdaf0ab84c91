"""Two tiny HTTP services, "frontend" and "backend", instrumented with the OpenTelemetry SDK.

Each has its own TracerProvider (its own `service.name`) exporting to tracepipe through
KafkaSpanExporter; the frontend calls the backend with the W3C `traceparent` header.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from streams.sdk.otel import KafkaSpanExporter

log = logging.getLogger("two_services")

PROPAGATOR = TraceContextTextMapPropagator()
TRACE_ID_HEADER = "X-Trace-Id"
PRICES = {"apple": 0.5, "pear": 0.75, "melon": 3.0}


def make_provider(service_name: str, bootstrap: str, topic: str) -> TracerProvider:
    """A TracerProvider for one service, batching its spans to tracepipe's spans topic."""
    provider = TracerProvider(resource=Resource.create({
        "service.name": service_name,
        "service.version": "1.0.0",
        "deployment.environment": "example",
    }))
    provider.add_span_processor(BatchSpanProcessor(KafkaSpanExporter(bootstrap, topic)))
    return provider


class _Handler(BaseHTTPRequestHandler):
    tracer: trace.Tracer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _headers(self) -> dict[str, str]:
        # urllib capitalises header names; the propagator looks them up in lowercase.
        return {key.lower(): value for key, value in self.headers.items()}

    def _reply(self, status: int, body: dict[str, Any], trace_id: int) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header(TRACE_ID_HEADER, f"{trace_id:032x}")
        self.end_headers()
        self.wfile.write(data)


class BackendHandler(_Handler):
    """GET /price?item=apple -> {"item": ..., "price": ...}; 404 for unknown items."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        item = parse_qs(url.query).get("item", [""])[0]
        parent = PROPAGATOR.extract(self._headers())
        with self.tracer.start_as_current_span(
            "GET /price", context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": "GET", "url.path": url.path, "app.item": item},
        ) as span:
            with self.tracer.start_as_current_span("price.lookup") as lookup:
                price = PRICES.get(item)
                lookup.set_attribute("app.cache_hit", price is not None)
            status = 200 if price is not None else 404
            span.set_attribute("http.response.status_code", status)
            if price is None:
                span.set_status(Status(StatusCode.ERROR, f"unknown item {item!r}"))
            self._reply(status, {"item": item, "price": price}, span.get_span_context().trace_id)


class FrontendHandler(_Handler):
    """GET /checkout?item=apple&qty=2: asks the backend for the price, returns the total."""

    backend_url: str

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        item = query.get("item", [""])[0]
        qty = int(query.get("qty", ["1"])[0])
        parent = PROPAGATOR.extract(self._headers())
        with self.tracer.start_as_current_span(
            "GET /checkout", context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": "GET", "url.path": url.path, "app.qty": qty},
        ) as span:
            trace_id = span.get_span_context().trace_id
            with self.tracer.start_as_current_span(
                "GET backend /price", kind=SpanKind.CLIENT,
                attributes={"http.request.method": "GET", "server.address": self.backend_url},
            ) as client:
                headers: dict[str, str] = {}
                PROPAGATOR.inject(headers)  # the current span is `client`
                request = urllib.request.Request(
                    f"{self.backend_url}/price?item={item}", headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        price = json.load(response)["price"]
                    client.set_attribute("http.response.status_code", 200)
                except urllib.error.HTTPError as err:
                    client.set_attribute("http.response.status_code", err.code)
                    client.set_status(Status(StatusCode.ERROR, f"backend answered {err.code}"))
                    price = None
            if price is None:
                span.add_event("price.missing", {"app.item": item})
                span.set_status(Status(StatusCode.ERROR, "no price"))
                span.set_attribute("http.response.status_code", 502)
                self._reply(502, {"error": f"no price for {item!r}"}, trace_id)
                return
            total = price * qty
            span.set_attribute("app.total", total)
            span.set_attribute("http.response.status_code", 200)
            self._reply(200, {"item": item, "qty": qty, "total": total}, trace_id)


def serve(handler: type[_Handler], tracer: trace.Tracer, port: int = 0,
          **attrs: Any) -> ThreadingHTTPServer:
    """Start `handler` on 127.0.0.1:`port` (0: any free port) in a daemon thread."""
    bound = type(handler.__name__, (handler,), {"tracer": tracer, **attrs})
    server = ThreadingHTTPServer(("127.0.0.1", port), bound)
    threading.Thread(target=server.serve_forever, name=handler.__name__, daemon=True).start()
    return server
