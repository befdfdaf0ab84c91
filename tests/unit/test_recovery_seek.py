"""After a rebalance, Faust's recovery seeks the stream partitions to their committed offsets and
then clears every agent's buffer: nothing may be fetched for the agents in between, or those
records are cleared unprocessed and never fetched again (issue 8: a restarted worker's commit
froze at that hole)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from streams.app import create_app
from streams.config import Settings

SPANS = TP("tracepipe.spans", 0)


@dataclass
class SeekingConsumer:
    """Faust's consumer boundary during recovery: records whether records could be fetched
    (flow active) while the seek to the committed offsets was in progress."""

    flow_active: bool = True
    fetching_during_seek: list[bool] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return {SPANS}

    def resume_partitions(self, tps: set[TP]) -> None:
        pass

    async def perform_seek(self) -> None:
        await asyncio.sleep(0)
        self.fetching_during_seek.append(self.flow_active)

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
