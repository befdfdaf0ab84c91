"""The CLI answers --help for every subcommand and reports errors without a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.cli import build_parser, main
from streams.config import settings_table
from streams.query.table import markdown_table, render_table

README = Path(__file__).parents[3] / "README.md"
SUBCOMMANDS = [
    "demo",
    "worker",
    "kafka",
    "produce",
    "generate",
    "trace",
    "topics",
    "db",
    "query",
    "alerts",
    "config",
]


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert re.search(rf"^\s+{name}\s", out, re.MULTILINE), name


@pytest.mark.parametrize("argv", [[c] for c in SUBCOMMANDS] + [["query", "sql"]])
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: tracepipe" in capsys.readouterr().out


def test_config_error_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEPIPE_KAFKA_PARTITIONS", "zero")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tracepipe: error: invalid kafka.partitions")
    assert "Traceback" not in err


def test_config_prints_effective_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEPIPE_KAFKA_PARTITIONS", "9")
    assert main(["config"]) == 0
    line = next(
        ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("kafka.partitions")
    )
    assert "9" in line and "TRACEPIPE_KAFKA_PARTITIONS" in line


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    missing = [env for _key, env, _default, _doc in settings_table() if f"`{env}`" not in text]
    assert not missing, f"README's configuration table lacks {missing}"


def test_render_table_aligns_columns() -> None:
    out = render_table([{"a": 1, "long_name": "x"}, {"a": 100, "long_name": "yy"}])
    assert out.splitlines() == [
        "a    long_name",
        "---  ---------",
        "1    x        ",
        "100  yy       ",
    ]
    assert render_table([]) == "(no rows)"


def test_markdown_table_escapes_pipes() -> None:
    out = markdown_table([{"a": 1, "b": "x|y"}, {"a": 22, "b": ""}])
    assert out.splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |", "| 22 |  |"]
    assert markdown_table([]) == "(no rows)"


def test_config_markdown_is_the_readme_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| key | variable | default | what it sets |"
    readme = README.read_text().splitlines()
    assert [ln for ln in lines if ln not in readme] == []
    assert len(lines) == len(settings_table()) + 2


def test_parser_requires_a_subcommand() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
