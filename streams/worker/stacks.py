"""Where every asyncio task of a worker is waiting: `kill -USR1 <worker pid>` logs it.

mode's own SIGUSR1 dump prints each task's outermost frame only (`Task.print_stack`), which for
an agent or a timer is mode's `_execute_task` wrapper: it cannot show the await a stalled
agent is stuck in. This follows each task's chain of awaited coroutines down to the innermost
frame, so a hang reads as "span-sink -> held -> durable -> gather" rather than "a task".
"""

from __future__ import annotations

import asyncio
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
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None)
        frame = frame or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            yield frame
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "ag_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
        )


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
