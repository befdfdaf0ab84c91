"""The alert stage's Faust wiring: final latency windows in, alert events out.

The latency merge agent hands each batch of final windows to `AlertStage.on_final_windows`,
which merges an operation's kinds and status classes per window, evaluates the rules, fills a
firing event's attribution from ClickHouse's critical paths of the breaching operation's slow
traces (`read_attribution`), publishes the events on
tracepipe.alerts (keyed by fingerprint) and persists the changed alert states in the
changelog-backed table `tracepipe-alerts`, on the partition of the windows' merge partition, so
the state lives with the worker that evaluates those operations.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Callable
from typing import Any

import faust

from streams.aggregate.merge import FinalWindow
from streams.alert.attribution import read_attribution, read_error_origins
from streams.alert.evaluate import AlertEvaluator, operation_windows
from streams.alert.rules import RuleFile, RuleSet, default_rules
from streams.config import AggregationConfig, AlertConfig
from streams.model.codec import SCHEMA_HEADER, AvroCodec
from streams.sink.writer import WarehouseWriter
from streams.telemetry import Counters
from streams.worker.state import StateTable

log = logging.getLogger("tracepipe.alert")


def alert_state_partition(key: bytes) -> int | None:
    """The merge partition of an alert state key (None: a bare fingerprint, written before keys
    named their partition; every worker reads those)."""
    partition, separator, _ = key.partition(b"/")
    return int(partition) if separator else None


class AlertStage:
    """Rules evaluated on final latency windows, with their state in a Faust table."""

    def __init__(
        self,
        app: faust.App,
        alerts_topic: faust.TopicT,
        writer: WarehouseWriter,
        config: AlertConfig,
        aggregation: AggregationConfig,
        partitions: int,
        counters: Counters,
        now: Callable[[], int],
        partials_topic: str,
    ) -> None:
        self.app = app
        self.alerts_topic = alerts_topic
        self.writer = writer
        self.config = config
        self.window_ns = aggregation.window_ms * 1_000_000
        self.exemplar_count = aggregation.exemplars
        self.counters = counters
        self.codec = AvroCodec("alert")
        self.headers = [(SCHEMA_HEADER, self.codec.fingerprint.encode())]
        # Keyed `<merge partition>/<fingerprint>`: a state belongs to the worker that owns the
        # latency-partials partition its windows are merged on.
        self.table = StateTable(
            app, "tracepipe-alerts", partitions, partials_topic, alert_state_partition
        )
        self._rule_file = RuleFile(config.rules_file) if config.rules_file else None
        self._reported_error: str | None = None
        # Load the rules now: a missing or invalid rules file stops the worker at start.
        self.rules()
        self.evaluator = AlertEvaluator(self.rules, now)
        counters.describe("tracepipe_alert_events_total", "Alert transitions published.")
        counters.describe("tracepipe_alert_rule_reload_errors_total", "Invalid rule file edits.")

    def rules(self) -> RuleSet:
        """The current rules: the rules file (reloaded when it changes) or the defaults."""
        if self._rule_file is None:
            return default_rules()
        rules = self._rule_file.current()
        error = self._rule_file.last_error
        if error and error != self._reported_error:
            self.counters.inc("tracepipe_alert_rule_reload_errors_total")
            log.error("keeping the previous alert rules: %s", error)
        self._reported_error = error
        return rules

    def ready(self) -> bool:
        """True once the table is recovered and the evaluator's states restored from it; after
        every rebalance they are restored again, for exactly the merge partitions owned now."""
        entries = self.table.rebalanced()
        if entries is not None:
            self.evaluator.restore(
                {k.decode().rpartition("/")[2]: pickle.loads(v) for k, v in entries}
            )
        return self.table.generation is not None

    async def on_final_windows(self, finals: list[FinalWindow]) -> None:
        """Evaluate the rules on a batch of final latency windows; publish transitions."""
        if not self.ready():
            log.warning("alert state not recovered yet: %d windows not evaluated", len(finals))
            return
        by_partition: dict[int, list[FinalWindow]] = {}
        for final in finals:
            by_partition.setdefault(final.merge_partition, []).append(final)
        for partition, group in sorted(by_partition.items()):
            deliveries = []
            for window in operation_windows(group, self.exemplar_count):
                for event in self.evaluator.evaluate(window):
                    if event["state"] == "firing":
                        event["attribution"] = await self._attribution(event)
                        event["error_origins"] = await self._error_origins(event)
                    deliveries.append(
                        await self.alerts_topic.send(
                            key=event["fingerprint"].encode(),
                            value=self.codec.encode(event),
                            headers=self.headers,
                        )
                    )
                    self.counters.inc("tracepipe_alert_events_total", state=event["state"])
                    log.info(
                        "alert %s %s: %s %s value %.4g threshold %.4g",
                        event["rule"],
                        event["state"],
                        event["service"],
                        event["operation"],
                        event["value"],
                        event["threshold"],
                    )
            await asyncio.gather(*deliveries)
            # After the events are on the topic: a crash in between re-evaluates, never loses.
            # On the broker before returning: the merge agent then acknowledges the partials of
            # these windows, and they are not evaluated again after a restart.
            writes = [
                self.table.write(
                    partition,
                    f"{partition}/{fingerprint}".encode(),
                    pickle.dumps(state, pickle.HIGHEST_PROTOCOL),
                )
                for fingerprint, state in self.evaluator.take_changed().items()
            ]
            await asyncio.gather(*writes)

    async def _attribution(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """`read_attribution` on the writer thread; empty when it fails."""
        baseline_windows = self.config.attribution_baseline_windows
        return await self._read(
            "attribution",
            event,
            lambda w: read_attribution(
                w, event, self.window_ns, baseline_windows, self.exemplar_count
            ),
        )

    async def _error_origins(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """`read_error_origins` on the writer thread (empty for a signal other than
        error_rate); empty when it fails."""
        return await self._read("error origins", event, lambda w: read_error_origins(w, event))

    async def _read(
        self, what: str, event: dict[str, Any], reading: Callable[[Any], list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """`reading` of an event's context on the writer thread; empty (and a warning) when it
        fails: an alert without it beats no alert."""
        try:
            found: list[dict[str, Any]] = await self.writer.run_on_writer(reading)
        except Exception as err:
            log.warning("no %s for alert %s: %s", what, event["rule"], err)
            return []
        return found
