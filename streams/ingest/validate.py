"""Per-span validation: reject what cannot be stored, repair what can, never drop silently.

Rejected (DecodeError, reason slug = DLQ reason header): "invalid-trace-id", "invalid-span-id",
"invalid-parent-span-id" (not hex of the right length, or all zeros), "invalid-start-time" (not
in (0, 2**63)), "invalid-end-time" (not an int64), "invalid-kind" / "invalid-status" (outside
the schema enums), "invalid-event-time", "invalid-link" (a link's ids are bad).

Repaired (in place, recorded where it changes the data):
- uppercase hex ids are lowercased;
- an empty name becomes "<unnamed>" and an empty service name "unknown_service" (both
  OpenTelemetry's habits for missing values; a span is worth more than its missing label);
- end before start: end = start, attribute `tracepipe.clamped_end_time` = True;
- more than `max_attributes` attributes (span, resource, event, link): the first N by sorted
  key are kept and `tracepipe.dropped_attributes_count` set (on the span for span and
  resource attributes, as `tracepipe.dropped_resource_attributes_count` for the latter);
- string/bytes values longer than `max_attribute_value_bytes` (UTF-8 bytes): truncated to fit,
  marker included, at a character boundary, ending with TRUNCATION_MARKER;
- more than `max_events` / `max_links`: the first N kept, `tracepipe.dropped_events_count` /
  `tracepipe.dropped_links_count` set.

`validate_span` mutates and returns the span it is given (the hot path: no copies of valid
spans); repaired nested containers are replaced, never edited, so shared dicts stay intact.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.config import IngestConfig
from streams.errors import DecodeError
from streams.model.attribute_columns import EXTRA, STRING
from streams.model.column_codec import columns_from_spans
from streams.model.columns import SpanColumns, concat_columns
from streams.model.span import SPAN_KINDS, STATUS_CODES, AttributeValue, Span

UNNAMED_SPAN = "<unnamed>"
UNKNOWN_SERVICE = "unknown_service"
TRUNCATION_MARKER = "…[truncated]"
CLAMPED_END_TIME = "tracepipe.clamped_end_time"
DROPPED_ATTRIBUTES = "tracepipe.dropped_attributes_count"
DROPPED_RESOURCE_ATTRIBUTES = "tracepipe.dropped_resource_attributes_count"
DROPPED_EVENTS = "tracepipe.dropped_events_count"
DROPPED_LINKS = "tracepipe.dropped_links_count"

_MARKER_BYTES = TRUNCATION_MARKER.encode()
_HEX32 = re.compile(r"[0-9a-f]{32}").fullmatch
_HEX16 = re.compile(r"[0-9a-f]{16}").fullmatch
_ZERO32 = "0" * 32
_ZERO16 = "0" * 16
_KINDS = frozenset(SPAN_KINDS)
_STATUSES = frozenset(STATUS_CODES)
_INT64_MAX = 2**63 - 1


def check_record_size(data: bytes, limits: IngestConfig) -> None:
    """Raise DecodeError("record-too-large") for a raw payload over `max_record_bytes`."""
    if len(data) > limits.max_record_bytes:
        raise DecodeError(
            "record-too-large",
            f"{len(data)} bytes is over ingest.max_record_bytes={limits.max_record_bytes}; "
            "send smaller batches or raise TRACEPIPE_INGEST_MAX_RECORD_BYTES",
        )


def _id(value: Any, size: int, reason: str, what: str, allow_empty: bool = False) -> str:
    """The slow path of id checking: lowercases uppercase hex, else raises."""
    if isinstance(value, str):
        if allow_empty and value == "":
            return value
        lowered = value.lower()
        match = _HEX32 if size == 32 else _HEX16
        if match(lowered):
            if lowered == "0" * size:
                raise DecodeError(reason, f"{what} is all zeros, which OpenTelemetry calls invalid")
            return lowered
    raise DecodeError(
        reason, f"{what} {value!r:.60} is not {size} hex characters"
        + (" (or empty for a root span)" if allow_empty else "")
    )


def _truncate(value: str | bytes, max_bytes: int) -> str | bytes:
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) <= max_bytes:
            return value
        keep = max(max_bytes - len(_MARKER_BYTES), 0)
        # errors="ignore" drops a character cut in half at the boundary.
        return raw[:keep].decode(errors="ignore") + TRUNCATION_MARKER
    if len(value) <= max_bytes:
        return value
    return value[: max(max_bytes - len(_MARKER_BYTES), 0)] + _MARKER_BYTES


def _needs_repair(attrs: dict[str, AttributeValue], limits: IngestConfig) -> bool:
    if len(attrs) > limits.max_attributes:
        return True
    # A str of at most max_bytes // 4 characters fits: UTF-8 is at most 4 bytes a character.
    safe_chars = limits.max_attribute_value_bytes >> 2
    for value in attrs.values():
        cls = value.__class__
        if (cls is str or cls is bytes or cls is list) and len(value) > safe_chars:  # type: ignore[arg-type]
            return _needs_repair_slow(attrs, limits)
        if cls is list:
            return _needs_repair_slow(attrs, limits)
    return False


def _needs_repair_slow(attrs: dict[str, AttributeValue], limits: IngestConfig) -> bool:
    max_bytes = limits.max_attribute_value_bytes
    for value in attrs.values():
        if isinstance(value, str | bytes):
            if _truncate(value, max_bytes) is not value:
                return True
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str | bytes) and _truncate(item, max_bytes) is not item:
                    return True
    return False


def _repair_attributes(
    attrs: dict[str, AttributeValue], limits: IngestConfig
) -> tuple[dict[str, AttributeValue], int]:
    """A new dict within the limits, and how many attributes were dropped."""
    dropped = 0
    keys = list(attrs)
    if len(keys) > limits.max_attributes:
        keys = sorted(keys)
        dropped = len(keys) - limits.max_attributes
        keys = keys[: limits.max_attributes]
    max_bytes = limits.max_attribute_value_bytes
    out: dict[str, AttributeValue] = {}
    for key in keys:
        value = attrs[key]
        if isinstance(value, str | bytes):
            value = _truncate(value, max_bytes)
        elif isinstance(value, list):
            value = [
                _truncate(item, max_bytes) if isinstance(item, str | bytes) else item
                for item in value
            ]
        out[key] = value
    return out, dropped


def _limited(
    attrs: dict[str, AttributeValue], limits: IngestConfig
) -> tuple[dict[str, AttributeValue], int]:
    if not _needs_repair(attrs, limits):
        return attrs, 0
    return _repair_attributes(attrs, limits)


def validate_span(span: Span, limits: IngestConfig) -> Span:
    """Check one span against the schema's rules and `limits`; repair it in place or raise."""
    trace_id = span["trace_id"]
    if trace_id.__class__ is not str or not _HEX32(trace_id) or trace_id == _ZERO32:
        span["trace_id"] = _id(trace_id, 32, "invalid-trace-id", "trace_id")
    span_id = span["span_id"]
    if span_id.__class__ is not str or not _HEX16(span_id) or span_id == _ZERO16:
        span["span_id"] = _id(span_id, 16, "invalid-span-id", "span_id")
    parent = span["parent_span_id"]
    if parent and (parent.__class__ is not str or not _HEX16(parent) or parent == _ZERO16):
        span["parent_span_id"] = _id(
            parent, 16, "invalid-parent-span-id", "parent_span_id", allow_empty=True
        )

    start = span["start_time_unix_nano"]
    if start.__class__ is not int or not 0 < start <= _INT64_MAX:
        raise DecodeError(
            "invalid-start-time",
            f"start_time_unix_nano {start!r:.40} should be a positive int64 (unix nanoseconds)",
        )
    end = span["end_time_unix_nano"]
    if end.__class__ is not int or not -_INT64_MAX <= end <= _INT64_MAX:
        raise DecodeError(
            "invalid-end-time", f"end_time_unix_nano {end!r:.40} should be an int64 (unix nanos)"
        )
    if span["kind"] not in _KINDS:
        raise DecodeError(
            "invalid-kind", f"kind {span['kind']!r:.40} should be one of {', '.join(SPAN_KINDS)}"
        )
    if span["status_code"] not in _STATUSES:
        raise DecodeError(
            "invalid-status",
            f"status_code {span['status_code']!r:.40} should be one of {', '.join(STATUS_CODES)}",
        )
    if not span["name"]:
        span["name"] = UNNAMED_SPAN
    if not span["service_name"]:
        span["service_name"] = UNKNOWN_SERVICE

    attrs = span["attributes"]
    new_attrs, dropped = _limited(attrs, limits)
    resource, dropped_resource = _limited(span["resource_attributes"], limits)
    if resource is not span["resource_attributes"]:
        span["resource_attributes"] = resource
    clamp = end < start
    events = span["events"]
    links = span["links"]
    extra_events = len(events) - limits.max_events
    extra_links = len(links) - limits.max_links
    if events:
        span["events"] = _limit_events(events, limits)
    if links:
        span["links"] = _check_links(links, limits)

    if dropped or dropped_resource or clamp or extra_events > 0 or extra_links > 0:
        if new_attrs is attrs:
            new_attrs = dict(attrs)
        if dropped:
            new_attrs[DROPPED_ATTRIBUTES] = dropped
        if dropped_resource:
            new_attrs[DROPPED_RESOURCE_ATTRIBUTES] = dropped_resource
        if clamp:
            span["end_time_unix_nano"] = start
            new_attrs[CLAMPED_END_TIME] = True
        if extra_events > 0:
            span["events"] = span["events"][: limits.max_events]
            new_attrs[DROPPED_EVENTS] = extra_events
        if extra_links > 0:
            span["links"] = span["links"][: limits.max_links]
            new_attrs[DROPPED_LINKS] = extra_links
    if new_attrs is not attrs:
        span["attributes"] = new_attrs
    return span


