"""The canonical layout of the Zipkin golden files: one span, link or edge per line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def dump_payload_cases(
    cases: list[dict[str, Any]], scalars: Sequence[str], payloads: str, rows: Sequence[str]
) -> str:
    """The cases as JSON: `scalars` one per line, `payloads` (a list of Zipkin payloads) one span
    per line, then each of `rows` one item per line."""
    out = []
    for case in cases:
        lines = ["  {"]
        for key in scalars:
            lines.append(f"    {json.dumps(key)}: {json.dumps(case[key])},")
        body = ",\n".join(
            "      [\n" + ",\n".join(f"        {json.dumps(row)}" for row in payload) + "\n      ]"
            for payload in case[payloads]
        )
        lines.append(f'    "{payloads}": [\n{body}\n    ],')
        for key in rows:
            items = ",\n".join(f"      {json.dumps(row)}" for row in case[key])
            end = "" if key == rows[-1] else ","
            lines.append(
                f'    "{key}": [\n{items}\n    ]{end}' if items else f'    "{key}": []{end}'
            )
        lines.append("  }")
        out.append("\n".join(lines))
    return "[\n" + ",\n".join(out) + "\n]\n"
