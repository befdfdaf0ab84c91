"""Avro encoding of tracepipe records on fastavro (the hot path), with schema evolution.

A message's value is the schemaless Avro body; its writer schema is named by the header
`tracepipe-schema` (the schema's CRC-64-AVRO fingerprint, hex). A value in Confluent's wire
format (magic byte 0, 4-byte schema id) is accepted too; without a Schema Registry its body is
read with the current schema.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.errors import DecodeError, SchemaError
from streams.paths import schemas_root

SCHEMA_HEADER = "tracepipe-schema"
_CONFLUENT_MAGIC = 0


def header_value(headers: Any, name: str) -> str | None:
    """A header's value as text from a Kafka message's headers (a dict or a list of pairs)."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == name:
            return value.decode() if isinstance(value, bytes | bytearray) else str(value)
    return None


def schema_fingerprint(parsed_schema: Any) -> str:
    """The CRC-64-AVRO fingerprint (hex) of a parsed schema's canonical form."""
    return str(fingerprint(to_parsing_canonical_form(parsed_schema), "CRC-64-AVRO"))


def load_schema(path: Path, array: bool = False) -> Any:
    """Parse one .avsc file with fastavro (as the items of an Avro array when `array`),
    raising SchemaError that names the file."""
    try:
        schema = json.loads(path.read_text())
        return fastavro.parse_schema({"type": "array", "items": schema} if array else schema)
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as err:
        raise SchemaError(f"cannot load Avro schema {path}: {err}") from err


class AvroCodec:
    """Encodes and decodes one record type (e.g. `span`) against its current and past schemas.

    With `array=True` a value is an Avro array of the record (a span batch): the writer schemas
    are the same files wrapped as `{"type": "array", "items": ...}`, with their own fingerprints.
    """

    def __init__(self, name: str, schema_dir: Path | None = None, *, array: bool = False) -> None:
        root = schema_dir or schemas_root() / "avro"
        self.name = f"{name} array" if array else name
        self.schema = load_schema(root / f"{name}.avsc", array)
        self.fingerprint = schema_fingerprint(self.schema)
        # Typed as confluent-kafka's produce() takes them.
        self.headers: list[tuple[str, str | bytes | None]] = [
            (SCHEMA_HEADER, self.fingerprint.encode())
        ]
        # Writer schemas we can resolve by fingerprint: the current one and every released one.
        self._writers: dict[str, Any] = {self.fingerprint: self.schema}
        for old in sorted((root / "history").glob(f"{name}.v*.avsc")):
            parsed = load_schema(old, array)
            self._writers.setdefault(schema_fingerprint(parsed), parsed)

    def encode(self, record: Any) -> bytes:
        """Schemaless Avro bytes of one record."""
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self.schema, record)
        return out.getvalue()

    def encode_batch(self, records: Iterable[Any]) -> list[bytes]:
        """Schemaless Avro bytes of each record."""
        out = io.BytesIO()
        encoded: list[bytes] = []
        write = fastavro.schemaless_writer
        for record in records:
            out.seek(0)
            out.truncate()
            write(out, self.schema, record)
            encoded.append(out.getvalue())
        return encoded

    def knows(self, writer_fingerprint: str | None) -> bool:
        """Whether `writer_fingerprint` names this codec's current or a released schema."""
        return writer_fingerprint in self._writers

    def decode(self, data: bytes, writer_fingerprint: str | None = None) -> Any:
        """Decode one value; raise DecodeError with a short reason when it cannot be read."""
        if not data:
            raise DecodeError("empty", "the record has no bytes")
        writer = self.schema
        if writer_fingerprint is not None and writer_fingerprint != self.fingerprint:
            found = self._writers.get(writer_fingerprint)
            if found is None:
                raise DecodeError(
                    "unknown-schema",
                    f"{SCHEMA_HEADER} {writer_fingerprint} is not a known {self.name} schema",
                )
            writer = found
        body = io.BytesIO(data)
        if writer_fingerprint is None and data[0] == _CONFLUENT_MAGIC and len(data) > 5:
            # No fingerprint header: the value may be in Confluent's framing. With the header,
            # a leading 0 is plain Avro (an empty first string field).
            body.seek(5)
        try:
            if writer is self.schema:
                record = fastavro.schemaless_reader(body, writer, None)
            else:
                record = fastavro.schemaless_reader(body, writer, self.schema)
        except (EOFError, ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError,
                OverflowError, MemoryError, fastavro.read.SchemaResolutionError) as err:
            raise DecodeError("avro-decode", f"{type(err).__name__}: {err}") from err
        if body.tell() != len(data):
            raise DecodeError(
                "avro-trailing-bytes",
                f"{len(data) - body.tell()} bytes left after the {self.name} record",
            )
        return record

    def decode_many(
        self, values: Sequence[bytes], fingerprints: Sequence[str | None]
    ) -> list[Any | DecodeError]:
        """Decode a batch; each slot holds the record or the DecodeError that rejected it."""
        out: list[Any | DecodeError] = []
        for data, fp in zip(values, fingerprints, strict=True):
            try:
                out.append(self.decode(data, fp))
            except DecodeError as err:
                out.append(err)
        return out
