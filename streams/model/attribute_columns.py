"""Attribute maps as columns: every map of a span batch flattened into offsets, keys, value
types and values (the form `SpanColumns` carries span and resource attributes in)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.model.span import AttributeValue

U8 = npt.NDArray[np.uint8]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

# Attribute value types (AttributeColumns.types), as schemas/avro/span_columns.avsc names them.
NULL, BOOLEAN, LONG, DOUBLE, STRING, EXTRA = range(6)


def gather_ranges(offsets: U32, rows: npt.NDArray[np.intp]) -> tuple[U32, npt.NDArray[np.intp]]:
    """The offsets of the ranges `rows` of a flattened column, and the positions they cover."""
    starts = offsets[:-1][rows].astype(np.intp)
    counts = (offsets[1:][rows] - offsets[:-1][rows]).astype(np.intp)
    new_offsets = np.zeros(len(rows) + 1, dtype=np.uint32)
    np.cumsum(counts, out=new_offsets[1:])
    total = int(new_offsets[-1])
    positions = np.arange(total, dtype=np.intp) + np.repeat(
        starts - new_offsets[:-1].astype(np.intp), counts
    )
    return new_offsets, positions


@dataclass(frozen=True)
class AttributeColumns:
    """Attribute maps flattened: map i holds entries offsets[i]:offsets[i+1]."""

    offsets: U32
    keys: U32
    types: U8
    values: I64
    extras: list[Any] = field(default_factory=list)

    @property
    def maps(self) -> int:
        """How many maps these columns hold."""
        return len(self.offsets) - 1

    @property
    def counts(self) -> npt.NDArray[np.intp]:
        """Entries per map."""
        return np.diff(self.offsets).astype(np.intp)

    def select(self, rows: npt.NDArray[np.intp]) -> AttributeColumns:
        """The maps `rows`, in that order (extras shared)."""
        offsets, positions = gather_ranges(self.offsets, rows)
        return AttributeColumns(
            offsets, self.keys[positions], self.types[positions], self.values[positions],
            self.extras,
        )  # fmt: skip

    def python_values(self, strings: Sequence[str]) -> list[AttributeValue]:
        """Every entry's value as the Python value a decoded span carries."""
        types = self.types
        values = self.values
        out = np.empty(len(types), dtype=object)
        for kind in np.unique(types).tolist():
            mask = types == kind
            chosen = values[mask]
            if kind == STRING:
                # Picked one by one: an object array of every string costs the whole table.
                out[mask] = [strings[i] for i in chosen.tolist()]
            elif kind == LONG:
                out[mask] = chosen.astype(object)
            elif kind == DOUBLE:
                out[mask] = chosen.view(np.float64).astype(object)
            elif kind == BOOLEAN:
                out[mask] = (chosen != 0).astype(object)
            elif kind == EXTRA:
                # One by one: numpy would turn a list of equal-length arrays into a 2-D array.
                for at, extra in zip(np.flatnonzero(mask).tolist(), chosen.tolist(), strict=True):
                    out[at] = self.extras[extra]
        result: list[AttributeValue] = out.tolist()
        return result

    def dicts(self, strings: Sequence[str]) -> list[dict[str, AttributeValue]]:
        """Every map as a dict."""
        if not len(self.keys):
            return [{} for _ in range(self.maps)]
        keys = list(itemgetter(*self.keys.tolist())(strings)) if len(self.keys) > 1 else [
            strings[int(self.keys[0])]
        ]
        values = self.python_values(strings)
        bounds = self.offsets.tolist()
        return [
            dict(zip(keys[a:b], values[a:b], strict=True))
            for a, b in pairwise(bounds)
        ]

    def dicts_of(
        self, strings: Sequence[str], wanted: Collection[str]
    ) -> list[dict[str, AttributeValue]]:
        """Every map as a dict of its `wanted` keys only; the maps without any share one empty
        dict, so the result is read-only. A few keys of many maps cost numpy passes, not a dict
        per map."""
        empty: dict[str, AttributeValue] = {}
        out = [empty] * self.maps
        if not len(self.keys):
            return out
        # The batch's distinct keys, not its whole string table (values, names, ids...).
        wanted_ids = [k for k in np.unique(self.keys).tolist() if strings[k] in wanted]
        if not wanted_ids:
            return out
        hits = np.flatnonzero(np.isin(self.keys, wanted_ids))
        if not len(hits):
            return out
        owners = np.searchsorted(self.offsets, hits, side="right") - 1
        chosen = AttributeColumns(
            self.offsets[:1], self.keys[hits], self.types[hits], self.values[hits], self.extras
        )
        values = chosen.python_values(strings)
        for owner, key, value in zip(owners.tolist(), chosen.keys.tolist(), values, strict=True):
            found = out[owner]
            if found is empty:
                found = out[owner] = {}
            found[strings[key]] = value
        return out


def remapped_attributes(
    attributes: AttributeColumns, lookup: npt.NDArray[np.intp]
) -> AttributeColumns:
    """The columns with every string index (keys, string values) passed through `lookup`, and
    only the extras they use."""
    values = attributes.values.copy()
    is_text = attributes.types == STRING
    values[is_text] = lookup[values[is_text]]
    extras = attributes.extras
    is_extra = attributes.types == EXTRA
    if len(extras) and is_extra.sum() < len(extras):
        used = values[is_extra]
        extras = [extras[i] for i in used.tolist()]
        values[is_extra] = np.arange(len(used))
    return AttributeColumns(
        attributes.offsets, lookup[attributes.keys].astype(np.uint32), attributes.types, values,
        extras,
    )  # fmt: skip


def concat_attributes(parts: Sequence[tuple[AttributeColumns, int]]) -> AttributeColumns:
    """Attribute columns of several batches as one; each part comes with the offset of its
    batch's strings in the combined dictionary."""
    offsets = [np.zeros(1, dtype=np.uint32)]
    keys, types, values = [], [], []
    extras: list[Any] = []
    base = 0
    for columns, string_base in parts:
        offsets.append(columns.offsets[1:] + np.uint32(base))
        base += int(columns.offsets[-1])
        keys.append(columns.keys + np.uint32(string_base))
        shifted = columns.values.copy()
        shifted[columns.types == STRING] += string_base
        shifted[columns.types == EXTRA] += len(extras)
        values.append(shifted)
        types.append(columns.types)
        extras.extend(columns.extras)
    return AttributeColumns(
        np.concatenate(offsets), np.concatenate(keys), np.concatenate(types),
        np.concatenate(values), extras,
    )  # fmt: skip
