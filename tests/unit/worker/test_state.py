"""StateTable: owned entries handed out once per rebalance, foreign keys dropped, writes on the
chosen changelog partition; and the alert stage restoring its states after every rebalance.
Faust is faked at its boundary (tables, recovery, flow control, assignment)."""

from __future__ import annotations

import asyncio
import pickle
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.alert.evaluate import AlertState
from streams.config import AggregationConfig, AlertConfig
from streams.telemetry import Counters
from streams.worker.alert import AlertStage, alert_state_partition
from streams.worker.state import StateTable

TOPIC = "spans"


@dataclass
class FakeTable:
    data: dict[bytes, bytes] = field(default_factory=dict)
    sent: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)

    def send_changelog(self, partition: int, key: bytes, value: bytes | None, **_: Any) -> Any:
        self.sent.append((partition, key, value))
        try:
            done = asyncio.get_running_loop().create_future()
        except RuntimeError:  # written outside a loop: nothing awaits it
            return None
        done.set_result(None)  # on the broker at once
        return done


class Flag:
    def __init__(self) -> None:
        self.on = False

    def is_set(self) -> bool:
        return self.on

    def is_active(self) -> bool:
        return self.on


class FakeApp:
    """What StateTable reads of a Faust app."""

    def __init__(self) -> None:
        self.tables_made: dict[str, FakeTable] = {}
        self.recovered = Flag()
        self.tables = SimpleNamespace(recovery=SimpleNamespace(completed=self.recovered))
        self.flow_control = Flag()
        self.consumer_generation_id = 0
        self.owned: set[int] = set()
        self.assignor = self
        self.consumer = object()

    def Table(self, name: str, **_: Any) -> FakeTable:
        table = self.tables_made[name] = FakeTable()
        return table

    def assigned_actives(self) -> set[TP]:
        return {TP(TOPIC, p) for p in self.owned} | {TP("other", 9)}

    def rebalance(self, generation: int, owned: set[int]) -> None:
        self.consumer_generation_id = generation
        self.owned = owned
        self.flow_control.on = True
        self.recovered.on = True


def partition_of(key: bytes) -> int | None:
    head, separator, _ = key.partition(b"/")
    return int(head) if separator else None


def test_owned_entries_once_per_rebalance_and_foreign_keys_dropped() -> None:
    app = FakeApp()
    table = StateTable(app, "t", 4, TOPIC, partition_of)  # type: ignore[arg-type]
    data = app.tables_made["t"].data
    data.update({b"0/a": b"1", b"2/b": b"2", b"legacy": b"3"})
    assert table.rebalanced() is None and not table.current()  # recovery not done

    app.rebalance(1, {0, 1})
    assert sorted(table.rebalanced() or []) == [(b"0/a", b"1"), (b"legacy", b"3")]
    assert b"2/b" not in data  # owned elsewhere now: Faust's store would keep it
    assert table.rebalanced() is None and table.current() and table.generation == 1

    table.write(1, b"1/c", b"4")
    table.write(0, b"0/a", None)
    assert app.tables_made["t"].sent == [(1, b"1/c", b"4"), (0, b"0/a", None)]
    assert sorted(data) == [b"1/c", b"legacy"]

    app.flow_control.on = False  # a rebalance under way
    assert table.rebalanced() is None and not table.current()
    data[b"2/d"] = b"5"  # recovered by Faust for the newly assigned partition
    app.rebalance(2, {2})
    assert sorted(table.rebalanced() or []) == [(b"2/d", b"5"), (b"legacy", b"3")]
    assert table.owned_partitions() == {2}


def alert_stage(app: FakeApp) -> AlertStage:
    """An alert stage with the default rules on `app`'s tables, 4 latency-partials partitions."""
    return AlertStage(
        app,  # type: ignore[arg-type]
        alerts_topic=None,  # type: ignore[arg-type]
        writer=None,  # type: ignore[arg-type]
        config=AlertConfig(),
        aggregation=AggregationConfig(),
        partitions=4,
        counters=Counters(),
        now=lambda: 0,
        partials_topic=TOPIC,
    )


