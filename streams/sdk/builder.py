"""Building spans without OpenTelemetry: a small Tracer whose spans go to a SpanProducer.

    tracer = Tracer("checkout", producer)
    with tracer.start_span("GET /cart", kind="SERVER", parent=parse_traceparent(header)) as span:
        span.set_attribute("http.response.status_code", 200)
        call_backend(headers={"traceparent": span.traceparent()})

Context is passed explicitly (a `SpanContext` or the parent span itself); there is no implicit
current span, so nothing here depends on threads or asyncio tasks.
"""

from __future__ import annotations

import random
import re
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from streams.model.span import SPAN_KINDS, STATUS_CODES, AttributeValue, Span, SpanEvent, SpanLink

TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
SCOPE_NAME = "tracepipe.sdk"

# version-traceid-spanid-flags, lowercase hex; version ff is forbidden by W3C Trace Context.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16


def new_trace_id() -> str:
    """A random, non-zero 128-bit trace id as 32 lowercase hex characters."""
    while True:
        bits = random.getrandbits(128)
        if bits:
            return f"{bits:032x}"


def new_span_id() -> str:
    """A random, non-zero 64-bit span id as 16 lowercase hex characters."""
    while True:
        bits = random.getrandbits(64)
        if bits:
            return f"{bits:016x}"


@dataclass(frozen=True)
class SpanContext:
    """What a child needs of its parent, in-process or across a network hop."""

    trace_id: str
    span_id: str
    trace_state: str = ""
    sampled: bool = True


def format_traceparent(context: SpanContext) -> str:
    """The W3C `traceparent` header value for a span context."""
    flags = "01" if context.sampled else "00"
    return f"00-{context.trace_id}-{context.span_id}-{flags}"


def parse_traceparent(header: str | None, tracestate: str | None = None) -> SpanContext | None:
    """The span context in a W3C `traceparent` header, or None when absent or invalid."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    # Version 00 has exactly four fields; later versions may append more (W3C says parse on).
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE_ID or span_id == _ZERO_SPAN_ID:
        return None
    return SpanContext(trace_id, span_id, (tracestate or "").strip(), bool(int(flags, 16) & 1))


def inject(context: SpanContext, headers: dict[str, str]) -> dict[str, str]:
    """Add `traceparent` (and `tracestate` when set) to `headers`; return them."""
    headers[TRACEPARENT_HEADER] = format_traceparent(context)
    if context.trace_state:
        headers[TRACESTATE_HEADER] = context.trace_state
    return headers


def extract(headers: Mapping[str, str]) -> SpanContext | None:
    """The span context in incoming HTTP headers (case-insensitive names), or None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return parse_traceparent(lowered.get(TRACEPARENT_HEADER), lowered.get(TRACESTATE_HEADER))


class SpanSender(Protocol):
    """Where finished spans go: a SpanProducer, or anything with the same `send`."""

    def send(self, span: Span) -> None:
        """Queue one finished span."""
        ...


