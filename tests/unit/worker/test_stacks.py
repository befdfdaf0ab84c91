"""The SIGUSR1 dump names the innermost await of a stalled task, not only its wrapper."""

from __future__ import annotations

import asyncio
import io

from streams.worker.stacks import dump_task_stacks, task_stacks


async def _durable(never: asyncio.Event) -> None:
    await never.wait()


async def _agent(never: asyncio.Event) -> None:
    await _durable(never)


def test_the_dump_follows_the_await_chain_down_to_the_stalled_frame() -> None:
    async def scenario() -> str:
        never = asyncio.Event()
        task = asyncio.create_task(_agent(never), name="span-sink")
        await asyncio.sleep(0)
        text = task_stacks(asyncio.get_running_loop())
        task.cancel()
        return text

    text = asyncio.run(scenario())
    task_block = text.split("task span-sink", 1)[1].split("\ntask ", 1)[0]
    assert " _agent" in task_block
    assert " _durable" in task_block  # mode's own dump stops at the task's outermost frame
    assert " wait" in task_block
    assert "thread MainThread" in text


def test_the_dump_goes_to_the_given_stream() -> None:
    async def scenario() -> str:
        out = io.StringIO()
        dump_task_stacks(asyncio.get_running_loop(), out)
        return out.getvalue()

    assert "asyncio tasks" in asyncio.run(scenario())


def test_the_dump_follows_a_task_awaited_by_another_task() -> None:
    async def scenario() -> str:
        never = asyncio.Event()
        inner = asyncio.create_task(_agent(never))

        async def wrapper() -> None:  # mode's _execute_task awaits the actor's task like this
            await inner

        outer = asyncio.create_task(wrapper(), name="actor")
        await asyncio.sleep(0)
        text = task_stacks(asyncio.get_running_loop())
        outer.cancel()
        inner.cancel()
        return text

    block = asyncio.run(scenario()).split("task actor", 1)[1].split("\ntask ", 1)[0]
    assert " wrapper" in block
    assert " _durable" in block


class _Actor:
    """Awaited through `coroutine.__await__()`, as faust's actors are: a wrapper with no frame."""

    def __init__(self, never: asyncio.Event) -> None:
        self.coro = _agent(never)

    def __await__(self):  # type: ignore[no-untyped-def]
        return self.coro.__await__()


async def _batches(never: asyncio.Event):  # type: ignore[no-untyped-def]
    await _durable(never)
    yield 1


def test_the_dump_follows_an_await_wrapper_and_an_async_for() -> None:
    async def scenario() -> str:
        never = asyncio.Event()

        async def execute_actor() -> None:
            await _Actor(never)

        async def take_events() -> None:
            async for _ in _batches(never):
                pass

        tasks = [
            asyncio.create_task(execute_actor(), name="actor"),
            asyncio.create_task(take_events(), name="stream"),
        ]
        await asyncio.sleep(0)
        text = task_stacks(asyncio.get_running_loop())
        for task in tasks:
            task.cancel()
        return text

    text = asyncio.run(scenario())
    actor = text.split("task actor", 1)[1].split("\ntask ", 1)[0]
    assert " _agent" in actor and " _durable" in actor
    stream = text.split("task stream", 1)[1].split("\ntask ", 1)[0]
    assert " _batches" in stream and " _durable" in stream
