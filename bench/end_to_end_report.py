"""The end-to-end benchmark's result: each subject's summary (its highest sustained step, the
highest on time, the py-spy profile of its top step) and the whole result as Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bench.ladder import Ladder
from bench.py_spy import profile_summary
from bench.step_report import highest_on_time, highest_sustained, stage_rows, step_row, summary_row
from bench.steps import SustainRule, memory_per_held_trace
from streams.query.table import markdown_table


def subject_summary(ladder: Ladder, promise_s: float) -> dict[str, Any]:
    """A subject's part of the result."""
    top = highest_sustained(ladder.steps)
    on_time = highest_on_time(ladder.steps, promise_s)
    profiled = None
    if ladder.profiles:
        # The top sustained step's profile: what bounds the worker where it still keeps up.
        index = ladder.steps.index(top) if top is not None else len(ladder.steps) - 1
        path = ladder.profiles[index]
        profiled = {
            "step": index,
            "file": str(path),
            **profile_summary(path.read_text() if path.exists() else ""),
        }
    return {
        "highest_sustained_spans_per_s": top.stored_spans_per_s if top else 0.0,
        "rss_bytes_per_held_trace": memory_per_held_trace(ladder.samples),
        "highest_sustained_offered_spans_per_s": top.offered_spans_per_s if top else 0.0,
        "cpu_us_per_span_at_top": top.cpu_us_per_span if top else None,
        "delay_after_send_p99_s_at_top": top.delay_after_send_p99_s if top else None,
        "emission_promise_s": promise_s,
        "highest_on_time_spans_per_s": on_time.stored_spans_per_s if on_time else 0.0,
        "cpu_us_per_span_on_time": on_time.cpu_us_per_span if on_time else None,
        "drained": ladder.drained,
        "worker_log": str(ladder.worker_log),
        "steps": [
            {**asdict(s), "lag_growth_s": s.lag_growth_s, "generator": g}
            for s, g in zip(ladder.steps, ladder.generated, strict=True)
        ],
        "profile": profiled,
    }


def report_markdown(
    ladders: Sequence[Ladder], summary: dict[str, Any], rule: SustainRule, command: str
) -> str:
    """The result as Markdown: every step, the top step's stages, ratios, the profile."""
    parts = [f"`{command}`", rule.describe() + ".", "## Summary"]
    parts.append(
        markdown_table(
            [
                summary_row(
                    ladder.subject,
                    ladder.steps,
                    summary["subjects"][ladder.subject]["rss_bytes_per_held_trace"],
                    summary["subjects"][ladder.subject]["emission_promise_s"],
                )
                for ladder in ladders
            ]
        )
    )
    parts.append(
        "Figures of each subject's highest sustained step. delay = trace emission delay after "
        "the trace's spans were sent (EmittedAt - trace start: the generator sends a trace as "
        "it starts); JSON also has it after the trace's end. RSS per held trace = slope of the "
        "worker's RSS over the traces its assembler holds (open, and emitted but retained for "
        "late spans) across the samples after the first step. CPU is the whole worker process "
        "(user + system): stages share one process and one event loop, so CPU is not split by "
        "stage; the per-stage rates and the py-spy profile show where it goes. On time = the "
        "highest sustained step whose emission delay p99 kept within trace_idle + 2 s."
    )
    parts.append("## Steps")
    parts.append(
        markdown_table([step_row(ladder.subject, s) for ladder in ladders for s in ladder.steps])
    )
    for ladder in ladders:
        top = highest_sustained(ladder.steps)
        if top is None:
            parts.append(f"## {ladder.subject}: no sustained step")
            continue
        parts.append(
            f"## {ladder.subject}: per stage at {top.offered_spans_per_s:,.0f} spans/s offered"
        )
        parts.append(markdown_table(stage_rows(top)))
    ratios = summary.get("ratios")
    if ratios:
        parts.append("## Pipeline / naive")
        parts.append(
            markdown_table(
                [
                    {"ratio": k.replace("_", " "), "value": "-" if v is None else f"{v:,.1f}"}
                    for k, v in ratios.items()
                ]
            )
        )
    for ladder in ladders:
        profile = summary["subjects"][ladder.subject]["profile"]
        if profile and profile["self"]:
            parts.append(f"## {ladder.subject}: py-spy, step {profile['step']} (share of samples)")
            for key, heading in (
                ("self_by_package", "package (self)"),
                ("self", "function (self)"),
                ("streams_total", "tracepipe function (on the stack)"),
            ):
                rows = [{"share": f"{share:.1%}", heading: name} for name, share in profile[key]]
                parts.append(markdown_table(rows))
    return "\n\n".join(parts)
