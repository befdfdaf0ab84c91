"""Every Avro schema must stay backward and forward compatible with its last released version."""

from __future__ import annotations

import re
from pathlib import Path

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from streams.paths import schemas_root

AVRO = schemas_root() / "avro"
CURRENT = sorted(AVRO.glob("*.avsc"))


def latest_release(name: str) -> Path | None:
    """The highest-numbered history/<name>.vN.avsc."""
    versions = [
        (int(m.group(1)), p)
        for p in (AVRO / "history").glob(f"{name}.v*.avsc")
        if (m := re.fullmatch(rf"{re.escape(name)}\.v(\d+)\.avsc", p.name))
    ]
    return max(versions)[1] if versions else None


def compatible(reader: Path, writer: Path) -> tuple[bool, str]:
    """Whether data written with `writer` can be read with `reader`, and why not."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(  # type: ignore[no-untyped-call]
        avro.schema.parse(reader.read_text()), avro.schema.parse(writer.read_text())
    )
    return result.compatibility is SchemaCompatibilityType.compatible, str(result.messages)


def test_there_are_schemas() -> None:
    assert any(p.stem == "span" for p in CURRENT)


@pytest.mark.parametrize("schema", CURRENT, ids=lambda p: p.stem)
def test_has_a_released_version(schema: Path) -> None:
    assert latest_release(schema.stem) is not None, (
        f"copy {schema.name} to history/{schema.stem}.v1.avsc when releasing it"
    )


@pytest.mark.parametrize("schema", CURRENT, ids=lambda p: p.stem)
def test_backward_compatible(schema: Path) -> None:
    released = latest_release(schema.stem)
    assert released is not None
    ok, why = compatible(reader=schema, writer=released)
    assert ok, f"{schema.name} cannot read data written with {released.name}: {why}"


@pytest.mark.parametrize("schema", CURRENT, ids=lambda p: p.stem)
def test_forward_compatible(schema: Path) -> None:
    released = latest_release(schema.stem)
    assert released is not None
    ok, why = compatible(reader=released, writer=schema)
    assert ok, f"{released.name} cannot read data written with {schema.name}: {why}"


def test_checker_catches_an_incompatible_change(tmp_path: Path) -> None:
    # A field added without a default breaks backward compatibility: the check must say so.
    old = tmp_path / "old.avsc"
    new = tmp_path / "new.avsc"
    old.write_text('{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}')
    new.write_text(
        '{"type":"record","name":"R","fields":[{"name":"a","type":"string"},'
        '{"name":"b","type":"long"}]}'
    )
    assert not compatible(reader=new, writer=old)[0]
    assert compatible(reader=old, writer=new)[0]
