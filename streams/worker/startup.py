"""Before and around the worker's run: the claim on the embedded engine's data path, the web port
check, the collector's thresholds, and Faust's Worker with SIGUSR1 dumping task stacks."""

from __future__ import annotations

import gc
import logging
from contextlib import AbstractContextManager, nullcontext

import faust

from streams.broker.probe import port_in_use
from streams.config import Settings
from streams.errors import ConfigError
from streams.warehouse import parse_url
from streams.warehouse.owner import claim_data_path
from streams.worker.stacks import dump_producer_batches, dump_task_stacks


class Worker(faust.Worker):
    """Faust's worker, with SIGUSR1 logging where every task waits (streams/worker/stacks.py),
    and no terminal spinner."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # At WARNING and above Faust keeps its terminal progress spinner and, to spin it on
        # every record, sets the root logger to DEBUG: each library's debug record is then built
        # and dropped, ~3,600 a second from aiokafka's fetcher alone at 30,000 spans/s. A worker
        # is a service; it logs at the level it was given.
        self.spinner = None

    def _on_sigusr1(self) -> None:
        # mode's handler prints only each task's outermost frame (mode's task wrapper).
        dump_task_stacks(self.loop)
        dump_producer_batches(getattr(self.app.producer, "_producer", None))


SHARED_PATH_ADVICE = (
    "a second worker cannot share it: stop that one, or give this worker its own clickhouse.url "
    "(TRACEPIPE_CLICKHOUSE_URL); workers that share data need a ClickHouse server (clickhouse://)"
)


def own_data_path(settings: Settings) -> AbstractContextManager[object]:
    """The claim on the embedded engine's data path (nothing for a server): a second worker on
    the path fails here, naming the owner, instead of retrying its inserts forever."""
    parsed = parse_url(settings.clickhouse.url)
    if parsed.scheme != "chdb":
        return nullcontext()
    return claim_data_path(parsed.path, SHARED_PATH_ADVICE)


def check_web_port(app: faust.App) -> None:
    """Raise ConfigError naming worker.web_port when the web server could not listen: Faust
    would find out only after joining the consumer group, and end with a traceback."""
    host, port = app.conf.web_bind, app.conf.web_port
    try:
        taken = port_in_use(host, port)
    except OSError as err:
        raise ConfigError(
            f"the worker's web server cannot listen on {host}:{port}: {err}; check "
            "worker.web_host (TRACEPIPE_WORKER_WEB_HOST)"
        ) from err
    if taken:
        raise ConfigError(
            f"port {port} ({host}:{port}) is already in use, so this worker's web server cannot "
            "listen there (another worker?); stop that process or set worker.web_port "
            "(TRACEPIPE_WORKER_WEB_PORT) to a free port"
        )


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default: 700).

The worker holds millions of long-lived container objects (held and retained spans as tuples,
their traces, span id sets), and every collection that reaches the older generations walks
them all: py-spy put ~11% of a drain on `CompactSpans.decode`'s one dict per span, the
collections it set off. Measured: the assembly core in process 15.3 -> 11.2 CPU µs/span with
160,000 spans retained; `bench.drain --spans 300000`, one worker, until every trace is stored,
55.3 -> 44.3 worker CPU µs/span (bench/README.md). Reference counting frees almost everything;
the collector is only for cycles, rare on the hot path."""


def collect_garbage_less_often() -> None:
    """Raise the collector's thresholds for a worker's heap (see GC_YOUNG_THRESHOLD) and move
    what start-up made (modules, the app, its agents) out of its reach for good."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)
    gc.freeze()