def _limit_events(events: list[Any], limits: IngestConfig) -> list[Any]:
    """Events checked (times) and limited (first `max_events`, their attributes); one pass."""
    out: list[Any] | None = None
    cap = limits.max_events
    for i, event in enumerate(events):
        when = event["time_unix_nano"]
        if when.__class__ is not int or not 0 <= when <= _INT64_MAX:
            raise DecodeError(
                "invalid-event-time",
                f"events[{i}].time_unix_nano {when!r:.40} should be a non-negative int64",
            )
        attrs = event["attributes"]
        if i >= cap or not attrs or not _needs_repair(attrs, limits):
            continue
        if out is None:
            out = list(events)
        out[i] = _with_limited_attributes(event, limits)
    return events if out is None else out


def _with_limited_attributes(item: Any, limits: IngestConfig) -> Any:
    new_attrs, dropped = _repair_attributes(item["attributes"], limits)
    if dropped:
        new_attrs[DROPPED_ATTRIBUTES] = dropped
    return {**item, "attributes": new_attrs}


def _check_links(links: list[Any], limits: IngestConfig) -> list[Any]:
    """Links with ids checked (uppercase repaired) and attributes limited; `links` if unchanged."""
    out: list[Any] | None = None
    for i, link in enumerate(links):
        trace_id, span_id = link["trace_id"], link["span_id"]
        if (
            trace_id.__class__ is str and _HEX32(trace_id) and trace_id != _ZERO32
            and span_id.__class__ is str and _HEX16(span_id) and span_id != _ZERO16
        ):
            continue
        fixed = {
            **link,
            "trace_id": _id(trace_id, 32, "invalid-link", f"links[{i}].trace_id"),
            "span_id": _id(span_id, 16, "invalid-link", f"links[{i}].span_id"),
        }
        if out is None:
            out = list(links)
        out[i] = fixed
    links = links if out is None else out
    for i, link in enumerate(links[: limits.max_links]):
        if link["attributes"] and _needs_repair(link["attributes"], limits):
            if out is None:
                out = links = list(links)
            out[i] = _with_limited_attributes(link, limits)
    return links


