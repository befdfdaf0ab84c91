"""What one worker's agents and routes share: the Faust app, topics, counters, the warehouse
writer and the stateful stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import faust

from streams.aggregate.stage import AggregationStage
from streams.broker.topics import TopicNames
from streams.config import Settings
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters
from streams.worker.assemble import AssemblyState
from streams.worker.loop_lag import LoopLag


@dataclass
class Pipeline:
    """The running app and what its agents share: topics, counters, the warehouse writer."""

    app: faust.App
    settings: Settings
    topics: TopicNames
    counters: Counters
    writer: WarehouseWriter
    assembly: AssemblyState
    aggregation: tuple[AggregationStage, ...] = ()
    loop_lag: LoopLag = field(default_factory=LoopLag)
