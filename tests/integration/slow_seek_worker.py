"""`python -m tests.integration.slow_seek_worker`: the worker, with Faust's seek to the committed
offsets taking `TRACEPIPE_TEST_SEEK_DELAY_MS` longer, so the restart after table recovery
always spends that long between the seek and the agents' buffers being cleared (issue 8's
window, a few to a few hundred milliseconds on a loaded machine)."""

from __future__ import annotations

import asyncio
import os
import sys

from faust.transport.consumer import Consumer

from streams.cli import main

SEEK_DELAY_ENV = "TRACEPIPE_TEST_SEEK_DELAY_MS"
SLOW_SEEK_COMMAND = ("-m", "tests.integration.slow_seek_worker", "worker")
"""The arguments to the Python interpreter that run this worker."""

_perform_seek = Consumer.perform_seek


async def slow_perform_seek(self: Consumer) -> None:
    """Faust's seek, then the delay: records fetched meanwhile are read after the seek."""
    await _perform_seek(self)
    await asyncio.sleep(int(os.environ.get(SEEK_DELAY_ENV, "0")) / 1000)


if __name__ == "__main__":
    Consumer.perform_seek = slow_perform_seek  # type: ignore[method-assign]
    sys.exit(main())
