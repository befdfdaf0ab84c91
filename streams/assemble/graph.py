"""Service-graph calls of one assembled trace: who called whom, paired from its spans.

**Which rules.** A trace whose spans all came through the Zipkin bridge (`source_format`
zipkin_json) gets Zipkin's dependency links (below, "Zipkin-origin traces"); every other trace
gets the OpenTelemetry rules, after the Collector's `servicegraphconnector`
(open-telemetry/opentelemetry-collector-contrib, connector/servicegraphconnector/connector.go,
itself Grafana Tempo's service-graph processor), numbered below with where we part from it.
A trace mixing origins gets the OpenTelemetry rules, its Zipkin-origin spans read as Zipkin's
model has them ("Traces mixing origins" below). Whatever the origin, a CLIENT span whose child
is a CONSUMER is not a client -> server call.

A *caller* span is CLIENT or PRODUCER, a *callee* span SERVER or CONSUMER; INTERNAL (and
UNSPECIFIED) spans are local work.

1. **Pairs.** A callee pairs with its parent when that is a caller span. Unlike the connector
   (which pairs on parent id only) it also pairs with the nearest caller ancestor reached
   through local spans, unless a local span of a third service sits between them: then that
   service is the caller (rule 2). A CONSUMER also pairs with each PRODUCER span of this trace
   it links to (the connector's linked consumers; the connector then ignores the parent, we
   keep a producer parent too, so a late linked producer cannot undo a pair counted in an
   earlier version). A CONSUMER under a CLIENT (directly or through the client's local spans)
   is no pair, whichever services they are: that CLIENT is a "receive" call to the broker, or a
   client used where a PRODUCER was meant, and the consumer side names its broker (rule 4), as
   Zipkin's linker decides (its `clientDoesntLinkToConsumer` case; the connector pairs them).
   The edge is caller service -> callee service, connection type `messaging_system` for a
   CONSUMER callee and "" for a SERVER callee (PRODUCER -> SERVER is the RPC it is, as in
   Zipkin). A caller span with several callees (a client span a server joined twice, a message
   several consumers read) counts once per callee: each callee span is a call received, as
   Zipkin counts (the connector counts the first one only).
2. **Inferred callers** (Zipkin's "nearest remote ancestor"). A callee with no caller span: the
   caller is the first local span of another service above it, else the service of its
   nearest remote-kind ancestor (e.g. a SERVER right under another service's SERVER, whose
   client is not instrumented), never a CLIENT above a CONSUMER (rule 1). Nothing when that is
   the callee's own service: nested SERVER spans of one service are layers of instrumentation,
   not calls. The connector makes no edge here.
3. **Virtual servers** (uninstrumented peers). A caller span no callee paired with names its
   peer by the first non-empty string of VIRTUAL_SERVER_ATTRIBUTES: `service.peer.name`,
   `peer.service`, `db.system.name`, `db.system`, `messaging.system`, `server.address`. The
   connector's `virtual_node_peer_attributes` default is `peer.service`, `db.name`,
   `db.system`, first present wins; we put each current semantic convention before the name it
   replaces (`service.peer.name` for `peer.service`, `db.system.name` for `db.system`; a span
   carrying both during a migration names one peer), leave out `db.name` (deprecated; its
   successor `db.namespace` names a database inside a server, not a peer), and add
   `messaging.system` (so an unanswered producer points at its broker, as Zipkin's producer ->
   broker link does) and `server.address` last (the stable successor of `net.peer.name`, which
   older connector versions read). Connection type `database` when the span has
   `db.system.name` or `db.system` (the connector: `db.name`, its `database_name_attributes`),
   else `virtual_node`. Without any of them: no edge, as Tempo does (the connector reports such
   a call to a node named "unknown"). The connector also turns every client span with
   `db.name` into a database edge even when the database's server span is there: we let an
   instrumented server win.
4. **Virtual clients.** A callee with neither a caller span nor an inferred caller: the client
   is its `service.peer.name` or `peer.service` (Zipkin's remoteEndpoint of a server or
   consumer span), for a CONSUMER then its `messaging.system` (its broker); else "user" when it
   is a root span (as the connector and Tempo do). Connection type `virtual_node`. Otherwise
   (an orphan, whose caller may still arrive) nothing.
5. **Self-calls** between a caller span and a callee span of one service are edges: Zipkin
   links loopback spans and the connector pairs by id whatever the services.
6. **Messaging:** a PRODUCER -> CONSUMER pair is linked directly, as the connector does; the
   broker is named only where one side is missing (rules 3 and 4). Pairs form within one trace
   only: a consumer whose link points into another trace gets a virtual client.

**Zipkin-origin traces** get what `zipkin2.internal.DependencyLinker` (openzipkin/zipkin) makes
of them, over the tree `zipkin2.internal.SpanNode.Builder` builds:

- The tree: the shared server half of a call (B3 "join", split into its own span by our ingest,
  streams.ingest.zipkin) is the child of its client span, and a span whose parent id is that
  call's id and whose service is the server's is the server's child (Zipkin matches the whole
  local endpoint; we match the service name), wherever it arrived from. The root is the
  parentless span with the lowest span id; every other top-level span (an orphan, a second
  root) hangs below it.
- Per span, breadth-first: a CLIENT span with children is skipped (its server names the call).
  A kind-less span with both a local and a remote service name is a CLIENT; without both it is
  local work. PRODUCER -> broker and broker -> CONSUMER are linked when the span names its
  broker (remote endpoint), never producer -> consumer directly. A SERVER is called by the
  service of its nearest ancestor with a kind, else by its remote endpoint's service (a root
  SERVER naming none makes no link: there is no "user"). A leaf CLIENT calls its remote
  endpoint's service (the caller is the nearest kinded ancestor's service when the client names
  no local service) and, when the nearest kinded ancestor is of another service, that service
  also calls the client's (Zipkin's backfilled "missing link to client span"). Loopback links
  (one service on both ends) count.
- Errors: a span with status ERROR or an `error` attribute (Zipkin's `error` tag; our ingest
  makes it the status). A server or client not in error takes its parent's error when that
  parent is its nearest kinded ancestor and a CLIENT (not for a shared server half: its Zipkin
  parent id is the client's parent). A backfilled link is never in error.
- The remote endpoint's service name is `zipkin.remote_service_name` where the ingest kept it
  (a `peer.service` tag hid it), else `peer.service`; a local service `unknown_service` is one
  the span did not name. Connection types (Zipkin has none): `messaging_system` for broker
  links, "" where both ends are instrumented spans, else `database` (`db.system(.name)`) or
  `virtual_node`.
- Where we differ: Zipkin lowercases service names on ingest and we keep them as reported;
  Zipkin merges spans reported in parts under one id (we keep the first), and backfills the
  shared flag of a SERVER span reported under its client's id without it (we keep the client);
  a span our ingest marked ERROR from `otel.status_code` alone is in error here, not in Zipkin.

**Traces mixing origins** (some spans came through the Zipkin bridge, some not) get the
OpenTelemetry rules 1-6, each Zipkin-origin span read as Zipkin's model has it:

- M1. A call whose two halves are both here is one call, whatever their origins: the connector
  pairs a server span with the client span its parent id names (connector.go), and Zipkin's
  linker skips a client span with children and links its server from it (DependencyLinker.java,
  `firstRemoteAncestor`); the anchors agree. So a shared server half (`zipkin.shared`, the child
  of the client span our ingest gives it) under an OTel CLIENT is one call with it, in error
  when either half is (the connector; Zipkin ignores the client's error for a shared half). Its
  service's spans that arrived in other payloads stay under the client span (Zipkin's tree moves
  them below the server half): no call changes, rule 2 names the service between.
- M2. A Zipkin kind-less span naming both its services is a CLIENT span (`is_zipkin_client`;
  the linker treats "unknown type of span as a client span if we know both sides"): an OTel
  SERVER below it pairs with it, one call (Zipkin alone links twice, from the span and from the
  server); unanswered, it calls its peer (rule 3).
- M3. A Zipkin PRODUCER or CONSUMER naming its service and its broker (remote endpoint) links to
  or from that broker, connection `messaging_system`, with its own timing, decided by itself
  alone (the linker links a messaging span to its broker, never producer to consumer). So a
  PRODUCER -> CONSUMER pair (parent or link) with such a Zipkin half is two hops through that
  broker, never a direct pair, and the message is counted once per hop: an OTel other half
  goes through the broker the Zipkin half names, decided when both halves are here (two Zipkin
  halves each name their own, as in Zipkin). A Zipkin messaging span naming no broker pairs by
  rule 1 (the linker cannot link it).
- The rest is rules 1-6: "user" calls a Zipkin root SERVER (the linker makes no link for it), a
  `peer.service` tag that hides the remote endpoint names the peer (rule 3's order), no client
  link is backfilled, and status ERROR is the error.

Timing, errors, exemplar: a paired call takes the caller span's end and duration (one number;
the connector keeps client and server histograms apart), so a skewed server clock does not
matter; for messaging that is the producer span's duration, the connector's client-side
latency (the time a message waits in the broker, which Tempo can measure optionally as consumer
start minus producer end, is not measured here). Inferred and virtual-client calls take the
callee's timing, virtual-server calls the caller's; Zipkin links take the span's own, a server
linked to its parent client span the client's. `error` is true when either span has status
ERROR (Zipkin-origin: as above). `span_id` names the callee span, or the caller span of a
virtual server (Zipkin-origin: the span the link was made from).

Versions: a trace re-emitted after late spans carries all its spans, earlier ones first. A call
belongs to the version in which the last span that decided it arrived (the caller, the callee
and the spans walked between them), so each version reports only calls completed by its new
spans. Known imperfection: a call decided without its other half (a virtual server for a client
span whose server span comes late, a virtual client or inferred caller for an orphan callee)
is counted in that version and counted again, as the real pair, when the missing half arrives;
so is a call of a trace whose spans were all Zipkin-origin until a version brought others.

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
    SOURCE_FORMAT,
    SPAN_ID,
    START,
    STATUS_CODE,
    TRACE_ID,
    UNKNOWN_SERVICE,
    ZIPKIN_FORMAT,
    ZIPKIN_REMOTE_SERVICE,
    ZIPKIN_SHARED,
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

_NO_ATTRIBUTES: dict[str, AttributeValue] = {}
"""Read for a held slim row's None attributes (streams.assemble.compact); never written."""
_CALLER_KINDS = frozenset({"CLIENT", "PRODUCER"})
_CALLEE_KINDS = frozenset({"SERVER", "CONSUMER"})
_REMOTE_KINDS = _CALLER_KINDS | _CALLEE_KINDS
_KINDLESS = frozenset({"INTERNAL", "UNSPECIFIED"})
_MESSAGING_KINDS = frozenset({"PRODUCER", "CONSUMER"})


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


