"""py-spy in the end-to-end benchmark: recording the worker during a step, and where the
recorded samples went (`profile_summary`: by function, by package, tracepipe's own stages).

The summary is pure; tests/unit/bench/test_steps.py drives it with made-up profiles.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

from streams.errors import TracepipeError

# py-spy's raw (collapsed) format: "frame;frame;...;frame count", a frame "function (file:line)".
# Recorded with --full-filenames: py-spy's own shortening sometimes leaves a bare basename
# ("window.py"), which no package can be told from; these prefixes are cut instead.
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_LIBRARY_PREFIX = re.compile(r"^.*/(?:site-packages|dist-packages|lib/python\d+\.\d+)/")
REPOSITORY = Path(__file__).resolve().parent.parent


def short_file(path: str, repository: Path = REPOSITORY) -> str:
    """A source path from its package on: `aiokafka/conn.py`, `asyncio/events.py`,
    `streams/worker/sink.py` (a file of this repository, relative to it)."""
    root = f"{repository}/"
    if path.startswith(root):
        return path[len(root) :]
    return _LIBRARY_PREFIX.sub("", path)


def _frame(frame: str, repository: Path) -> tuple[str, str]:
    """(function with its short file, the short file) of one frame."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    file = short_file(match["file"], repository)
    return f"{match['function']} ({file})", file


def _package(file: str) -> str:
    """The top-level package (or module) a file belongs to: `aiokafka`, `streams`, `selectors`."""
    if file.startswith("<"):
        return file
    return file.split("/", 1)[0].removesuffix(".py")


def profile_summary(
    collapsed: str, limit: int = 15, repository: Path = REPOSITORY
) -> dict[str, list[tuple[str, float]]]:
    """Where a py-spy raw profile's samples went, as shares of all samples: `self` by function
    (the sample was in it), `self_by_package` (aiokafka, faust, asyncio, streams, chdb, ...),
    and `streams_total` (tracepipe's own functions anywhere on the stack: a stage's
    inclusive time; the event loop and the entry points under everything are left out)."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f, repository) for f in stack.split(";")]
        total += count
        name, file = frames[-1]
        own[name] += count
        packages[_package(file)] += count
        for name in {n for n, f in frames if f.startswith("streams/")}:
            ours[name] += count
    for entry in ("main (streams/cli/__init__.py)", "<module> (streams/__main__.py)"):
        ours.pop(entry, None)
    for name in [n for n in ours if n.startswith(("_cmd_worker ", "run_worker "))]:
        del ours[name]
    if not total:
        return {"self": [], "self_by_package": [], "streams_total": []}
    return {
        key: [(name, n / total) for name, n in counts.most_common(limit)]
        for key, counts in (("self", own), ("self_by_package", packages), ("streams_total", ours))
    }


def record_profile(pid: int, step_s: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording the worker for a step, collapsed stacks, without pausing it."""
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    command += ["--duration", f"{max(1, round(step_s))}", "--rate", "100", "--nonblocking"]
    command += ["--full-filenames"]
    try:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError as err:
        raise TracepipeError(
            "--profile needs py-spy on PATH: pip install py-spy (into the same environment)"
        ) from err
