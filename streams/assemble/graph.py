"""Service-graph calls of one assembled trace: who called whom, paired from its spans.

A *caller* span is CLIENT or PRODUCER, a *callee* span SERVER or CONSUMER; INTERNAL (and
UNSPECIFIED) spans are local work. The rules, after Zipkin's `DependencyLinker` and the
OpenTelemetry Collector's `servicegraphconnector` (itself Grafana Tempo's service-graph
processor), and where we part from them:

1. **Pairs.** A callee pairs with its parent when that is a caller span. Like Zipkin (and unlike
   the OTel connector, which pairs on parent id only) it also pairs with the nearest caller
   ancestor reached through local spans, unless a local span of a third service sits between
   them: then that service is the caller (rule 2). A CONSUMER also pairs with each PRODUCER
   span of this trace it links to (the connector's linked consumers; the connector then ignores
   the parent, we keep a producer parent too, so a late linked producer cannot undo a pair
   counted in an earlier version). A CONSUMER under a CLIENT of its own service is no pair:
   that CLIENT is the consumer's own "receive" call. The edge is caller service -> callee
   service, connection type `messaging_system` for a CONSUMER callee and "" for a SERVER callee
   (Zipkin counts PRODUCER -> SERVER as the RPC it is). A caller span with several callees (a
   client span a server joined twice, a message several consumers read) counts once per
   callee: each callee span is a call received, as Zipkin counts (the connector counts the
   first one only).
2. **Inferred callers** (Zipkin's "nearest remote ancestor"). A callee with no caller span: the
   caller is the first local span of another service above it, else the service of its
   nearest remote-kind ancestor (e.g. a SERVER right under another service's SERVER, whose
   client is not instrumented). Nothing when that is the callee's own service: nested SERVER
   spans of one service are layers of instrumentation, not calls. The connector makes no edge
   here.
3. **Virtual servers** (uninstrumented peers). A caller span no callee paired with names its
   peer by the first non-empty string of `peer.service`, `db.system`, `messaging.system`,
   `server.address` (the connector's `virtual_node_peer_attributes` default is peer.service,
   db.name, db.system; db.name is deprecated by the semantic conventions, messaging.system is
   ours so an unanswered producer points at its broker). Connection type `database` when the
   span has `db.system`, else `virtual_node`. Without any of them: no edge, as Tempo does (the
   connector reports such a call to a node named "unknown"; Zipkin makes no link either). The
   connector also turns every client span with `db.name` into a database edge even when the
   database's server span is there: we let an instrumented server win.
4. **Virtual clients.** A callee with neither a caller span nor an inferred caller: the client
   is its `peer.service` (Zipkin's remoteEndpoint of a server or consumer span) or, for a
   CONSUMER, its `messaging.system`; else "user" when it is a root span (as the connector and
   Tempo do). Connection type `virtual_node`. Otherwise (an orphan, whose caller may still
   arrive) nothing.
5. **Self-calls** between a caller span and a callee span of one service are edges: Zipkin
   links loopback spans and the connector pairs by id whatever the services.
6. **Messaging through a broker:** Zipkin links producer -> broker and broker -> consumer and
   never producer -> consumer; we link producer -> consumer directly, as the connector does,
   and name the broker only where one side is missing (rules 3 and 4). Pairs form within one
   trace only: a consumer whose link points into another trace gets a virtual client.
7. **Not done from Zipkin:** the backfilled link from the nearest remote ancestor to a CLIENT
   span of another service. Our Zipkin ingest splits shared spans and leaves the server's
   children from other payloads under the client span (see streams.ingest.zipkin), so that
   backfill would count the call twice. Kind-less spans with a remote endpoint, which Zipkin
   treats as clients, arrive here as INTERNAL and make no edge.

Timing, errors, exemplar: a paired call takes the caller span's end and duration (one number;
the connector keeps client and server histograms apart), so a skewed server clock does not
matter; for messaging that is the producer span's duration, the connector's client-side
latency (the time a message waits in the broker, which Tempo can measure optionally as consumer
start minus producer end, is not measured here). Inferred and virtual-client calls take the
callee's timing, virtual-server calls the caller's. `error` is true when either span has
status ERROR. `span_id` names the callee span, or the caller span of a virtual server.

Versions: a trace re-emitted after late spans carries all its spans, earlier ones first. A call
belongs to the version in which the last span that decided it arrived (the caller, the callee
and the spans walked between them), so each version reports only calls completed by its new
spans. Known imperfection: a call decided without its other half (a virtual server for a client
span whose server span comes late, a virtual client or inferred caller for an orphan callee)
is counted in that version and counted again, as the real pair, when the missing half arrives.

Malformed traces are analysed as streams.assemble.structure's forest: the first span of a
duplicated id is kept, parent cycles are cut, orphans are top-level. Linear in the span count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from streams.assemble.structure import TraceStructure, analyze_structure
from streams.model.span import (
    ATTRIBUTES,
    END,
    KIND,
    LINKS,
    PARENT_SPAN_ID,
    SERVICE_NAME,
    SPAN_ID,
    START,
    STATUS_CODE,
    TRACE_ID,
    AttributeValue,
    Span,
    SpanRow,
    span_rows,
)

USER_CLIENT = "user"
"""Client of a root callee span nobody is recorded calling."""

CONNECTION_REQUEST = ""
CONNECTION_MESSAGING = "messaging_system"
CONNECTION_DATABASE = "database"
CONNECTION_VIRTUAL_NODE = "virtual_node"

VIRTUAL_SERVER_ATTRIBUTES = ("peer.service", "db.system", "messaging.system", "server.address")
"""What names the uninstrumented peer of an unanswered caller span, first present wins."""
VIRTUAL_CLIENT_ATTRIBUTES = {
    "SERVER": ("peer.service",),
    "CONSUMER": ("peer.service", "messaging.system"),
}
"""What names the uninstrumented caller of a callee span without a caller, by callee kind."""

DATABASE_ATTRIBUTE = "db.system"
"""A virtual server named by a span with it is a database."""
GRAPH_ATTRIBUTES = frozenset(
    {*VIRTUAL_SERVER_ATTRIBUTES, *(k for keys in VIRTUAL_CLIENT_ATTRIBUTES.values() for k in keys)}
    | {DATABASE_ATTRIBUTE}
)
"""Every span attribute the pairing reads: all that held spans need to keep of theirs."""

_CALLER_KINDS = frozenset({"CLIENT", "PRODUCER"})
_CALLEE_KINDS = frozenset({"SERVER", "CONSUMER"})
_REMOTE_KINDS = _CALLER_KINDS | _CALLEE_KINDS


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


def _duration_ns(span: SpanRow) -> int:
    duration: int = span[END] - span[START]
    return max(0, duration)


def _first_text(attributes: dict[str, AttributeValue], keys: Sequence[str]) -> str:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def edges_from_trace(
    spans: Sequence[Span] | Sequence[SpanRow],
    new_from: int = 0,
    structure: TraceStructure | None = None,
) -> list[EdgeObservation]:
    """The service-graph calls in one assembled trace version; only calls completed by spans at
    index >= new_from. In span order: by the span identifying the call, then by caller.
    `structure` is `analyze_structure(spans)` when the caller already has it."""
    if new_from >= len(spans):
        return []
    if structure is None:
        structure = analyze_structure(spans)
    unique = structure.spans
    parent = structure.parent
    count = len(unique)

    # Index in `spans` of each unique span (the first of a duplicated id), for `new_from`.
    if count == len(spans):
        position = list(range(count))
    else:
        first: dict[str, int] = {}
        for k, span in enumerate(span_rows(spans)):
            first.setdefault(span[SPAN_ID], k)
        position = [first[span[SPAN_ID]] for span in unique]

    # Top-down, for each span: its nearest remote-kind ancestor-or-self; for a local span, the
    # service of the nearest local ancestor of another service before that remote one; and the
    # highest position on the path up to the remote one (the spans that decide a pairing).
    remote_above = [-1] * count
    other_service: list[str | None] = [None] * count
    path_max = [0] * count
    for i in structure.order:
        span = unique[i]
        p = parent[i]
        path_max[i] = position[i]
        if span[KIND] in _REMOTE_KINDS:
            remote_above[i] = i
        elif p >= 0:
            remote_above[i] = remote_above[p]
            if path_max[p] > position[i]:
                path_max[i] = path_max[p]
            if unique[p][KIND] not in _REMOTE_KINDS:
                above = unique[p][SERVICE_NAME]
                other_service[i] = above if above != span[SERVICE_NAME] else other_service[p]

    index: dict[str, int] | None = None  # span id -> unique index, for links (rare)
    answered: set[int] = set()
    found: dict[int, list[EdgeObservation]] = {}

    for i, callee in enumerate(unique):
        kind = callee[KIND]
        if kind not in _CALLEE_KINDS:
            continue
        service = callee[SERVICE_NAME]
        connection = CONNECTION_MESSAGING if kind == "CONSUMER" else CONNECTION_REQUEST
        # Caller span -> the highest position among the spans that paired them.
        callers: dict[int, int] = {}
        if kind == "CONSUMER":
            links = callee[LINKS] or ()
            if links and index is None:
                index = {span[SPAN_ID]: k for k, span in enumerate(unique)}
            for link in links:
                assert index is not None
                c = index.get(link["span_id"], -1)
                if (
                    c >= 0
                    and link["trace_id"] == callee[TRACE_ID]
                    and unique[c][KIND] == "PRODUCER"
                ):
                    callers[c] = max(position[i], position[c])

        caller_service: str | None = None
        decided_at = position[i]
        p = parent[i]
        if p >= 0:
            other: str | None = None
            if unique[p][KIND] in _REMOTE_KINDS:
                r = p
            else:
                r = remote_above[p]
                above = unique[p][SERVICE_NAME]
                other = above if above != service else other_service[p]
            decided_at = max(decided_at, path_max[p])
            if r >= 0:
                caller = unique[r]
                pairs = caller[KIND] in _CALLER_KINDS and (
                    other is None or other == caller[SERVICE_NAME]
                )
                if pairs and kind == "CONSUMER" and caller[KIND] == "CLIENT":
                    pairs = caller[SERVICE_NAME] != service  # its own receive call
                if pairs:
                    callers[r] = min(callers.get(r, decided_at), decided_at)
                else:
                    caller_service = other if other is not None else caller[SERVICE_NAME]
            else:
                caller_service = other
            if caller_service == service:
                caller_service = None

        observations: list[EdgeObservation] = []
        if callers:
            for c in sorted(callers, key=position.__getitem__) if len(callers) > 1 else callers:
                answered.add(c)
                if callers[c] < new_from:
                    continue
                caller = unique[c]
                observations.append(
                    EdgeObservation(
                        caller[SERVICE_NAME],
                        service,
                        connection,
                        caller[END],
                        _duration_ns(caller),
                        caller[STATUS_CODE] == "ERROR" or callee[STATUS_CODE] == "ERROR",
                        callee[TRACE_ID],
                        callee[SPAN_ID],
                    )
                )
        else:
            if caller_service is None:
                connection = CONNECTION_VIRTUAL_NODE
                caller_service = _first_text(callee[ATTRIBUTES], VIRTUAL_CLIENT_ATTRIBUTES[kind])
                if not caller_service and not callee[PARENT_SPAN_ID]:
                    caller_service = USER_CLIENT
            if caller_service and decided_at >= new_from:
                observations.append(
                    EdgeObservation(
                        caller_service,
                        service,
                        connection,
                        callee[END],
                        _duration_ns(callee),
                        callee[STATUS_CODE] == "ERROR",
                        callee[TRACE_ID],
                        callee[SPAN_ID],
                    )
                )
        if observations:
            found[i] = observations

    edges: list[EdgeObservation] = []
    for i, span in enumerate(unique):
        mine = found.get(i)
        if mine is not None:
            edges.extend(mine)
        elif span[KIND] in _CALLER_KINDS and i not in answered and position[i] >= new_from:
            attributes = span[ATTRIBUTES]
            peer = _first_text(attributes, VIRTUAL_SERVER_ATTRIBUTES)
            if peer:
                database = _first_text(attributes, (DATABASE_ATTRIBUTE,))
                edges.append(
                    EdgeObservation(
                        span[SERVICE_NAME],
                        peer,
                        CONNECTION_DATABASE if database else CONNECTION_VIRTUAL_NODE,
                        span[END],
                        _duration_ns(span),
                        span[STATUS_CODE] == "ERROR",
                        span[TRACE_ID],
                        span[SPAN_ID],
                    )
                )
    return edges