def validate_columns(
    columns: SpanColumns, limits: IngestConfig
) -> tuple[SpanColumns, list[tuple[Span, DecodeError]]]:
    """Validate a span batch a column at a time: the valid spans (repaired ones included), and
    each rejected span with its error (`validate_column_rows` without the rows)."""
    valid, rejected = validate_column_rows(columns, limits)
    return valid, [(span, err) for _, span, err in rejected]


def validate_column_rows(
    columns: SpanColumns, limits: IngestConfig
) -> tuple[SpanColumns, list[tuple[int, Span, DecodeError]]]:
    """Validate a span batch a column at a time: the valid spans in their order (repaired ones
    in place), and each rejected span with its row and error. Spans the columns flag as
    doubtful (a bad id, time, kind or status; an empty name; too many or too long attributes;
    odd events or links) go through `validate_span` one by one, so both forms follow one
    rule."""
    doubtful = _doubtful(columns, limits)
    if not doubtful.any():
        return columns, []
    rows = np.flatnonzero(doubtful)
    repaired: list[Span] = []
    repaired_rows: list[int] = []
    rejected: list[tuple[int, Span, DecodeError]] = []
    for row, span in zip(rows.tolist(), columns.select(rows).spans(), strict=True):
        try:
            repaired.append(validate_span(span, limits))
            repaired_rows.append(row)
        except DecodeError as err:
            rejected.append((row, span, err))
    kept_rows = np.flatnonzero(~doubtful)
    kept = columns.select(kept_rows)
    if repaired:
        merged = concat_columns([kept, columns_from_spans(repaired)])
        order = np.argsort(np.concatenate([kept_rows, repaired_rows]), kind="stable")
        kept = merged.select(order)
    return kept, rejected


