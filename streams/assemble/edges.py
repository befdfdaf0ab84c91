"""The service graph's vocabulary: one call along an edge (`EdgeObservation`), its connection
types, and the span attributes and kinds that pair spans into calls (streams.assemble.graph,
streams.assemble.zipkin_links).

Timing, errors, exemplar: a paired call takes the caller span's end and duration (one number;
the connector keeps client and server histograms apart), so a skewed server clock does not
matter; for messaging that is the producer span's duration, the connector's client-side
latency (the time a message waits in the broker, which Tempo can measure optionally as consumer
start minus producer end, is not measured here). Inferred and virtual-client calls take the
callee's timing, virtual-server calls the caller's; Zipkin links take the span's own, a server
linked to its parent client span the client's. `error` is true when either span has status
ERROR (Zipkin-origin: streams.assemble.zipkin_links). `span_id` names the callee span, or the
caller span of a virtual server (Zipkin-origin: the span the link was made from).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from streams.model.span import (
    END,
    START,
    ZIPKIN_REMOTE_SERVICE,
    ZIPKIN_SHARED,
    AttributeValue,
    SpanRow,
)

USER_CLIENT = "user"
"""Client of a root callee span nobody is recorded calling."""

CONNECTION_REQUEST = ""
CONNECTION_MESSAGING = "messaging_system"
CONNECTION_DATABASE = "database"
CONNECTION_VIRTUAL_NODE = "virtual_node"

VIRTUAL_SERVER_ATTRIBUTES = (
    "service.peer.name",
    "peer.service",
    "db.system.name",
    "db.system",
    "messaging.system",
    "server.address",
)
"""What names the uninstrumented peer of an unanswered caller span, first present wins."""
VIRTUAL_CLIENT_ATTRIBUTES = {
    "SERVER": ("service.peer.name", "peer.service"),
    "CONSUMER": ("service.peer.name", "peer.service", "messaging.system"),
}
"""What names the uninstrumented caller of a callee span without a caller, by callee kind."""

DATABASE_ATTRIBUTES = ("db.system.name", "db.system")
"""A virtual server named by a span with one of them is a database."""
ZIPKIN_ERROR = "error"
"""Zipkin's error tag, kept as an attribute where the ingest did not make it the status."""
ZIPKIN_ATTRIBUTES = (ZIPKIN_SHARED, ZIPKIN_REMOTE_SERVICE, ZIPKIN_ERROR)
"""What Zipkin's rules read beyond `peer.service`."""
GRAPH_ATTRIBUTES = frozenset(
    {*VIRTUAL_SERVER_ATTRIBUTES, *(k for keys in VIRTUAL_CLIENT_ATTRIBUTES.values() for k in keys)}
    | {*DATABASE_ATTRIBUTES, *ZIPKIN_ATTRIBUTES}
)
"""Every span attribute the pairing reads: all that held spans need to keep of theirs."""

NO_ATTRIBUTES: dict[str, AttributeValue] = {}
"""Read for a held slim row's None attributes (streams.assemble.compact); never written."""
CALLER_KINDS = frozenset({"CLIENT", "PRODUCER"})
CALLEE_KINDS = frozenset({"SERVER", "CONSUMER"})
REMOTE_KINDS = CALLER_KINDS | CALLEE_KINDS
KINDLESS = frozenset({"INTERNAL", "UNSPECIFIED"})
MESSAGING_KINDS = frozenset({"PRODUCER", "CONSUMER"})


class EdgeObservation(NamedTuple):
    """One call along a service-graph edge, seen in one trace."""

    client: str
    """Calling service, a virtual node, or "user" for a root callee nobody is seen calling."""
    server: str
    """Called service or virtual node."""
    connection_type: str
    """"" request/response, messaging_system, database or virtual_node."""
    end_time_unix_nano: int
    """Event time for windowing: the caller span's end where there is a caller span."""
    duration_ns: int
    """Call latency: the caller span's duration where there is one, else the callee's."""
    error: bool
    """Either side has status ERROR."""
    trace_id: str
    span_id: str
    """The span identifying the call: the callee span, or the caller of a virtual server."""


def span_duration_ns(span: SpanRow) -> int:
    """The span's duration, 0 for one that ends before it starts."""
    duration: int = span[END] - span[START]
    return max(0, duration)


def first_text(attributes: dict[str, AttributeValue], keys: Sequence[str]) -> str:
    """The first non-empty string among `attributes[key]` for `keys` in order, "" for none."""
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return ""
