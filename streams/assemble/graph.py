"""Service-graph calls of one assembled trace: who called whom, paired from its spans.

**Which rules.** A trace whose spans all came through the Zipkin bridge (`source_format`
zipkin_json) gets Zipkin's dependency links (streams.assemble.zipkin_links); every other trace
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

Timing, errors and the span naming each call: streams.assemble.edges.

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

from streams.assemble.edges import (
    CALLEE_KINDS,
    CALLER_KINDS,
    CONNECTION_DATABASE,
    CONNECTION_MESSAGING,
    CONNECTION_REQUEST,
    CONNECTION_VIRTUAL_NODE,
    DATABASE_ATTRIBUTES,
    NO_ATTRIBUTES,
    REMOTE_KINDS,
    USER_CLIENT,
    VIRTUAL_CLIENT_ATTRIBUTES,
    VIRTUAL_SERVER_ATTRIBUTES,
    EdgeObservation,
    first_text,
    span_duration_ns,
)
from streams.assemble.structure import TraceStructure, analyze_structure
from streams.assemble.zipkin_links import as_zipkin_client, zipkin_brokers, zipkin_links
from streams.model.span import (
    ATTRIBUTES,
    END,
    KIND,
    LINKS,
    PARENT_SPAN_ID,
    SERVICE_NAME,
    SOURCE_FORMAT,
    SPAN_ID,
    STATUS_CODE,
    TRACE_ID,
    ZIPKIN_FORMAT,
    Span,
    SpanRow,
    span_rows,
)


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
            return zipkin_links(structure, position, new_from)
        unique = [as_zipkin_client(span) for span in unique]
        brokers = zipkin_brokers(unique)

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
        if span[KIND] in REMOTE_KINDS:
            remote_above[i] = i
        elif p >= 0:
            remote_above[i] = remote_above[p]
            if path_max[p] > position[i]:
                path_max[i] = path_max[p]
            if unique[p][KIND] not in REMOTE_KINDS:
                above = unique[p][SERVICE_NAME]
                other_service[i] = above if above != span[SERVICE_NAME] else other_service[p]

    index: dict[str, int] | None = None  # span id -> unique index, for links (rare)
    answered: set[int] = set()
    found: dict[int, list[EdgeObservation]] = {}

    for i, callee in enumerate(unique):
        kind = callee[KIND]
        if kind not in CALLEE_KINDS:
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
            if unique[p][KIND] in REMOTE_KINDS:
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
                elif caller[KIND] in CALLER_KINDS and (
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
                        hop[0], service, connection, callee[END], span_duration_ns(callee),
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
                        span_duration_ns(caller),
                        caller[STATUS_CODE] == "ERROR" or callee[STATUS_CODE] == "ERROR",
                        callee[TRACE_ID],
                        callee[SPAN_ID],
                    )
                )
        elif hop is None:
            if caller_service is None:
                connection = CONNECTION_VIRTUAL_NODE
                caller_service = first_text(
                    callee[ATTRIBUTES] or NO_ATTRIBUTES, VIRTUAL_CLIENT_ATTRIBUTES[kind]
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
                        span_duration_ns(callee),
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
                        span_duration_ns(span), span[STATUS_CODE] == "ERROR", span[TRACE_ID],
                        span[SPAN_ID],
                    )
                )  # fmt: skip
        elif span[KIND] in CALLER_KINDS and i not in answered and position[i] >= new_from:
            attributes = span[ATTRIBUTES] or NO_ATTRIBUTES
            peer = first_text(attributes, VIRTUAL_SERVER_ATTRIBUTES)
            if peer:
                edges.append(
                    EdgeObservation(
                        span[SERVICE_NAME],
                        peer,
                        CONNECTION_DATABASE
                        if first_text(attributes, DATABASE_ATTRIBUTES)
                        else CONNECTION_VIRTUAL_NODE,
                        span[END],
                        span_duration_ns(span),
                        span[STATUS_CODE] == "ERROR",
                        span[TRACE_ID],
                        span[SPAN_ID],
                    )
                )
    return edges