def _doubtful(columns: SpanColumns, limits: IngestConfig) -> npt.NDArray[np.bool_]:
    n = len(columns)
    strings = columns.strings
    doubtful: npt.NDArray[np.bool_] = np.logical_not(columns.trace_id.any(axis=1))
    doubtful |= ~columns.span_id.any(axis=1)
    doubtful |= columns.start_time_unix_nano <= 0
    doubtful |= columns.end_time_unix_nano < columns.start_time_unix_nano
    doubtful |= columns.kind >= len(SPAN_KINDS)
    doubtful |= columns.status_code >= len(STATUS_CODES)
    if "" in strings:
        empty = np.array([s == "" for s in strings])
        doubtful |= empty[columns.text["name"]] | empty[columns.text["service_name"]]
    # A str of at most max_bytes // 4 characters fits: UTF-8 is at most 4 bytes a character.
    safe_chars = limits.max_attribute_value_bytes >> 2
    long_text = np.array(
        [len(s) > safe_chars and _truncate(s, limits.max_attribute_value_bytes) is not s
         for s in strings] or [False]
    )  # fmt: skip
    for attributes, owner in (
        (columns.attributes, None),
        (columns.resources, columns.resource),
    ):
        bad_maps = attributes.counts > limits.max_attributes
        types = attributes.types
        bad_entry = types == EXTRA
        is_text = types == STRING
        bad_entry[is_text] = long_text[attributes.values[is_text]]
        if bad_entry.any():
            map_of_entry = np.repeat(np.arange(attributes.maps), attributes.counts)
            bad_maps[map_of_entry[bad_entry]] = True
        doubtful |= bad_maps if owner is None else bad_maps[owner]
    for span, when, _, attrs in columns.events:
        if not 0 <= when <= _INT64_MAX or (attrs and _needs_repair(attrs, limits)):
            doubtful[span] = True
    for span, trace_id, span_id, _, attrs in columns.links:
        if not (
            _HEX32(trace_id) and trace_id != _ZERO32 and _HEX16(span_id) and span_id != _ZERO16
        ) or (attrs and _needs_repair(attrs, limits)):
            doubtful[span] = True
    if columns.events or columns.links:
        for rows, cap in ((columns.events, limits.max_events), (columns.links, limits.max_links)):
            if len(rows) > cap:
                per_span = np.bincount([row[0] for row in rows], minlength=n)
                doubtful |= per_span > cap
    return doubtful
