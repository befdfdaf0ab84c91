"""Writing a benchmark's result beside the commit it measured."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def current_commit() -> str:
    """The commit under test, with `+dirty` when the tree has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    sha = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True, capture_output=True
        ).stdout.strip()
        or "unknown"
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "streams", "schemas"],
        cwd=root,
        text=True,
        capture_output=True,
    ).stdout.strip()
    return f"{sha}+dirty" if dirty else sha


def record_result(name: str, result: dict[str, Any], markdown: str | None = None) -> Path:
    """Save `result` as bench/results/<name>-<commit>.json (and `markdown`, if given, beside it
    as .md) and print its headline figures."""
    commit = current_commit()
    payload = {
        "benchmark": name,
        "commit": commit,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **result,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{commit}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    if markdown is not None:
        heading = f"# {name} at {commit} ({payload['recorded_at']}, {os.cpu_count()} CPUs)"
        path.with_suffix(".md").write_text(f"{heading}\n\n{markdown.strip()}\n")
    if "cpu_us_per_span" in result and "spans_per_s" in result:
        print(
            f"{name}: {result['cpu_us_per_span']:.1f} CPU µs/span, "
            f"{result['spans_per_s']:,.0f} spans/s  (commit {commit}, saved {path.name})"
        )
    else:  # a benchmark of something else than throughput (e.g. bench.web_pages)
        print(f"{name}: commit {commit}, saved {path.name}")
    return path