def _zipkin_remote_service(attributes: dict[str, AttributeValue]) -> str:
    """A Zipkin-origin span's remoteEndpoint.serviceName, "" for none."""
    value = attributes.get(ZIPKIN_REMOTE_SERVICE)
    if value is None:
        value = attributes.get("peer.service")
    return value if isinstance(value, str) else ""


def is_zipkin_client(span: SpanRow) -> bool:
    """Whether a span is a Zipkin-origin kind-less span naming both its services: the client
    side of a call in Zipkin's model (its DependencyLinker treats it as a CLIENT span)."""
    return (
        span[SOURCE_FORMAT] == ZIPKIN_FORMAT
        and span[KIND] in _KINDLESS
        and span[SERVICE_NAME] not in ("", UNKNOWN_SERVICE)
        and bool(_zipkin_remote_service(span[ATTRIBUTES] or _NO_ATTRIBUTES))
    )


def _as_zipkin_client(span: SpanRow) -> SpanRow:
    """The span as the OpenTelemetry rules read it in a trace mixing origins: a Zipkin client
    (`is_zipkin_client`) is a CLIENT span."""
    if is_zipkin_client(span):
        return (*span[:KIND], "CLIENT", *span[KIND + 1 :])
    return span


def _zipkin_brokers(spans: Sequence[SpanRow]) -> dict[int, str]:
    """Index -> broker of each Zipkin-origin PRODUCER or CONSUMER span naming both its service
    and its broker (remote endpoint): the messaging spans Zipkin links to their broker."""
    brokers: dict[int, str] = {}
    for i, span in enumerate(spans):
        if (
            span[SOURCE_FORMAT] == ZIPKIN_FORMAT
            and span[KIND] in _MESSAGING_KINDS
            and span[SERVICE_NAME] not in ("", UNKNOWN_SERVICE)
        ):
            broker = _zipkin_remote_service(span[ATTRIBUTES] or _NO_ATTRIBUTES)
            if broker:
                brokers[i] = broker
    return brokers


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

    origins = {span[SOURCE_FORMAT] for span in unique}
    # Mixed origins: Zipkin messaging spans naming their broker (M3 below).
    brokers: dict[int, str] = {}
    # A producer whose message goes through a broker its Zipkin consumer named (M3): that
    # broker and the position deciding it.
    relayed: dict[int, tuple[str, int]] = {}
    if ZIPKIN_FORMAT in origins:
        if len(origins) == 1:
            return _zipkin_links(structure, position, new_from)
        unique = [_as_zipkin_client(span) for span in unique]
        brokers = _zipkin_brokers(unique)

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
                if kind == "CONSUMER" and caller[KIND] == "CLIENT":
                    # Not a call (rule 1): only a third service's local span in between is one.
                    caller_service = other if other != caller[SERVICE_NAME] else None
                elif caller[KIND] in _CALLER_KINDS and (
                    other is None or other == caller[SERVICE_NAME]
                ):
                    callers[r] = min(callers.get(r, decided_at), decided_at)
                else:
                    caller_service = other if other is not None else caller[SERVICE_NAME]
            else:
                caller_service = other
            if caller_service == service:
                caller_service = None

        observations: list[EdgeObservation] = []
        hop: tuple[str, int] | None = None  # (broker, position deciding it), M3
        if brokers and kind == "CONSUMER":
            own = brokers.get(i)
            if own:
                hop = (own, position[i])
            for c in sorted(callers, key=position.__getitem__):
                broker = own or brokers.get(c)
                if broker:
                    decided = callers.pop(c)
                    answered.add(c)
                    if c not in brokers:
                        relayed.setdefault(c, (broker, decided))
                    if hop is None:
                        hop = (broker, decided)
            if hop is not None and hop[1] >= new_from:
                observations.append(
                    EdgeObservation(
                        hop[0], service, connection, callee[END], _duration_ns(callee),
                        callee[STATUS_CODE] == "ERROR", callee[TRACE_ID], callee[SPAN_ID],
                    )
                )  # fmt: skip
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
        elif hop is None:
            if caller_service is None:
                connection = CONNECTION_VIRTUAL_NODE
                caller_service = _first_text(
                    callee[ATTRIBUTES] or _NO_ATTRIBUTES, VIRTUAL_CLIENT_ATTRIBUTES[kind]
                )
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
        elif brokers and (i in brokers or i in relayed) and span[KIND] == "PRODUCER":
            broker, decided = relayed[i] if i in relayed else (brokers[i], position[i])
            if decided >= new_from:
                edges.append(
                    EdgeObservation(
                        span[SERVICE_NAME], broker, CONNECTION_MESSAGING, span[END],
                        _duration_ns(span), span[STATUS_CODE] == "ERROR", span[TRACE_ID],
                        span[SPAN_ID],
                    )
                )  # fmt: skip
        elif span[KIND] in _CALLER_KINDS and i not in answered and position[i] >= new_from:
            attributes = span[ATTRIBUTES] or _NO_ATTRIBUTES
            peer = _first_text(attributes, VIRTUAL_SERVER_ATTRIBUTES)
            if peer:
                edges.append(
                    EdgeObservation(
                        span[SERVICE_NAME],
                        peer,
                        CONNECTION_DATABASE
                        if _first_text(attributes, DATABASE_ATTRIBUTES)
                        else CONNECTION_VIRTUAL_NODE,
                        span[END],
                        _duration_ns(span),
                        span[STATUS_CODE] == "ERROR",
                        span[TRACE_ID],
                        span[SPAN_ID],
                    )
                )
    return edges