def test_alert_states_are_restored_after_every_rebalance_for_owned_partitions() -> None:
    app = FakeApp()
    stage = alert_stage(app)
    data = app.tables_made["tracepipe-alerts"].data
    firing = AlertState("p99", "checkout", "GET /", state="firing")
    data[b"0/" + b"a" * 16] = pickle.dumps(firing)
    data[b"1/" + b"b" * 16] = pickle.dumps(AlertState("p99", "cart", "GET /"))
    assert not stage.ready()

    app.rebalance(1, {0})
    assert stage.ready()
    assert stage.evaluator.state("a" * 16) == firing
    assert stage.evaluator.state("b" * 16) is None

    # Partition 0 moves to another worker and 1 comes here: its states, not the old ones.
    data[b"1/" + b"b" * 16] = pickle.dumps(AlertState("p99", "cart", "GET /", state="pending"))
    app.rebalance(2, {1})
    assert stage.ready()
    assert stage.evaluator.state("a" * 16) is None
    state = stage.evaluator.state("b" * 16)
    assert state is not None and state.state == "pending"


def test_alert_state_keys_name_their_partition() -> None:
    assert alert_state_partition(b"3/" + b"a" * 16) == 3
    assert alert_state_partition(b"a" * 16) is None


@dataclass(eq=False)
class Message:
    """A Kafka message as the holds see it: references, the final ack, its offset."""

    offset: int
    refs: int = 0
    acked: bool = False

    def incref(self) -> None:
        self.refs += 1

    def ack(self, consumer: Any) -> None:
        self.refs -= 1
        self.acked = self.refs == 0


def test_spans_messages_wait_for_the_marks_that_wait_for_the_edge_windows() -> None:
    from streams.assemble.stage import AssemblyStage
    from streams.config import AssemblyConfig, SamplingConfig
    from streams.model.column_codec import columns_from_spans
    from streams.model.span import make_span
    from streams.worker.assemble import AssemblyState

    app = FakeApp()
    clock = [0]
    stage = AssemblyStage(AssemblyConfig(trace_idle_ms=100), SamplingConfig(), lambda: clock[0])
    state = AssemblyState(app, stage, 1, TOPIC)  # type: ignore[arg-type]
    app.rebalance(1, {0})
    first, second = Message(0), Message(1)
    for message, trace_id in ((first, "a" * 32), (second, "b" * 32)):
        span = make_span(trace_id, "1" * 16, "GET /", "web", 0, 10)
        state.add({0: columns_from_spans([span])}, {0: [message]})
    clock[0] += 10**9
    finished = stage.finish_due()
    pendings = [state.pending(0, [item], state.generation) for item in finished]
    assert all(p.offset == 1 for p in pendings)

    async def sweep_writes_due_marks() -> None:
        await state.write_due()

    asyncio.run(sweep_writes_due_marks())
    assert not first.acked and app.tables_made["tracepipe-assembly-marks"].sent == []
    pendings[0].ack(app.consumer)  # the first trace's edge windows are published
    asyncio.run(sweep_writes_due_marks())
    assert first.acked and not second.acked
    # A later release reaches the same list (the sweep takes it, it does not replace it).
    pendings[1].ack(app.consumer)
    asyncio.run(sweep_writes_due_marks())
    assert second.acked
    written = app.tables_made["tracepipe-assembly-marks"].sent
    assert [key.decode().rsplit("/", 1)[1] for _, key, _ in written] == ["s", "v", "s", "v"]


def test_alert_states_are_on_the_broker_before_their_windows_are_done_with() -> None:
    # The merge agent acknowledges the windows' partials once on_final_windows returns: a state
    # still in flight then was lost in a crash, and its windows never evaluated again.
    from streams.aggregate.merge import FinalWindow
    from streams.aggregate.sketch import LatencySketch
    from streams.aggregate.stats import WindowStats

    app = FakeApp()
    stage = alert_stage(app)
    app.rebalance(1, {2})
    table = app.tables_made["tracepipe-alerts"]
    in_flight: list[asyncio.Future[None]] = []

    def send_changelog(partition: int, key: bytes, value: bytes | None, **_: Any) -> Any:
        table.sent.append((partition, key, value))
        in_flight.append(asyncio.get_running_loop().create_future())
        return in_flight[-1]

    table.send_changelog = send_changelog  # type: ignore[method-assign]
    sketch = LatencySketch()
    sketch.add_many([1_000_000] * 50)
    stats = WindowStats(sketch, count=50, sum_ns=50_000_000, min_ns=1_000_000, max_ns=1_000_000)
    window = FinalWindow(0, 10**10, ("cart", "GET /", "server", "ok"), stats, 1, 2)

    async def evaluate() -> None:
        task = asyncio.create_task(stage.on_final_windows([window]))
        for _ in range(5):
            await asyncio.sleep(0)
        assert in_flight and not task.done()
        for future in in_flight:
            future.set_result(None)
        await task

    asyncio.run(evaluate())
    assert {key.split(b"/")[0] for _, key, _ in table.sent} == {b"2"}
