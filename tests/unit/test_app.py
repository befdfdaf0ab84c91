"""A warehouse that fails its migrations is closed before the writer opens another; the app
`create_app` builds fetches nothing for the agents while Faust's recovery seeks the stream
partitions (issue 8's restart stall) and fetches again for every cleared stream buffer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP
from mode.utils.queues import FlowControlQueue

from streams.app import _open_migrated, create_app
from streams.config import ClickHouseConfig, Settings
from streams.errors import WarehouseError
from streams.warehouse import Warehouse, open_warehouse


def test_a_warehouse_that_fails_its_migrations_is_closed(tmp_path: Path) -> None:
    # ClickHouse failing at the worker's first insert fails the migrations; the writer opens
    # again on its next attempt, so each failed open must release its connection.
    fault = tmp_path / "clickhouse-down"
    fault.touch()
    settings = Settings(
        clickhouse=ClickHouseConfig(url=f"chdb://{tmp_path / 'chdb'}", fault_file=str(fault))
    )
    opened: list[Warehouse] = []

    def recording_open(config: ClickHouseConfig) -> Warehouse:
        opened.append(open_warehouse(config))
        return opened[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("streams.app.open_warehouse", recording_open)
        for _ in range(2):
            with pytest.raises(WarehouseError, match="injected fault"):
                _open_migrated(settings)
    assert len(opened) == 2
    for warehouse in opened:
        with pytest.raises(WarehouseError, match="closed"):
            warehouse.query("SELECT 1")
    fault.unlink()
    recovered = _open_migrated(settings)
    try:
        assert recovered.query("SELECT count() > 0 FROM tracepipe_schema_migrations") == [(1,)]
    finally:
        recovered.close()


SPANS = TP("tracepipe.spans", 0)


@dataclass
class SeekingConsumer:
    """Faust's consumer boundary during recovery: records whether records could be fetched
    (flow active) while the seek to the committed offsets was in progress."""

    flow_active: bool = True
    fetching_during_seek: list[bool] = field(default_factory=list)
    committed: dict[TP, int | None] = field(default_factory=lambda: {SPANS: 7})
    seeks: list[tuple[TP, int]] = field(default_factory=list)
    _committed_offset: dict[TP, int | None] = field(default_factory=dict)

    def assignment(self) -> set[TP]:
        return set(self.committed)

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return dict(self.committed)

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.seeks.extend(offsets.items())

    def resume_partitions(self, tps: set[TP]) -> None:
        pass

    async def perform_seek(self) -> None:
        # Faust's: seek to the committed offsets, remember the ones that exist.
        await asyncio.sleep(0)
        self.fetching_during_seek.append(self.flow_active)
        self.seeks.append((TP("committed", 0), 0))
        self._committed_offset.update({tp: o for tp, o in self.committed.items() if o})

    def stop_flow(self) -> None:
        self.flow_active = False

    def resume_flow(self) -> None:
        self.flow_active = True


@dataclass
class IdleFetcher:
    """The fetcher service, not started (it would drain the real consumer)."""

    starts: int = 0

    async def maybe_start(self) -> None:
        self.starts += 1


async def recover(app: Any) -> None:
    # Faust's own recovery code, from the point where the table state is recovered.
    await app.tables.recovery._resume_streams(generation_id=app.consumer_generation_id)


def test_nothing_is_fetched_for_agents_while_recovery_seeks() -> None:
    app: Any = create_app(Settings()).app
    consumer = SeekingConsumer()
    app.consumer = consumer
    app._fetcher = IdleFetcher()
    asyncio.run(recover(app))
    assert consumer.fetching_during_seek == [False]
    # ... and recovery resumes fetching itself once the agents' buffers are cleared.
    assert consumer.flow_active


def test_partitions_with_nothing_committed_start_over_at_a_rebalance() -> None:
    # aiokafka's seek to the committed offsets leaves these where the fetcher was: the records
    # read before the rebalance (their window state dropped, held unacked) would never be
    # read again (the early-rebalance gap, issue 14).
    app: Any = create_app(Settings()).app
    done = TP("tracepipe.spans", 1)
    fresh = TP("tracepipe.traces", 2)
    changelog = TP(next(iter(app.tables.changelog_topics)), 0)
    consumer = SeekingConsumer(committed={SPANS: None, done: 42, fresh: 0, changelog: None})
    app.consumer = consumer
    app._fetcher = IdleFetcher()
    asyncio.run(recover(app))
    # After Faust's seek to the committed offsets, which leaves them where the fetcher was.
    assert consumer.seeks == [(TP("committed", 0), 0), (SPANS, 0), (fresh, 0)]
    assert consumer.fetching_during_seek == [False]
    assert consumer.flow_active
    # Faust's getmany seeks back to the committed offsets too when it drops a fetched batch
    # (flow stopped meanwhile): the records it dropped must come again.
    consumer.seeks.clear()
    asyncio.run(consumer.perform_seek())
    assert consumer.seeks == [(TP("committed", 0), 0), (SPANS, 0), (fresh, 0)]


def test_a_cleared_stream_buffer_lets_its_partitions_be_fetched_again() -> None:
    # mode's FlowControlQueue takes a partition out of the fetch set while its buffer is under
    # high pressure; flow control clears the buffer at a rebalance. An agent already waiting on
    # the empty buffer never ran the pressure-drop callback again: the partition was never
    # fetched again (issue 14, a restarted worker read nothing from its spans partitions).
    app: Any = create_app(Settings()).app
    flow = app.flow_control
    flow.resume()
    queue: FlowControlQueue[int] = FlowControlQueue(
        maxsize=10, flow_control=flow, clear_on_resume=True
    )
    refetched: list[int] = []

    async def rebalance_while_an_agent_waits() -> None:
        waiting = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        full = [
            queue.put_nowait_enhanced(
                i, on_pressure_high=lambda: None, on_pressure_drop=lambda: refetched.append(1)
            )
            for i in range(9)
        ]
        assert any(full)
        flow.suspend()
        flow.resume()
        await asyncio.sleep(0.01)
        waiting.cancel()

    asyncio.run(rebalance_while_an_agent_waits())
    assert refetched == [1]
