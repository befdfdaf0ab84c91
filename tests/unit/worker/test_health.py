"""Readiness verdicts from the group state and the warehouse check; the warehouse check is
bounded by its timeout and never queues a second query behind a hung one."""

from __future__ import annotations

import asyncio

import pytest

from streams.errors import WarehouseError
from streams.worker.health import (
    OK,
    GroupState,
    WarehouseCheck,
    group_problem,
    readiness,
    readiness_change,
)

MEMBER = GroupState(
    generation=3, rebalancing=False, recovering=False, stopping=False, assigned_partitions=2
)


def member(**changes: object) -> GroupState:
    values = {**MEMBER.__dict__, **changes}
    return GroupState(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        (member(), None),
        (member(assigned_partitions=0), None),  # a standby beyond the partition count
        (member(generation=0), "not a consumer group member yet"),
        (member(rebalancing=True), "rebalancing"),
        (member(recovering=True), "recovering table state"),
        (member(stopping=True, rebalancing=True), "shutting down"),
    ],
)
def test_group_problem(state: GroupState, problem: str | None) -> None:
    found = group_problem(state)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_ready_only_when_every_check_passes() -> None:
    ready = readiness(MEMBER, None)
    assert ready.ready
    assert ready.body() == {
        "ready": True,
        "checks": {"consumer group": OK, "warehouse": OK},
        "assigned_partitions": 2,
    }
    down = readiness(MEMBER, "ClickHouse failed SELECT 1: refused")
    assert not down.ready
    assert down.body()["checks"] == {
        "consumer group": OK,
        "warehouse": "ClickHouse failed SELECT 1: refused",
    }
    rebalancing = readiness(member(rebalancing=True), None)
    assert not rebalancing.ready
    assert rebalancing.checks["warehouse"] == OK


def test_readiness_changes_are_told_once() -> None:
    ready = readiness(MEMBER, None)
    down = readiness(MEMBER, "ClickHouse failed SELECT 1: refused")
    timing_out = readiness(MEMBER, "ClickHouse did not answer SELECT 1 within 3 s")
    both = readiness(member(rebalancing=True), "ClickHouse failed SELECT 1: refused")
    assert readiness_change(None, ready) == "ready: in the consumer group and ClickHouse answers"
    assert readiness_change(ready, ready) is None
    assert (
        readiness_change(ready, down) == "not ready: warehouse: ClickHouse failed SELECT 1: refused"
    )
    # The same check failing in other words is not news; another check failing is.
    assert readiness_change(down, timing_out) is None
    change = readiness_change(down, both)
    assert change is not None
    assert change.startswith("not ready: consumer group: the consumer group is rebalancing; ")
    assert readiness_change(both, ready) == "ready: in the consumer group and ClickHouse answers"
    assert readiness_change(None, down) is not None


def test_warehouse_check_passes_and_reports_errors_with_what_to_check() -> None:
    async def answers() -> list[tuple[int]]:
        return [(1,)]

    async def refuses() -> None:
        raise WarehouseError("connection refused (127.0.0.1:9000)")

    assert asyncio.run(WarehouseCheck(answers).problem()) is None
    problem = asyncio.run(WarehouseCheck(refuses).problem())
    assert problem is not None
    assert "connection refused (127.0.0.1:9000)" in problem
    assert "TRACEPIPE_CLICKHOUSE_URL" in problem


def test_a_hung_warehouse_times_out_without_piling_up_queries() -> None:
    started = 0

    async def scenario() -> tuple[str | None, str | None, str | None, str | None, int]:
        nonlocal started
        release = asyncio.Event()

        async def select_one() -> None:
            nonlocal started
            started += 1
            await release.wait()

        check = WarehouseCheck(select_one, timeout_s=0.01)
        first = await check.problem()  # the query hangs: the probe times out
        second = await check.problem()  # waits on the same query, starts none
        in_flight = started
        release.set()
        third = await check.problem()  # the same query, now answering in time
        fourth = await check.problem()  # that one is done: a fresh query
        return first, second, third, fourth, in_flight

    first, second, third, fourth, in_flight = asyncio.run(scenario())
    assert first is not None and "did not answer SELECT 1 within 0.01 s" in first
    assert "the check before failed" not in first
    assert second == first
    assert in_flight == 1
    assert third is None and fourth is None
    assert started == 2


def test_a_failure_after_the_probe_gave_up_is_named_by_the_next_timeout() -> None:
    """A backend that retries a refused connection answers after the probe's timeout."""

    async def scenario() -> tuple[str | None, str | None]:
        fail = asyncio.Event()

        async def select_one() -> None:
            await fail.wait()
            raise WarehouseError("Connection refused (127.0.0.1:9000) after 5 attempts")

        check = WarehouseCheck(select_one, timeout_s=0.01)
        first = await check.problem()
        fail.set()
        await asyncio.sleep(0)  # the query fails while no probe waits for it
        await asyncio.sleep(0)
        fail.clear()  # and the next one hangs again
        second = await check.problem()
        return first, second

    first, second = asyncio.run(scenario())
    assert first is not None and "the check before" not in first
    assert second is not None
    assert second.endswith(
        "the check before failed: Connection refused (127.0.0.1:9000) after 5 attempts"
    )
