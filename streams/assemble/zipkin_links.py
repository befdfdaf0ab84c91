"""Zipkin's model of a trace's calls: the dependency links of a trace whose spans all came
through the Zipkin bridge, and what a Zipkin-origin span is in a trace mixing origins
(streams.assemble.graph says which trace gets which rules).

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
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.assemble.edges import (
    CALLER_KINDS,
    CONNECTION_DATABASE,
    CONNECTION_MESSAGING,
    CONNECTION_REQUEST,
    CONNECTION_VIRTUAL_NODE,
    DATABASE_ATTRIBUTES,
    KINDLESS,
    MESSAGING_KINDS,
    NO_ATTRIBUTES,
    ZIPKIN_ERROR,
    EdgeObservation,
    first_text,
    span_duration_ns,
)
from streams.assemble.structure import TraceStructure
from streams.model.span import (
    ATTRIBUTES,
    END,
    KIND,
    PARENT_SPAN_ID,
    SERVICE_NAME,
    SOURCE_FORMAT,
    SPAN_ID,
    STATUS_CODE,
    TRACE_ID,
    UNKNOWN_SERVICE,
    ZIPKIN_FORMAT,
    ZIPKIN_REMOTE_SERVICE,
    ZIPKIN_SHARED,
    AttributeValue,
    SpanRow,
)


def zipkin_remote_service(attributes: dict[str, AttributeValue]) -> str:
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
        and span[KIND] in KINDLESS
        and span[SERVICE_NAME] not in ("", UNKNOWN_SERVICE)
        and bool(zipkin_remote_service(span[ATTRIBUTES] or NO_ATTRIBUTES))
    )


def as_zipkin_client(span: SpanRow) -> SpanRow:
    """The span as the OpenTelemetry rules read it in a trace mixing origins: a Zipkin client
    (`is_zipkin_client`) is a CLIENT span."""
    if is_zipkin_client(span):
        return (*span[:KIND], "CLIENT", *span[KIND + 1 :])
    return span


def zipkin_brokers(spans: Sequence[SpanRow]) -> dict[int, str]:
    """Index -> broker of each Zipkin-origin PRODUCER or CONSUMER span naming both its service
    and its broker (remote endpoint): the messaging spans Zipkin links to their broker."""
    brokers: dict[int, str] = {}
    for i, span in enumerate(spans):
        if (
            span[SOURCE_FORMAT] == ZIPKIN_FORMAT
            and span[KIND] in MESSAGING_KINDS
            and span[SERVICE_NAME] not in ("", UNKNOWN_SERVICE)
        ):
            broker = zipkin_remote_service(span[ATTRIBUTES] or NO_ATTRIBUTES)
            if broker:
                brokers[i] = broker
    return brokers

def _virtual_server_connection(attributes: dict[str, AttributeValue]) -> str:
    """A virtual server is a database when the span names a database system."""
    return CONNECTION_DATABASE if first_text(attributes, DATABASE_ATTRIBUTES) else (
        CONNECTION_VIRTUAL_NODE
    )


def zipkin_links(
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
        attributes = span[ATTRIBUTES] or NO_ATTRIBUTES
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
            if unique[j][KIND] in KINDLESS:
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
        attributes = span[ATTRIBUTES] or NO_ATTRIBUTES
        local = span[SERVICE_NAME] if span[SERVICE_NAME] != UNKNOWN_SERVICE else ""
        peer = zipkin_remote_service(attributes)
        if kind in KINDLESS:
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
                        client, server, CONNECTION_MESSAGING, span[END], span_duration_ns(span),
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
                        above, local, CONNECTION_REQUEST, span[END], span_duration_ns(span), False,
                        trace_id, span_id,
                    )
                )  # fmt: skip
            if kind == "SERVER" or not client:
                client = above
                decided = path_decided
                if kind == "SERVER":
                    connection = CONNECTION_REQUEST
                    if p == a and ancestor[KIND] in CALLER_KINDS:
                        timed = ancestor  # the call as its client timed it
            if (
                not error
                and ancestor[KIND] == "CLIENT"
                and span[PARENT_SPAN_ID] == ancestor[SPAN_ID]
                and attributes.get(ZIPKIN_SHARED) is not True
            ):
                error = ancestor[STATUS_CODE] == "ERROR" or ZIPKIN_ERROR in (
                    ancestor[ATTRIBUTES] or NO_ATTRIBUTES
                )
                decided = path_decided
        if client and server and decided >= new_from:
            edges.append(
                EdgeObservation(
                    client, server, connection, timed[END], span_duration_ns(timed), error,
                    trace_id, span_id,
                )
            )  # fmt: skip
    return edges