class RecordingSpan:
    """A span being recorded; `end()` (or leaving its `with` block) sends it."""

    def __init__(self, tracer: Tracer, span: Span, context: SpanContext) -> None:
        self._tracer = tracer
        self._span = span
        self.context = context
        self.ended = False

    @property
    def name(self) -> str:
        """The operation name."""
        return self._span["name"]

    def traceparent(self) -> str:
        """This span's context as a W3C `traceparent` header value, for outgoing calls."""
        return format_traceparent(self.context)

    def set_attribute(self, key: str, value: AttributeValue) -> RecordingSpan:
        """Set one attribute (types are kept: bool, int, float, str, bytes, lists of them)."""
        self._span["attributes"][key] = value
        return self

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> RecordingSpan:
        """Set several attributes."""
        self._span["attributes"].update(attributes)
        return self

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None,
                  time_unix_nano: int | None = None) -> RecordingSpan:
        """Record a timestamped event (now, unless a time is given)."""
        event: SpanEvent = {
            "time_unix_nano": self._tracer.clock() if time_unix_nano is None else time_unix_nano,
            "name": name,
            "attributes": dict(attributes or {}),
        }
        self._span["events"].append(event)
        return self

    def add_link(self, context: SpanContext,
                 attributes: Mapping[str, AttributeValue] | None = None) -> RecordingSpan:
        """Link this span to another span (of this or another trace)."""
        link: SpanLink = {
            "trace_id": context.trace_id,
            "span_id": context.span_id,
            "trace_state": context.trace_state,
            "attributes": dict(attributes or {}),
        }
        self._span["links"].append(link)
        return self

    def set_status(self, code: str, message: str = "") -> RecordingSpan:
        """Set the status: UNSET, OK or ERROR (the message is kept for ERROR only, as in OTel)."""
        code = code.upper()
        if code not in STATUS_CODES:
            raise ValueError(f"status code {code!r} is not one of {', '.join(STATUS_CODES)}")
        # OpenTelemetry's rule: OK is final, and a message only accompanies ERROR.
        if self._span["status_code"] == "OK" and code != "OK":
            return self
        self._span["status_code"] = code
        self._span["status_message"] = message if code == "ERROR" else ""
        return self

    def record_exception(self, error: BaseException) -> RecordingSpan:
        """Add an `exception` event with the semantic-convention attributes."""
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return self.add_event("exception", {
            "exception.type": type(error).__qualname__,
            "exception.message": str(error),
            "exception.stacktrace": stack,
        })

    def end(self, end_time_unix_nano: int | None = None) -> Span:
        """Set the end time and send the span; later calls do nothing and return the same span."""
        if not self.ended:
            self.ended = True
            self._span["end_time_unix_nano"] = (
                self._tracer.clock() if end_time_unix_nano is None else end_time_unix_nano)
            self._tracer.sender.send(self._span)
        return self._span

    def __enter__(self) -> RecordingSpan:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.record_exception(exc)
            self.set_status("ERROR", f"{type(exc).__qualname__}: {exc}")
        self.end()


class Tracer:
    """Starts spans for one service; finished spans are sent through `sender`."""

    def __init__(
        self,
        service_name: str,
        sender: SpanSender,
        *,
        resource_attributes: Mapping[str, AttributeValue] | None = None,
        scope_name: str = SCOPE_NAME,
        scope_version: str = "",
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.service_name = service_name
        self.sender = sender
        self.resource_attributes: dict[str, AttributeValue] = {
            **(resource_attributes or {}), "service.name": service_name}
        self.scope_name = scope_name
        self.scope_version = scope_version
        self.clock = clock

    def start_span(
        self,
        name: str,
        *,
        kind: str = "INTERNAL",
        parent: SpanContext | RecordingSpan | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        start_time_unix_nano: int | None = None,
    ) -> RecordingSpan:
        """Start a span: a new trace without `parent`, else a child in the parent's trace."""
        kind = kind.upper()
        if kind not in SPAN_KINDS:
            raise ValueError(f"span kind {kind!r} is not one of {', '.join(SPAN_KINDS)}")
        parent_context = parent.context if isinstance(parent, RecordingSpan) else parent
        if parent_context is None:
            context = SpanContext(new_trace_id(), new_span_id())
        else:
            context = SpanContext(parent_context.trace_id, new_span_id(),
                                  parent_context.trace_state, parent_context.sampled)
        start = self.clock() if start_time_unix_nano is None else start_time_unix_nano
        span: Span = {
            "trace_id": context.trace_id,
            "span_id": context.span_id,
            "parent_span_id": parent_context.span_id if parent_context is not None else "",
            "trace_state": context.trace_state,
            "name": name,
            "kind": kind,
            "start_time_unix_nano": start,
            "end_time_unix_nano": start,
            "status_code": "UNSET",
            "status_message": "",
            "service_name": self.service_name,
            # Shared, not copied: every span of this tracer carries the same resource.
            "resource_attributes": self.resource_attributes,
            "scope_name": self.scope_name,
            "scope_version": self.scope_version,
            "attributes": dict(attributes or {}),
            "events": [],
            "links": [],
            "source_format": "tracepipe",
        }
        return RecordingSpan(self, span, context)
