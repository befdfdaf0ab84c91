"""Where a trace's errors originated, and how far up each one propagated.

An error span (status ERROR) whose parent also errored and waited for it passed its error up: the
parent's error is the child's, propagated. An origin is an error span that no error child passed
an error to: none of the children it waited for errored. Its chain is the error ancestors it
propagated through, nearest first, up to the first ancestor that did not error (the error was
handled there: caught, retried, turned into a fallback) or to the root.

Two refinements of "an error span none of whose descendants errored", on purpose:
- Propagation is contiguous: an error below a span that did not error was handled there, so an
  error above that span is an origin of its own, not a propagation of the deeper one.
- Propagation follows only children their parent waited for (`waits_for` in
  streams/assemble/critical_path.py: a CONSUMER under a PRODUCER, or a span that follows from its
  parent by a link, runs after the parent stopped waiting): an asynchronous child's error cannot
  be why its parent failed, so it is an origin whose chain stops there.

No anchor computes this (issue #16 item 9: no tracer gives it); what counts as asynchronous is the
critical path's rule, which follows Jaeger UI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from streams.assemble.critical_path import waits_for
from streams.assemble.structure import TraceStructure
from streams.model.span import (
    END,
    NAME,
    SERVICE_NAME,
    SPAN_ID,
    START,
    STATUS_CODE,
    STATUS_MESSAGE,
    SpanRow,
)


class ErrorHop(TypedDict):
    """One error ancestor an origin's error propagated through, as trace.avsc's ErrorHop."""

    service: str
    operation: str
    end_time_unix_nano: int
    """As reported (not skew-adjusted): the time its latency window is keyed by."""


class ErrorOrigin(TypedDict):
    """One span where an error originated, as schemas/avro/trace.avsc's ErrorOrigin."""

    span_id: str
    service: str
    operation: str
    status_message: str
    propagated_to: list[str]
    """Services of the error ancestors the error propagated through, nearest first, each once."""
    reached_root: bool
    """The error propagated up to the trace's root span (always False without a root)."""
    end_time_unix_nano: int
    """The origin span's end, as reported."""
    propagated_through: list[ErrorHop]
    """The error ancestors it propagated through, nearest first, one per span: where its error
    was seen (the error-origin windows count it at each, streams/aggregate/observations.py)."""


def error_origins(structure: TraceStructure) -> list[ErrorOrigin]:
    """The error origins of an analysed trace, earliest start first; [] when nothing errored."""
    spans = structure.spans
    errored = {i for i, s in enumerate(spans) if s[STATUS_CODE] == "ERROR"}
    if not errored:
        return []
    parent = structure.parent
    # up[i]: the parent that i's error propagated to, -1 where it stopped.
    up: dict[int, int] = {}
    caused: set[int] = set()
    for i in errored:
        p = parent[i]
        if p >= 0 and p in errored and waits_for(spans[p], spans[i]):
            up[i] = p
            caused.add(p)
        else:
            up[i] = -1
    # Top-down (parents first), each error span's chain is its parent's plus that parent: one
    # pass, however many origins share a long chain.
    above: dict[int, list[str]] = {}
    top: dict[int, int] = {}
    for i in structure.order:
        if i not in errored:
            continue
        p = up[i]
        if p < 0:
            above[i], top[i] = [], i
            continue
        service = spans[p][SERVICE_NAME]
        chain = above[p]
        if not chain or chain[0] != service:
            chain = [service, *(s for s in chain if s != service)]
        above[i] = chain
        top[i] = top[p]
    root = structure.root
    origins = sorted(errored - caused, key=lambda i: (spans[i][START], spans[i][SPAN_ID]))
    return [
        {
            "span_id": spans[i][SPAN_ID],
            "service": spans[i][SERVICE_NAME],
            "operation": spans[i][NAME],
            "status_message": spans[i][STATUS_MESSAGE],
            "propagated_to": list(above[i]),
            "reached_root": root >= 0 and top[i] == root,
            "end_time_unix_nano": spans[i][END],
            "propagated_through": _hops(spans, up, i),
        }
        for i in origins
    ]


def _hops(spans: Sequence[SpanRow], up: dict[int, int], origin: int) -> list[ErrorHop]:
    # Walked per origin, not built top-down as the chains are: one list per error span would
    # be quadratic in a long error chain; this is the size of the output.
    hops: list[ErrorHop] = []
    p = up[origin]
    while p >= 0:
        span = spans[p]
        hop: ErrorHop = {
            "service": span[SERVICE_NAME],
            "operation": span[NAME],
            "end_time_unix_nano": span[END],
        }
        hops.append(hop)
        p = up[p]
    return hops
