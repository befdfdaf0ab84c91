"""Liveness and readiness of a worker: what its `/healthz` and `/readyz` answer.

Liveness (`/healthz`, 200 while the event loop serves requests) says only that the process is
not wedged: restarting a worker cannot fix Kafka or ClickHouse, so nothing outside the process
counts. A hung event loop fails it by not answering within the probe's timeout.

Readiness (`/readyz`, 200 or 503 with the failing checks) says the worker is doing its work:

- `consumer group`: the worker has joined its consumer group (a generation was assigned), is not
  in the middle of a rebalance or a table recovery, and is not shutting down. A worker that owns
  no partition (more workers than `kafka.partitions`) is still ready: it is a standby, and
  calling it unready would stall rolling updates for nothing.
- `warehouse`: ClickHouse answers `SELECT 1` on the writer's connection within
  WAREHOUSE_TIMEOUT_S (the first check also opens the warehouse and applies migrations).

Faust starts the web server only after the first table recovery, so before that both
endpoints refuse connections, which probes count as failures: a Kubernetes startupProbe covers
that first recovery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
WAREHOUSE_TIMEOUT_S = 3.0
"""How long readiness waits for `SELECT 1`: below a probe's usual 5 s timeout, so the probe
gets a 503 naming the warehouse rather than a timeout naming nothing."""

OK = "ok"


@dataclass(frozen=True)
class GroupState:
    """The worker's place in its consumer group, as the Faust app reports it."""

    generation: int
    """The group generation of the latest assignment (0: never assigned)."""
    rebalancing: bool
    recovering: bool
    stopping: bool
    assigned_partitions: int


def group_problem(group: GroupState) -> str | None:
    """Why the worker is not processing as a group member now, or None."""
    if group.stopping:
        return "the worker is shutting down"
    if group.generation <= 0:
        return "not a consumer group member yet: waiting for the first partition assignment"
    if group.rebalancing:
        return "the consumer group is rebalancing"
    if group.recovering:
        return "recovering table state from changelog topics"
    return None


@dataclass(frozen=True)
class Readiness:
    """The verdict of `/readyz`: every check by name, "ok" or what is wrong."""

    checks: dict[str, str]
    assigned_partitions: int

    @property
    def ready(self) -> bool:
        """True when every check passed."""
        return all(result == OK for result in self.checks.values())

    def failing(self) -> dict[str, str]:
        """The checks that did not pass, with what is wrong."""
        return {name: result for name, result in self.checks.items() if result != OK}

    def body(self) -> dict[str, Any]:
        """The JSON document `/readyz` answers with."""
        return {
            "ready": self.ready,
            "checks": self.checks,
            "assigned_partitions": self.assigned_partitions,
        }


def readiness(group: GroupState, warehouse_problem: str | None) -> Readiness:
    """Combine the group state and the warehouse check into the `/readyz` verdict."""
    return Readiness(
        checks={
            "consumer group": group_problem(group) or OK,
            "warehouse": warehouse_problem or OK,
        },
        assigned_partitions=group.assigned_partitions,
    )


def readiness_change(previous: Readiness | None, current: Readiness) -> str | None:
    """A log line when the worker becomes ready or unready, or other checks start failing;
    None when nothing changed (so a probe every few seconds does not repeat itself)."""
    before = set(previous.failing()) if previous is not None else None
    now = current.failing()
    if before == set(now):
        return None
    if not now:
        return "ready: in the consumer group and ClickHouse answers"
    return "not ready: " + "; ".join(f"{name}: {problem}" for name, problem in now.items())


class WarehouseCheck:
    """`SELECT 1` on the warehouse, bounded by a timeout, with at most one query in flight.

    `select_one` runs the query (on the writer's thread, behind any insert it is doing). A probe
    that times out leaves the query running; the next probe waits for that same query instead
    of queueing another, so a hung ClickHouse never piles up checks on the writer. A query that
    fails after its probe gave up (a backend retrying a refused connection) is not lost: the
    next timeout names its error.
    """

    def __init__(
        self, select_one: Callable[[], Awaitable[Any]], timeout_s: float = WAREHOUSE_TIMEOUT_S
    ) -> None:
        self._select_one = select_one
        self.timeout_s = timeout_s
        self._in_flight: asyncio.Future[Any] | None = None
        self._last_error: str | None = None

    async def problem(self) -> str | None:
        """None when the warehouse answered in time, else what went wrong and what to check."""
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.ensure_future(self._select_one())
            self._in_flight.add_done_callback(self._remember)
        try:
            await asyncio.wait_for(asyncio.shield(self._in_flight), self.timeout_s)
        except TimeoutError:
            earlier = f"; the check before failed: {self._last_error}" if self._last_error else ""
            return (
                f"ClickHouse did not answer SELECT 1 within {self.timeout_s:g} s (the first "
                "check also opens the warehouse and applies migrations); check that "
                f"clickhouse.url (TRACEPIPE_CLICKHOUSE_URL) is reachable{earlier}"
            )
        except Exception as err:  # the probe reports the engine's message
            return (
                f"ClickHouse failed SELECT 1: {err}; check clickhouse.url "
                "(TRACEPIPE_CLICKHOUSE_URL) and that the server is up"
            )
        return None

    def _remember(self, query: asyncio.Future[Any]) -> None:
        """Keep the outcome of a finished query for the probes that gave up on it."""
        if query.cancelled():
            return
        error = query.exception()
        self._last_error = None if error is None else str(error)
