"""Data-shape workloads of the fault suite: plain transforms of span lists, no broker.

Each fault of this kind is a workload the pipeline must take as it comes: spans sent twice,
children before parents, event times hours old or minutes off, one huge trace, a flood of tiny
ones. The transforms are deterministic for a seed, so a run can be compared exactly with what
the pipeline's documented rules say it must store.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from streams.assemble.skew import shifted_span
from streams.model.span import Span, make_span

MS = 1_000_000


def repeated(spans: Sequence[Span], every: int, seed: int) -> tuple[list[Span], list[Span]]:
    """Every `every`-th span sent again, as SDK retries do: (the spans with half of the repeats
    right after their original, inside the same span batch; the other half, to send later as a
    batch of their own)."""
    rng = random.Random(seed)
    now: list[Span] = []
    later: list[Span] = []
    for index, span in enumerate(spans):
        now.append(span)
        if index % every == 0:
            (now if rng.random() < 0.5 else later).append(span)
    return now, later


def out_of_order(spans: Sequence[Span], seed: int) -> list[Span]:
    """The spans shuffled across traces, each trace's deepest spans first (every child before
    its parent, the root last), interleaved at random with every other trace's."""
    rng = random.Random(seed)
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], []).append(span)
    queues = []
    for trace in by_trace.values():
        depths = _depths(trace)
        queues.append(sorted(trace, key=lambda s: depths[s["span_id"]], reverse=True))
    # Interleave: draw the next span from a random trace, so each trace keeps its order.
    draws = [i for i, queue in enumerate(queues) for _ in queue]
    rng.shuffle(draws)
    heads = [0] * len(queues)
    out: list[Span] = []
    for i in draws:
        out.append(queues[i][heads[i]])
        heads[i] += 1
    return out


def _depths(trace: Sequence[Span]) -> dict[str, int]:
    # Span id -> depth below its trace's top (0 for a root or an orphan).
    parents = {s["span_id"]: s["parent_span_id"] for s in trace}
    depths: dict[str, int] = {}

    def depth(span_id: str) -> int:
        if span_id not in depths:
            parent = parents.get(span_id, "")
            depths[span_id] = depth(parent) + 1 if parent in parents else 0
        return depths[span_id]

    for span_id in parents:
        depth(span_id)
    return depths


def children_before_parents(spans: Sequence[Span]) -> int:
    """How many spans come after one of their children in `spans` (the out-of-order count)."""
    awaited: set[tuple[str, str]] = set()
    late_parents = 0
    for span in spans:
        if (span["trace_id"], span["span_id"]) in awaited:
            late_parents += 1
        if span["parent_span_id"]:
            awaited.add((span["trace_id"], span["parent_span_id"]))
    return late_parents


def shifted(spans: Sequence[Span], offset_ns: int) -> list[Span]:
    """The spans moved in time by `offset_ns` (e.g. hours into the past), durations kept."""
    return [shifted_span(s, offset_ns) for s in spans]


def skewed(spans: Sequence[Span], offsets_ns: Mapping[str, int]) -> list[Span]:
    """The spans with each service in `offsets_ns` reporting times off by its offset (its clock
    ahead when positive); other services' spans as they are."""
    return [
        shifted_span(s, offsets_ns[s["service_name"]]) if s["service_name"] in offsets_ns else s
        for s in spans
    ]


def _ids(rng: random.Random) -> tuple[str, str]:
    return f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}"


def wide_trace(span_count: int, start_ns: int, fan_out: int, seed: int) -> list[Span]:
    """One trace of `span_count` spans, root first: a frontend root, `fan_out` loader spans under
    it, and the rest as database calls spread over the loaders, each inside its parent."""
    rng = random.Random(seed)
    trace_id, root_id = _ids(rng)
    end_ns = start_ns + 10_000 * MS
    spans = [
        make_span(trace_id, root_id, "POST /import", "frontend", start_ns, end_ns, kind="SERVER")
    ]
    loaders = [
        make_span(
            trace_id,
            _ids(rng)[1],
            "LoadBatch",
            "loader",
            start_ns + MS,
            end_ns - MS,
            parent_span_id=root_id,
            kind="INTERNAL",
        )
        for _ in range(min(fan_out, span_count - 1))
    ]
    spans.extend(loaders)
    for i in range(span_count - len(spans)):
        parent = loaders[i % len(loaders)]
        begin = start_ns + 2 * MS + (i * 97) % (9_000 * MS)
        spans.append(
            make_span(
                trace_id,
                _ids(rng)[1],
                "INSERT",
                "loader",
                begin,
                begin + MS // 2 + rng.randrange(MS),
                parent_span_id=parent["span_id"],
                kind="CLIENT",
            )
        )
    return spans


def single_span_traces(count: int, start_ns: int, seed: int) -> list[Span]:
    """`count` traces of one root span each (health checks, cron pings), 0.1 ms apart, over a
    few services and operations, about one in fifty an error."""
    rng = random.Random(seed)
    services = ("probe", "cron", "beacon")
    out: list[Span] = []
    for i in range(count):
        trace_id, span_id = _ids(rng)
        begin = start_ns + i * MS // 10
        out.append(
            make_span(
                trace_id,
                span_id,
                f"GET /health/{i % 4}",
                services[i % len(services)],
                begin,
                begin + rng.randrange(MS // 10, 5 * MS),
                kind="SERVER",
                status_code="ERROR" if rng.random() < 0.02 else "UNSET",
            )
        )
    return out
