"""Alert event records (tracepipe.alerts, schemas/avro/alert.avsc) to rows of tracepipe_alerts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ALERTS = "tracepipe_alerts"
ALERTS_COLUMNS = (
    "Fingerprint",
    "Sequence",
    "Rule",
    "RuleType",
    "State",
    "Severity",
    "Labels",
    "ServiceName",
    "SpanName",
    "Signal",
    "Condition",
    "Value",
    "Threshold",
    "Baseline",
    "WindowStart",
    "WindowEnd",
    "StartsAt",
    "EndsAt",
    "ExemplarTraceIds",
    "AttributionServices",
    "AttributionOperations",
    "AttributionBaselineSelfTimeNs",
    "AttributionCurrentSelfTimeNs",
    "AttributionIncreaseNs",
    "AttributionShare",
    "EmittedAt",
    "ErrorOriginServices",
    "ErrorOriginOperations",
    "ErrorOriginTraces",
    "ErrorOriginShare",
    "ErrorOriginPropagatedTo",
)


def alert_row(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """One tracepipe_alerts row (columns in ALERTS_COLUMNS order) of a decoded alert record.

    EmittedAt falls back to the window end for a record without emitted_at_unix_nano (0), so
    the row's TTL counts from a real time rather than from 1970.
    """
    attribution = record.get("attribution") or []
    origins = record.get("error_origins") or []
    return (
        record["fingerprint"],
        record.get("sequence", 0),
        record["rule"],
        record["rule_type"],
        record["state"],
        record.get("severity", "warning"),
        dict(record.get("labels") or {}),
        record["service"],
        record["operation"],
        record["signal"],
        record["condition"],
        record["value"],
        record["threshold"],
        record.get("baseline", 0.0),
        record["window_start_unix_nano"],
        record["window_end_unix_nano"],
        record["starts_at_unix_nano"],
        record.get("ends_at_unix_nano", 0),
        list(record.get("exemplar_trace_ids") or []),
        [a["service"] for a in attribution],
        [a["operation"] for a in attribution],
        [a["baseline_self_time_ns"] for a in attribution],
        [a["current_self_time_ns"] for a in attribution],
        [a["increase_ns"] for a in attribution],
        [a["share"] for a in attribution],
        record.get("emitted_at_unix_nano") or record["window_end_unix_nano"],
        [o["service"] for o in origins],
        [o["operation"] for o in origins],
        [o["traces"] for o in origins],
        [o["share"] for o in origins],
        [list(o["propagated_to"]) for o in origins],
    )


def alert_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The alert record of a tracepipe_alerts row read back (columns by name, times in unix ns):
    the inverse of `alert_row`, for `AlertEvent.from_record`."""
    attribution = [
        {
            "service": service,
            "operation": operation,
            "baseline_self_time_ns": float(baseline),
            "current_self_time_ns": float(current),
            "increase_ns": float(increase),
            "share": float(share),
        }
        for service, operation, baseline, current, increase, share in zip(
            row["AttributionServices"],
            row["AttributionOperations"],
            row["AttributionBaselineSelfTimeNs"],
            row["AttributionCurrentSelfTimeNs"],
            row["AttributionIncreaseNs"],
            row["AttributionShare"],
            strict=True,
        )
    ]
    return {
        "fingerprint": row["Fingerprint"],
        "sequence": int(row["Sequence"]),
        "rule": row["Rule"],
        "rule_type": row["RuleType"],
        "state": row["State"],
        "severity": row["Severity"],
        "labels": dict(row["Labels"]),
        "service": row["ServiceName"],
        "operation": row["SpanName"],
        "signal": row["Signal"],
        "condition": row["Condition"],
        "value": float(row["Value"]),
        "threshold": float(row["Threshold"]),
        "baseline": float(row["Baseline"]),
        "window_start_unix_nano": int(row["WindowStart"]),
        "window_end_unix_nano": int(row["WindowEnd"]),
        "starts_at_unix_nano": int(row["StartsAt"]),
        "ends_at_unix_nano": int(row["EndsAt"]),
        "exemplar_trace_ids": list(row["ExemplarTraceIds"]),
        "attribution": attribution,
        "emitted_at_unix_nano": int(row["EmittedAt"]),
        "error_origins": [
            {
                "service": service,
                "operation": operation,
                "traces": int(traces),
                "share": float(share),
                "propagated_to": list(propagated_to),
            }
            for service, operation, traces, share, propagated_to in zip(
                row["ErrorOriginServices"],
                row["ErrorOriginOperations"],
                row["ErrorOriginTraces"],
                row["ErrorOriginShare"],
                row["ErrorOriginPropagatedTo"],
                strict=True,
            )
        ],
    }