def _virtual_server_connection(attributes: dict[str, AttributeValue]) -> str:
    """A virtual server is a database when the span names a database system."""
    return CONNECTION_DATABASE if _first_text(attributes, DATABASE_ATTRIBUTES) else (
        CONNECTION_VIRTUAL_NODE
    )


def _zipkin_links(
    structure: TraceStructure, position: list[int], new_from: int
) -> list[EdgeObservation]:
    """Zipkin's dependency links of a trace whose spans all came through the Zipkin bridge, as
    observations (the rules: "Zipkin-origin traces" above; openzipkin/zipkin,
    zipkin2/internal/DependencyLinker.java over SpanNode.java's tree)."""
    unique = structure.spans
    parent = structure.parent
    count = len(unique)

    # Zipkin's tree: a shared server half's children of its service move below it ...
    tree_parent = list(parent)
    shared: dict[tuple[str, str], int] = {}
    for i, span in enumerate(unique):
        attributes = span[ATTRIBUTES] or _NO_ATTRIBUTES
        if span[KIND] == "SERVER" and attributes.get(ZIPKIN_SHARED) is True:
            shared.setdefault((span[PARENT_SPAN_ID], span[SERVICE_NAME]), i)
    if shared:
        halves = set(shared.values())
        for i, span in enumerate(unique):
            s = shared.get((span[PARENT_SPAN_ID], span[SERVICE_NAME]), -1)
            # The same structural parent: moving a span below its sibling makes no cycle.
            if s >= 0 and i not in halves and parent[s] == parent[i]:
                tree_parent[i] = s
    # ... and every top-level span but the root (the lowest parentless id) hangs below the root.
    roots = [i for i in structure.top_level if not unique[i][PARENT_SPAN_ID]]
    if roots:
        root = min(roots, key=lambda i: unique[i][SPAN_ID])
        for i in structure.top_level:
            if i != root and tree_parent[i] < 0:
                tree_parent[i] = root
    has_children = [False] * count
    for p in tree_parent:
        if p >= 0:
            has_children[p] = True

    # For each span: its nearest ancestor-or-self with a kind (Zipkin's "remote" span, -1 for
    # none) and the highest position on the way there (to the top when there is none).
    remote = [-2] * count  # -2: not yet known, -3: on the walk being resolved
    path_max = [0] * count
    for i in range(count):
        walk: list[int] = []
        j = i
        while j >= 0 and remote[j] == -2:
            remote[j] = -3
            walk.append(j)
            j = tree_parent[j]
        r, highest = (remote[j], path_max[j]) if j >= 0 and remote[j] != -3 else (-1, 0)
        for j in reversed(walk):
            if unique[j][KIND] in _KINDLESS:
                highest = max(highest, position[j])
            else:
                r, highest = j, position[j]
            remote[j] = r
            path_max[j] = highest

    edges: list[EdgeObservation] = []
    for i, span in enumerate(unique):
        kind = span[KIND]
        if kind == "CLIENT" and has_children[i]:
            continue  # its server names the call
        attributes = span[ATTRIBUTES] or _NO_ATTRIBUTES
        local = span[SERVICE_NAME] if span[SERVICE_NAME] != UNKNOWN_SERVICE else ""
        peer = _zipkin_remote_service(attributes)
        if kind in _KINDLESS:
            if not (local and peer):
                continue
            kind = "CLIENT"
        error = span[STATUS_CODE] == "ERROR" or ZIPKIN_ERROR in attributes
        trace_id = span[TRACE_ID]
        span_id = span[SPAN_ID]
        if kind == "PRODUCER" or kind == "CONSUMER":
            if local and peer and position[i] >= new_from:
                client, server = (local, peer) if kind == "PRODUCER" else (peer, local)
                edges.append(
                    EdgeObservation(
                        client, server, CONNECTION_MESSAGING, span[END], _duration_ns(span),
                        error, trace_id, span_id,
                    )
                )  # fmt: skip
            continue
        client, server = (peer, local) if kind == "SERVER" else (local, peer)
        connection = (
            CONNECTION_VIRTUAL_NODE if kind == "SERVER" else _virtual_server_connection(attributes)
        )
        timed = span
        p = tree_parent[i]
        a = remote[p] if p >= 0 else -1
        path_decided = max(position[i], path_max[p]) if p >= 0 else position[i]
        decided = position[i] if kind == "CLIENT" and client else path_decided
        ancestor = unique[a] if a >= 0 else None
        if ancestor is not None and ancestor[SERVICE_NAME] != UNKNOWN_SERVICE:
            above = ancestor[SERVICE_NAME]
            if kind == "CLIENT" and local and above != local and path_decided >= new_from:
                edges.append(
                    EdgeObservation(
                        above, local, CONNECTION_REQUEST, span[END], _duration_ns(span), False,
                        trace_id, span_id,
                    )
                )  # fmt: skip
            if kind == "SERVER" or not client:
                client = above
                decided = path_decided
                if kind == "SERVER":
                    connection = CONNECTION_REQUEST
                    if p == a and ancestor[KIND] in _CALLER_KINDS:
                        timed = ancestor  # the call as its client timed it
            if (
                not error
                and ancestor[KIND] == "CLIENT"
                and span[PARENT_SPAN_ID] == ancestor[SPAN_ID]
                and attributes.get(ZIPKIN_SHARED) is not True
            ):
                error = ancestor[STATUS_CODE] == "ERROR" or ZIPKIN_ERROR in (
                    ancestor[ATTRIBUTES] or _NO_ATTRIBUTES
                )
                decided = path_decided
        if client and server and decided >= new_from:
            edges.append(
                EdgeObservation(
                    client, server, connection, timed[END], _duration_ns(timed), error, trace_id,
                    span_id,
                )
            )  # fmt: skip
    return edges
