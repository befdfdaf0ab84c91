"""otel_traces attribute text against pdata itself: the texts tracepipe writes
(`streams.model.attribute_text`) compared with pdata's `Value.AsString`, which is what the
Collector's ClickHouse exporter stores for every attribute (opentelemetry-collector-contrib
exporter/clickhouseexporter/internal/util.go, `AttributesToMap`). Not part of CI.

bench/pdata_oracle is a Go program calling pdata v1.71.0 (the Collector 0.165's); it is built
offline from the Go module cache, which `bash ../shared/peers/otelcol/build.sh` fills (or `go
mod download go.opentelemetry.io/collector/pdata@v1.71.0`). The values: the golden cases of
tests/unit/model/test_attribute_text.py and `--random` generated ones (doubles from random
bits and around every power of ten, strings of characters JSON escapes, bytes, arrays and maps
nested two deep). Prints how many texts differ, and the first ones; exits 1 if any do.

    python -m bench.attribute_text --random 20000
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from streams.model.attribute_text import attribute_text
from tests.unit.model.test_attribute_text import GOLDEN

ORACLE_SOURCE = Path(__file__).resolve().parent / "pdata_oracle"
PDATA = "go.opentelemetry.io/collector/pdata@v1.71.0"
# Characters JSON text escapes, or that tempt an encoder to: quotes, controls, line ends, HTML.
CHARACTERS = 'aZ0 /\\"<>&\n\t\b\f\r\x00\x1f\x7f\u0085\u2028\u2029\ufeffüé日😀'


def oracle_input(value: Any) -> dict[str, Any]:
    """`value` (a decoded attribute value, maps as dicts) as a pdata_oracle input object."""
    if value is None:
        return {"t": "empty"}
    if isinstance(value, bool):
        return {"t": "bool", "v": value}
    if isinstance(value, int):
        return {"t": "int", "v": str(value)}
    if isinstance(value, float):
        # strconv.ParseFloat reads repr's text, "nan" and "inf" included.
        return {"t": "double", "v": repr(value)}
    if isinstance(value, str):
        return {"t": "str", "v": value}
    if isinstance(value, bytes):
        return {"t": "bytes", "v": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return {"t": "slice", "v": [oracle_input(item) for item in value]}
    pairs = [{"k": key, "v": oracle_input(item)} for key, item in value.items()]
    return {"t": "map", "v": pairs}


def random_doubles(rng: random.Random, count: int) -> list[float]:
    """Doubles from random bits, and a few mantissas at every power of ten."""
    values = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(count)
    ]
    for exponent in range(-325, 309):
        for mantissa in (1.0, 1.5, 9.999999, 1.0000001):
            values.append(mantissa * 10.0**exponent)
    return [*values, 0.0, -0.0, math.inf, -math.inf, 2.0**53, 2.0**53 + 2, 1e21, 1e-6]


def random_value(rng: random.Random, doubles: list[float], depth: int = 0) -> Any:
    """An attribute value of any type; arrays and maps nested at most two deep."""
    kind = rng.randint(0, 7 if depth < 2 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-(2**63), 2**63 - 1)
    if kind == 3:
        return rng.choice(doubles)
    if kind == 4:
        return "".join(rng.choice(CHARACTERS) for _ in range(rng.randint(0, 6)))
    if kind == 5:
        return rng.randbytes(rng.randint(0, 5))
    if kind == 6:
        return [random_value(rng, doubles, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        "".join(rng.choice(CHARACTERS) for _ in range(rng.randint(0, 3))): random_value(
            rng, doubles, depth + 1
        )
        for _ in range(rng.randint(0, 4))
    }


def missing_go_line() -> str:
    """The one line printed when the oracle cannot be built."""
    return (
        f"bench.attribute_text: cannot build {ORACLE_SOURCE} offline: it needs Go >= 1.26 and "
        f"{PDATA} in the Go module cache (`bash ../shared/peers/otelcol/build.sh` fills it, or "
        f"`go mod download {PDATA}`)"
    )


def build_oracle(directory: Path) -> Path | None:
    """The oracle built in `directory` from a copy of its source; None when it cannot be."""
    go = shutil.which("go")
    if go is None:
        return None
    shutil.copytree(ORACLE_SOURCE, directory / "src")
    binary = directory / "pdata_oracle"
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=directory / "src",
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off"},
        capture_output=True,
        text=True,
    )
    return binary if built.returncode == 0 else None


def pdata_texts(binary: Path, values: list[Any]) -> list[str]:
    """pdata's AsString of every value, by the oracle."""
    lines = "".join(json.dumps(oracle_input(v)) + "\n" for v in values)
    out = subprocess.run([str(binary)], input=lines, capture_output=True, text=True, check=True)
    # Split on newlines only: the texts may hold other line ends (U+0085, ...).
    return [json.loads(line) for line in out.stdout.split("\n")[:-1]]


def main() -> None:
    """Compare and print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--random", type=int, default=20_000, help="random values besides golden")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    doubles = random_doubles(rng, args.random // 2)
    values = [value for _, value, _ in GOLDEN] + doubles
    values += [random_value(rng, doubles) for _ in range(args.random // 2)]
    with tempfile.TemporaryDirectory(prefix="tracepipe-oracle-") as directory:
        binary = build_oracle(Path(directory))
        if binary is None:
            print(missing_go_line(), file=sys.stderr)
            raise SystemExit(2)
        expected = pdata_texts(binary, values)
    differing = [
        (value, want, got)
        for value, want in zip(values, expected, strict=True)
        if (got := attribute_text(value)) != want
    ]
    print(
        f"{len(values):,} attribute values, {len(differing):,} texts differ from pdata's AsString"
    )
    for value, want, got in differing[:20]:
        print(f"  {value!r:.60}: pdata {want!r:.60}, tracepipe {got!r:.60}")
    if differing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
