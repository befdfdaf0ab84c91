"""The layout's rules (docs/ARCHITECTURE.md, Layout): only streams/worker/ imports Faust, no
stage, sink or vocabulary module imports the worker or the app that composes it, and no module
is over MAX_MODULE_LINES lines (issue #15, "A layout that shows the stages")."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import streams

ROOT = Path(streams.__file__).parent
FAUST = ("faust", "mode")
"""Faust and mode, the service framework it runs on: the worker's runtime."""
EDGE = ("streams.worker", "streams.app")
PURE = ("model", "ingest", "assemble", "aggregate", "alert", "sink", "warehouse", "query")
MAX_MODULE_LINES = 400


def imported(path: Path) -> Iterator[str]:
    """Every module name an import statement in `path` names (relative imports resolved)."""
    package = ".".join(("streams", *path.relative_to(ROOT).parent.parts))
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield f"{base}.{node.module}" if node.module else base
            else:
                yield node.module or ""


def names(modules: Iterator[str], roots: tuple[str, ...]) -> set[str]:
    return {m for m in modules if any(m == root or m.startswith(f"{root}.") for root in roots)}


def test_only_the_worker_package_imports_faust() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(names(imported(path), FAUST))
        for path in ROOT.rglob("*.py")
        if path.relative_to(ROOT).parts[0] != "worker"
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_stages_sinks_and_the_vocabulary_import_no_worker() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(names(imported(path), EDGE))
        for package in PURE
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_rules_see_an_import() -> None:
    # The checks above pass on a tree with no imports at all: make sure they read them.
    assert "faust" in names(imported(ROOT / "worker" / "batch.py"), FAUST)
    assert "streams.worker.batch" in names(imported(ROOT / "worker" / "sink.py"), EDGE)


def test_no_module_is_over_the_line_limit() -> None:
    lines = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in ROOT.rglob("*.py")
    }
    assert {path: count for path, count in lines.items() if count > MAX_MODULE_LINES} == {}
