"""Where every asyncio task of a worker is waiting: `kill -USR1 <worker pid>` logs it.

mode's own SIGUSR1 dump prints each task's outermost frame only (`Task.print_stack`), which for
an agent or a timer is mode's `_execute_task` wrapper: it cannot show the await a stalled
agent is stuck in. This follows each task's chain of awaited coroutines down to the innermost
frame, so a hang reads as "span-sink -> held -> durable -> gather" rather than "a task".
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any, TextIO

log = logging.getLogger("tracepipe.stacks")

_MAX_DEPTH = 64


def _awaited_frames(awaitable: Any) -> Iterator[FrameType]:
    """The frames of a coroutine and of everything it awaits, outermost first."""
    depth = 0
    while awaitable is not None and depth < _MAX_DEPTH:
        depth += 1
        frame = frame_of(awaitable)
        if frame is not None:
            yield frame
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "ag_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
        )
        if awaitable is not None and frame_of(awaitable) is None:
            # A coroutine's __await__ wrapper (faust's actors) or an async generator's asend
            # (`async for` over take_events) hides what it drives; the gc knows.
            inner = [r for r in gc.get_referents(awaitable) if frame_of(r) is not None]
            awaitable = inner[0] if inner else awaitable


def frame_of(awaitable: Any) -> FrameType | None:
    """The frame of a coroutine, async generator or generator (None: not one, or finished)."""
    frame: FrameType | None = (
        getattr(awaitable, "cr_frame", None)
        or getattr(awaitable, "ag_frame", None)
        or getattr(awaitable, "gi_frame", None)
    )
    return frame


def producer_batches(producer: Any) -> str:
    """The batches an aiokafka producer has not delivered yet, per topic partition, with the
    partition's leader as its metadata has it: a flush (and so every commit) waits for them."""
    accumulator = getattr(producer, "_message_accumulator", None)
    client = getattr(producer, "client", None)
    if accumulator is None:
        return "producer not started"
    lines = []
    for tp, batches in sorted(getattr(accumulator, "_batches", {}).items(), key=str):
        if not batches:
            continue
        leader = client.cluster.leader_for_partition(tp) if client is not None else "?"
        lines.append(f"{tp}: {len(batches)} batches, leader {leader}")
    pending = len(getattr(accumulator, "_pending_batches", ()))
    lines.append(f"{pending} batches in flight")
    return "\n".join(lines)


def task_stacks(loop: asyncio.AbstractEventLoop) -> str:
    """Every pending task of `loop` with its whole await chain (file:line function), and what
    the innermost await waits on; then every thread's stack."""
    lines: list[str] = []
    tasks = sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name())
    lines.append(f"{len(tasks)} asyncio tasks")
    for task in tasks:
        coro = task.get_coro()
        lines.append(f"task {task.get_name()} {getattr(coro, '__qualname__', coro)!r}")
        current: Any = task
        for _ in range(_MAX_DEPTH):
            for frame in _awaited_frames(current.get_coro()):
                code = frame.f_code
                lines.append(f"    {code.co_filename}:{frame.f_lineno} {code.co_name}")
            waiting = getattr(current, "_fut_waiter", None)
            if not isinstance(waiting, asyncio.Task):
                if waiting is not None:
                    lines.append(f"    waiting on {waiting!r}"[:400])
                break
            # mode runs each agent actor and timer as a task awaited by its wrapper task.
            current = waiting
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        lines.append(f"thread {names.get(ident, ident)}")
        lines.extend("    " + row.rstrip() for row in traceback.format_stack(frame))
    return "\n".join(lines)


def dump_task_stacks(loop: asyncio.AbstractEventLoop, out: TextIO | None = None) -> None:
    """Write `task_stacks` to `out` (default: the log, at WARNING so it is never filtered)."""
    text = task_stacks(loop)
    if out is None:
        log.warning("task stacks (SIGUSR1):\n%s", text)
    else:
        out.write(text + "\n")


def dump_producer_batches(producer: Any) -> None:
    """Log `producer_batches` (at WARNING, beside the task stacks)."""
    log.warning("producer batches (SIGUSR1):\n%s", producer_batches(producer))
